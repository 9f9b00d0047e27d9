package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var hostTests = []test{
	{"EnrollHost/Creates", testEnrollCreates},
	{"EnrollHost/Defaults", testEnrollDefaults},
	{"EnrollHost/TokenLabelsWin", testEnrollTokenLabels},
	{"EnrollHost/TokenErrors", testEnrollTokenErrors},
	{"EnrollHost/MaxUses", testEnrollMaxUses},
	{"EnrollHost/Unlimited", testEnrollUnlimited},
	{"EnrollHost/Conflicts", testEnrollConflicts},
	{"EnrollHost/NameFreeAfterRevoke", testEnrollNameFreeAfterRevoke},
	{"EnrollHost/Concurrent", testEnrollConcurrent},
	{"Hosts/NotFound", testHostsNotFound},
	{"Hosts/RevokedByNameAndNKey", testHostsRevokedLookups},
	{"Hosts/ListOrder", testHostsListOrder},
	{"Hosts/Labels", testHostsLabels},
	{"Hosts/Facts", testHostsFacts},
	{"Hosts/Status", testHostsStatus},
	{"Hosts/Touch", testHostsTouch},
	{"Hosts/RevokeIdempotent", testHostsRevokeIdempotent},
}

// joinToken returns a join token with hash "hash-"+id.
func joinToken(id string, maxUses, uses int, expires time.Time) store.JoinTokenRecord {
	return store.JoinTokenRecord{
		JoinToken: api.JoinToken{
			ID:        id,
			ExpiresAt: expires, MaxUses: maxUses, Uses: uses, CreatedAt: t0,
		},
		Hash: "hash-" + id,
	}
}

// hostRec returns a host record with every field set.
func hostRec(id, name string) store.HostRecord {
	return store.HostRecord{
		Host: api.Host{
			ID: id, Name: name,
			Labels: map[string]string{"role": "web", "id": id},
			Facts: api.Facts{
				Hostname: name, OS: "linux", Kernel: "6.1.0", Arch: "amd64", CPUs: 4,
				MemoryBytes: 1 << 34, Addresses: []string{"10.0.0.1", "fe80::1"}, AgentVersion: "1.2.3",
			},
			Status:     api.HostOffline,
			EnrolledAt: at(time.Minute),
		},
		NKey: "U" + strings.ToUpper(id),
	}
}

// utcHost is what a store returns for h.
func utcHost(h store.HostRecord) store.HostRecord {
	h.LastSeen, h.EnrolledAt = utc(h.LastSeen), utc(h.EnrolledAt)
	if h.Labels == nil {
		h.Labels = map[string]string{}
	}
	return h
}

// openToken creates an unlimited join token and returns its hash.
func openToken(t *testing.T, s store.Store) string {
	t.Helper()
	tok := joinToken("open", 0, 0, at(24*time.Hour))
	ok(t, s.CreateJoinToken(t.Context(), tok), "CreateJoinToken")
	return tok.Hash
}

// enroll enrolls hosts with an unlimited token and returns them.
func enroll(t *testing.T, s store.Store, hs ...store.HostRecord) []store.HostRecord {
	t.Helper()
	hash := openToken(t, s)
	for _, h := range hs {
		ok(t, s.EnrollHost(t.Context(), hash, t0, h), "EnrollHost %s", h.ID)
	}
	return hs
}

// tokenUses returns the Uses of the join token with the given id.
func tokenUses(t *testing.T, s store.Store, id string) int {
	t.Helper()
	ts, err := s.ListJoinTokens(t.Context())
	ok(t, err, "ListJoinTokens")
	for _, tok := range ts {
		if tok.ID == id {
			return tok.Uses
		}
	}
	t.Fatalf("join token %s not listed", id)
	return 0
}

func testEnrollCreates(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := joinToken("t1", 2, 0, at(time.Hour))
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	h := hostRec("h1", "web1")
	ok(t, s.EnrollHost(ctx, tok.Hash, t0, h), "EnrollHost")
	want := utcHost(h)

	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	same(t, got, want, "GetHost")
	if got.EnrolledAt.Location() != time.UTC {
		t.Errorf("EnrolledAt location = %v, want UTC", got.EnrolledAt.Location())
	}
	got, err = s.GetHostByName(ctx, "web1")
	ok(t, err, "GetHostByName")
	same(t, got, want, "GetHostByName")
	got, err = s.GetHostByNKey(ctx, h.NKey)
	ok(t, err, "GetHostByNKey")
	same(t, got, want, "GetHostByNKey")
	if n := tokenUses(t, s, "t1"); n != 1 {
		t.Errorf("token uses = %d, want 1", n)
	}
}

