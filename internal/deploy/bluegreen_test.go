package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

func bgReq(spec api.BlueGreenSpec) api.DeployRequest {
	return api.DeployRequest{Revision: "r-good2", Strategy: api.StrategyBlueGreen, BlueGreen: &spec}
}

// A blue/green deployment moves the traffic in steps to the replacement
// hosts, keeps the originals, then makes the replacements the group.
func TestBlueGreenSwap(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2, "green1", "green2")
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(api.BlueGreenSpec{ReplacementSelector: "role=green", StepPercent: 50, StepIntervalMillis: 1000, KeepOriginalMillis: 1500}))
	must(t, err)
	if len(d.Hosts) != 2 || d.Traffic == nil || strings.Join(d.Traffic.Replacement, ",") != "green1,green2" || strings.Join(d.Traffic.Original, ",") != "web1,web2" {
		t.Fatalf("created: hosts %d traffic %+v", len(d.Hosts), d.Traffic)
	}
	// Halfway: both fleets take traffic.
	s.waitFor(d.ID, 20*time.Second, "the 50% step", func(d api.Deployment) bool {
		return d.Traffic != nil && d.Traffic.Phase == PhaseShifting && d.Traffic.Weight == 50
	})
	s.waitLB("green1", 5*time.Second, "ready at the weight of web1 (50%)", func(g1 fakeSrv) bool {
		w1 := s.lb.server("web1")
		return g1.state == api.LBReady && w1.state == api.LBReady && g1.weight == w1.weight && g1.weight > 0
	})
	kept := s.waitFor(d.ID, 20*time.Second, "the keep period", func(d api.Deployment) bool { return d.Traffic != nil && d.Traffic.Phase == PhaseKept })
	if kept.State != api.DeployRunning {
		t.Fatalf("kept but %s", kept.State)
	}
	s.waitLB("web1", 5*time.Second, "drain during the keep period", func(f fakeSrv) bool { return f.state == api.LBDrain })
	got := s.wait(d.ID, 20*time.Second)
	if got.State != api.DeploySucceeded || got.Traffic.Phase != PhaseDone {
		t.Fatalf("blue/green ended %s phase %s: %s", got.State, got.Traffic.Phase, got.Error)
	}
	checkSwapped(t, s, "role=green")
}

// checkSwapped: after a blue/green deployment of r-good2 the replacements
// green1 and green2 serve it at full weight, the originals web1 and web2
// are in maint, the group has the selector and the revision, and no
// request found the backend without a ready server.
func checkSwapped(t *testing.T, s *stratEnv, selector string) {
	t.Helper()
	for _, n := range []string{"green1", "green2"} {
		if srv := s.lb.server(n); srv.state != api.LBReady || srv.weight != 100 || srv.rev != "r-good2" {
			t.Errorf("replacement %s: %s weight %d revision %q, want ready 100 r-good2", n, srv.state, srv.weight, srv.rev)
		}
	}
	for _, n := range []string{"web1", "web2"} {
		if srv := s.lb.server(n); srv.state != api.LBMaint {
			t.Errorf("original %s: %s, want maint", n, srv.state)
		}
	}
	g, err := s.st.GetGroup(context.Background(), "shop", "web")
	must(t, err)
	if g.Selector != selector || g.Revision != "r-good2" {
		t.Errorf("group after blue/green: selector %q revision %q, want %s r-good2", g.Selector, g.Revision, selector)
	}
	if n := s.lb.noReadyCount(); n != 0 {
		t.Errorf("%d requests found no ready server during the swap", n)
	}
}

