package infra

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bundle"
	"github.com/gantry-dev/gantry/internal/golden"
	"github.com/gantry-dev/gantry/internal/infra/planview"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/provider/providertest"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

// mem is the in-memory provider of these tests, type "mem".
var mem = providertest.NewMemory()

func init() {
	providertest.Register("mem", mem, provider.Info{Networks: true, Images: true, InPlace: []string{"cpus", "memory"}})
}

// fakeFleet and fakeDeployer stand in for the engines the lifecycle uses:
// these tests are about plan and apply.
type fakeFleet struct{}

func (fakeFleet) CreateInternalJob(_ context.Context, j api.Job, _ []api.Execution) (api.Job, error) {
	return j, nil
}
func (fakeFleet) HostOnline(string) bool { return false }

type fakeDeployer struct {
	mu     sync.Mutex
	groups []api.CreateGroupRequest
}

func (d *fakeDeployer) CreateGroup(_ context.Context, app string, req api.CreateGroupRequest) (api.DeploymentGroup, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.groups = append(d.groups, req)
	return api.DeploymentGroup{App: app, Name: req.Name}, nil
}
func (d *fakeDeployer) Deploy(context.Context, string, string, api.DeployRequest) (api.Deployment, error) {
	return api.Deployment{}, nil
}
func (d *fakeDeployer) HostBusy(string) bool { return false }
func (d *fakeDeployer) Active(string) string { return "" }
func (d *fakeDeployer) CatchUpSoon()         {}

type harness struct {
	t   *testing.T
	e   *Engine
	st  store.Store
	dir string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "gantry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := 0
	e := New(st, fakeFleet{}, &fakeDeployer{}, Config{
		DataDir: filepath.Join(dir, "infra"),
		Agent:   provider.Agent{Binary: "/bin/true", ServerURL: "http://127.0.0.1:1", BusURL: "nats://127.0.0.1:2"},
		NewJoinToken: func(context.Context, string, map[string]string, time.Duration) (string, error) {
			tokens++
			return "gjt_test", nil
		},
	}, nil)
	return &harness{t: t, e: e, st: st, dir: dir}
}

