package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/traffic"
)

func canaryReq(rev string, steps ...api.CanaryStep) api.DeployRequest {
	return api.DeployRequest{Revision: rev, Strategy: api.StrategyCanary,
		Canary: &api.CanarySpec{Hosts: 1, Steps: steps, IntervalMillis: 1000, MinRequests: 20}}
}

func analysesOf(d api.Deployment) []api.CanaryAnalysis {
	if d.Traffic == nil {
		return nil
	}
	return d.Traffic.Analyses
}

// A good canary passes its steps, is promoted, the other hosts follow and
// every weight is 100 again.
func TestCanaryPromotedAfterPassingSteps(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 4)
	go s.lb.load(s.ctx, 10) // 500 requests/s
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 20, PauseMillis: 2000}, api.CanaryStep{Weight: 50, PauseMillis: 2000}))
	must(t, err)
	if d.Strategy != api.StrategyCanary || d.Traffic == nil || d.Traffic.Canary == nil {
		t.Fatalf("created deployment: strategy %q traffic %+v", d.Strategy, d.Traffic)
	}
	// During step 1 the canary has the share of 20%: weight 75 against 3×100.
	mid := s.waitFor(d.ID, 20*time.Second, "canary step 1", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Phase == PhaseCanary && len(d.Traffic.CanaryHosts) == 1 && d.Traffic.StepStartedAt != nil
	})
	canary := mid.Traffic.CanaryHosts[0]
	if w, _ := traffic.ShareWeights(20, 1, 3); s.lb.server(canary).weight != w {
		t.Errorf("canary %s weight %d during step 1, want %d", canary, s.lb.server(canary).weight, w)
	}
	got := s.wait(d.ID, 30*time.Second)
	if got.State != api.DeploySucceeded {
		t.Fatalf("canary deployment %s: %s", got.State, got.Error)
	}
	tr := got.Traffic
	if tr.Phase != PhasePromoted || !strings.Contains(tr.Reason, "every canary step passed") {
		t.Errorf("phase %q reason %q, want promoted after every step", tr.Phase, tr.Reason)
	}
	steps := map[int]int{}
	for _, a := range tr.Analyses {
		if a.Verdict != traffic.VerdictPass {
			t.Errorf("analysis %+v, want pass", a)
		}
		steps[a.Step]++
	}
	if steps[0] == 0 || steps[1] == 0 {
		t.Errorf("analyses per step %v: want some in both steps", steps)
	}
	// The canary got about its share in step 2 (50%: 1 against 3 → weight 300 capped...).
	for _, a := range tr.Analyses {
		if a.Step == 1 {
			share := float64(a.CanaryRequests) / float64(a.CanaryRequests+a.StableRequests)
			if share < 0.40 || share > 0.60 {
				t.Errorf("step 2 analysis: canary share %.2f, want about 0.5 (%+v)", share, a)
			}
		}
	}
	for h, rev := range s.hostRevs() {
		if rev != "r-good2" {
			t.Errorf("host %s has %s after the promotion, want r-good2", h, rev)
		}
	}
	for _, h := range s.hosts {
		if srv := s.lb.server(h); srv.weight != 100 || srv.state != api.LBReady {
			t.Errorf("server %s: weight %d state %s at the end, want 100 ready", h, srv.weight, srv.state)
		}
	}
	// The weights were recorded as traffic changes.
	weights := 0
	for _, c := range tr.Changes {
		if c.Action == "weight" {
			weights++
		}
	}
	if weights < 8 {
		t.Errorf("%d weight changes recorded, want at least 8 (2 steps and the promotion, 4 servers)", weights)
	}
}