func testEnrollDefaults(t *testing.T, s store.Store) {
	ctx := t.Context()
	hash := openToken(t, s)
	h := hostRec("h1", "web1")
	h.Status, h.EnrolledAt, h.Labels = "", time.Time{}, nil
	ok(t, s.EnrollHost(ctx, hash, at(time.Second), h), "EnrollHost")
	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	if got.Status != api.HostOffline {
		t.Errorf("Status = %q, want %q for a host that never connected", got.Status, api.HostOffline)
	}
	if !got.EnrolledAt.Equal(at(time.Second)) {
		t.Errorf("EnrolledAt = %v, want the enrollment time %v", got.EnrolledAt, at(time.Second))
	}
	if got.Labels == nil || len(got.Labels) != 0 {
		t.Errorf("Labels = %#v, want an empty map", got.Labels)
	}
	if !got.LastSeen.IsZero() {
		t.Errorf("LastSeen = %v, want zero", got.LastSeen)
	}
}

func testEnrollTokenLabels(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := joinToken("labelled", 0, 0, at(time.Hour))
	tok.Labels = map[string]string{"env": "prod", "role": "db"}
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	h := hostRec("h1", "web1") // asks for role=web, id=h1
	ok(t, s.EnrollHost(ctx, tok.Hash, at(time.Second), h), "EnrollHost")
	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	want := map[string]string{"env": "prod", "role": "db", "id": "h1"}
	if len(got.Labels) != len(want) {
		t.Fatalf("Labels = %v, want %v", got.Labels, want)
	}
	for k, v := range want {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (the token's labels win)", k, got.Labels[k], v)
		}
	}
}

func testEnrollTokenErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	expires := at(time.Hour)
	for i, tc := range []struct {
		name    string
		tok     *store.JoinTokenRecord // nil: no token
		now     time.Time
		wantErr error
	}{
		{"unknown", nil, t0, store.ErrNotFound},
		{"expired at expiry", ptr(joinToken("x", 0, 0, expires)), expires, store.ErrExpired},
		{"expired after expiry", ptr(joinToken("x", 5, 1, expires)), expires.Add(time.Hour), store.ErrExpired},
		{"expired and used up", ptr(joinToken("x", 1, 1, expires)), expires, store.ErrExpired},
		{"used up", ptr(joinToken("x", 1, 1, expires)), t0, store.ErrUsedUp},
		{"used up beyond", ptr(joinToken("x", 2, 3, expires)), t0, store.ErrUsedUp},
		{"valid 1ns before expiry", ptr(joinToken("x", 1, 0, expires)), expires.Add(-time.Nanosecond), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hash := fmt.Sprintf("missing-%d", i)
			if tc.tok != nil {
				tc.tok.ID = fmt.Sprintf("tok%d", i)
				tc.tok.Hash = "hash-" + tc.tok.ID
				hash = tc.tok.Hash
				ok(t, s.CreateJoinToken(ctx, *tc.tok), "CreateJoinToken")
			}
			h := hostRec(fmt.Sprintf("h%d", i), fmt.Sprintf("host%d", i))
			err := s.EnrollHost(ctx, hash, tc.now, h)
			if tc.wantErr == nil {
				ok(t, err, "EnrollHost")
				if n := tokenUses(t, s, tc.tok.ID); n != tc.tok.Uses+1 {
					t.Fatalf("token uses = %d, want %d", n, tc.tok.Uses+1)
				}
				return
			}
			isErr(t, err, tc.wantErr, "EnrollHost")
			_, err = s.GetHost(ctx, h.ID)
			isErr(t, err, store.ErrNotFound, "GetHost after failed enrollment")
			if tc.tok != nil {
				if n := tokenUses(t, s, tc.tok.ID); n != tc.tok.Uses {
					t.Fatalf("token uses = %d after failed enrollment, want %d", n, tc.tok.Uses)
				}
			}
		})
	}
}