// definition packs files into a definition archive.
func (h *harness) definition(files map[string]string) []byte {
	h.t.Helper()
	d := h.t.TempDir()
	for name, body := range files {
		p := filepath.Join(d, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := bundle.Pack(d, &buf); err != nil {
		h.t.Fatal(err)
	}
	return buf.Bytes()
}

func (h *harness) plan(env string, req api.EnvRequest) api.Plan {
	h.t.Helper()
	p, err := h.e.Plan(context.Background(), env, req)
	if err != nil {
		h.t.Fatalf("Plan: %v", err)
	}
	return p
}

func (h *harness) apply(env string, p api.Plan) (api.Environment, []api.ApplyEvent, error) {
	var mu sync.Mutex
	var evs []api.ApplyEvent
	out, err := h.e.Apply(context.Background(), env, api.EnvRequest{Plan: &p, Who: "test"}, func(ev api.ApplyEvent) {
		mu.Lock()
		evs = append(evs, ev)
		mu.Unlock()
	})
	return out, evs, err
}

// render renders a plan for golden files (the state serial depends on how
// an apply's writes were batched, so it is masked).
func render(t *testing.T, p api.Plan) string {
	var b strings.Builder
	if err := planview.Render(&b, p); err != nil {
		t.Fatal(err)
	}
	return serialRE.ReplaceAllString(b.String(), "state serial N")
}

var serialRE = regexp.MustCompile(`state serial \d+`)

const defV1 = `
variable "web_count" {
  type    = number
  default = 2
}
provider "mem" "main" {}
network "app" { provider = provider.mem.main }
group "db" {
  provider = provider.mem.main
  image    = "db:1"
  networks = [network.app]
  labels   = { role = "db" }
  setup    = "echo db"
}
group "web" {
  provider  = provider.mem.main
  image     = "web:1"
  count     = var.web_count
  size {
    cpus   = 1
    memory = 256
  }
  networks  = [network.app]
  labels    = { role = "web" }
  configure = "echo ${group.db.hosts[0].address}"
}
output "web" { value = group.web.hosts[*].name }
`

// defV2 changes web's labels and memory (in place), db's image (replace)
// and web's count (create).
var defV2 = strings.NewReplacer(`image    = "db:1"`, `image    = "db:2"`, `labels    = { role = "web" }`, `labels    = { role = "web", tier = "front" }`,
	`memory = 256`, `memory = "512MiB"`, `default = 2`, `default = 3`).Replace(defV1)

func TestPlanApplyLifecycleGolden(t *testing.T) {
	mem.Reset() // the golden files show its ids
	h := newHarness(t)
	const env = "gold"
	v1 := h.definition(map[string]string{"main.hcl": defV1})

	p := h.plan(env, api.EnvRequest{Definition: v1})
	golden.Check(t, "testdata/plan-create.golden", render(t, p))
	if p.Summary != (api.PlanSummary{Create: 6}) {
		t.Fatalf("create summary = %+v, want 6 creates (network, 2 records, db[0], web[0], web[1])", p.Summary)
	}
	out, _, err := h.apply(env, p)
	if err != nil {
		t.Fatalf("apply v1: %v", err)
	}
	if got := strings.Join(mem.Names(), ","); got != "gold-db-0,gold-web-0,gold-web-1" {
		t.Fatalf("machines after v1 = %s", got)
	}
	if m, _ := mem.Machine("gold-web-1"); m.MemoryMB != 256 || m.CPUs != 1 || m.Labels["role"] != "web" || len(m.Networks) != 1 || m.Agent.JoinToken != "gjt_test" {
		t.Fatalf("web-1 spec = %+v", m)
	}
	if len(out.Machines) != 3 || out.Outputs["web"] == nil {
		t.Fatalf("environment after v1 = %+v", out)
	}

	// A second plan of the same definition has nothing to do.
	if p := h.plan(env, api.EnvRequest{Definition: v1}); len(p.Changes) != 0 {
		t.Fatalf("no-op plan has changes:\n%s", render(t, p))
	}

	v2 := h.definition(map[string]string{"main.hcl": defV2})
	p = h.plan(env, api.EnvRequest{Definition: v2})
	golden.Check(t, "testdata/plan-change.golden", render(t, p))
	if p.Summary.Update != 3 || p.Summary.Replace != 1 || p.Summary.Create != 1 {
		t.Fatalf("change summary = %+v, want 3 updates (web record, web[0], web[1]), 1 replace (db[0]), 1 create (web[2])", p.Summary)
	}
	dbBefore, _ := mem.Machine("gold-db-0")
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatalf("apply v2: %v", err)
	}
	if m, _ := mem.Machine("gold-web-0"); m.MemoryMB != 512 {
		t.Fatalf("web-0 memory after an in-place update = %d, want 512", m.MemoryMB)
	}
	if m, _ := mem.Machine("gold-db-0"); m.Image != "db:2" || dbBefore.Image != "db:1" {
		t.Fatalf("db-0 image = %q (was %q), want replaced with db:2", m.Image, dbBefore.Image)
	}

	// Drift: a machine deleted behind gantry's back is created again.
	if !mem.Remove("gold-web-1") {
		t.Fatal("remove web-1")
	}
	p = h.plan(env, api.EnvRequest{Definition: v2})
	golden.Check(t, "testdata/plan-drift.golden", render(t, p))
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatalf("apply drift: %v", err)
	}
	if _, ok := mem.Machine("gold-web-1"); !ok {
		t.Fatal("web-1 not re-created")
	}

	// Scale in through the stored definition.
	p = h.plan(env, api.EnvRequest{Scale: map[string]int{"web": 1}})
	if p.Summary.Delete != 2 || p.Summary.Update != 1 {
		t.Fatalf("scale-in summary = %+v, want 2 deletes and the record's count", p.Summary)
	}
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatalf("apply scale: %v", err)
	}
	if got := strings.Join(mem.Names(), ","); got != "gold-db-0,gold-web-0" {
		t.Fatalf("machines after scale to 1 = %s, want db-0 and web-0 (highest indexes removed)", got)
	}

	p = h.plan(env, api.EnvRequest{Destroy: true})
	golden.Check(t, "testdata/plan-destroy.golden", render(t, p))
	out, _, err = h.apply(env, p)
	if err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if len(mem.Names()) != 0 || len(out.Resources) != 0 {
		t.Fatalf("after destroy: machines %v, resources %+v", mem.Names(), out.Resources)
	}
	for _, n := range mem.Networks {
		if n.Env == env {
			t.Fatalf("network %s left after destroy", n.Name)
		}
	}
}