// A canary answering 5xx to 20 % of its requests is drained at the first
// analysis; the deployment fails and the rollback redeploys the canary.
func TestCanaryBadRolledBackAtFirstAnalysis(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 4)
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-bad", api.CanaryStep{Weight: 20, PauseMillis: 5000}, api.CanaryStep{Weight: 100, PauseMillis: 5000}))
	must(t, err)
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeployFailed {
		t.Fatalf("bad canary ended %s, want failed", got.State)
	}
	an := analysesOf(got)
	if len(an) != 1 || an[0].Verdict != traffic.VerdictFail || an[0].Step != 0 {
		t.Fatalf("analyses %+v: want one failed analysis at step 1", an)
	}
	if an[0].ErrorRate < 0.1 || an[0].ErrorRate > 0.3 {
		t.Errorf("error rate %.3f, want about 0.2", an[0].ErrorRate)
	}
	if !strings.Contains(got.Error, "error rate") || got.Traffic.Phase != PhaseAborted {
		t.Errorf("error %q phase %q: want an aborted canary saying the error rate", got.Error, got.Traffic.Phase)
	}
	canary := got.Traffic.CanaryHosts[0]
	for _, h := range got.Hosts {
		if h.HostName != canary && h.State != api.HostDeploySkipped {
			t.Errorf("stable host %s is %s, want skipped", h.HostName, h.State)
		}
	}
	if got.RolledBackBy == "" {
		t.Fatalf("no rollback started: %s", got.Error)
	}
	rb := s.wait(got.RolledBackBy, 20*time.Second)
	if rb.State != api.DeploySucceeded {
		t.Fatalf("rollback %s: %s", rb.State, rb.Error)
	}
	if rev := s.hostRevs()[canary]; rev != "r-good" {
		t.Errorf("canary %s has %s after the rollback, want r-good", canary, rev)
	}
	if srv := s.lb.server(canary); srv.state != api.LBReady || srv.weight != 100 {
		t.Errorf("canary server after the rollback: %s weight %d, want ready 100", srv.state, srv.weight)
	}
	// Failed requests are bounded by the canary's share of about two
	// intervals (the interval analysed, and the one before the first sample).
	failed := s.lb.failed5xx()
	perInterval := 500.0 // requests/s × 1 s
	bound := int64(2 * 0.2 * perInterval * 0.2 * 1.5)
	t.Logf("failed requests: %d (bound %d; analysis %+v)", failed, bound, an[0])
	if failed > bound {
		t.Errorf("%d requests failed, more than %d", failed, bound)
	}
}

// A canary that gets no traffic is not promoted: its step ends without
// data and the deployment fails.
func TestCanaryNoTrafficNotPromoted(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 3) // no load
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 30, PauseMillis: 2500}, api.CanaryStep{Weight: 100, PauseMillis: 1000}))
	must(t, err)
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeployFailed {
		t.Fatalf("canary without traffic ended %s, want failed", got.State)
	}
	if !strings.Contains(got.Error, "no data") {
		t.Errorf("error %q does not say no data", got.Error)
	}
	an := analysesOf(got)
	if len(an) < 2 {
		t.Errorf("analyses %+v: want the step's intervals analysed", an)
	}
	for _, a := range an {
		if a.Verdict != traffic.VerdictNoData || a.Step != 0 {
			t.Errorf("analysis %+v: want no_data in step 1", a)
		}
	}
	for h, rev := range s.hostRevs() {
		if !strings.HasPrefix(h, "web") {
			continue
		}
		if rev == "r-good2" && h != got.Traffic.CanaryHosts[0] {
			t.Errorf("stable host %s got the canary's revision", h)
		}
	}
}

// on_no_data = pass lets a canary without traffic through (the user asked
// for it); fail aborts at the first interval.
func TestCanaryNoDataPolicies(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2)
	req := canaryReq("r-good2", api.CanaryStep{Weight: 50, PauseMillis: 5000})
	req.Canary.OnNoData = "fail"
	d, err := s.eng.Deploy(s.ctx, "shop", "web", req)
	must(t, err)
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeployFailed || len(analysesOf(got)) != 1 {
		t.Fatalf("on_no_data fail: %s with %d analyses (%s), want failed at the first", got.State, len(analysesOf(got)), got.Error)
	}
	if got.RolledBackBy != "" {
		s.wait(got.RolledBackBy, 20*time.Second)
	}
	req = canaryReq("r-good2", api.CanaryStep{Weight: 50, PauseMillis: 1500})
	req.Canary.OnNoData = "pass"
	d, err = s.eng.Deploy(s.ctx, "shop", "web", req)
	must(t, err)
	if got := s.wait(d.ID, 20*time.Second); got.State != api.DeploySucceeded {
		t.Fatalf("on_no_data pass: %s (%s), want succeeded", got.State, got.Error)
	}
}

