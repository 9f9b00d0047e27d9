package lb

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// PollInterval is how often Drain and Allow read the load balancer's
// status while they wait.
const PollInterval = 25 * time.Millisecond

// Outcome is what an operation did.
type Outcome struct {
	// Detail says it in a few words ("drained 3 sessions in 2.9s").
	Detail string
	// TimedOut is set when Drain's sessions were still open at its
	// timeout (the server was put in maint anyway).
	TimedOut bool
}

var locks sync.Map // Balancer → *sync.Mutex

// Lock serialises changes to one load balancer (a Balancer value, which
// drivers make comparable: a pointer): it returns the unlock function.
// Drain and Allow hold it while they check and change states, so that two
// drains at once cannot both pass the last-server guard; the agent holds
// it around Configure, Set and weights.
func Lock(b Balancer) (unlock func()) {
	m, _ := locks.LoadOrStore(b, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Find returns the status of backend's server, or an error naming the
// servers it has.
func Find(ctx context.Context, b Balancer, backend, server string) (api.LBServerStatus, []api.LBServerStatus, error) {
	all, err := b.Status(ctx, backend)
	if err != nil {
		return api.LBServerStatus{}, nil, err
	}
	var names []string
	for _, s := range all {
		if s.Backend == backend && s.Name == server {
			return s, all, nil
		}
		names = append(names, s.Name)
	}
	if len(all) == 0 {
		return api.LBServerStatus{}, all, fmt.Errorf("backend %q has no servers (or does not exist)", backend)
	}
	sort.Strings(names)
	return api.LBServerStatus{}, all, fmt.Errorf("backend %q has no server %q (servers: %s)", backend, server, strings.Join(names, ", "))
}

// Serving reports whether a server takes new traffic: admin state ready
// and healthy (UP, or no health checks).
func Serving(s api.LBServerStatus) bool {
	return s.State == api.LBReady && (s.Health == "UP" || s.Health == "")
}

// Drain puts backend's server in drain (no new sessions), waits until its
// sessions in flight are 0 or timeout passed, then puts it in maint. It
// refuses, changing nothing, when the server is the last of its backend
// that is ready and UP. A server already in maint is left as it is.
func Drain(ctx context.Context, b Balancer, backend, server string, timeout time.Duration) (Outcome, error) {
	return drain(ctx, b, backend, server, timeout, true, api.LBMaint, -1)
}

// DrainKeep drains as Drain does, but leaves the server in drain with
// weight (when >= 0) instead of maint: it takes no new session, its
// health checks go on, and one change (ready) lets it take traffic again.
// The original hosts of a blue/green deployment are kept so.
func DrainKeep(ctx context.Context, b Balancer, backend, server string, weight int, timeout time.Duration) (Outcome, error) {
	return drain(ctx, b, backend, server, timeout, true, api.LBDrain, weight)
}

func drain(ctx context.Context, b Balancer, backend, server string, timeout time.Duration, guard bool, final string, weight int) (Outcome, error) {
	start := time.Now()
	unlock := Lock(b)
	s, all, err := Find(ctx, b, backend, server)
	if err != nil {
		unlock()
		return Outcome{}, err
	}
	if s.State == api.LBMaint {
		unlock()
		return Outcome{Detail: "already in maint"}, nil
	}
	if guard && Serving(s) {
		others := 0
		for _, o := range all {
			if o.Name != server && Serving(o) {
				others++
			}
		}
		if others == 0 {
			unlock()
			return Outcome{}, fmt.Errorf("refused: %s is the last server of backend %q that is ready and UP; draining it would leave the backend without a server (let another one in first)", server, backend)
		}
	}
	err = b.Set(ctx, backend, server, api.LBDrain, -1)
	unlock()
	if err != nil {
		return Outcome{}, err
	}
	initial := s.Sessions
	deadline := start.Add(timeout)
	timedOut := false
	for {
		cur, _, err := Find(ctx, b, backend, server)
		if err != nil {
			return Outcome{}, err
		}
		if cur.Sessions > initial {
			initial = cur.Sessions
		}
		if cur.Sessions == 0 {
			break
		}
		if !time.Now().Before(deadline) {
			timedOut = true
			initial = cur.Sessions
			break
		}
		if err := Sleep(ctx, PollInterval); err != nil {
			return Outcome{}, fmt.Errorf("draining %s: %w", server, err)
		}
	}
	if final != api.LBDrain || weight >= 0 {
		if err := b.Set(ctx, backend, server, final, weight); err != nil {
			return Outcome{}, err
		}
	}
	took := time.Since(start)
	then := "put in maint anyway"
	kept := ""
	if final == api.LBDrain {
		then = "kept in drain anyway"
		kept = fmt.Sprintf("; kept in drain (weight %d), ready to take traffic again", weight)
	}
	if timedOut {
		return Outcome{TimedOut: true, Detail: fmt.Sprintf("%d sessions still open after %s (the drain timeout); %s", initial, secs(took), then)}, nil
	}
	return Outcome{Detail: fmt.Sprintf("drained %d sessions in %s%s", initial, secs(took), kept)}, nil
}

// Allow lets backend's server in: its health is forced down, its state set
// to ready (with weight when >= 0), and Allow waits until the load
// balancer's own checks make it UP (rise checks in a row, never a single
// one). Not UP within timeout is an error naming the last check's result;
// the server is then left ready (the load balancer keeps it out while it
// is DOWN). A server without health checks is ready at once.
func Allow(ctx context.Context, b Balancer, backend, server string, weight int, timeout time.Duration) (Outcome, error) {
	start := time.Now()
	unlock := Lock(b)
	s, _, err := Find(ctx, b, backend, server)
	if err != nil {
		unlock()
		return Outcome{}, err
	}
	checked := s.Health != ""
	if checked {
		if err := b.ForceDown(ctx, backend, server); err != nil {
			unlock()
			return Outcome{}, err
		}
	}
	err = b.Set(ctx, backend, server, api.LBReady, weight)
	unlock()
	if err != nil {
		return Outcome{}, err
	}
	if !checked {
		return Outcome{Detail: "ready (no health checks)"}, nil
	}
	deadline := start.Add(timeout)
	for {
		cur, _, err := Find(ctx, b, backend, server)
		if err != nil {
			return Outcome{}, err
		}
		if cur.Health == "UP" {
			return Outcome{Detail: fmt.Sprintf("UP in %s", secs(time.Since(start)))}, nil
		}
		if !time.Now().Before(deadline) {
			check := cur.Check
			if check == "" {
				check = "none yet"
			}
			return Outcome{TimedOut: true}, fmt.Errorf("%s is not UP after %s: health %s, last check %s", server, secs(time.Since(start)), cur.Health, check)
		}
		if err := Sleep(ctx, PollInterval); err != nil {
			return Outcome{}, fmt.Errorf("waiting for %s to be UP: %w", server, err)
		}
	}
}

// Remove drains backend's server (as Drain, without the last-server
// guard) and deletes it.
func Remove(ctx context.Context, b Balancer, backend, server string, timeout time.Duration) (Outcome, error) {
	out, err := drain(ctx, b, backend, server, timeout, false, api.LBMaint, -1)
	if err != nil {
		return out, err
	}
	unlock := Lock(b)
	defer unlock()
	if err := b.Remove(ctx, backend, server); err != nil {
		return out, err
	}
	out.Detail += "; removed"
	return out, nil
}

// Weights sets the weights of several servers of backend (0 to 256),
// checking all of them first. The weights that go up are set before those
// that go down: moving traffic from some servers to others never leaves
// the backend, even for a moment, with every weight at 0 (a 503).
func Weights(ctx context.Context, b Balancer, backend string, weights map[string]int) (Outcome, error) {
	names := make([]string, 0, len(weights))
	for n, w := range weights {
		if w < 0 || w > 256 {
			return Outcome{}, fmt.Errorf("weights: %s: weight %d is out of range (0 to 256)", n, w)
		}
		names = append(names, n)
	}
	unlock := Lock(b)
	defer unlock()
	cur := map[string]int{}
	if st, err := b.Status(ctx, backend); err == nil {
		for _, s := range st {
			cur[s.Name] = s.Weight
		}
	}
	rises := func(n string) bool { return weights[n] > cur[n] }
	sort.Slice(names, func(i, j int) bool {
		if ri, rj := rises(names[i]), rises(names[j]); ri != rj {
			return ri
		}
		return names[i] < names[j]
	})
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if err := b.Set(ctx, backend, n, "", weights[n]); err != nil {
			return Outcome{}, err
		}
		parts = append(parts, fmt.Sprintf("%s=%d", n, weights[n]))
	}
	return Outcome{Detail: "weights " + strings.Join(parts, " ")}, nil
}

// Sleep waits d, or less if ctx ends first (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
