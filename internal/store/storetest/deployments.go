package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var deploymentTests = []test{
	{"Groups/CreateGetList", testGroupsCreateGetList},
	{"Groups/Errors", testGroupsErrors},
	{"Deployments/CreateGet", testDeploymentsCreateGet},
	{"Deployments/NotFound", testDeploymentsNotFound},
	{"Deployments/CreateConflict", testDeploymentsCreateConflict},
	{"Deployments/AddHosts", testDeploymentsAddHosts},
	{"Deployments/OneActivePerGroup", testDeploymentsOneActive},
	{"Deployments/OneActiveConcurrent", testDeploymentsOneActiveConcurrent},
	{"Deployments/Update", testDeploymentsUpdate},
	{"Deployments/FinalIsFinal", testDeploymentsFinal},
	{"Deployments/List", testDeploymentsList},
	{"Deployments/ListDefaultLimit", testDeploymentsListDefaultLimit},
	{"Deployments/Active", testDeploymentsActive},
	{"DeploymentHosts/PartialUpdates", testDeploymentHostsPartial},
	{"DeploymentHosts/FinalIsFinal", testDeploymentHostsFinal},
	{"DeploymentHosts/Revisions", testDeploymentHostsRevisions},
	{"DeploymentHosts/Batch1000", testDeploymentHostsBatch},
}

// group returns a deployment group of app "web".
func group(id, name string) api.DeploymentGroup {
	return api.DeploymentGroup{
		ID: id, App: "web", Name: name, Selector: "role=web,env=" + name, Config: "HalfAtATime",
		AutoRollback: true, CreatedAt: at(time.Second),
	}
}

// setupGroups creates application "web" and groups g1 ("prod") and g2
// ("staging").
func setupGroups(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	ok(t, s.CreateApplication(ctx, api.Application{Name: "web", CreatedAt: t0}), "CreateApplication")
	ok(t, s.CreateGroup(ctx, group("g1", "prod")), "CreateGroup g1")
	ok(t, s.CreateGroup(ctx, group("g2", "staging")), "CreateGroup g2")
}

// deployment returns a running deployment of revision r-1 to group g1
// ("prod"), created at t0+d.
func deployment(id string, d time.Duration) api.Deployment {
	return api.Deployment{
		ID: id, App: "web", Group: "prod", GroupID: "g1", Revision: "r-1", Config: "OneAtATime", MinHealthy: 2,
		State: api.DeployRunning, Kind: "deploy", CreatedAt: at(d),
	}
}

// inGroup2 returns d moved to group g2 ("staging").
func inGroup2(d api.Deployment) api.Deployment {
	d.GroupID, d.Group = "g2", "staging"
	return d
}

// dhost returns a pending deployment host named name with id "id-"+name.
func dhost(name string) api.DeploymentHost {
	return api.DeploymentHost{HostID: "id-" + name, HostName: name, State: api.HostDeployPending}
}

// createDeployment stores d with one pending host per name.
func createDeployment(t *testing.T, s store.Store, d api.Deployment, hosts ...string) {
	t.Helper()
	var hs []api.DeploymentHost
	for _, h := range hosts {
		hs = append(hs, dhost(h))
	}
	ok(t, s.CreateDeployment(t.Context(), d, hs), "CreateDeployment %s", d.ID)
}

// getDeployment returns a deployment or fails the test.
func getDeployment(t *testing.T, s store.Store, id string) api.Deployment {
	t.Helper()
	d, err := s.GetDeployment(t.Context(), id)
	ok(t, err, "GetDeployment %s", id)
	return d
}

// getDHost returns one host of a deployment or fails the test.
func getDHost(t *testing.T, s store.Store, depID, hostID string) api.DeploymentHost {
	t.Helper()
	for _, h := range getDeployment(t, s, depID).Hosts {
		if h.HostID == hostID {
			return h
		}
	}
	t.Fatalf("deployment %s has no host %s", depID, hostID)
	return api.DeploymentHost{}
}

// utcDeployment is what a store returns for d (without hosts and counts).
func utcDeployment(d api.Deployment) api.Deployment {
	d.CreatedAt = utc(d.CreatedAt)
	if d.FinishedAt != nil {
		d.FinishedAt = ptr(utc(*d.FinishedAt))
	}
	return d
}

// utcDHost is what a store returns for h.
func utcDHost(h api.DeploymentHost) api.DeploymentHost {
	for _, p := range []**time.Time{&h.StartedAt, &h.FinishedAt} {
		if *p != nil {
			*p = ptr(utc(**p))
		}
	}
	if h.Events != nil {
		evs := make([]api.LifecycleEvent, len(h.Events))
		for i, e := range h.Events {
			for _, p := range []**time.Time{&e.StartedAt, &e.FinishedAt} {
				if *p != nil {
					*p = ptr(utc(**p))
				}
			}
			evs[i] = e
		}
		h.Events = evs
	}
	return h
}

// depIDs returns the ids of deployments, in order.
func depIDs(ds []api.Deployment) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return strings.Join(out, " ")
}

// hostNames returns the names of deployment hosts, in order.
func hostNames(hs []api.DeploymentHost) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.HostName)
	}
	return strings.Join(out, " ")
}

