package fleet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// reorderStore is the engine's store with status writes that can be held
// (to land after a later one) or failed.
type reorderStore struct {
	Store
	mu      sync.Mutex
	hold    map[string]chan struct{} // status -> closed to let held writes of it go
	entered chan string              // a held write arrived (its status)
	fail    int                      // fail this many status writes
}

func (s *reorderStore) SetHostStatus(ctx context.Context, id, status string, at time.Time) error {
	s.mu.Lock()
	gate, fail := s.hold[status], s.fail > 0
	if fail {
		s.fail--
	}
	s.mu.Unlock()
	if fail {
		return errors.New("injected store failure")
	}
	if gate != nil {
		s.entered <- status
		<-gate
	}
	return s.Store.SetHostStatus(ctx, id, status, at)
}

// fakeClock is a clock the test moves, safe to read from the engine's loops.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// presenceRig is a rig whose engine writes status through a reorderStore
// and reads a fakeClock.
func presenceRig(t *testing.T, hosts ...string) (*rig, *reorderStore, *fakeClock) {
	t.Helper()
	r := newRig(t, hosts...)
	rs := &reorderStore{Store: r.st, hold: map[string]chan struct{}{}, entered: make(chan string, 10)}
	clk := &fakeClock{t: r.clock}
	r.e.st, r.e.now = rs, clk.now
	return r, rs, clk
}

func (r *rig) stored(name string) api.Host {
	r.t.Helper()
	h, err := r.st.GetHost(r.ctx, r.hosts[name])
	if err != nil {
		r.t.Fatal(err)
	}
	return h.Host
}

// TestLateStatusWriteNeverWins: whichever of two status writes of a host
// reaches the store last, the newer status stays, in memory and stored.
func TestLateStatusWriteNeverWins(t *testing.T) {
	for _, tc := range []struct {
		name string
		held string // the write held until the newer one has landed
		want string
	}{
		{"late offline after a newer online", api.HostOffline, api.HostOnline},
		{"late online after a newer offline", api.HostOnline, api.HostOffline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, rs, clk := presenceRig(t, "a")
			id, hb := r.hosts["a"], r.e.cfg.Heartbeat
			gate := make(chan struct{})
			done := make(chan struct{})
			if tc.held == api.HostOffline {
				// 3 heartbeats missed: the offline write is held …
				rs.hold[api.HostOffline] = gate
				clk.advance(3*hb + time.Millisecond)
				go func() { r.e.presenceTick(r.ctx, clk.now(), false, false); close(done) }()
				<-rs.entered
				// … while the host heartbeats again: online, written at once.
				clk.advance(time.Millisecond)
				r.e.HandleHeartbeat(r.ctx, id)
			} else {
				clk.advance(3*hb + time.Millisecond)
				r.e.presenceTick(r.ctx, clk.now(), false, false)
				// The host comes back: its online write is held …
				rs.hold[api.HostOnline] = gate
				clk.advance(time.Millisecond)
				go func() { r.e.HandleHeartbeat(r.ctx, id); close(done) }()
				<-rs.entered
				// … while it misses 3 heartbeats again: offline, written.
				clk.advance(3*hb + time.Millisecond)
				r.e.presenceTick(r.ctx, clk.now(), false, false)
			}
			close(gate) // the stale write lands last
			<-done
			if got := r.stored("a"); got.Status != tc.want {
				t.Errorf("stored status %q, want %q (changed at %v)", got.Status, tc.want, got.StatusChangedAt)
			}
			if got := r.e.HostOnline(id); got != (tc.want == api.HostOnline) {
				t.Errorf("in memory: online=%v, want %s", got, tc.want)
			}
		})
	}
}