func testEnrollMaxUses(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := joinToken("t", 3, 0, at(time.Hour))
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	for i := range 3 {
		ok(t, s.EnrollHost(ctx, tok.Hash, t0, hostRec(fmt.Sprint("h", i), fmt.Sprint("n", i))), "EnrollHost %d", i)
	}
	err := s.EnrollHost(ctx, tok.Hash, t0, hostRec("h3", "n3"))
	isErr(t, err, store.ErrUsedUp, "fourth EnrollHost")
	if n := tokenUses(t, s, "t"); n != 3 {
		t.Fatalf("uses = %d, want 3", n)
	}
	hs, err := s.ListHosts(ctx, true)
	ok(t, err, "ListHosts")
	if len(hs) != 3 {
		t.Fatalf("hosts = %s, want 3", names(hs))
	}
}

func testEnrollUnlimited(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := joinToken("t", 0, 0, at(time.Hour))
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	for i := range 12 {
		ok(t, s.EnrollHost(ctx, tok.Hash, t0, hostRec(fmt.Sprint("h", i), fmt.Sprint("n", i))), "EnrollHost %d", i)
	}
	if n := tokenUses(t, s, "t"); n != 12 {
		t.Fatalf("uses = %d, want 12", n)
	}
	err := s.EnrollHost(ctx, tok.Hash, at(time.Hour), hostRec("late", "late"))
	isErr(t, err, store.ErrExpired, "EnrollHost at expiry of unlimited token")
}

func testEnrollConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := hostRec("h1", "web1")
	enroll(t, s, orig)
	tok := joinToken("t", 5, 0, at(time.Hour))
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	for _, tc := range []struct {
		name string
		h    store.HostRecord
	}{
		{"duplicate nkey", func() store.HostRecord { h := hostRec("h2", "web2"); h.NKey = orig.NKey; return h }()},
		{"duplicate name", hostRec("h2", "web1")},
		{"duplicate id", hostRec("h1", "web2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isErr(t, s.EnrollHost(ctx, tok.Hash, t0, tc.h), store.ErrConflict, "EnrollHost")
			if n := tokenUses(t, s, "t"); n != 0 {
				t.Fatalf("token use consumed by a failed enrollment: uses = %d", n)
			}
			got, err := s.GetHost(ctx, "h1")
			ok(t, err, "GetHost")
			same(t, got, utcHost(orig), "original host")
			hs, err := s.ListHosts(ctx, true)
			ok(t, err, "ListHosts")
			if len(hs) != 1 {
				t.Fatalf("hosts = %s, want only h1", names(hs))
			}
		})
	}
}

func testEnrollNameFreeAfterRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	hash := openToken(t, s)
	ok(t, s.EnrollHost(ctx, hash, t0, hostRec("a", "web1")), "EnrollHost a")
	ok(t, s.RevokeHost(ctx, "a"), "RevokeHost a")
	ok(t, s.EnrollHost(ctx, hash, t0, hostRec("b", "web1")), "EnrollHost b with the name of revoked a")
	got, err := s.GetHostByName(ctx, "web1")
	ok(t, err, "GetHostByName")
	if got.ID != "b" {
		t.Fatalf("GetHostByName(web1) = %s, want b", got.ID)
	}
	isErr(t, s.EnrollHost(ctx, hash, t0, hostRec("c", "web1")), store.ErrConflict, "EnrollHost c with b's name")
	again := hostRec("d", "web9")
	again.NKey = hostRec("a", "").NKey
	isErr(t, s.EnrollHost(ctx, hash, t0, again), store.ErrConflict, "EnrollHost with a revoked host's nkey")
	hs, err := s.ListHosts(ctx, true)
	ok(t, err, "ListHosts")
	if got := names(hs); got != "web1(a) web1(b)" {
		t.Fatalf("ListHosts(true) = %s", got)
	}
}

func testEnrollConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := joinToken("t", 3, 0, at(time.Hour))
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken")
	errs := run(12, func(i int) error {
		return s.EnrollHost(ctx, tok.Hash, t0, hostRec(fmt.Sprint("h", i), fmt.Sprint("n", i)))
	})
	nils, usedUp := countErrs(t, errs, store.ErrUsedUp)
	if nils != 3 || usedUp != 9 {
		t.Fatalf("%d enrolled, %d used up; want 3 and 9", nils, usedUp)
	}
	if n := tokenUses(t, s, "t"); n != 3 {
		t.Fatalf("uses = %d, want 3", n)
	}
	hs, err := s.ListHosts(ctx, false)
	ok(t, err, "ListHosts")
	if len(hs) != 3 {
		t.Fatalf("hosts = %s, want 3", names(hs))
	}
}

func testHostsNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetHost", func() error { _, err := s.GetHost(ctx, "nope"); return err }},
		{"GetHostByName", func() error { _, err := s.GetHostByName(ctx, "nope"); return err }},
		{"GetHostByNKey", func() error { _, err := s.GetHostByNKey(ctx, "UNOPE"); return err }},
		{"SetHostLabels", func() error { return s.SetHostLabels(ctx, "nope", map[string]string{"a": "b"}) }},
		{"SetHostFacts", func() error { return s.SetHostFacts(ctx, "nope", api.Facts{OS: "linux"}) }},
		{"SetHostStatus", func() error { return s.SetHostStatus(ctx, "nope", api.HostOnline, t0) }},
		{"RevokeHost", func() error { return s.RevokeHost(ctx, "nope") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isErr(t, tc.call(), store.ErrNotFound, "%s of a missing host", tc.name)
		})
	}
}

func testHostsRevokedLookups(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := enroll(t, s, hostRec("h1", "web1"))[0]
	ok(t, s.RevokeHost(ctx, "h1"), "RevokeHost")
	_, err := s.GetHostByName(ctx, "web1")
	isErr(t, err, store.ErrNotFound, "GetHostByName of a revoked host")
	want := utcHost(h)
	want.Status = api.HostRevoked
	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	same(t, got, want, "GetHost of a revoked host")
	got, err = s.GetHostByNKey(ctx, h.NKey)
	ok(t, err, "GetHostByNKey")
	same(t, got, want, "GetHostByNKey of a revoked host")
}

func testHostsListOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	hs, err := s.ListHosts(ctx, true)
	ok(t, err, "ListHosts on an empty store")
	if len(hs) != 0 {
		t.Fatalf("ListHosts on an empty store = %s", names(hs))
	}
	// Names are ordered by bytes, whatever the database's locale: upper
	// case first, "-" before letters.
	enroll(t, s, hostRec("1", "charlie"), hostRec("2", "alpha"), hostRec("3", "Bravo"), hostRec("4", "alpha-old"),
		hostRec("5", "alphabet"), hostRec("0", "charlie-2"))
	ok(t, s.RevokeHost(ctx, "4"), "RevokeHost")
	ok(t, s.RevokeHost(ctx, "1"), "RevokeHost")
	ok(t, s.EnrollHost(ctx, "hash-open", t0, hostRec("6", "charlie")), "EnrollHost with a revoked name")
	hs, err = s.ListHosts(ctx, false)
	ok(t, err, "ListHosts(false)")
	if got := names(hs); got != "Bravo(3) alpha(2) alphabet(5) charlie(6) charlie-2(0)" {
		t.Errorf("ListHosts(false) = %s", got)
	}
	hs, err = s.ListHosts(ctx, true)
	ok(t, err, "ListHosts(true)")
	if got := names(hs); got != "Bravo(3) alpha(2) alpha-old(4) alphabet(5) charlie(1) charlie(6) charlie-2(0)" {
		t.Errorf("ListHosts(true) = %s", got)
	}
	same(t, hs[1], utcHost(hostRec("2", "alpha")), "listed host")
}

func testHostsLabels(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"), hostRec("h2", "web2"))
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
	}{
		{"replace", map[string]string{"zone": "eu-1", "tier": "db"}, map[string]string{"zone": "eu-1", "tier": "db"}},
		{"unicode and quotes", map[string]string{"note": `"ä" \ ü`}, map[string]string{"note": `"ä" \ ü`}},
		{"empty", map[string]string{}, map[string]string{}},
		{"nil", nil, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok(t, s.SetHostLabels(ctx, "h1", tc.labels), "SetHostLabels")
			got, err := s.GetHost(ctx, "h1")
			ok(t, err, "GetHost")
			same(t, got.Labels, tc.want, "labels")
			other, err := s.GetHost(ctx, "h2")
			ok(t, err, "GetHost h2")
			same(t, other.Labels, hostRec("h2", "").Labels, "labels of another host")
		})
	}
}