func testGroupsCreateGetList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, a := range []string{"web", "api"} {
		ok(t, s.CreateApplication(ctx, api.Application{Name: a, CreatedAt: t0}), "CreateApplication %s", a)
	}
	full := api.DeploymentGroup{
		ID: "g-full", App: "web", Name: "prod", Selector: "role=web", Config: "75%",
		HealthCheck: &api.HealthCheck{HTTP: "http://127.0.0.1:8080/health", ExpectStatus: 204,
			Command: []string{"/bin/check", "--fast"}, TimeoutSeconds: 30, IntervalMillis: 250},
		AutoRollback: true, Revision: "r-9", CreatedAt: at(time.Second),
	}
	bare := api.DeploymentGroup{ID: "g-bare", App: "web", Name: "Zeta", Selector: "", Config: "AllAtOnce",
		AutoRollback: false, CreatedAt: at(2 * time.Second)}
	tcp := api.DeploymentGroup{ID: "g-tcp", App: "web", Name: "canary", Selector: "canary=yes", Config: "OneAtATime",
		HealthCheck: &api.HealthCheck{TCP: "8080"}, AutoRollback: true, CreatedAt: at(3 * time.Second)}
	other := api.DeploymentGroup{ID: "g-api", App: "api", Name: "prod", Selector: "role=api", Config: "AllAtOnce",
		CreatedAt: at(4 * time.Second)}
	for _, g := range []api.DeploymentGroup{full, bare, tcp, other} {
		ok(t, s.CreateGroup(ctx, g), "CreateGroup %s", g.ID)
	}
	utcGroup := func(g api.DeploymentGroup) api.DeploymentGroup {
		g.CreatedAt = utc(g.CreatedAt)
		return g
	}
	got, err := s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup")
	same(t, got, utcGroup(full), "GetGroup web/prod")
	got, err = s.GetGroup(ctx, "web", "Zeta")
	ok(t, err, "GetGroup")
	same(t, got, utcGroup(bare), "GetGroup without health check")
	got, err = s.GetGroup(ctx, "api", "prod")
	ok(t, err, "GetGroup")
	same(t, got, utcGroup(other), "GetGroup api/prod (same name, other application)")

	list, err := s.ListGroups(ctx, "web")
	ok(t, err, "ListGroups web")
	same(t, list, []api.DeploymentGroup{utcGroup(bare), utcGroup(tcp), utcGroup(full)}, "ListGroups web (byte order)")
	list, err = s.ListGroups(ctx, "")
	ok(t, err, "ListGroups all")
	var keys []string
	for _, g := range list {
		keys = append(keys, g.App+"/"+g.Name)
	}
	if got := strings.Join(keys, " "); got != "api/prod web/Zeta web/canary web/prod" {
		t.Fatalf("ListGroups(\"\") = %s, want by app then name", got)
	}
	ok(t, s.CreateApplication(ctx, api.Application{Name: "empty", CreatedAt: t0}), "CreateApplication")
	list, err = s.ListGroups(ctx, "empty")
	ok(t, err, "ListGroups of an application without groups")
	if len(list) != 0 {
		t.Fatalf("ListGroups(empty) = %+v", list)
	}
}

func testGroupsErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	ok(t, s.CreateApplication(ctx, api.Application{Name: "api", CreatedAt: t0}), "CreateApplication")
	dupName := group("g3", "prod")
	isErr(t, s.CreateGroup(ctx, dupName), store.ErrConflict, "CreateGroup with a taken name")
	dupID := group("g1", "other")
	isErr(t, s.CreateGroup(ctx, dupID), store.ErrConflict, "CreateGroup with a taken id")
	noApp := group("g4", "prod")
	noApp.App = "nope"
	isErr(t, s.CreateGroup(ctx, noApp), store.ErrNotFound, "CreateGroup of a missing application")
	sameNameOtherApp := group("g5", "prod")
	sameNameOtherApp.App = "api"
	ok(t, s.CreateGroup(ctx, sameNameOtherApp), "CreateGroup with a name taken in another application")

	_, err := s.GetGroup(ctx, "web", "nope")
	isErr(t, err, store.ErrNotFound, "GetGroup of a missing group")
	_, err = s.GetGroup(ctx, "nope", "prod")
	isErr(t, err, store.ErrNotFound, "GetGroup of a missing application")
	_, err = s.ListGroups(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "ListGroups of a missing application")
	list, err := s.ListGroups(ctx, "web")
	ok(t, err, "ListGroups")
	if len(list) != 2 {
		t.Fatalf("failed creations left groups: %+v", list)
	}
	if g, _ := s.GetGroup(ctx, "web", "prod"); g.ID != "g1" || g.Selector != "role=web,env=prod" {
		t.Fatalf("group changed by a failed creation: %+v", g)
	}
}

func testDeploymentsCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	d := api.Deployment{
		ID: "d1", App: "web", Group: "prod", GroupID: "g1", Revision: "r-2", Config: "75%", MinHealthy: 3,
		State: api.DeployStopping, Batch: 2, RollbackOf: "d0", Kind: "rollback", Description: "roll back d0",
		RolledBackBy: "d9", StopRequested: true, Force: true, Error: "stopping by hand",
		CreatedAt: at(time.Minute), FinishedAt: ptr(at(2 * time.Minute)),
	}
	full := api.DeploymentHost{
		HostID: "id-z", HostName: "alpha", Batch: 1, State: api.HostDeployFailed, PreviousRevision: "r-1",
		Event: "ValidateService", Error: "health check failed",
		StartedAt: ptr(at(61 * time.Second)), FinishedAt: ptr(at(90 * time.Second)),
		Events: []api.LifecycleEvent{
			{Name: "BeforeInstall", State: "succeeded", StartedAt: ptr(at(61 * time.Second)),
				FinishedAt: ptr(at(62 * time.Second)), ExitCode: 0, LogTail: "ok\n"},
			{Name: "ValidateService", State: "failed", StartedAt: ptr(at(63 * time.Second)),
				FinishedAt: ptr(at(64 * time.Second)), ExitCode: 7, LogTail: "no\n", Error: "exit status 7"},
			{Name: "AfterInstall", State: "running", StartedAt: ptr(at(65 * time.Second))},
		},
	}
	noState := dhost("zulu")
	noState.State = ""
	inProgress := api.DeploymentHost{HostID: "id-a", HostName: "Mike", Batch: 2, State: api.HostDeployInProgress,
		Event: "Install", StartedAt: ptr(at(100 * time.Second))}
	ok(t, s.CreateDeployment(ctx, d, []api.DeploymentHost{noState, full, inProgress}), "CreateDeployment")

	got := getDeployment(t, s, "d1")
	noState.State = api.HostDeployPending
	want := utcDeployment(d)
	want.Counts = map[string]int{api.HostDeployFailed: 1, api.HostDeployPending: 1, api.HostDeployInProgress: 1}
	want.Hosts = []api.DeploymentHost{utcDHost(inProgress), utcDHost(full), noState}
	same(t, got, want, "GetDeployment")
	if ev := got.Hosts[1].Events[0]; ev.StartedAt.Location() != time.UTC || ev.StartedAt.Nanosecond() != 123456789 {
		t.Fatalf("event time %v: want UTC with nanoseconds", ev.StartedAt)
	}

	// Defaults: an empty state is running; no hosts.
	d2 := inGroup2(deployment("d2", time.Hour))
	d2.State = ""
	ok(t, s.CreateDeployment(ctx, d2, nil), "CreateDeployment without hosts")
	got = getDeployment(t, s, "d2")
	want = utcDeployment(inGroup2(deployment("d2", time.Hour)))
	want.Counts = map[string]int{}
	same(t, got, want, "GetDeployment without hosts")
}

func testDeploymentsNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", 0), "a")
	_, err := s.GetDeployment(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "GetDeployment")
	isErr(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "nope", State: ptr(api.DeployFailed)}),
		store.ErrNotFound, "UpdateDeployment")
	isErr(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "nope"}), store.ErrNotFound, "empty UpdateDeployment")
	// Unknown hosts are ignored, like unknown executions.
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "nope", HostID: "id-a", State: api.HostDeploySucceeded},
		{DeploymentID: "d1", HostID: "id-nope", State: api.HostDeploySucceeded},
	}), "UpdateDeploymentHosts of unknown hosts")
	if h := getDHost(t, s, "d1", "id-a"); h.State != api.HostDeployPending {
		t.Fatalf("host changed by an update of another host: %+v", h)
	}
	revs, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	if len(revs) != 0 {
		t.Fatalf("updates of unknown hosts recorded revisions: %+v", revs)
	}
	ok(t, s.UpdateDeploymentHosts(ctx, nil), "UpdateDeploymentHosts(nil)")
}

func testDeploymentsCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", 0), "a", "b")
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployFailed)}), "UpdateDeployment")
	// A duplicate id conflicts even when the group has nothing running.
	isErr(t, s.CreateDeployment(ctx, deployment("d1", time.Second), nil), store.ErrConflict, "CreateDeployment with a duplicate id")
	// A duplicate host rolls the whole creation back.
	dup := []api.DeploymentHost{dhost("a"), dhost("b"), dhost("a")}
	isErr(t, s.CreateDeployment(ctx, deployment("d2", time.Second), dup), store.ErrConflict, "CreateDeployment with a duplicate host")
	_, err := s.GetDeployment(ctx, "d2")
	isErr(t, err, store.ErrNotFound, "GetDeployment of a deployment whose creation failed")
	// …and leaves the group free.
	createDeployment(t, s, deployment("d3", 2*time.Second), "a")
	if d := getDeployment(t, s, "d1"); !d.CreatedAt.Equal(at(0)) || d.State != api.DeployFailed || len(d.Hosts) != 2 {
		t.Fatalf("existing deployment changed by a conflicting creation: %+v", d)
	}
}

func testDeploymentsAddHosts(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	d := deployment("d1", 0)
	d.MinHealthy = 0
	createDeployment(t, s, d)

	noState := dhost("zulu")
	noState.State = ""
	ok(t, s.AddDeploymentHosts(ctx, "d1", 1, []api.DeploymentHost{noState, dhost("alpha")}), "AddDeploymentHosts")
	got := getDeployment(t, s, "d1")
	want := utcDeployment(d)
	want.MinHealthy = 1
	want.Counts = map[string]int{api.HostDeployPending: 2}
	noState.State = api.HostDeployPending
	want.Hosts = []api.DeploymentHost{dhost("alpha"), noState}
	same(t, got, want, "GetDeployment after AddDeploymentHosts")

	// A host already in the deployment rolls the whole addition back,
	// min_healthy included.
	isErr(t, s.AddDeploymentHosts(ctx, "d1", 3, []api.DeploymentHost{dhost("bravo"), dhost("alpha")}),
		store.ErrConflict, "AddDeploymentHosts of a host in the deployment")
	same(t, getDeployment(t, s, "d1"), want, "deployment after a conflicting AddDeploymentHosts")

	isErr(t, s.AddDeploymentHosts(ctx, "nope", 1, []api.DeploymentHost{dhost("bravo")}),
		store.ErrNotFound, "AddDeploymentHosts to an unknown deployment")

	// Only a running deployment takes hosts.
	for i, st := range []string{api.DeployStopping, api.DeploySucceeded, api.DeployFailed, api.DeployStopped} {
		id := "d-" + st
		createDeployment(t, s, inGroup2(deployment(id, time.Duration(i+1)*time.Second)), "a")
		ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: id, State: ptr(st)}), "%s", st)
		before := getDeployment(t, s, id)
		isErr(t, s.AddDeploymentHosts(ctx, id, 1, []api.DeploymentHost{dhost("bravo")}),
			store.ErrConflict, "AddDeploymentHosts to a %s deployment", st)
		same(t, getDeployment(t, s, id), before, "%s deployment after AddDeploymentHosts", st)
		if st == api.DeployStopping {
			// Free group g2 for the next deployment.
			ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: id, State: ptr(api.DeployStopped)}), "stop %s", id)
		}
	}
}

func testDeploymentsOneActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", 0), "a")
	isErr(t, s.CreateDeployment(ctx, deployment("d2", time.Second), []api.DeploymentHost{dhost("a")}),
		store.ErrConflict, "second running deployment of a group")
	_, err := s.GetDeployment(ctx, "d2")
	isErr(t, err, store.ErrNotFound, "GetDeployment of a refused deployment")
	// Another group is independent.
	createDeployment(t, s, inGroup2(deployment("d3", time.Second)), "a")
	// Stopping is not final.
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployStopping)}), "stop d1")
	stopping := deployment("d2", 2*time.Second)
	stopping.State = api.DeployStopping
	isErr(t, s.CreateDeployment(ctx, stopping, nil), store.ErrConflict, "a stopping deployment beside a stopping one")
	isErr(t, s.CreateDeployment(ctx, deployment("d2", 2*time.Second), nil), store.ErrConflict, "deployment beside a stopping one")
	// A final deployment can always be recorded.
	done := deployment("d-old", -time.Hour)
	done.State, done.FinishedAt = api.DeploySucceeded, ptr(at(-time.Minute))
	ok(t, s.CreateDeployment(ctx, done, nil), "CreateDeployment of a final deployment beside a running one")
	// Once d1 is final, the group takes a new one.
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployStopped), FinishedAt: ptr(at(time.Minute))}), "d1 stopped")
	createDeployment(t, s, deployment("d2", 3*time.Second), "a")
	isErr(t, s.CreateDeployment(ctx, deployment("d4", 4*time.Second), nil), store.ErrConflict, "deployment beside d2")
	for _, st := range []string{api.DeployFailed, api.DeploySucceeded} {
		ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d2", State: ptr(st)}), "d2 %s", st)
	}
	createDeployment(t, s, deployment("d4", 4*time.Second))
}

func testDeploymentsOneActiveConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	for round := range 3 {
		const n = 8
		errs := run(n, func(i int) error {
			d := deployment(fmt.Sprintf("r%d-d%d", round, i), time.Duration(round*n+i)*time.Second)
			hs := []api.DeploymentHost{dhost("a"), dhost("b")}
			return s.CreateDeployment(ctx, d, hs)
		})
		nils, conflicts := countErrs(t, errs, store.ErrConflict)
		if nils != 1 || conflicts != n-1 {
			t.Fatalf("round %d: %d creations succeeded and %d conflicted; want 1 and %d", round, nils, conflicts, n-1)
		}
		active, err := s.ListActiveDeployments(ctx)
		ok(t, err, "ListActiveDeployments")
		if len(active) != 1 || len(active[0].Hosts) != 2 {
			t.Fatalf("round %d: active deployments %s", round, depIDs(active))
		}
		ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: active[0].ID, State: ptr(api.DeployFailed)}), "finish %s", active[0].ID)
	}
	all, err := s.ListDeployments(ctx, "web", 0)
	ok(t, err, "ListDeployments")
	if len(all) != 3 {
		t.Fatalf("ListDeployments = %s, want one per round", depIDs(all))
	}
}

func testDeploymentsUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	d := deployment("d1", 0)
	d.Revision = "r-7"
	createDeployment(t, s, d, "a")
	want := utcDeployment(d)
	want.Counts = map[string]int{api.HostDeployPending: 1}
	want.Hosts = []api.DeploymentHost{dhost("a")}

	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1"}), "empty update")
	same(t, getDeployment(t, s, "d1"), want, "after an empty update")

	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", Batch: ptr(1)}), "batch 1")
	want.Batch = 1
	same(t, getDeployment(t, s, "d1"), want, "after batch 1")

	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployStopping), StopRequested: ptr(true),
		Force: ptr(true), Error: ptr("stop asked"), RolledBackBy: ptr("d2")}), "stop")
	want.State, want.StopRequested, want.Force, want.Error, want.RolledBackBy = api.DeployStopping, true, true, "stop asked", "d2"
	same(t, getDeployment(t, s, "d1"), want, "after stop")

	// Pointers to zero values write zero values.
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployRunning), Batch: ptr(0),
		StopRequested: ptr(false), Force: ptr(false), Error: ptr(""), RolledBackBy: ptr("")}), "reset")
	want.State, want.Batch, want.StopRequested, want.Force, want.Error, want.RolledBackBy = api.DeployRunning, 0, false, false, "", ""
	same(t, getDeployment(t, s, "d1"), want, "after reset to zero values")

	g, err := s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup")
	if g.Revision != "" {
		t.Fatalf("group revision %q before any success", g.Revision)
	}
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeploySucceeded), Batch: ptr(3),
		FinishedAt: ptr(at(time.Hour))}), "succeed")
	want.State, want.Batch, want.FinishedAt = api.DeploySucceeded, 3, ptr(utc(at(time.Hour)))
	same(t, getDeployment(t, s, "d1"), want, "after success")
	g, err = s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup")
	if g.Revision != "r-7" {
		t.Fatalf("group revision %q after success of r-7", g.Revision)
	}
	other, err := s.GetGroup(ctx, "web", "staging")
	ok(t, err, "GetGroup")
	if other.Revision != "" {
		t.Fatalf("success in prod changed staging's revision to %q", other.Revision)
	}

	// A failed (or stopped) deployment leaves the group's revision alone.
	for i, st := range []string{api.DeployFailed, api.DeployStopped} {
		d := deployment(fmt.Sprintf("d-%s", st), time.Duration(i+1)*time.Hour)
		d.Revision = "r-bad"
		createDeployment(t, s, d, "a")
		ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: d.ID, State: ptr(st)}), "%s", st)
		g, err = s.GetGroup(ctx, "web", "prod")
		ok(t, err, "GetGroup")
		if g.Revision != "r-7" {
			t.Fatalf("group revision %q after a %s deployment, want r-7", g.Revision, st)
		}
	}
	// A later success replaces it.
	d3 := deployment("d3", 5*time.Hour)
	d3.Revision = "r-8"
	createDeployment(t, s, d3)
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d3", State: ptr(api.DeploySucceeded)}), "succeed d3")
	g, err = s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup")
	if g.Revision != "r-8" {
		t.Fatalf("group revision %q after success of r-8", g.Revision)
	}
}

