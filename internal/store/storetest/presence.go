package storetest

import (
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// presenceTests check the ordering of host status writes and the clock
// skew field.
var presenceTests = []test{
	{"Presence/StatusWritesAreOrdered", testPresenceOrdered},
	{"Presence/ClockSkew", testPresenceClockSkew},
}

// testPresenceOrdered: a status write older than the stored change is
// skipped, whatever order the writes arrive in; last_seen only rises.
func testPresenceOrdered(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"))
	get := func() store.HostRecord {
		t.Helper()
		h, err := s.GetHost(ctx, "h1")
		ok(t, err, "GetHost")
		return h
	}
	if h := get(); !h.StatusChangedAt.IsZero() {
		t.Fatalf("a new host has a status change time: %v", h.StatusChangedAt)
	}
	// The newer "online" lands first, the older "offline" after it.
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOnline, at(2*time.Second)), "SetHostStatus online")
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOffline, at(time.Second)), "late SetHostStatus offline")
	h := get()
	if h.Status != api.HostOnline || !h.StatusChangedAt.Equal(at(2*time.Second)) || h.StatusChangedAt.Location() != time.UTC {
		t.Fatalf("a late offline write overwrote a newer online one: status %q changed at %v", h.Status, h.StatusChangedAt)
	}
	if !h.LastSeen.Equal(at(2 * time.Second)) {
		t.Fatalf("online at 2s: last seen %v", h.LastSeen)
	}
	// A newer offline applies and leaves last_seen alone.
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOffline, at(3*time.Second)), "SetHostStatus offline")
	h = get()
	if h.Status != api.HostOffline || !h.StatusChangedAt.Equal(at(3*time.Second)) || !h.LastSeen.Equal(at(2*time.Second)) {
		t.Fatalf("after offline at 3s: status %q changed at %v last seen %v", h.Status, h.StatusChangedAt, h.LastSeen)
	}
	// A write with the same time is a repeat: it applies (idempotent).
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOffline, at(3*time.Second)), "repeated SetHostStatus")
	// TouchHosts never lowers last_seen.
	ok(t, s.TouchHosts(ctx, map[string]time.Time{"h1": at(time.Second)}), "TouchHosts with an older time")
	if h = get(); !h.LastSeen.Equal(at(2 * time.Second)) {
		t.Fatalf("TouchHosts lowered last seen to %v", h.LastSeen)
	}
	// Online again later: applies.
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOnline, at(4*time.Second)), "SetHostStatus online again")
	if h = get(); h.Status != api.HostOnline || !h.LastSeen.Equal(at(4*time.Second)) {
		t.Fatalf("online at 4s: status %q last seen %v", h.Status, h.LastSeen)
	}
	hs, err := s.ListHosts(ctx, false)
	ok(t, err, "ListHosts")
	if len(hs) != 1 || !hs[0].StatusChangedAt.Equal(at(4*time.Second)) {
		t.Fatalf("ListHosts: %+v", hs)
	}
}

// testPresenceClockSkew: the skew is absent until set, kept to the
// millisecond, and never written to a revoked host.
func testPresenceClockSkew(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"), hostRec("h2", "web2"))
	h, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	if _, measured := h.ClockSkew(); measured {
		t.Fatalf("a new host has a clock skew: %d ms", *h.ClockSkewMillis)
	}
	for _, skew := range []time.Duration{10*time.Minute + 1500*time.Microsecond, -42 * time.Second, 0} {
		ok(t, s.SetHostClockSkew(ctx, "h1", skew), "SetHostClockSkew(%s)", skew)
		h, err := s.GetHostByName(ctx, "web1")
		ok(t, err, "GetHostByName")
		if got, measured := h.ClockSkew(); !measured || got != skew.Truncate(time.Millisecond) {
			t.Fatalf("skew %s stored: got %s (measured %v)", skew, got, measured)
		}
	}
	ok(t, s.SetHostClockSkew(ctx, "h2", time.Minute), "SetHostClockSkew h2")
	ok(t, s.RevokeHost(ctx, "h2"), "RevokeHost")
	ok(t, s.SetHostClockSkew(ctx, "h2", time.Hour), "SetHostClockSkew of a revoked host")
	h, err = s.GetHost(ctx, "h2")
	ok(t, err, "GetHost h2")
	if got, _ := h.ClockSkew(); got != time.Minute {
		t.Fatalf("SetHostClockSkew changed a revoked host: %s", got)
	}
	isErr(t, s.SetHostClockSkew(ctx, "nope", time.Second), store.ErrNotFound, "SetHostClockSkew of an unknown host")
}