func testHostsFacts(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"))
	facts := api.Facts{Hostname: "web1.example", OS: "linux", Arch: "arm64", CPUs: 128,
		MemoryBytes: 1<<63 + 5, Addresses: []string{"192.0.2.1"}, AgentVersion: "2.0.0"}
	ok(t, s.SetHostFacts(ctx, "h1", facts), "SetHostFacts")
	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	same(t, got.Facts, facts, "facts")
	same(t, got.Labels, hostRec("h1", "").Labels, "labels after SetHostFacts")
}

func testHostsStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"), hostRec("h2", "web2"))
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOnline, at(time.Hour)), "SetHostStatus")
	got, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	if got.Status != api.HostOnline || !got.LastSeen.Equal(at(time.Hour)) || got.LastSeen.Location() != time.UTC {
		t.Fatalf("after SetHostStatus: status %q last seen %v", got.Status, got.LastSeen)
	}

	ok(t, s.SetHostStatus(ctx, "h2", api.HostOnline, at(time.Hour)), "SetHostStatus h2")
	ok(t, s.RevokeHost(ctx, "h2"), "RevokeHost")
	for _, status := range []string{api.HostOnline, api.HostOffline} {
		ok(t, s.SetHostStatus(ctx, "h2", status, at(2*time.Hour)), "SetHostStatus(%s) of a revoked host", status)
		got, err := s.GetHost(ctx, "h2")
		ok(t, err, "GetHost")
		if got.Status != api.HostRevoked || !got.LastSeen.Equal(at(time.Hour)) {
			t.Fatalf("SetHostStatus(%s) changed a revoked host: status %q last seen %v", status, got.Status, got.LastSeen)
		}
	}
}

func testHostsTouch(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"), hostRec("h2", "web2"), hostRec("h3", "web3"), hostRec("h4", "web4"))
	ok(t, s.SetHostStatus(ctx, "h1", api.HostOnline, at(time.Second)), "SetHostStatus")
	ok(t, s.RevokeHost(ctx, "h3"), "RevokeHost")
	ok(t, s.TouchHosts(ctx, nil), "TouchHosts(nil)")
	ok(t, s.TouchHosts(ctx, map[string]time.Time{
		"h1": at(time.Minute), "h2": at(2 * time.Minute), "h3": at(3 * time.Minute), "unknown": at(time.Hour),
	}), "TouchHosts")
	for _, want := range []struct {
		id       string
		status   string
		lastSeen time.Time
	}{
		{"h1", api.HostOnline, at(time.Minute)},
		{"h2", api.HostOffline, at(2 * time.Minute)},
		{"h3", api.HostRevoked, time.Time{}},
		{"h4", api.HostOffline, time.Time{}},
	} {
		got, err := s.GetHost(ctx, want.id)
		ok(t, err, "GetHost %s", want.id)
		if got.Status != want.status || !got.LastSeen.Equal(want.lastSeen) {
			t.Errorf("%s: status %q last seen %v, want %q %v", want.id, got.Status, got.LastSeen, want.status, want.lastSeen)
		}
	}
	_, err := s.GetHost(ctx, "unknown")
	isErr(t, err, store.ErrNotFound, "TouchHosts must not create hosts")
}

func testHostsRevokeIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	enroll(t, s, hostRec("h1", "web1"), hostRec("h2", "web2"))
	for range 2 {
		ok(t, s.RevokeHost(ctx, "h1"), "RevokeHost")
	}
	hs, err := s.ListHosts(ctx, false)
	ok(t, err, "ListHosts")
	if got := names(hs); got != "web2(h2)" {
		t.Fatalf("ListHosts(false) = %s, want web2(h2)", got)
	}
	h, err := s.GetHost(ctx, "h1")
	ok(t, err, "GetHost")
	if h.Status != api.HostRevoked {
		t.Fatalf("status = %q", h.Status)
	}
}
