package infra

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// refusingDeployer refuses every deployment, as HalfAtATime does on a
// group of one host, and counts the tries.
type refusingDeployer struct {
	fakeDeployer
	tries int
}

func (d *refusingDeployer) Deploy(context.Context, string, string, api.DeployRequest) (api.Deployment, error) {
	d.tries++
	return api.Deployment{}, errors.New("HalfAtATime keeps 1 of the group's 1 hosts healthy")
}

// An environment group's first deployment that the deployment engine
// refuses is an error only once no machine of the group is left to be set
// up: before that, more hosts may make the configuration fit.
func TestEnvDeploymentWaitsForPendingMachines(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dep := &refusingDeployer{}
	h.e.dep = dep
	now := time.Now().UTC()
	if err := h.st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateGroup(ctx, api.DeploymentGroup{ID: "g-1", App: "shop", Name: "e-web", Selector: "role=web", Config: "HalfAtATime", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	st := &State{Env: "e", Resources: map[string]*Resource{
		"group.web": {Address: "group.web", Kind: KindGroup, Group: "web", Spec: &GroupRecord{App: "shop", DeployGroup: "e-web", Revision: "r-1", Config: "HalfAtATime"}},
	}}
	machine := func(i int, setUp bool, phase string) machineView {
		v := machineView{r: &Resource{Address: machineAddress("web", i, false), Kind: KindMachine, Group: "web", Index: i}, phase: phase}
		if setUp {
			v.found, v.host = true, store.HostRecord{Host: api.Host{ID: "h-" + v.r.Address, Labels: map[string]string{LabelSetup: "done"}}}
		}
		return v
	}
	// One machine set up, the other still being created: no error.
	if err := h.e.lc.ensureDeployments(ctx, st, []machineView{machine(0, true, api.PhaseOnline), machine(1, false, api.PhaseCreating)}); err != nil {
		t.Fatalf("with a machine still being set up: %v, want no error (wait for it)", err)
	}
	if dep.tries != 1 {
		t.Fatalf("deploy tried %d times, want 1", dep.tries)
	}
	// Every machine set up (or failed) and still refused: the error shows.
	err := h.e.lc.ensureDeployments(ctx, st, []machineView{machine(0, true, api.PhaseOnline), machine(1, false, api.PhaseFailed)})
	if err == nil || dep.tries != 2 {
		t.Fatalf("with nothing left to set up: err %v after %d tries, want the refusal", err, dep.tries)
	}
}

// A deployment of another revision made by hand after the apply (a canary,
// `gantry deploy`) wins: the environment wants the group's current
// revision and starts nothing over it, until an apply sets a new revision.
func TestDeploymentByHandWinsUntilTheNextApply(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dep := &refusingDeployer{}
	h.e.dep = dep
	applied := time.Now().UTC().Add(-time.Minute)
	if err := h.st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: applied}); err != nil {
		t.Fatal(err)
	}
	g := api.DeploymentGroup{ID: "g-1", App: "shop", Name: "e-web", Selector: "role=web", Config: "OneAtATime", Revision: "r-2", CreatedAt: applied}
	if err := h.st.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	rec := &GroupRecord{App: "shop", DeployGroup: "e-web", Revision: "r-1", Config: "OneAtATime", RevisionSetAt: applied}
	st := &State{Env: "e", Resources: map[string]*Resource{"group.web": {Address: "group.web", Kind: KindGroup, Group: "web", Spec: rec}}}
	online := machineView{r: &Resource{Address: machineAddress("web", 0, false), Kind: KindMachine, Group: "web"}, phase: api.PhaseOnline,
		found: true, host: store.HostRecord{Host: api.Host{ID: "h-0", Labels: map[string]string{LabelSetup: "done"}}}}
	byHand := api.Deployment{ID: "d-hand", App: "shop", Group: "e-web", GroupID: "g-1", Revision: "r-2", Config: "OneAtATime", State: api.DeploySucceeded,
		Kind: "deploy", CreatedAt: applied.Add(30 * time.Second)}
	if err := h.st.CreateDeployment(ctx, byHand, nil); err != nil {
		t.Fatal(err)
	}
	if got := h.e.lc.wantedRevision(ctx, g, rec); got != "r-2" {
		t.Fatalf("after a deployment by hand of r-2: wanted %s, want r-2 (the group's current revision)", got)
	}
	if err := h.e.lc.ensureDeployments(ctx, st, []machineView{online}); err != nil || dep.tries != 0 {
		t.Fatalf("the environment deployed over the deployment by hand: %d tries, %v", dep.tries, err)
	}
	// A canary of r-4 by hand that failed and was rolled back to r-2: the
	// rollback is the last deployment, the hand deployment still wins.
	for i, d := range []api.Deployment{
		{ID: "d-canary", Revision: "r-4", State: api.DeployFailed, Kind: "deploy", RolledBackBy: "d-rb"},
		{ID: "d-rb", Revision: "r-2", State: api.DeploySucceeded, Kind: "rollback", RollbackOf: "d-canary"},
	} {
		d.App, d.Group, d.GroupID, d.Config, d.CreatedAt = "shop", "e-web", "g-1", "OneAtATime", applied.Add(time.Duration(40+i)*time.Second)
		if err := h.st.CreateDeployment(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.e.lc.wantedRevision(ctx, g, rec); got != "r-2" {
		t.Fatalf("after a failed canary by hand and its rollback: wanted %s, want r-2 (the group's current revision)", got)
	}
	if err := h.e.lc.ensureDeployments(ctx, st, []machineView{online}); err != nil || dep.tries != 0 {
		t.Fatalf("the environment deployed over the rolled-back canary: %d tries, %v", dep.tries, err)
	}
	// An apply that sets a revision after it: the definition wins again.
	rec.Revision, rec.RevisionSetAt = "r-3", time.Now().UTC()
	if got := h.e.lc.wantedRevision(ctx, g, rec); got != "r-3" {
		t.Fatalf("after a new apply: wanted %s, want r-3", got)
	}
	_ = h.e.lc.ensureDeployments(ctx, st, []machineView{online})
	if dep.tries != 1 {
		t.Fatalf("a new apply's revision was not deployed: %d tries", dep.tries)
	}
}