func TestFailedApplyLeavesStateMatchingReality(t *testing.T) {
	h := newHarness(t)
	const env = "fail"
	def := h.definition(map[string]string{"main.hcl": defV1})
	mem.Fail("fail-web-1", errors.New("quota exceeded"))
	_, evs, err := h.apply(env, h.plan(env, api.EnvRequest{Definition: def}))
	if err == nil || !strings.Contains(err.Error(), "group.web[1]: quota exceeded") {
		t.Fatalf("apply error = %v, want group.web[1]: quota exceeded", err)
	}
	failed := false
	for _, ev := range evs {
		if ev.Address == "group.web[1]" && ev.State == "failed" {
			failed = true
		}
	}
	if !failed {
		t.Fatalf("no failed event for group.web[1] in %+v", evs)
	}
	e, err := h.e.Get(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range e.Machines {
		got = append(got, m.Address)
	}
	if strings.Join(got, ",") != "group.db[0],group.web[0]" {
		t.Fatalf("recorded machines = %v, want db[0] and web[0] (what exists)", got)
	}
	p := h.plan(env, api.EnvRequest{Definition: def})
	if p.Summary != (api.PlanSummary{Create: 1}) || p.Changes[0].Address != "group.web[1]" {
		t.Fatalf("next plan = %s, want only web[1] created", render(t, p))
	}
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if _, ok := mem.Machine("fail-web-1"); !ok {
		t.Fatal("web-1 missing after the second apply")
	}
	_, _, _ = h.apply(env, h.plan(env, api.EnvRequest{Destroy: true}))
}

func TestStalePlanAndLockAreRefused(t *testing.T) {
	h := newHarness(t)
	const env = "lock"
	def := h.definition(map[string]string{"main.hcl": defV1})
	first := h.plan(env, api.EnvRequest{Definition: def})
	second := h.plan(env, api.EnvRequest{Definition: def})
	if _, _, err := h.apply(env, first); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.apply(env, second); !errors.Is(err, ErrStale) {
		t.Fatalf("applying a plan made before another apply: %v, want ErrStale", err)
	}
	if _, err := h.st.AcquireLease(context.Background(), "env/"+env, "apply by alice@ops (pid 42) since now", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.apply(env, h.plan(env, api.EnvRequest{Destroy: true}))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "alice@ops (pid 42)") {
		t.Fatalf("apply while locked: %v, want ErrLocked naming alice@ops (pid 42)", err)
	}
	if got := h.e.lockHolder(context.Background(), env); !strings.Contains(got, "alice@ops") {
		t.Fatalf("lockHolder = %q", got)
	}
	_ = h.st.ReleaseLease(context.Background(), "env/"+env, "apply by alice@ops (pid 42) since now")
	_, _, _ = h.apply(env, h.plan(env, api.EnvRequest{Destroy: true}))
}

func TestOrphansArePlannedForDeletion(t *testing.T) {
	h := newHarness(t)
	const env = "orph"
	// An object an interrupted apply created but did not record.
	ms, err := mem.CreateMachine(context.Background(), provider.Machine{Env: env, Resource: "group.web[0]", Name: "orph-web-0"})
	if err != nil {
		t.Fatal(err)
	}
	def := h.definition(map[string]string{"main.hcl": `
provider "mem" "main" {}
group "web" {
  provider = provider.mem.main
  image    = "web:1"
}
`})
	p := h.plan(env, api.EnvRequest{Definition: def})
	got := render(t, p)
	if !strings.Contains(got, "-   group.web[0]  (orphan machine "+ms.ID+" left by an interrupted apply (not in the state))") || p.Summary.Delete != 1 {
		t.Fatalf("plan does not delete the orphan:\n%s", got)
	}
	if _, _, err := h.apply(env, p); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := mem.ReadMachine(context.Background(), ms.ID); ok {
		t.Fatal("orphan still exists")
	}
	if _, ok := mem.Machine("orph-web-0"); !ok {
		t.Fatal("the group's machine was not created after the orphan was removed")
	}
	_, _, _ = h.apply(env, h.plan(env, api.EnvRequest{Destroy: true}))
}

func TestBadDefinitionGivesDiagnostics(t *testing.T) {
	h := newHarness(t)
	def := h.definition(map[string]string{"main.hcl": "group \"web\" {\n  provider = provider.mem.nope\n}\n"})
	_, err := h.e.Plan(context.Background(), "bad", api.EnvRequest{Definition: def})
	var de *DiagError
	if !errors.As(err, &de) || len(de.Diags) == 0 || de.Diags[0].File != "main.hcl" || de.Diags[0].Line != 2 {
		t.Fatalf("Plan error = %#v, want diagnostics at main.hcl:2", err)
	}
	if _, err := h.e.Plan(context.Background(), "Bad_Name", api.EnvRequest{Definition: def}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad env name: %v", err)
	}
}

// busyDeployer reports some hosts as in a deployment.
type busyDeployer struct {
	fakeDeployer
	busy map[string]bool
}

func (d *busyDeployer) HostBusy(id string) bool { return d.busy[id] }

// webMachines gives the harness n machines of group web (hosts h-web-I)
// whose busy hosts are in a deployment.
func webMachines(t *testing.T, n int, busy ...string) (*harness, []*Resource) {
	h := newHarness(t)
	dep := &busyDeployer{busy: map[string]bool{}}
	for _, b := range busy {
		dep.busy[b] = true
	}
	h.e.dep = dep
	h.e.lc.byName = map[string]store.HostRecord{}
	var existing []*Resource
	for i := 0; i < n; i++ {
		name := machineName("s", "web", i, false)
		existing = append(existing, &Resource{Address: machineAddress("web", i, false), Kind: KindMachine, Group: "web", Index: i, Name: name})
		h.e.lc.byName[name] = store.HostRecord{Host: api.Host{ID: fmt.Sprintf("h-web-%d", i), Name: name}}
	}
	return h, existing
}

func TestScaleInKeepsMachinesInADeployment(t *testing.T) {
	h, existing := webMachines(t, 4, "h-web-3")
	if got := h.e.chooseKept(existing, 2, false, nil); len(got) != 2 || got[0] != 0 || got[1] != 3 {
		t.Fatalf("scale 4 -> 2 keeps %v, want [0 3] (web-3 is in a deployment, then the lowest indexes)", got)
	}
	if got := h.e.chooseKept(existing[:2], 4, false, nil); len(got) != 4 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("scale 2 -> 4 = %v, want [0 1 2 3] (new machines take the lowest free indexes)", got)
	}
	if got := h.e.chooseKept([]*Resource{existing[0], existing[3]}, 3, false, nil); got[0] != 0 || got[1] != 1 || got[2] != 3 {
		t.Fatalf("indexes {0,3} scaled to 3 = %v, want [0 1 3]", got)
	}
}