// A step of pause 0 waits for promote by hand.
func TestCanaryPromoteByHand(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 3)
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 10, PauseMillis: 0}))
	must(t, err)
	s.waitFor(d.ID, 20*time.Second, "two analyses", func(d api.Deployment) bool { return len(analysesOf(d)) >= 2 })
	if got, _ := s.st.GetDeployment(context.Background(), d.ID); got.State != api.DeployRunning {
		t.Fatalf("a manual step ended on its own: %s", got.State)
	}
	p, err := s.eng.Promote(s.ctx, d.ID)
	must(t, err)
	if !p.Traffic.PromoteRequested {
		t.Errorf("promote not recorded: %+v", p.Traffic)
	}
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeploySucceeded || got.Traffic.Phase != PhasePromoted || !strings.Contains(got.Traffic.Reason, "by hand") {
		t.Fatalf("after promote: %s phase %s reason %q (%s)", got.State, got.Traffic.Phase, got.Traffic.Reason, got.Error)
	}
	if _, err := s.eng.Promote(s.ctx, d.ID); !errors.Is(err, ErrInvalid) {
		t.Errorf("promote of a finished deployment: %v, want ErrInvalid", err)
	}
}

// Abort by hand drains the canary at once and rolls it back.
func TestCanaryAbortByHand(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 3)
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 10, PauseMillis: 0}))
	must(t, err)
	mid := s.waitFor(d.ID, 20*time.Second, "an analysis", func(d api.Deployment) bool { return len(analysesOf(d)) >= 1 })
	canary := mid.Traffic.CanaryHosts[0]
	if st := s.lb.server(canary).state; st != api.LBReady {
		t.Fatalf("canary %s is %s before the abort", canary, st)
	}
	asked := time.Now()
	_, err = s.eng.Abort(s.ctx, d.ID)
	must(t, err)
	deadline := time.Now().Add(5 * time.Second)
	for !s.lb.server(canary).drainedAt.After(asked) {
		if time.Now().After(deadline) {
			t.Fatal("canary still ready 5s after the abort")
		}
		time.Sleep(time.Millisecond)
	}
	took := s.lb.server(canary).drainedAt.Sub(asked)
	t.Logf("abort → canary out of the load balancer (fake): %s", took)
	if took > time.Second {
		t.Errorf("abort took %s to drain the canary, want < 1s", took)
	}
	got := s.wait(d.ID, 10*time.Second)
	if got.State != api.DeployFailed || !strings.Contains(got.Error, "aborted by hand") {
		t.Fatalf("after abort: %s (%s)", got.State, got.Error)
	}
	if got.RolledBackBy == "" {
		t.Fatal("abort did not roll the canary back")
	}
	if rb := s.wait(got.RolledBackBy, 20*time.Second); rb.State != api.DeploySucceeded {
		t.Fatalf("rollback %s: %s", rb.State, rb.Error)
	}
	if srv := s.lb.server(canary); srv.state != api.LBReady || srv.weight != 100 {
		t.Errorf("canary after the rollback: %s %d", srv.state, srv.weight)
	}
}