// TestFailedStatusWriteIsRetried: a status write the store refused is
// written again by the next tick.
func TestFailedStatusWriteIsRetried(t *testing.T) {
	r, rs, clk := presenceRig(t, "a")
	clk.advance(3*r.e.cfg.Heartbeat + time.Millisecond)
	r.e.presenceTick(r.ctx, clk.now(), false, false)
	if got := r.stored("a").Status; got != api.HostOffline {
		t.Fatalf("after 3 missed heartbeats: stored %q", got)
	}
	rs.fail = 1
	clk.advance(time.Millisecond)
	r.e.HandleHeartbeat(r.ctx, r.hosts["a"])
	if got := r.stored("a").Status; got != api.HostOffline {
		t.Fatalf("the failed write was stored: %q", got)
	}
	r.e.presenceTick(r.ctx, clk.now(), false, false)
	if got := r.stored("a").Status; got != api.HostOnline {
		t.Fatalf("after the next tick: stored %q, want online", got)
	}
}

// TestPausedServerKeepsHostsOnline: after the server was paused for longer
// than 3 heartbeats, the presence loop notices it ran late and gives hosts
// a grace period in which their queued heartbeats are read; a host that
// stays silent through the grace still goes offline.
func TestPausedServerKeepsHostsOnline(t *testing.T) {
	r, _, clk := presenceRig(t, "a", "b")
	hb := r.e.cfg.Heartbeat
	before := r.stored("a").StatusChangedAt
	last := clk.now()
	tick := func() { // one turn of presenceLoop, on time or not
		now := clk.now()
		r.e.presenceTick(r.ctx, now, r.e.tickLate(now.Sub(last)), false)
		last = now
	}
	clk.advance(hb / 2)
	tick()

	clk.advance(20 * time.Second) // SIGSTOP … SIGCONT
	tick()                        // the first tick runs before the queued heartbeats are read
	for _, name := range []string{"a", "b"} {
		if h := r.stored(name); h.Status != api.HostOnline || !h.StatusChangedAt.Equal(before) {
			t.Fatalf("%s after the pause: %s since %v (before: online since %v)", name, h.Status, h.StatusChangedAt, before)
		}
	}
	// a's heartbeats come (the queued one, then every interval); b is gone.
	for i := range 8 {
		if i%2 == 0 {
			r.e.HandleHeartbeat(r.ctx, r.hosts["a"])
		}
		clk.advance(hb / 2)
		tick()
	}
	if h := r.stored("a"); h.Status != api.HostOnline || !h.StatusChangedAt.Equal(before) {
		t.Errorf("a, heartbeating: %s since %v (before: online since %v)", h.Status, h.StatusChangedAt, before)
	}
	if h := r.stored("b"); h.Status != api.HostOffline {
		t.Errorf("b, silent for 4 heartbeats after the grace began: %s", h.Status)
	}
}

// TestTickLate: a tick is late when it comes more than a heartbeat after it
// was due (half a heartbeat after the previous one).
func TestTickLate(t *testing.T) {
	e := New(nil, nil, Config{Heartbeat: time.Second}, nil)
	for _, tc := range []struct {
		since time.Duration
		late  bool
	}{{500 * time.Millisecond, false}, {1500 * time.Millisecond, false}, {1501 * time.Millisecond, true}, {20 * time.Second, true}} {
		if got := e.tickLate(tc.since); got != tc.late {
			t.Errorf("tickLate(%s) = %v, want %v", tc.since, got, tc.late)
		}
	}
}

// TestClockSkewStoredOnChange: a host's reported skew is stored when it
// first comes and when it moves by a second or more.
func TestClockSkewStoredOnChange(t *testing.T) {
	r, _, _ := presenceRig(t, "a")
	id := r.hosts["a"]
	for _, tc := range []struct {
		report time.Duration
		want   time.Duration
	}{
		{10*time.Minute + 3*time.Millisecond, 10*time.Minute + 3*time.Millisecond},
		{10*time.Minute + 500*time.Millisecond, 10*time.Minute + 3*time.Millisecond}, // jitter: kept
		{-2 * time.Second, -2 * time.Second},
	} {
		r.e.HandleClock(r.ctx, id, protocol.Clock{SkewMillis: tc.report.Milliseconds()})
		if got, ok := r.stored("a").ClockSkew(); !ok || got != tc.want {
			t.Fatalf("after a report of %s: stored %s (measured %v), want %s", tc.report, got, ok, tc.want)
		}
	}
}