// `gantry rollback` during the keep period moves the traffic back to the
// originals at once, without redeploying.
func TestBlueGreenRollbackDuringKeep(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2, "green1", "green2")
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(api.BlueGreenSpec{ReplacementSelector: "role=green", KeepOriginalMillis: time.Hour.Milliseconds()}))
	must(t, err)
	s.waitFor(d.ID, 20*time.Second, "the keep period", func(d api.Deployment) bool { return d.Traffic != nil && d.Traffic.Phase == PhaseKept })
	s.waitLB("web1", 5*time.Second, "drain during the keep period", func(f fakeSrv) bool { return f.state == api.LBDrain })
	asked := time.Now()
	rb, err := s.eng.Rollback(s.ctx, "shop", "web")
	must(t, err)
	if rb.ID != d.ID || !rb.Traffic.AbortRequested {
		t.Errorf("rollback answered %s abort=%v, want the blue/green deployment aborting", rb.ID, rb.Traffic.AbortRequested)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.lb.server("green2").state != api.LBMaint {
		if time.Now().After(deadline) {
			t.Fatal("replacement still in service 5s after the rollback")
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(asked)
	t.Logf("rollback during keep → originals ready, replacements in maint (fake LB): %s", took)
	if took > time.Second {
		t.Errorf("rollback took %s, want < 1s", took)
	}
	for _, n := range []string{"web1", "web2"} {
		if srv := s.lb.server(n); srv.state != api.LBReady || srv.weight != 100 {
			t.Errorf("original %s after the rollback: %s weight %d", n, srv.state, srv.weight)
		}
	}
	got := s.wait(d.ID, 10*time.Second)
	if got.State != api.DeployFailed || got.RolledBackBy != "" || !strings.Contains(got.Error, "original hosts") {
		t.Errorf("after the rollback: %s rolled back by %q: %s", got.State, got.RolledBackBy, got.Error)
	}
	g, err := s.st.GetGroup(context.Background(), "shop", "web")
	must(t, err)
	if g.Selector != "role=web" || g.Revision != "r-good" {
		t.Errorf("group after the rollback: %q %q, want role=web r-good", g.Selector, g.Revision)
	}
	if n := s.lb.noReadyCount(); n != 0 {
		t.Errorf("%d requests found no ready server", n)
	}
}

func TestBlueGreenRefused(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2, "green1")
	cases := []struct {
		spec api.BlueGreenSpec
		err  error
		want string
	}{
		{api.BlueGreenSpec{}, ErrInvalid, "replacement_selector is required"},
		{api.BlueGreenSpec{ReplacementSelector: "role=blue"}, ErrNothingToDeploy, "no host matches"},
		{api.BlueGreenSpec{ReplacementSelector: "role in (web,green)"}, ErrUnfit, "also matches"},
		{api.BlueGreenSpec{ReplacementSelector: "role=green", StepPercent: 101}, ErrInvalid, "step_percent"},
	}
	for _, c := range cases {
		if _, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(c.spec)); !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %v saying %q", c.spec, err, c.err, c.want)
		}
	}
	s.lb.mu.Lock()
	s.lb.srv["green1"].state = api.LBReady
	s.lb.mu.Unlock()
	if _, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(api.BlueGreenSpec{ReplacementSelector: "role=green"})); err == nil || !strings.Contains(err.Error(), "must be in maint") {
		t.Errorf("replacement in service: %v", err)
	}
}

// A server restart during the keep period keeps the originals ready to
// take the traffic back: the rollback after the restart still moves it.
func TestBlueGreenRestartDuringKeep(t *testing.T) {
	t.Parallel()
	s := newStratEnv(t, 2, "green1", "green2")
	go s.lb.load(s.ctx, 10)
	d, err := s.eng.Deploy(s.ctx, "shop", "web", bgReq(api.BlueGreenSpec{ReplacementSelector: "role=green", KeepOriginalMillis: time.Hour.Milliseconds()}))
	must(t, err)
	s.waitFor(d.ID, 20*time.Second, "the keep period", func(d api.Deployment) bool { return d.Traffic != nil && d.Traffic.Phase == PhaseKept })
	s.waitLB("web2", 5*time.Second, "drain during the keep period", func(f fakeSrv) bool { return f.state == api.LBDrain })
	s.restart()
	go s.lb.load(s.ctx, 10)
	if _, err := s.eng.Abort(s.ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	got := s.wait(d.ID, 10*time.Second)
	if got.State != api.DeployFailed || got.Traffic.Phase != PhaseAborted {
		t.Fatalf("abort after a restart: %s phase %s (%s)", got.State, got.Traffic.Phase, got.Error)
	}
	for n, want := range map[string]string{"web1": api.LBReady, "web2": api.LBReady, "green1": api.LBMaint, "green2": api.LBMaint} {
		if st := s.lb.server(n).state; st != want {
			t.Errorf("%s is %s after the abort, want %s", n, st, want)
		}
	}
}