// recordingFleet takes lifecycle jobs without running them (recording
// them in st, when set, as the fleet engine would); its hosts are all
// online.
type recordingFleet struct {
	mu   sync.Mutex
	st   store.Store
	jobs []api.Job
	exec map[string][]api.Execution
}

func (f *recordingFleet) CreateInternalJob(ctx context.Context, j api.Job, xs []api.Execution) (api.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st != nil {
		j.State = api.JobRunning
		for i := range xs {
			xs[i].JobID, xs[i].State = j.ID, api.ExecPending
		}
		if err := f.st.CreateJob(ctx, j, xs); err != nil {
			return j, err
		}
	}
	f.jobs = append(f.jobs, j)
	if f.exec == nil {
		f.exec = map[string][]api.Execution{}
	}
	f.exec[j.ID] = xs
	return j, nil
}
func (f *recordingFleet) HostOnline(string) bool { return true }

// TestConfigureCoalescesOneAtATime drives the lifecycle controller with
// a clock of its own: a membership change waits for the debounce, a burst
// gives one configure, and the next configure waits until the one still
// running has ended (an older run ending last would leave its membership
// in place). Each machine's context lists the online machines.
func TestConfigureCoalescesOneAtATime(t *testing.T) {
	h := newHarness(t)
	fl := &recordingFleet{st: h.st}
	h.e.fl = fl
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h.e.now = func() time.Time { return now }
	tick := func(d time.Duration) {
		now = now.Add(d)
		if err := h.e.lc.tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Three set-up web machines of environment "co".
	st := newState("co")
	st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web", Spec: &GroupRecord{Configure: "reconfigure", ConfigureTimeout: 300}}
	if err := h.st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: "th", JoinToken: api.JoinToken{ID: "jt-1", MaxUses: 10, ExpiresAt: now.Add(time.Hour), CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i := 0; i < 3; i++ {
		name := machineName("co", "web", i, false)
		st.Resources[machineAddress("web", i, false)] = &Resource{Address: machineAddress("web", i, false), Kind: KindMachine, Group: "web", Index: i, Name: name, IP: "10.1.0." + string(rune('1'+i))}
		ids[name] = "h-" + name
		if err := h.st.EnrollHost(ctx, "th", now, store.HostRecord{Host: api.Host{ID: ids[name], Name: name, Labels: map[string]string{LabelSetup: "done", provider.LabelEnv: "co", provider.LabelResource: machineAddress("web", i, false)}, EnrolledAt: now}, NKey: "U" + name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.st.SaveEnvironment(ctx, store.Environment{Name: "co", Serial: 1, State: stateJSON(st), Definition: []byte{}, Vars: []byte("[]")}, 0); err != nil {
		t.Fatal(err)
	}
	configures := func() []api.Job {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		var out []api.Job
		for _, j := range fl.jobs {
			if strings.HasPrefix(j.ID, "cf-") {
				out = append(out, j)
			}
		}
		return out
	}
	tick(0)
	tick(200 * time.Millisecond)
	if n := len(configures()); n != 0 {
		t.Fatalf("%d configure jobs before the membership settled, want 0", n)
	}
	tick(400 * time.Millisecond)
	cf := configures()
	if len(cf) != 1 || cf[0].Script != "reconfigure" || len(fl.exec[cf[0].ID]) != 3 {
		t.Fatalf("after the debounce: %d configure jobs (%+v), want one on the 3 machines", len(cf), cf)
	}
	tick(time.Second)
	if n := len(configures()); n != 1 {
		t.Fatalf("%d configure jobs with no change, want still 1", n)
	}
	// Two machines leave in a burst: one configure, the running one superseded.
	for _, n := range []string{"co-web-1", "co-web-2"} {
		if err := h.st.RevokeHost(ctx, ids[n]); err != nil {
			t.Fatal(err)
		}
		tick(100 * time.Millisecond)
	}
	tick(600 * time.Millisecond)
	if n := len(configures()); n != 1 {
		t.Fatalf("%d configure jobs while the first still runs, want 1 (one at a time)", n)
	}
	if p := progress(nil, h.e.lc.runsOf("co"), time.Minute, now); p.Settled {
		t.Fatalf("progress with a configure running = %+v, want not settled", p)
	}
	// The first configure ends (succeeded): the next one starts.
	var ups []store.ExecUpdate
	zero := 0
	for _, x := range fl.exec[cf[0].ID] {
		ups = append(ups, store.ExecUpdate{ID: x.ID, State: api.ExecSucceeded, ExitCode: &zero, FinishedAt: &now})
	}
	if err := h.st.UpdateExecutions(ctx, ups); err != nil {
		t.Fatal(err)
	}
	if err := h.st.FinishJob(ctx, cf[0].ID, now); err != nil {
		t.Fatal(err)
	}
	tick(100 * time.Millisecond)
	cf = configures()
	if len(cf) != 2 {
		t.Fatalf("%d configure jobs after a burst of two leaves, want 2 in all (the burst coalesced)", len(cf))
	}
	xs := fl.exec[cf[1].ID]
	if len(xs) != 1 || xs[0].HostName != "co-web-0" {
		t.Fatalf("second configure runs on %+v, want co-web-0 only", xs)
	}
	var cmd struct {
		Env     map[string]string `json:"env"`
		Context struct {
			Groups map[string]struct {
				Hosts []struct{ Name, Address string }
			}
		} `json:"context"`
	}
	if err := json.Unmarshal(xs[0].Payload, &cmd); err != nil {
		t.Fatal(err)
	}
	if len(cmd.Context.Groups["web"].Hosts) != 1 || cmd.Context.Groups["web"].Hosts[0].Name != "co-web-0" || cmd.Env["GANTRY_GROUP_WEB_ADDRESSES"] != "10.1.0.1" || cmd.Env["GANTRY_EVENT"] != "configure" {
		t.Fatalf("second configure's context/env = %+v", cmd)
	}
	runs := h.e.lc.runsOf("co")
	if len(runs) != 2 || runs[0].State != "succeeded" || runs[1].State != "running" || strings.Join(runs[1].Online, ",") != "co-web-0" || runs[1].Serial != 1 || runs[1].Group != "web" {
		t.Fatalf("runs = %+v, want the first succeeded and the second running with online [co-web-0], serial 1, group web", runs)
	}
	// A restarted controller remembers the membership it configured.
	h.e.lc = newLifecycle(h.e)
	tick(0)
	tick(time.Second)
	if n := len(configures()); n != 2 {
		t.Fatalf("a restarted controller configured again (%d jobs) with no change", n)
	}
}
