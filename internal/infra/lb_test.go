package infra

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/golden"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
)

// fakeLB is a load balancer that keeps its servers' states as a managed
// haproxy would (configure adds in the given state and deletes the
// missing, keeps the others; allow makes ready and UP; remove deletes),
// and records every command, in order, in log.
type fakeLB struct {
	mu      sync.Mutex
	cmds    []protocol.LBCommand
	hosts   []string
	servers map[string]api.LBServerStatus
	log     *[]string
	logMu   *sync.Mutex
	// failConfigure makes configure fail with this error.
	failConfigure string
}

func newFakeLB(log *[]string, logMu *sync.Mutex) *fakeLB {
	return &fakeLB{servers: map[string]api.LBServerStatus{}, log: log, logMu: logMu}
}

func (f *fakeLB) Do(_ context.Context, host string, cmd protocol.LBCommand) (protocol.LBResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	f.hosts = append(f.hosts, host)
	if f.log != nil {
		f.logMu.Lock()
		*f.log = append(*f.log, "lb "+cmd.Op+" "+cmd.Server)
		f.logMu.Unlock()
	}
	var res protocol.LBResult
	switch cmd.Op {
	case protocol.LBConfigure:
		if f.failConfigure != "" {
			return protocol.LBResult{Error: f.failConfigure}, nil
		}
		want := map[string]bool{}
		for _, be := range cmd.Config.Backends {
			for _, s := range be.Servers {
				want[s.Name] = true
				if _, ok := f.servers[s.Name]; !ok {
					f.servers[s.Name] = api.LBServerStatus{Backend: be.Name, Name: s.Name, Addr: s.Addr, Port: s.Port, Weight: s.Weight, State: s.State}
				}
			}
		}
		for n := range f.servers {
			if !want[n] {
				delete(f.servers, n)
			}
		}
	case protocol.LBAllow:
		s, ok := f.servers[cmd.Server]
		if !ok {
			return protocol.LBResult{Error: "no server " + cmd.Server}, nil
		}
		s.State, s.Health = api.LBReady, "UP"
		f.servers[cmd.Server] = s
		res.Detail = "UP after 2 checks"
	case protocol.LBRemove:
		delete(f.servers, cmd.Server)
		res.Detail = "drained 0 sessions in 0s"
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range f.servers {
			if !yield(k) {
				return
			}
		}
	}) {
		res.Servers = append(res.Servers, f.servers[n])
	}
	return res, nil
}

// ops returns the commands so far as "op server" strings.
func (f *fakeLB) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.cmds {
		out = append(out, strings.TrimSpace(c.Op+" "+c.Server))
	}
	return out
}

func (f *fakeLB) configures() []protocol.LBCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []protocol.LBCommand
	for _, c := range f.cmds {
		if c.Op == protocol.LBConfigure {
			out = append(out, c)
		}
	}
	return out
}

// lbFleet: hosts online by id; lifecycle jobs finish at once (succeeded),
// each recorded in log.
type lbFleet struct {
	mu     sync.Mutex
	st     store.Store
	online map[string]bool
	log    *[]string
	logMu  *sync.Mutex
}

func (f *lbFleet) CreateInternalJob(ctx context.Context, j api.Job, xs []api.Execution) (api.Job, error) {
	j.State = api.JobRunning
	for i := range xs {
		xs[i].JobID, xs[i].State = j.ID, api.ExecPending
	}
	if err := f.st.CreateJob(ctx, j, xs); err != nil {
		return j, err
	}
	now := time.Now().UTC()
	zero := 0
	var ups []store.ExecUpdate
	for _, x := range xs {
		ups = append(ups, store.ExecUpdate{ID: x.ID, State: api.ExecSucceeded, ExitCode: &zero, FinishedAt: &now})
		f.logMu.Lock()
		*f.log = append(*f.log, "job "+strings.SplitN(j.ID, "-", 2)[0]+" "+x.HostName)
		f.logMu.Unlock()
	}
	if err := f.st.UpdateExecutions(ctx, ups); err != nil {
		return j, err
	}
	return j, f.st.FinishJob(ctx, j.ID, now)
}