func testDeploymentsFinal(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	for i, final := range []string{api.DeploySucceeded, api.DeployFailed, api.DeployStopped} {
		d := inGroup2(deployment("d-"+final, time.Duration(i)*time.Second))
		createDeployment(t, s, d, "a")
		ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: d.ID, State: ptr(final), Error: ptr("first"),
			FinishedAt: ptr(at(time.Minute))}), "%s", final)
		before := getDeployment(t, s, d.ID)
		if before.State != final || before.Error != "first" {
			t.Fatalf("%s: %+v", final, before)
		}
		// Every later update is ignored, without error.
		for _, u := range []store.DeploymentUpdate{
			{ID: d.ID, State: ptr(api.DeployRunning)},
			{ID: d.ID, State: ptr(api.DeploySucceeded), Error: ptr("second"), FinishedAt: ptr(at(time.Hour))},
			{ID: d.ID, Batch: ptr(9), StopRequested: ptr(true), Force: ptr(true), RolledBackBy: ptr("d-x")},
		} {
			ok(t, s.UpdateDeployment(ctx, u), "update of a %s deployment", final)
		}
		same(t, getDeployment(t, s, d.ID), before, "%s deployment after later updates", final)
	}
	g, err := s.GetGroup(ctx, "web", "staging")
	ok(t, err, "GetGroup")
	if g.Revision != "r-1" {
		t.Fatalf("group revision %q, want r-1 from the one success", g.Revision)
	}
	// An update to succeeded ignored on a failed deployment must not set
	// the group's revision.
	d := inGroup2(deployment("d-late", time.Hour))
	d.Revision = "r-late"
	createDeployment(t, s, d)
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d-late", State: ptr(api.DeployFailed)}), "fail")
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d-late", State: ptr(api.DeploySucceeded)}), "late success")
	g, err = s.GetGroup(ctx, "web", "staging")
	ok(t, err, "GetGroup")
	if g.Revision != "r-1" {
		t.Fatalf("an ignored success set the group revision to %q", g.Revision)
	}
}

func testDeploymentsList(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	ok(t, s.CreateApplication(ctx, api.Application{Name: "api", CreatedAt: t0}), "CreateApplication")
	ok(t, s.CreateGroup(ctx, api.DeploymentGroup{ID: "ga", App: "api", Name: "prod", CreatedAt: t0}), "CreateGroup")
	list, err := s.ListDeployments(ctx, "", 10)
	ok(t, err, "ListDeployments on an empty store")
	if len(list) != 0 {
		t.Fatalf("ListDeployments on an empty store = %s", depIDs(list))
	}
	// Created out of order; d3 and d3b tie on created_at.
	mk := func(id string, d time.Duration, group int, final bool, hosts ...string) {
		dep := deployment(id, d)
		if group == 2 {
			dep = inGroup2(dep)
		}
		if group == 3 {
			dep.App, dep.GroupID, dep.Group = "api", "ga", "prod"
		}
		if final {
			dep.State = api.DeployFailed
		}
		createDeployment(t, s, dep, hosts...)
	}
	mk("d2", 2*time.Second, 1, true, "a", "b", "c")
	mk("d4", 4*time.Second, 2, true, "a", "b")
	mk("d1", 1*time.Second, 1, true, "a")
	mk("d3", 3*time.Second, 1, true)
	mk("d3b", 3*time.Second, 1, false, "x")
	mk("a5", 5*time.Second, 3, false, "a", "b", "c", "d")
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "a5", HostID: "id-a", State: api.HostDeployInProgress},
		{DeploymentID: "a5", HostID: "id-b", State: api.HostDeploySucceeded},
		{DeploymentID: "a5", HostID: "id-c", State: api.HostDeployFailed},
		{DeploymentID: "d4", HostID: "id-a", State: api.HostDeploySkipped},
		{DeploymentID: "d4", HostID: "id-b", State: api.HostDeploySkipped},
	}), "UpdateDeploymentHosts")

	wantCounts := map[string]map[string]int{
		"a5":  {api.HostDeployInProgress: 1, api.HostDeploySucceeded: 1, api.HostDeployFailed: 1, api.HostDeployPending: 1},
		"d4":  {api.HostDeploySkipped: 2},
		"d3b": {api.HostDeployPending: 1},
		"d3":  {},
		"d2":  {api.HostDeployPending: 3},
		"d1":  {api.HostDeployPending: 1},
	}
	for _, tc := range []struct {
		app   string
		limit int
		want  string
	}{
		{"", 3, "a5 d4 d3b"},
		{"", 1, "a5"},
		{"", 0, "a5 d4 d3b d3 d2 d1"},
		{"", -1, "a5 d4 d3b d3 d2 d1"},
		{"web", 0, "d4 d3b d3 d2 d1"},
		{"web", 2, "d4 d3b"},
		{"api", 100, "a5"},
		{"nope", 0, ""},
	} {
		t.Run(fmt.Sprintf("app=%s,limit=%d", tc.app, tc.limit), func(t *testing.T) {
			list, err := s.ListDeployments(ctx, tc.app, tc.limit)
			ok(t, err, "ListDeployments")
			for _, d := range list {
				same(t, d.Counts, wantCounts[d.ID], "Counts of %s", d.ID)
				if d.Hosts != nil {
					t.Fatalf("ListDeployments returned hosts of %s", d.ID)
				}
			}
			if got := depIDs(list); got != tc.want {
				t.Fatalf("ListDeployments(%q, %d) = %s, want %s", tc.app, tc.limit, got, tc.want)
			}
		})
	}
	list, err = s.ListDeployments(ctx, "web", 1)
	ok(t, err, "ListDeployments")
	want := utcDeployment(inGroup2(deployment("d4", 4*time.Second)))
	want.State = api.DeployFailed
	want.Counts = wantCounts["d4"]
	same(t, list[0], want, "listed deployment")
}

func testDeploymentsListDefaultLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	const n = 105
	for i := range n {
		d := deployment(fmt.Sprintf("d%03d", i), time.Duration(i)*time.Second)
		d.State = api.DeploySucceeded
		createDeployment(t, s, d)
	}
	list, err := s.ListDeployments(ctx, "", 0)
	ok(t, err, "ListDeployments")
	if len(list) != 100 || list[0].ID != "d104" || list[99].ID != "d005" {
		t.Fatalf("ListDeployments without a limit: %d deployments from %s; want the newest 100", len(list), list[0].ID)
	}
	list, err = s.ListDeployments(ctx, "web", 200)
	ok(t, err, "ListDeployments")
	if len(list) != n {
		t.Fatalf("ListDeployments(200) = %d deployments, want %d", len(list), n)
	}
}

func testDeploymentsActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	list, err := s.ListActiveDeployments(ctx)
	ok(t, err, "ListActiveDeployments on an empty store")
	if len(list) != 0 {
		t.Fatalf("ListActiveDeployments on an empty store = %s", depIDs(list))
	}
	ok(t, s.CreateGroup(ctx, api.DeploymentGroup{ID: "g3", App: "web", Name: "dev", CreatedAt: t0}), "CreateGroup g3")
	ok(t, s.CreateGroup(ctx, api.DeploymentGroup{ID: "g4", App: "web", Name: "qa", CreatedAt: t0}), "CreateGroup g4")
	mk := func(id, groupID string, d time.Duration, state string, hosts ...api.DeploymentHost) {
		dep := deployment(id, d)
		dep.GroupID, dep.State = groupID, state
		ok(t, s.CreateDeployment(ctx, dep, hosts), "CreateDeployment %s", id)
	}
	// ids in the opposite order of creation times, hosts not in name order.
	mk("d1", "g1", 3*time.Second, api.DeployRunning, dhost("zed"), dhost("amy"))
	mk("d2", "g2", 1*time.Second, api.DeployStopping, dhost("bob"))
	mk("d3", "g3", 2*time.Second, api.DeployRunning)
	mk("d0", "g4", 0, api.DeployRunning, dhost("cy"))
	mk("old-ok", "g1", -3*time.Second, api.DeploySucceeded, dhost("amy"))
	mk("old-failed", "g2", -2*time.Second, api.DeployFailed)
	mk("old-stopped", "g3", -time.Second, api.DeployStopped)
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d1", HostID: "id-zed", State: api.HostDeploySucceeded, Batch: 1},
	}), "UpdateDeploymentHosts")
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d0", State: ptr(api.DeploySucceeded)}), "d0 succeeded")

	list, err = s.ListActiveDeployments(ctx)
	ok(t, err, "ListActiveDeployments")
	var got []string
	for _, d := range list {
		got = append(got, d.ID+"["+hostNames(d.Hosts)+"]")
		if api.DeployDone(d.State) {
			t.Fatalf("ListActiveDeployments returned %s in state %s", d.ID, d.State)
		}
	}
	if g := strings.Join(got, " "); g != "d2[bob] d3[] d1[amy zed]" {
		t.Fatalf("ListActiveDeployments = %s, want d2[bob] d3[] d1[amy zed]", g)
	}
	zed := dhost("zed")
	zed.State, zed.Batch = api.HostDeploySucceeded, 1
	want := utcDeployment(deployment("d1", 3*time.Second))
	want.Hosts = []api.DeploymentHost{dhost("amy"), zed}
	want.Counts = map[string]int{api.HostDeployPending: 1, api.HostDeploySucceeded: 1}
	same(t, list[2], want, "active deployment")
	same(t, list[1].Counts, map[string]int{}, "Counts of an active deployment without hosts")
}