// A server restart in the middle of a canary goes on from the stored
// step; the analyses before the restart are kept.
func TestCanaryResumesAfterRestart(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 3)
	go s.lb.load(s.ctx, 10)
	ctxLoad := s.ctx
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 20, PauseMillis: 2000}, api.CanaryStep{Weight: 60, PauseMillis: 2000}))
	must(t, err)
	before := s.waitFor(d.ID, 20*time.Second, "step 2", func(d api.Deployment) bool { return d.Traffic != nil && d.Traffic.Step == 1 })
	s.restart()
	go s.lb.load(s.ctx, 10)
	_ = ctxLoad
	got := s.wait(d.ID, 30*time.Second)
	if got.State != api.DeploySucceeded {
		t.Fatalf("after a restart: %s (%s)", got.State, got.Error)
	}
	if len(got.Traffic.Analyses) <= len(before.Traffic.Analyses) {
		t.Errorf("analyses %d after the restart, %d before: want more, the old ones kept", len(got.Traffic.Analyses), len(before.Traffic.Analyses))
	}
	for i, a := range before.Traffic.Analyses {
		if got.Traffic.Analyses[i].Step != a.Step || got.Traffic.Analyses[i].Verdict != a.Verdict {
			t.Errorf("analysis %d changed across the restart", i)
		}
	}
}

// Canary requests the engine refuses, with messages naming what to do.
func TestCanaryRefused(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2)
	two := canaryReq("r-good2", api.CanaryStep{Weight: 10, PauseMillis: 1000})
	two.Canary.Hosts = 2
	_, err := s.eng.Deploy(s.ctx, "shop", "web", two)
	if !errors.Is(err, ErrUnfit) || !strings.Contains(err.Error(), "at least 3 hosts") {
		t.Errorf("canary of 2 on 2 hosts: %v", err)
	}
	_, err = s.eng.CreateGroup(s.ctx, "shop", api.CreateGroupRequest{Name: "nolb", Selector: "role=web"})
	must(t, err)
	_, err = s.eng.Deploy(s.ctx, "shop", "nolb", canaryReq("r-good2", api.CanaryStep{Weight: 10, PauseMillis: 1000}))
	if !errors.Is(err, ErrUnfit) || !strings.Contains(err.Error(), "load balancer") {
		t.Errorf("canary without a load balancer: %v", err)
	}
	bad := canaryReq("r-good2", api.CanaryStep{Weight: 150})
	if _, err := s.eng.Deploy(s.ctx, "shop", "web", bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "canary.steps[0].weight") {
		t.Errorf("weight 150: %v", err)
	}
	if _, err := s.eng.Deploy(s.ctx, "shop", "web", api.DeployRequest{Strategy: "rainbow"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "in-place, canary, blue-green") {
		t.Errorf("strategy rainbow: %v", err)
	}
	d, err := s.eng.Deploy(s.ctx, "shop", "web", api.DeployRequest{Revision: "r-good2"})
	must(t, err)
	if _, err := s.eng.Promote(s.ctx, d.ID); err == nil {
		// It may have finished already (ErrInvalid either way).
		t.Errorf("promote of an in-place deployment accepted")
	}
	s.wait(d.ID, 20*time.Second)
}

// A load balancer that cannot be read is no data, never a pass: the step
// ends without data and the canary fails.
func TestCanaryLoadBalancerUnreachable(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 3)
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", canaryReq("r-good2", api.CanaryStep{Weight: 20, PauseMillis: 2500}))
	must(t, err)
	s.waitFor(d.ID, 20*time.Second, "the step's weights", func(d api.Deployment) bool {
		if d.Traffic == nil {
			return false
		}
		for _, c := range d.Traffic.Changes {
			if c.Action == "weight" {
				return true
			}
		}
		return false
	})
	s.lb.mu.Lock()
	s.lb.down = true
	s.lb.mu.Unlock()
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeployFailed || !strings.Contains(got.Error, "no data") || !strings.Contains(got.Error, "unreachable") {
		t.Fatalf("canary with its load balancer down: %s (%s), want failed for no data, naming the load balancer", got.State, got.Error)
	}
	for _, a := range analysesOf(got) {
		if a.Verdict != traffic.VerdictNoData {
			t.Errorf("analysis %+v: want no data from the unreachable load balancer", a)
		}
	}
}
