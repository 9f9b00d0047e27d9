package storetest

import (
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var trafficTests = []test{
	{"Traffic/GroupLoadBalancer", testTrafficGroupLB},
	{"Traffic/DeploymentTraffic", testTrafficDeployment},
	{"Traffic/Changes", testTrafficChanges},
}

// testTrafficGroupLB: a group's load balancer is stored, listed, replaced
// and removed.
func testTrafficGroupLB(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	lb := &api.LBTarget{Host: "lb1", Backend: "web", Driver: "haproxy", Socket: "/run/haproxy/admin.sock",
		StateFile: "/var/lib/haproxy/state", DrainTimeoutSeconds: 7}
	g := group("g3", "behind")
	g.LoadBalancer = lb
	ok(t, s.CreateGroup(ctx, g), "CreateGroup with a load balancer")
	got, err := s.GetGroup(ctx, "web", "behind")
	ok(t, err, "GetGroup")
	same(t, got.LoadBalancer, lb, "stored load balancer")
	if plain, err := s.GetGroup(ctx, "web", "prod"); err != nil || plain.LoadBalancer != nil {
		t.Fatalf("group without a load balancer: %+v, %v", plain.LoadBalancer, err)
	}
	all, err := s.ListGroups(ctx, "web")
	ok(t, err, "ListGroups")
	found := false
	for _, x := range all {
		if x.ID == "g3" {
			found = true
			same(t, x.LoadBalancer, lb, "listed load balancer")
		}
	}
	if !found {
		t.Fatal("ListGroups misses g3")
	}
	got.LoadBalancer = &api.LBTarget{Host: "lb2", Backend: "api"}
	ok(t, s.UpdateGroupSettings(ctx, got), "UpdateGroupSettings (replace)")
	got2, err := s.GetGroup(ctx, "web", "behind")
	ok(t, err, "GetGroup")
	same(t, got2.LoadBalancer, &api.LBTarget{Host: "lb2", Backend: "api"}, "replaced load balancer")
	got2.LoadBalancer = nil
	ok(t, s.UpdateGroupSettings(ctx, got2), "UpdateGroupSettings (remove)")
	got3, err := s.GetGroup(ctx, "web", "behind")
	ok(t, err, "GetGroup")
	if got3.LoadBalancer != nil {
		t.Fatalf("load balancer not removed: %+v", got3.LoadBalancer)
	}
}

// testTrafficDeployment: a deployment's strategy and traffic side are
// stored at creation and replaced by UpdateDeployment, and Traffic nil
// leaves them.
func testTrafficDeployment(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	d := deployment("d1", time.Second)
	d.Strategy = api.StrategyCanary
	d.Traffic = &api.DeployTraffic{Canary: &api.CanarySpec{Steps: []api.CanaryStep{{Weight: 10, PauseMillis: 30000}}, OnNoData: "fail"},
		Phase: "canary", CanaryHosts: []string{"a"}}
	createDeployment(t, s, d, "a", "b")
	got := getDeployment(t, s, "d1")
	if got.Strategy != api.StrategyCanary {
		t.Fatalf("strategy %q, want %q", got.Strategy, api.StrategyCanary)
	}
	same(t, got.Traffic, d.Traffic, "traffic at creation")
	next := *d.Traffic
	next.Step, next.Weight, next.Phase = 1, 50, "promoting"
	next.Analyses = []api.CanaryAnalysis{{At: utc(at(2 * time.Second)), Step: 0, Weight: 10, CanaryRequests: 40, Verdict: "pass"}}
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", Traffic: &next}), "UpdateDeployment traffic")
	same(t, getDeployment(t, s, "d1").Traffic, &next, "traffic after update")
	batch := 1
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", Batch: &batch}), "UpdateDeployment batch")
	same(t, getDeployment(t, s, "d1").Traffic, &next, "traffic kept by an update without it")
	active, err := s.ListActiveDeployments(ctx)
	ok(t, err, "ListActiveDeployments")
	if len(active) != 1 || active[0].Strategy != api.StrategyCanary {
		t.Fatalf("active deployments: %+v", active)
	}
	same(t, active[0].Traffic, &next, "active deployment's traffic")
	list, err := s.ListDeployments(ctx, "web", 10)
	ok(t, err, "ListDeployments")
	if len(list) != 1 || list[0].Strategy != api.StrategyCanary || list[0].Traffic == nil || list[0].Traffic.Phase != "promoting" {
		t.Fatalf("listed deployments: %+v", list)
	}
	// A deployment made before traffic control: no strategy, no traffic.
	createDeployment(t, s, inGroup2(deployment("d2", 2*time.Second)), "c")
	if d2 := getDeployment(t, s, "d2"); d2.Strategy != "" || d2.Traffic != nil {
		t.Fatalf("plain deployment: strategy %q traffic %+v", d2.Strategy, d2.Traffic)
	}
}

// testTrafficChanges: changes are appended in order, kept apart from the
// traffic side's replacement, and go with their deployment.
func testTrafficChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", time.Second), "a", "b")
	isErr(t, s.AddTrafficChange(ctx, "nope", api.TrafficChange{At: t0, Action: "drain"}), store.ErrNotFound, "AddTrafficChange of an unknown deployment")
	want := []api.TrafficChange{
		{At: utc(at(2 * time.Second)), Backend: "web", Server: "a", Action: "drain", Detail: "drained 3 sessions in 2.9s", ElapsedMillis: 2900, DeploymentID: "d1", LoadBalancerID: "lb1"},
		{At: utc(at(3 * time.Second)), Backend: "web", Server: "a", Action: "ready", Weight: 100, Detail: "UP after 2 checks", DeploymentID: "d1"},
		{At: utc(at(4 * time.Second)), Backend: "web", Server: "b", Action: "drain", Error: "refused: b is the last ready server", DeploymentID: "d1"},
	}
	for _, c := range want {
		c.At = c.At.In(time.FixedZone("X", 3600)) // stored in UTC
		ok(t, s.AddTrafficChange(ctx, "d1", c), "AddTrafficChange")
	}
	got := getDeployment(t, s, "d1")
	if got.Traffic == nil {
		t.Fatal("no traffic side after changes")
	}
	same(t, got.Traffic.Changes, want, "changes")
	// Replacing the traffic side keeps the changes.
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", Traffic: &api.DeployTraffic{Phase: "done", Changes: want[:1]}}), "UpdateDeployment traffic")
	got = getDeployment(t, s, "d1")
	if got.Traffic.Phase != "done" {
		t.Fatalf("phase %q", got.Traffic.Phase)
	}
	same(t, got.Traffic.Changes, want, "changes after a traffic update")
	active, err := s.ListActiveDeployments(ctx)
	ok(t, err, "ListActiveDeployments")
	same(t, active[0].Traffic.Changes, want, "active deployment's changes")
	// A finished deployment still takes a change.
	finishDeployment(t, s, "d1")
	late := api.TrafficChange{At: utc(at(5 * time.Second)), Backend: "web", Server: "b", Action: "ready", DeploymentID: "d1"}
	ok(t, s.AddTrafficChange(ctx, "d1", late), "AddTrafficChange after the end")
	same(t, getDeployment(t, s, "d1").Traffic.Changes, append(want, late), "changes after the end")
	// They go with their group.
	ok(t, s.DeleteGroup(ctx, "web", "prod"), "DeleteGroup")
	createDeployment(t, s, inGroup2(deployment("d1", 6*time.Second)), "c")
	if d := getDeployment(t, s, "d1"); d.Traffic != nil {
		t.Fatalf("a new deployment with the id of a deleted one has its changes: %+v", d.Traffic)
	}
}