func testDeploymentHostsPartial(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", 0), "a", "b")
	want := dhost("a")
	check := func(what string) {
		t.Helper()
		same(t, getDHost(t, s, "d1", "id-a"), utcDHost(want), "host after %s", what)
		if b := getDHost(t, s, "d1", "id-b"); b.State != api.HostDeployPending || b.Batch != 0 || b.Events != nil {
			t.Fatalf("other host changed after %s: %+v", what, b)
		}
	}
	up := func(u store.DeploymentHostUpdate) {
		t.Helper()
		u.DeploymentID, u.HostID = "d1", "id-a"
		ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{u}), "UpdateDeploymentHosts")
	}

	up(store.DeploymentHostUpdate{})
	check("an empty update")

	up(store.DeploymentHostUpdate{State: api.HostDeployInProgress, Batch: 1, StartedAt: ptr(at(time.Second)), Event: "ApplicationStop"})
	want.State, want.Batch, want.StartedAt, want.Event = api.HostDeployInProgress, 1, ptr(at(time.Second)), "ApplicationStop"
	check("start")

	ev1 := api.LifecycleEvent{Name: "ApplicationStop", State: "succeeded", StartedAt: ptr(at(time.Second)),
		FinishedAt: ptr(at(2 * time.Second)), LogTail: "stopped\n"}
	ev2 := api.LifecycleEvent{Name: "BeforeInstall", State: "running", StartedAt: ptr(at(3 * time.Second))}
	up(store.DeploymentHostUpdate{Event: "BeforeInstall", Events: []api.LifecycleEvent{ev1, ev2}})
	want.Event, want.Events = "BeforeInstall", []api.LifecycleEvent{ev1, ev2}
	check("events")

	// Fields left out stay; Events replaces the list.
	ev2.State, ev2.FinishedAt, ev2.ExitCode, ev2.Error = "failed", ptr(at(4*time.Second)), 2, "exit status 2"
	up(store.DeploymentHostUpdate{Events: []api.LifecycleEvent{ev1, ev2}, Error: "BeforeInstall failed"})
	want.Events, want.Error = []api.LifecycleEvent{ev1, ev2}, "BeforeInstall failed"
	check("replaced events")

	// An empty, non-nil slice clears the list.
	up(store.DeploymentHostUpdate{Events: []api.LifecycleEvent{}})
	want.Events = nil
	check("cleared events")

	// Updates of one host in one call apply in order.
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d1", HostID: "id-a", Event: "Install", Batch: 2},
		{DeploymentID: "d1", HostID: "id-a", Event: "AfterInstall"},
		{DeploymentID: "d1", HostID: "id-a", State: api.HostDeployFailed, FinishedAt: ptr(at(time.Minute)), Events: []api.LifecycleEvent{ev1}},
		{DeploymentID: "d1", HostID: "id-a", State: api.HostDeployInProgress, Event: "too late"},
	}), "UpdateDeploymentHosts in order")
	want.Event, want.Batch, want.State, want.FinishedAt, want.Events = "AfterInstall", 2, api.HostDeployFailed, ptr(at(time.Minute)), []api.LifecycleEvent{ev1}
	check("updates in order")

	d := getDeployment(t, s, "d1")
	same(t, d.Counts, map[string]int{api.HostDeployFailed: 1, api.HostDeployPending: 1}, "Counts")
	if d.State != api.DeployRunning {
		t.Fatalf("host updates changed the deployment's state to %s", d.State)
	}
}

func testDeploymentHostsFinal(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	finals := []string{api.HostDeploySucceeded, api.HostDeployFailed, api.HostDeploySkipped}
	createDeployment(t, s, deployment("d1", 0), finals...)
	var ups []store.DeploymentHostUpdate
	for _, st := range finals {
		ups = append(ups, store.DeploymentHostUpdate{DeploymentID: "d1", HostID: "id-" + st, State: st, Batch: 1,
			Event: "ValidateService", Error: "first", FinishedAt: ptr(at(time.Minute)),
			Events: []api.LifecycleEvent{{Name: "ValidateService", State: "succeeded"}}})
	}
	ok(t, s.UpdateDeploymentHosts(ctx, ups), "move hosts to final states")
	before := getDeployment(t, s, "d1")
	revsBefore, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	for _, st := range finals {
		for _, later := range []store.DeploymentHostUpdate{
			{State: api.HostDeployInProgress},
			{State: api.HostDeployPending, Batch: 5},
			{State: api.HostDeploySucceeded, FinishedAt: ptr(at(time.Hour))},
			{Event: "Install", Error: "second"},
			{StartedAt: ptr(at(time.Hour)), Events: []api.LifecycleEvent{}},
		} {
			later.DeploymentID, later.HostID = "d1", "id-"+st
			ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{later}), "update of a %s host", st)
		}
	}
	same(t, getDeployment(t, s, "d1"), before, "deployment after updates of final hosts")
	revs, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	same(t, revs, revsBefore, "host revisions after updates of final hosts")
}

func testDeploymentHostsRevisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	revs, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions of a group without any")
	if len(revs) != 0 {
		t.Fatalf("HostRevisions = %+v", revs)
	}
	d1 := deployment("d1", 0)
	d1.Revision = "r-1"
	createDeployment(t, s, d1, "a", "b", "c", "d")
	before := time.Now()
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d1", HostID: "id-a", State: api.HostDeploySucceeded, FinishedAt: ptr(at(time.Minute))},
		{DeploymentID: "d1", HostID: "id-b", State: api.HostDeploySucceeded}, // at = now
		{DeploymentID: "d1", HostID: "id-c", State: api.HostDeployFailed, FinishedAt: ptr(at(time.Minute))},
		{DeploymentID: "d1", HostID: "id-d", State: api.HostDeployInProgress},
	}), "UpdateDeploymentHosts")
	after := time.Now()
	revs, err = s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	if len(revs) != 2 {
		t.Fatalf("HostRevisions = %+v, want hosts a and b only", revs)
	}
	same(t, revs["id-a"], store.HostRevision{HostID: "id-a", Revision: "r-1", DeploymentID: "d1", At: utc(at(time.Minute))}, "revision of a")
	b := revs["id-b"]
	if b.HostID != "id-b" || b.Revision != "r-1" || b.DeploymentID != "d1" || b.At.Location() != time.UTC ||
		b.At.Before(before) || b.At.After(after) {
		t.Fatalf("revision of b = %+v, want r-1 of d1 at a time between %v and %v", b, before, after)
	}
	// Another group's revisions are separate.
	g2, err := s.HostRevisions(ctx, "g2")
	ok(t, err, "HostRevisions g2")
	if len(g2) != 0 {
		t.Fatalf("HostRevisions(g2) = %+v", g2)
	}
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d1", State: ptr(api.DeployFailed)}), "d1 failed")

	// A later deployment replaces a host's revision; a failure keeps it.
	d2 := deployment("d2", time.Hour)
	d2.Revision = "r-2"
	createDeployment(t, s, d2, "a", "b", "c")
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d2", HostID: "id-a", State: api.HostDeploySucceeded, FinishedAt: ptr(at(2 * time.Hour))},
		{DeploymentID: "d2", HostID: "id-b", State: api.HostDeployFailed, FinishedAt: ptr(at(2 * time.Hour))},
		{DeploymentID: "d2", HostID: "id-c", State: api.HostDeploySkipped},
	}), "UpdateDeploymentHosts d2")
	revs, err = s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	same(t, revs["id-a"], store.HostRevision{HostID: "id-a", Revision: "r-2", DeploymentID: "d2", At: utc(at(2 * time.Hour))}, "revision of a after d2")
	same(t, revs["id-b"], b, "revision of b after its failure in d2")
	if len(revs) != 2 {
		t.Fatalf("HostRevisions = %+v, want a and b", revs)
	}
	// A repeated success (a duplicate result) changes nothing.
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d2", HostID: "id-a", State: api.HostDeploySucceeded, FinishedAt: ptr(at(3 * time.Hour))},
	}), "repeated success")
	revs, err = s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	same(t, revs["id-a"].At, utc(at(2*time.Hour)), "time of a's revision after a repeated success")

	// One host succeeding in two deployments of the group in one call
	// (d1 is failed but its host d still in progress): the later time wins,
	// whatever the order of the updates.
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: "d2", State: ptr(api.DeployFailed)}), "d2 failed")
	d3 := deployment("d3", 3*time.Hour)
	d3.Revision = "r-3"
	createDeployment(t, s, d3, "d")
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{
		{DeploymentID: "d3", HostID: "id-d", State: api.HostDeploySucceeded, FinishedAt: ptr(at(4 * time.Hour))},
		{DeploymentID: "d1", HostID: "id-d", State: api.HostDeploySucceeded, FinishedAt: ptr(at(5 * time.Hour))},
	}), "UpdateDeploymentHosts of one host in two deployments")
	revs, err = s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	same(t, revs["id-d"], store.HostRevision{HostID: "id-d", Revision: "r-1", DeploymentID: "d1", At: utc(at(5 * time.Hour))}, "revision of d")
}

func testDeploymentHostsBatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	const n = 1000
	hosts := make([]api.DeploymentHost, n)
	for i := range hosts {
		hosts[i] = dhost(fmt.Sprintf("host%04d", i))
	}
	d := deployment("d1", 0)
	ok(t, s.CreateDeployment(ctx, d, hosts), "CreateDeployment with %d hosts", n)
	var start, finish []store.DeploymentHostUpdate
	for i, h := range hosts {
		start = append(start, store.DeploymentHostUpdate{DeploymentID: "d1", HostID: h.HostID, State: api.HostDeployInProgress,
			Batch: 1, StartedAt: ptr(at(time.Second))})
		st := api.HostDeploySucceeded
		if i%10 == 0 {
			st = api.HostDeployFailed
		}
		finish = append(finish, store.DeploymentHostUpdate{DeploymentID: "d1", HostID: h.HostID, State: st,
			Event: "ValidateService", FinishedAt: ptr(at(time.Minute)),
			Events: []api.LifecycleEvent{{Name: "ValidateService", State: st, ExitCode: i % 2}}})
	}
	ok(t, s.UpdateDeploymentHosts(ctx, start), "start %d hosts", n)
	t1 := time.Now()
	ok(t, s.UpdateDeploymentHosts(ctx, finish), "finish %d hosts", n)
	// A figure for the log, never an assertion.
	t.Logf("UpdateDeploymentHosts of %d hosts to final states: %v", n, time.Since(t1))
	got := getDeployment(t, s, "d1")
	same(t, got.Counts, map[string]int{api.HostDeploySucceeded: n * 9 / 10, api.HostDeployFailed: n / 10}, "Counts")
	if h := got.Hosts[7]; h.HostName != "host0007" || h.Batch != 1 || h.State != api.HostDeploySucceeded ||
		len(h.Events) != 1 || h.Events[0].ExitCode != 1 || !h.StartedAt.Equal(at(time.Second)) {
		t.Fatalf("host 7 = %+v", h)
	}
	revs, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions")
	if len(revs) != n*9/10 {
		t.Fatalf("%d host revisions, want %d", len(revs), n*9/10)
	}
	if _, failed := revs["id-host0010"]; failed {
		t.Fatalf("a failed host got a revision")
	}
}
