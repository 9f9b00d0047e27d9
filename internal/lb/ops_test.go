package lb

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// fake is an in-memory Balancer; Status answers late so that racing
// drains overlap.
type fake struct {
	mu      sync.Mutex
	servers []api.LBServerStatus
}

func (f *fake) Configure(context.Context, api.LBConfig) error   { return nil }
func (f *fake) ForceDown(context.Context, string, string) error { return nil }
func (f *fake) Remove(context.Context, string, string) error    { return nil }
func (f *fake) Status(_ context.Context, backend string) ([]api.LBServerStatus, error) {
	f.mu.Lock()
	out := append([]api.LBServerStatus(nil), f.servers...)
	f.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // the answer ages on its way
	return out, nil
}
func (f *fake) Set(_ context.Context, backend, server, state string, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.servers {
		if f.servers[i].Name == server {
			if state != "" {
				f.servers[i].State = state
			}
			if weight >= 0 {
				f.servers[i].Weight = weight
			}
		}
	}
	return nil
}

func newFake(names ...string) *fake {
	f := &fake{}
	for _, n := range names {
		f.servers = append(f.servers, api.LBServerStatus{Backend: "web", Name: n, State: api.LBReady, Health: "UP", Weight: 100})
	}
	return f
}

// Two drains at once of a backend's last two ready servers: one is refused.
func TestConcurrentDrainsKeepOneServer(t *testing.T) {
	f := newFake("a", "b")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Drain(context.Background(), f, "web", n, time.Second)
		}()
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), "last server") {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("refusals %d (errors %v), want exactly 1", refused, errs)
	}
}

// A drain whose sessions never end times out, reported, and the server
// is in maint anyway; an unknown server is an error naming the servers.
func TestDrainTimeout(t *testing.T) {
	f := newFake("a", "b")
	f.servers[0].Sessions = 2
	out, err := Drain(context.Background(), f, "web", "a", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !out.TimedOut || !strings.HasPrefix(out.Detail, "2 sessions still open after") || f.servers[0].State != api.LBMaint {
		t.Fatalf("outcome %+v, state %s", out, f.servers[0].State)
	}
	if _, err := Drain(context.Background(), f, "web", "zz", time.Second); err == nil || !strings.Contains(err.Error(), `no server "zz" (servers: a, b)`) {
		t.Fatalf("unknown server: %v", err)
	}
	if _, err := Weights(context.Background(), f, "web", map[string]int{"a": 300}); err == nil || !strings.Contains(err.Error(), "0 to 256") {
		t.Fatalf("weight 300: %v", err)
	}
}

// recording wraps fake and records the weights set, in order.
type recording struct {
	*fake
	sets []string
}

func (r *recording) Set(ctx context.Context, backend, server, state string, weight int) error {
	r.sets = append(r.sets, server)
	return r.fake.Set(ctx, backend, server, state, weight)
}

// Moving all traffic from a and b to c and d: c and d go up before a and
// b go down, so the backend never has every weight at 0.
func TestWeightsRaiseBeforeLowering(t *testing.T) {
	f := newFake("a", "b", "c", "d")
	f.servers[2].Weight, f.servers[3].Weight = 0, 0
	r := &recording{fake: f}
	if _, err := Weights(context.Background(), r, "web", map[string]int{"a": 0, "b": 0, "c": 100, "d": 100}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.sets, ","); got != "c,d,a,b" {
		t.Fatalf("weights set in the order %s, want c,d,a,b (those going up first)", got)
	}
}

// DrainKeep waits for the sessions like Drain, then leaves the server in
// drain at the given weight, not in maint (a blue/green original kept
// ready to take the traffic back); its sessions ending are waited for.
func TestDrainKeep(t *testing.T) {
	f := newFake("a", "b")
	f.servers[0].Weight, f.servers[0].Sessions = 0, 1
	go func() {
		// The last session ends while DrainKeep polls.
		for range 200 {
			f.mu.Lock()
			draining := f.servers[0].State == api.LBDrain
			if draining {
				f.servers[0].Sessions = 0
			}
			f.mu.Unlock()
			if draining {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	out, err := DrainKeep(context.Background(), f, "web", "a", 100, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out.TimedOut || !strings.Contains(out.Detail, "drained 1 sessions") || !strings.Contains(out.Detail, "kept in drain (weight 100)") {
		t.Fatalf("outcome %+v", out)
	}
	if s := f.servers[0]; s.State != api.LBDrain || s.Weight != 100 {
		t.Fatalf("server a after DrainKeep: %s weight %d, want drain 100", s.State, s.Weight)
	}
}