func (f *lbFleet) HostOnline(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online[id]
}

func (f *lbFleet) set(id string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.online[id] = on
}

// lbDeployer reports the hosts in busy as in a deployment.
type lbDeployer struct {
	fakeDeployer
	mu   sync.Mutex
	busy map[string]bool
}

func (d *lbDeployer) HostBusy(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.busy[id]
}

func (d *lbDeployer) set(id string, b bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy[id] = b
}

// waitLBIdle waits until no load balancer worker runs.
func waitLBIdle(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.lc.lb.mu.Lock()
		n := len(e.lc.lb.busy)
		e.lc.lb.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("load balancer worker still running after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var testLBSpec = &config.LBSpec{Target: "web", Listen: 80, Port: 8080, Balance: "roundrobin", DrainTimeout: 30, Header: "X-Backend", Driver: "haproxy",
	Check: api.LBCheck{Path: "/healthz", IntervalMillis: 100, Rise: 2, Fall: 2}}

func TestDesiredLBConfig(t *testing.T) {
	got := desiredLBConfig(testLBSpec, []lbMember{{"dev-web-1", "10.0.0.3"}, {"dev-web-0", "10.0.0.2"}})
	want := api.LBConfig{Backends: []api.LBBackend{{Name: "web", Listen: 80, Balance: "roundrobin", Header: "X-Backend", Check: testLBSpec.Check,
		Servers: []api.LBServer{
			{Name: "dev-web-0", Addr: "10.0.0.2", Port: 8080, Weight: 100, State: api.LBMaint},
			{Name: "dev-web-1", Addr: "10.0.0.3", Port: 8080, Weight: 100, State: api.LBMaint},
		}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("desiredLBConfig = %+v,\nwant %+v", got, want)
	}
	// The order of members does not change the configuration (its hash
	// decides whether it is sent again).
	again := desiredLBConfig(testLBSpec, []lbMember{{"dev-web-0", "10.0.0.2"}, {"dev-web-1", "10.0.0.3"}})
	if configHash(again) != configHash(got) {
		t.Error("hash depends on the members' order")
	}
	if none := desiredLBConfig(testLBSpec, nil); len(none.Backends) != 1 || none.Backends[0].Servers == nil || len(none.Backends[0].Servers) != 0 {
		t.Errorf("no members: %+v, want one backend with an empty server list", none)
	}
}

func TestJoinCandidates(t *testing.T) {
	servers := map[string]api.LBServerStatus{
		"w0": {Name: "w0", State: api.LBMaint},
		"w1": {Name: "w1", State: api.LBMaint},
		"w2": {Name: "w2", State: api.LBMaint},
		"w3": {Name: "w3", State: api.LBReady, Weight: 100},
		"w4": {Name: "w4", State: api.LBDrain},
	}
	targets := []lbTargetView{
		{Name: "w0", Phase: api.PhaseOnline},             // joins
		{Name: "w1", Phase: api.PhaseDeploying},          // not before it is online
		{Name: "w2", Phase: api.PhaseOnline, Busy: true}, // its deployment lets it in
		{Name: "w3", Phase: api.PhaseOnline},             // in already
		{Name: "w4", Phase: api.PhaseOnline},             // drained by someone: left alone
		{Name: "w5", Phase: api.PhaseOnline},             // not configured yet
		{Name: "w6", Phase: api.PhaseSetup},
	}
	if got := joinCandidates(targets, servers); !reflect.DeepEqual(got, []string{"w0"}) {
		t.Fatalf("joinCandidates = %v, want [w0]", got)
	}
}

// TestLBControllerJoinsAndLeaves drives the lifecycle with a fake load
// balancer: the configuration goes to the online load balancer machine,
// once (again only when it changes or the machine is re-created); a
// target machine joins once it is online and out of its deployment, never
// before; the environment is not settled while one is waiting; a leaving
// machine is drained and removed, then left out.
func TestLBControllerJoinsAndLeaves(t *testing.T) {
	h := newHarness(t)
	var log []string
	var logMu sync.Mutex
	fl := &lbFleet{st: h.st, online: map[string]bool{}, log: &log, logMu: &logMu}
	dep := &lbDeployer{busy: map[string]bool{}}
	lb := newFakeLB(nil, nil)
	h.e.fl, h.e.dep, h.e.cfg.LB = fl, dep, lb
	ctx := context.Background()
	const env = "lbt"
	st := newState(env)
	st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web", Spec: &GroupRecord{}}
	st.Resources["group.lb"] = &Resource{Address: "group.lb", Kind: KindGroup, Group: "lb", Spec: &GroupRecord{LoadBalancer: testLBSpec}}
	add := func(group string, i int, ip string) string {
		addr := machineAddress(group, i, false)
		name := machineName(env, group, i, false)
		st.Resources[addr] = &Resource{Address: addr, Kind: KindMachine, Group: group, Index: i, Name: name, IP: ip, ID: "m-" + name}
		return name
	}
	enroll := func(name, addr, id string) {
		h.enrollID(name, id, map[string]string{LabelSetup: "done", provider.LabelEnv: env, provider.LabelResource: addr})
		fl.set(id, true)
	}
	add("lb", 0, "10.9.0.10")
	for i := 0; i < 3; i++ {
		add("web", i, fmt.Sprintf("10.9.0.%d", i+1))
	}
	save := func(serial int64) {
		if err := h.st.SaveEnvironment(ctx, store.Environment{Name: env, Serial: serial, State: stateJSON(st), Definition: []byte{}, Vars: []byte("[]")}, serial-1); err != nil {
			t.Fatal(err)
		}
	}
	save(1)
	enroll("lbt-lb-0", "group.lb[0]", "h-lb-a")
	enroll("lbt-web-0", "group.web[0]", "h-web-0")
	enroll("lbt-web-1", "group.web[1]", "h-web-1")
	dep.set("h-web-1", true) // in a deployment
	// lbt-web-2 has no host yet (joining).
	tick := func() {
		t.Helper()
		if err := h.e.lc.tick(ctx); err != nil {
			t.Fatal(err)
		}
		waitLBIdle(t, h.e)
	}
	// A load balancer that cannot be configured: the environment is not
	// settled, and says why.
	lb.failConfigure = "haproxy -c: bad config"
	tick()
	out, err := h.e.Get(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if out.Progress.Settled || !slices.Contains(out.Progress.Pending, "lbt-web-0: joining load balancer lbt-lb-0 (configuring it failed: haproxy -c: bad config)") {
		t.Fatalf("progress with a failing configure = %+v", out.Progress)
	}
	lb.mu.Lock()
	lb.failConfigure, lb.cmds, lb.hosts = "", nil, nil
	lb.mu.Unlock()
	tick()
	if got, want := lb.ops(), []string{"configure", "status", "allow lbt-web-0"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("first tick: %v, want %v", got, want)
	}
	cf := lb.configures()[0]
	var names []string
	for _, s := range cf.Config.Backends[0].Servers {
		names = append(names, s.Name+"@"+s.Addr+":"+fmt.Sprint(s.Port)+"/"+s.State)
	}
	if want := "lbt-web-0@10.9.0.1:8080/maint,lbt-web-1@10.9.0.2:8080/maint,lbt-web-2@10.9.0.3:8080/maint"; strings.Join(names, ",") != want {
		t.Fatalf("configured servers %v, want %s (every machine with an address, new ones in maint)", names, want)
	}
	if lb.hosts[0] != "lbt-lb-0" || cf.Driver != "haproxy" || cf.Config.Backends[0].Listen != 80 {
		t.Fatalf("configure went to %s with driver %q: %+v", lb.hosts[0], cf.Driver, cf.Config)
	}

	// web-1 is out of its deployment: it waits to join, and the
	// environment is not settled until it has.
	dep.set("h-web-1", false)
	out, err = h.e.Get(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	lbOfMachine := map[string]string{}
	for _, m := range out.Machines {
		lbOfMachine[m.Name] = m.LB
	}
	if lbOfMachine["lbt-web-0"] != "ready 100" || lbOfMachine["lbt-web-1"] != "maint" || lbOfMachine["lbt-lb-0"] != "" {
		t.Fatalf("machines' LB states = %v, want web-0 ready 100, web-1 maint, none for the lb", lbOfMachine)
	}
	if out.Progress.Settled || !slices.Contains(out.Progress.Pending, "lbt-web-1: joining load balancer lbt-lb-0 (maint)") {
		t.Fatalf("progress = %+v, want web-1 joining", out.Progress)
	}
	tick()
	if got := lb.ops(); got[len(got)-1] != "allow lbt-web-1" || len(lb.configures()) != 1 {
		t.Fatalf("after web-1 left its deployment: %v, want it allowed and no new configure", got)
	}
	out, _ = h.e.Get(ctx, env)
	for _, p := range out.Progress.Pending {
		if strings.Contains(p, "load balancer") {
			t.Fatalf("pending %q with every online machine ready", p)
		}
	}
	// Nothing changed: nothing is sent again.
	n := len(lb.ops())
	tick()
	if got := lb.ops(); len(got) != n {
		t.Fatalf("an idle tick sent %v", got[n:])
	}

	// The load balancer machine is re-created (a new host): the whole
	// configuration goes again; the servers there keep their state.
	if err := h.st.RevokeHost(ctx, "h-lb-a"); err != nil {
		t.Fatal(err)
	}
	enroll("lbt-lb-0", "group.lb[0]", "h-lb-b")
	tick()
	if len(lb.configures()) != 2 {
		t.Fatalf("configures after the load balancer was re-created = %d, want 2", len(lb.configures()))
	}

	// web-2 leaves: drained and removed, then out of the configuration.
	msg := h.e.lbRemove(ctx, env, st, st.Resources["group.web[2]"])
	if !strings.Contains(msg, "lbt-web-2 left load balancer lbt-lb-0: drained 0 sessions in 0s") {
		t.Fatalf("lbRemove said %q", msg)
	}
	last := lb.cmds[len(lb.cmds)-1]
	if last.Op != protocol.LBRemove || last.Backend != "web" || last.Server != "lbt-web-2" || last.TimeoutMillis != 30000 {
		t.Fatalf("remove command = %+v, want web/lbt-web-2 with the 30s drain timeout", last)
	}
	tick()
	cfs := lb.configures()
	if len(cfs) != 3 || len(cfs[2].Config.Backends[0].Servers) != 2 {
		t.Fatalf("after the removal: %d configures, last %+v; want a third without lbt-web-2", len(cfs), cfs[len(cfs)-1].Config)
	}
	// A machine that is not behind a load balancer is not drained.
	if msg := h.e.lbRemove(ctx, env, st, st.Resources["group.lb[0]"]); msg != "" {
		t.Fatalf("lbRemove of the lb machine itself = %q, want nothing", msg)
	}
}

// enrollID is enroll with a host id of the test's choice.
func (h *harness) enrollID(name, id string, labels map[string]string) {
	h.t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	hash := "th-" + id
	if err := h.st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: hash, JoinToken: api.JoinToken{ID: "jt-" + id, MaxUses: 1, ExpiresAt: now.Add(time.Hour), CreatedAt: now}}); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.EnrollHost(ctx, hash, now, store.HostRecord{Host: api.Host{ID: id, Name: name, Labels: labels, EnrolledAt: now}, NKey: "U" + id}); err != nil {
		h.t.Fatal(err)
	}
}

const defLB = `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  count    = 3
  shutdown = "echo bye"
}
group "lb" {
  provider = provider.mem.main
  image    = "lb:1"
  load_balancer {
    target = group.web
    port   = 8080
    header = "X-Backend"
    health_check {
      path = "/healthz"
    }
  }
}
`

// TestLBPlanAndScaleIn: the plan shows the load_balancer block, a change
// to it is an update of the group's record (no machine is replaced), the
// load balancer group cannot be scaled, and a scale-in drains the leaving
// machine out of the load balancer before its shutdown script runs.
func TestLBPlanAndScaleIn(t *testing.T) {
	mem.Reset()
	h := newHarness(t)
	var log []string
	var logMu sync.Mutex
	fl := &lbFleet{st: h.st, online: map[string]bool{}, log: &log, logMu: &logMu}
	lb := newFakeLB(&log, &logMu)
	h.e.fl, h.e.cfg.LB = fl, lb
	ctx := context.Background()
	const env = "lbp"
	p := h.plan(env, api.EnvRequest{Definition: h.definition(map[string]string{"main.hcl": defLB})})
	golden.Check(t, "testdata/plan-lb-create.golden", render(t, p))
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(defLB, `path = "/healthz"`, `path = "/ready"
      rise = 3`, 1)
	changed = strings.Replace(changed, `port   = 8080`, `port   = 8080
    drain_timeout = "1m"`, 1)
	p = h.plan(env, api.EnvRequest{Definition: h.definition(map[string]string{"main.hcl": changed})})
	golden.Check(t, "testdata/plan-lb-change.golden", render(t, p))
	if p.Summary != (api.PlanSummary{Update: 1}) || p.Changes[0].Address != "group.lb" {
		t.Fatalf("a load_balancer change planned %+v, want one update of group.lb", p.Summary)
	}
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Plan(ctx, env, api.EnvRequest{Scale: map[string]int{"lb": 2}}); err == nil || !strings.Contains(err.Error(), `group "lb" is the load balancer of group "web": its count is 1, got 2`) {
		t.Fatalf("scale lb=2: %v", err)
	}

	// Every machine's agent is there and online.
	_, st, err := h.e.env(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.allMachines() {
		id := "h-" + r.Name
		h.enrollID(r.Name, id, map[string]string{LabelSetup: "done", provider.LabelEnv: env, provider.LabelResource: r.Address})
		fl.set(id, true)
	}
	p = h.plan(env, api.EnvRequest{Scale: map[string]int{"web": 2}})
	_, evs, err := h.apply(env, p)
	if err != nil {
		t.Fatal(err)
	}
	logMu.Lock()
	got := strings.Join(log, "; ")
	logMu.Unlock()
	if !strings.Contains(got, "lb remove lbp-web-2; job sd lbp-web-2") {
		t.Fatalf("scale-in order: %s; want the load balancer's remove of lbp-web-2 right before its shutdown job", got)
	}
	var said bool
	for _, ev := range evs {
		if ev.Type == "log" && ev.Address == "group.web[2]" && strings.Contains(ev.Message, "lbp-web-2 left load balancer lbp-lb-0: drained 0 sessions in 0s") {
			said = true
		}
	}
	if !said {
		t.Fatalf("no apply log of the drain in %+v", evs)
	}
	rm := lb.cmds[slices.IndexFunc(lb.cmds, func(c protocol.LBCommand) bool { return c.Op == protocol.LBRemove })]
	if rm.TimeoutMillis != 60000 {
		t.Fatalf("remove timeout = %dms, want drain_timeout 1m", rm.TimeoutMillis)
	}
	// A destroy takes the load balancer away too: nothing is drained.
	removes := func() int {
		n := 0
		for _, op := range lb.ops() {
			if strings.HasPrefix(op, "remove ") {
				n++
			}
		}
		return n
	}
	before := removes()
	if _, _, err := h.apply(env, h.plan(env, api.EnvRequest{Destroy: true})); err != nil {
		t.Fatal(err)
	}
	if n := removes(); n != before {
		t.Fatalf("destroy drained %d machines out of a load balancer it destroys", n-before)
	}
}

// TestCanaryNeedsLoadBalancer: a canary strategy without a load balancer
// in front of the group is refused at plan time.
func TestCanaryNeedsLoadBalancer(t *testing.T) {
	h := newHarness(t)
	def := `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "canary"
  }
}
`
	_, err := h.e.Plan(context.Background(), "cn", api.EnvRequest{Definition: h.definition(map[string]string{"main.hcl": def})})
	if err == nil || !strings.Contains(err.Error(), `group "web": deploy.strategy "canary" needs a load balancer in front of the group`) {
		t.Fatalf("plan: %v", err)
	}
}

// TestReconcileLBTargets: the deployment group of a target group names its
// load balancer machine (so deployments drain and let in each machine),
// follows a change of the block, and loses it when the load balancer goes.
func TestReconcileLBTargets(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := h.st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateGroup(ctx, api.DeploymentGroup{ID: "g-1", App: "shop", Name: "rc-web", Selector: "a=b", Config: "OneAtATime", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	st := newState("rc")
	st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web", Spec: &GroupRecord{App: "shop", DeployGroup: "rc-web"}}
	spec := *testLBSpec
	st.Resources["group.front"] = &Resource{Address: "group.front", Kind: KindGroup, Group: "front", Spec: &GroupRecord{LoadBalancer: &spec}}
	lbOfGroup := func() *api.LBTarget {
		t.Helper()
		if err := h.e.lc.reconcileLBTargets(ctx, st); err != nil {
			t.Fatal(err)
		}
		g, err := h.st.GetGroup(ctx, "shop", "rc-web")
		if err != nil {
			t.Fatal(err)
		}
		return g.LoadBalancer
	}
	want := api.LBTarget{Host: "rc-front-0", Backend: "web", Driver: "haproxy", DrainTimeoutSeconds: 30}
	if got := lbOfGroup(); got == nil || *got != want {
		t.Fatalf("deployment group's load balancer = %+v, want %+v", got, want)
	}
	spec.DrainTimeout = 90
	if got := lbOfGroup(); got == nil || got.DrainTimeoutSeconds != 90 {
		t.Fatalf("after drain_timeout = 90s: %+v", got)
	}
	delete(st.Resources, "group.front")
	if got := lbOfGroup(); got != nil {
		t.Fatalf("without a load balancer group: %+v, want none", got)
	}
}

// strategyDeployer records the deployments asked for.
type strategyDeployer struct {
	fakeDeployer
	mu   sync.Mutex
	reqs []api.DeployRequest
}

func (d *strategyDeployer) Deploy(_ context.Context, _, _ string, req api.DeployRequest) (api.Deployment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, req)
	return api.Deployment{ID: fmt.Sprint("d-", len(d.reqs))}, nil
}

// TestEnvDeploymentStrategy: the deploy block's strategy and its canary
// or blue_green block go with the deployments the environment starts,
// except for the group's first revision (in place: no stable machines to
// compare a canary with, no original machines to move traffic from).
func TestEnvDeploymentStrategy(t *testing.T) {
	canary := &api.CanarySpec{Hosts: 1, Steps: []api.CanaryStep{{Weight: 10, PauseMillis: 1000}}}
	bg := &api.BlueGreenSpec{StepPercent: 50, StepIntervalMillis: 10000, NoKeep: true}
	for _, tc := range []struct {
		current, block, strategy string
	}{
		{"", api.StrategyCanary, ""}, {"r1", api.StrategyCanary, api.StrategyCanary},
		{"", api.StrategyBlueGreen, ""}, {"r1", api.StrategyBlueGreen, api.StrategyBlueGreen},
	} {
		h := newHarness(t)
		dep := &strategyDeployer{}
		h.e.dep = dep
		ctx := context.Background()
		now := time.Now().UTC()
		if err := h.st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := h.st.CreateGroup(ctx, api.DeploymentGroup{ID: "g-1", App: "shop", Name: "st-web", Selector: "a=b", Config: "OneAtATime", Revision: tc.current, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		rec := &GroupRecord{App: "shop", DeployGroup: "st-web", Revision: "r2", Strategy: tc.block}
		if tc.block == api.StrategyCanary {
			rec.Canary = canary
		} else {
			rec.BlueGreen = bg
		}
		st := newState("st")
		st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web", Spec: rec}
		r := &Resource{Address: "group.web[0]", Kind: KindMachine, Group: "web", Name: "st-web-0"}
		st.Resources[r.Address] = r
		views := []machineView{{r: r, found: true, host: store.HostRecord{Host: api.Host{ID: "h-1", Name: "st-web-0", Labels: map[string]string{LabelSetup: "done"}}}, phase: api.PhaseDeploying}}
		if err := h.e.lc.ensureDeployments(ctx, st, views); err != nil {
			t.Fatal(err)
		}
		if len(dep.reqs) != 1 {
			t.Fatalf("%s, group at revision %q: %d deployments, want 1", tc.block, tc.current, len(dep.reqs))
		}
		got := dep.reqs[0]
		wantCanary := tc.strategy == api.StrategyCanary
		wantBG := tc.strategy == api.StrategyBlueGreen
		if got.Revision != "r2" || got.Strategy != tc.strategy || wantCanary != (got.Canary == canary) || wantBG != (got.BlueGreen == bg) ||
			(!wantCanary && got.Canary != nil) || (!wantBG && got.BlueGreen != nil) {
			t.Errorf("%s, group at revision %q: deployment %+v, want strategy %q with its own block only", tc.block, tc.current, got, tc.strategy)
		}
	}
}

// TestBlueGreenPlan: strategy = "blue_green" needs a load balancer in
// front of the group like canary (either spelling), and its blue_green
// block goes into the group's record and plan attributes, those set only.
func TestBlueGreenPlan(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, s := range []string{"blue_green", "blue-green"} {
		def := `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "` + s + `"
  }
}
`
		_, err := h.e.Plan(ctx, "bg", api.EnvRequest{Definition: h.definition(map[string]string{"main.hcl": def})})
		if err == nil || !strings.Contains(err.Error(), `group "web": deploy.strategy "blue_green" needs a load balancer in front of the group`) {
			t.Fatalf("plan of strategy %q without a load balancer: %v", s, err)
		}
	}
	now := time.Now().UTC()
	if err := h.st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.CreateRevision(ctx, api.Revision{ID: "r-1", App: "shop", Digest: "sha256:r1", Size: 1, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	attrsOf := func(block string) map[string]string {
		t.Helper()
		def := `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
  count    = 2
  deploy {
    app      = "shop"
    strategy = "blue_green"
    ` + block + `
  }
}
group "lb" {
  provider = provider.mem.main
  image    = "lb:1"
  load_balancer {
    target = group.web
    port   = 8080
  }
}
`
		p := h.plan("bg", api.EnvRequest{Definition: h.definition(map[string]string{"main.hcl": def})})
		for _, c := range p.Changes {
			if c.Address != "group.web" {
				continue
			}
			m := map[string]string{}
			for _, a := range c.Attrs {
				if strings.HasPrefix(a.Name, "deploy.") {
					m[a.Name] = a.New
				}
			}
			return m
		}
		t.Fatalf("plan has no change of group.web: %+v", p.Changes)
		return nil
	}
	base := map[string]string{"deploy.app": "shop", "deploy.revision": "r-1", "deploy.config": "OneAtATime",
		"deploy.group": "bg-web", "deploy.strategy": api.StrategyBlueGreen}
	with := func(kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		block string
		want  map[string]string
	}{
		{"", base},
		{`blue_green {}`, base},
		{`blue_green {
      shift_step     = 50
      shift_interval = "10s"
      keep_original  = "90m"
    }`, with("deploy.blue_green.shift_step", "50%", "deploy.blue_green.shift_interval", "10s", "deploy.blue_green.keep_original", "1h30m")},
		{`blue_green {
      shift_step    = 20
      keep_original = "0s"
    }`, with("deploy.blue_green.shift_step", "20%", "deploy.blue_green.keep_original", "0s")},
	} {
		if got := attrsOf(tc.block); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("plan attributes with %q:\n got %v\nwant %v", tc.block, got, tc.want)
		}
	}
}
