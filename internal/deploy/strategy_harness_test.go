package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

// The strategy tests run the real engine on a real SQLite store, with a
// fake fleet whose "agents" run a deploy step as the real agent does at
// its traffic events (a TrafficRequest to the engine at BlockTraffic and
// AllowTraffic), and a fake load balancer that spreads a synthetic request
// rate over its ready servers by weight and counts 5xx like haproxy does
// (per server, cumulative).

// fakeSrv is one server of the fake load balancer.
type fakeSrv struct {
	name            string
	weight          int
	state           string
	total, h5xx     int64
	acc, errAcc     float64
	rev             string // the revision the host runs
	drainedAt       time.Time
	readyAt         time.Time
	rtime           int
	requestsWhenBad int64 // 5xx answered by a bad revision
}

// fakeLB is a load balancer backend "web" in memory.
type fakeLB struct {
	mu      sync.Mutex
	srv     map[string]*fakeSrv
	badRevs map[string]float64 // revision → share of 5xx it answers
	noReady int64              // requests with no ready server (503)
	ops     []fakeOp
	down    bool // every command fails (the load balancer's host is unreachable)
}

type fakeOp struct {
	at  time.Time
	cmd protocol.LBCommand
}

func newFakeLB(names ...string) *fakeLB {
	lb := &fakeLB{srv: map[string]*fakeSrv{}, badRevs: map[string]float64{}}
	for _, n := range names {
		lb.srv[n] = &fakeSrv{name: n, weight: 100, state: api.LBReady, rtime: 5}
	}
	return lb
}

// Do implements LoadBalancers.
func (f *fakeLB) Do(ctx context.Context, lbHost string, cmd protocol.LBCommand) (protocol.LBResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, fakeOp{at: time.Now(), cmd: cmd})
	if f.down {
		return protocol.LBResult{}, errors.New("fake lb: unreachable")
	}
	if lbHost != "lb1" || cmd.Backend != "web" {
		return protocol.LBResult{}, fmt.Errorf("fake lb: unknown %s/%s", lbHost, cmd.Backend)
	}
	get := func(n string) (*fakeSrv, error) {
		s := f.srv[n]
		if s == nil {
			return nil, fmt.Errorf("fake lb: no server %q", n)
		}
		return s, nil
	}
	switch cmd.Op {
	case protocol.LBStatus:
	case protocol.LBWeights:
		for n, w := range cmd.Weights {
			s, err := get(n)
			if err != nil {
				return protocol.LBResult{Error: err.Error()}, err
			}
			if w < 0 || w > 256 {
				return protocol.LBResult{}, fmt.Errorf("weight %d", w)
			}
			s.weight = w
		}
	case protocol.LBSet, protocol.LBAllow, protocol.LBDrain:
		s, err := get(cmd.Server)
		if err != nil {
			return protocol.LBResult{Error: err.Error()}, err
		}
		if cmd.Weight >= 0 {
			s.weight = cmd.Weight
		}
		state := cmd.State
		switch cmd.Op {
		case protocol.LBAllow:
			state = api.LBReady
		case protocol.LBDrain:
			ready := 0
			for _, o := range f.srv {
				if o != s && o.state == api.LBReady {
					ready++
				}
			}
			if ready == 0 {
				return protocol.LBResult{Error: "refused: last ready server"}, errors.New("refused: last ready server")
			}
			if state != api.LBDrain { // State drain: kept in drain (lb.DrainKeep)
				state = api.LBMaint
			}
		}
		if state != "" && state != s.state {
			if state == api.LBReady {
				s.readyAt = time.Now()
			} else if s.state == api.LBReady {
				s.drainedAt = time.Now()
			}
			s.state = state
		}
	default:
		return protocol.LBResult{}, fmt.Errorf("fake lb: op %s", cmd.Op)
	}
	return protocol.LBResult{Servers: f.statusLocked(), ElapsedMillis: 1}, nil
}

func (f *fakeLB) statusLocked() []api.LBServerStatus {
	var out []api.LBServerStatus
	for _, s := range f.srv {
		out = append(out, api.LBServerStatus{Backend: "web", Name: s.name, Weight: s.weight, State: s.state, Health: "UP",
			Total: s.total, Responses: s.total, HTTP5xx: s.h5xx, RespTimeMillis: s.rtime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// serve spreads n requests over the ready servers by weight.
func (f *fakeLB) serve(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := 0
	for _, s := range f.srv {
		if s.state == api.LBReady {
			sum += s.weight
		}
	}
	if sum == 0 {
		f.noReady += int64(n)
		return
	}
	for _, s := range f.srv {
		if s.state != api.LBReady || s.weight == 0 {
			continue
		}
		s.acc += float64(n) * float64(s.weight) / float64(sum)
		k := math.Floor(s.acc)
		s.acc -= k
		s.total += int64(k)
		if rate := f.badRevs[s.rev]; rate > 0 {
			s.errAcc += k * rate
			e := math.Floor(s.errAcc)
			s.errAcc -= e
			s.h5xx += int64(e)
			s.requestsWhenBad += int64(e)
		}
	}
}

// load runs a request rate (per 20 ms) until ctx ends.
func (f *fakeLB) load(ctx context.Context, per20ms int) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.serve(per20ms)
		}
	}
}

func (f *fakeLB) server(n string) fakeSrv {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.srv[n]
}

func (f *fakeLB) failed5xx() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, s := range f.srv {
		n += s.requestsWhenBad
	}
	return n
}

// fakeFleet stores jobs and runs each execution as an agent would: the
// traffic requests, the revision installed on the LB's server, success.
type fakeFleet struct {
	t   *testing.T
	st  store.Store
	lb  *fakeLB
	mu  sync.Mutex
	eng *Engine
	// failRevs: hosts running these revisions fail their step (after
	// AllowTraffic, as a failing ValidateService would not: before it).
	failRevs map[string]bool
	ctx      context.Context
}

func (f *fakeFleet) engine() *Engine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eng
}

func (f *fakeFleet) setEngine(e *Engine) {
	f.mu.Lock()
	f.eng = e
	f.mu.Unlock()
}

func (f *fakeFleet) HostOnline(string) bool      { return true }
func (f *fakeFleet) Send(protocol.Command) error { return nil }

func (f *fakeFleet) CreateInternalJob(ctx context.Context, job api.Job, execs []api.Execution) (api.Job, error) {
	job.State = api.JobRunning
	job.CreatedAt = time.Now().UTC()
	err := f.st.CreateJob(ctx, job, execs)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return api.Job{}, err
	}
	if err == nil {
		for _, x := range execs {
			go f.run(job.ID, x)
		}
	}
	return f.st.GetJob(ctx, job.ID)
}

// run is one host's step.
func (f *fakeFleet) run(jobID string, x api.Execution) {
	var cmd protocol.DeployCommand
	if err := json.Unmarshal(x.Payload, &cmd); err != nil {
		f.t.Errorf("payload: %v", err)
		return
	}
	e := f.engine()
	res := protocol.DeployResult{Succeeded: true}
	fail := func(ev, msg string) {
		res.Succeeded, res.FailedEvent, res.Error = false, ev, msg
	}
	if cmd.Traffic {
		rep := e.Traffic(f.ctx, x.HostID, protocol.TrafficRequest{ExecID: x.ID, DeploymentID: cmd.DeploymentID, Event: appspec.EventBlockTraffic})
		if rep.Error != "" {
			fail(appspec.EventBlockTraffic, rep.Error)
		}
	}
	original := cmd.Role == protocol.RoleOriginal // BlockTraffic only, nothing installed
	if res.Succeeded && !original {
		f.lb.mu.Lock()
		if s := f.lb.srv[x.HostName]; s != nil {
			s.rev = cmd.Revision
		}
		f.lb.mu.Unlock()
		if f.failRevs[cmd.Revision] {
			fail("ValidateService", "validate failed")
		}
	}
	if res.Succeeded && cmd.Traffic && !original {
		rep := e.Traffic(f.ctx, x.HostID, protocol.TrafficRequest{ExecID: x.ID, DeploymentID: cmd.DeploymentID, Event: appspec.EventAllowTraffic})
		if rep.Error != "" {
			fail(appspec.EventAllowTraffic, rep.Error)
		}
	}
	b, _ := json.Marshal(res)
	state := api.ExecSucceeded
	if !res.Succeeded {
		state = api.ExecFailed
	}
	now := time.Now().UTC()
	if err := f.st.UpdateExecutions(context.WithoutCancel(f.ctx), []store.ExecUpdate{{ID: x.ID, State: state, FinishedAt: &now, Result: b, Error: res.Error}}); err != nil && f.ctx.Err() == nil {
		f.t.Errorf("update execution: %v", err)
	}
	e.ExecDone(jobID, x.ID)
}

// stratEnv is an application "shop" with a group "web" of hosts web1..webN
// behind the fake load balancer lb1/web, revision r-good deployed to all.
type stratEnv struct {
	t      *testing.T
	st     store.Store
	lb     *fakeLB
	fl     *fakeFleet
	eng    *Engine
	cancel context.CancelFunc
	ctx    context.Context
	hosts  []string
}

func newStratEnv(t *testing.T, n int, extra ...string) *stratEnv {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "hD-gantry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("web%d", i))
	}
	tok := store.JoinTokenRecord{JoinToken: api.JoinToken{ID: "jt", ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}, Hash: "hash-jt"}
	must(t, st.CreateJoinToken(ctx, tok))
	enroll := func(name string, labels map[string]string) {
		h := store.HostRecord{Host: api.Host{ID: "h-" + name, Name: name, Labels: labels, Status: api.HostOnline, EnrolledAt: time.Now().UTC()}, NKey: "U" + name}
		must(t, st.EnrollHost(ctx, "hash-jt", time.Now().UTC(), h))
	}
	for _, name := range names {
		enroll(name, map[string]string{"role": "web"})
	}
	for _, name := range extra {
		enroll(name, map[string]string{"role": "green"})
	}
	must(t, st.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: time.Now().UTC()}))
	for i, rev := range []string{"r-good", "r-good2", "r-bad"} {
		must(t, st.CreateRevision(ctx, api.Revision{ID: rev, App: "shop", Digest: "sha256:" + rev, Size: 1, CreatedAt: time.Now().UTC().Add(time.Duration(i) * time.Millisecond)}))
	}
	lb := newFakeLB(append(append([]string(nil), names...), extra...)...)
	for _, name := range extra {
		lb.srv[name].state = api.LBMaint
	}
	lb.badRevs["r-bad"] = 0.2
	s := &stratEnv{t: t, st: st, lb: lb, hosts: names}
	s.fl = &fakeFleet{t: t, st: st, lb: lb, failRevs: map[string]bool{}}
	s.start()
	g, err := s.eng.CreateGroup(ctx, "shop", api.CreateGroupRequest{Name: "web", Selector: "role=web", LoadBalancer: &api.LBTarget{Host: "lb1", Backend: "web"}})
	must(t, err)
	d, err := s.eng.Deploy(ctx, "shop", g.Name, api.DeployRequest{Revision: "r-good"})
	must(t, err)
	if got := s.wait(d.ID, 20*time.Second); got.State != api.DeploySucceeded {
		t.Fatalf("first deployment %s: %s", got.State, got.Error)
	}
	return s
}

// start runs a new engine on the environment's store (a server start).
func (s *stratEnv) start() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.t.Context())
	s.ctx, s.cancel = ctx, cancel
	s.fl.ctx = ctx
	s.eng = NewEngine(s.st, s.fl, func(h, d string) string { return "/blob/" + d }, EngineConfig{CatchUpEvery: time.Hour}, testLog())
	s.eng.SetLoadBalancers(s.lb)
	s.fl.setEngine(s.eng)
	must(s.t, s.eng.Start(ctx))
	s.t.Cleanup(cancel)
}

// restart stops the engine and starts a new one (as a server restart).
func (s *stratEnv) restart() {
	s.cancel()
	time.Sleep(0) // the old loop ends on its own; nothing waits on it
	s.start()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wait polls a deployment until it ends.
func (s *stratEnv) wait(id string, limit time.Duration) api.Deployment {
	s.t.Helper()
	return s.waitFor(id, limit, "the end", func(d api.Deployment) bool { return api.DeployDone(d.State) })
}

// waitFor polls a deployment until ok.
func (s *stratEnv) waitFor(id string, limit time.Duration, what string, ok func(api.Deployment) bool) api.Deployment {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		d, err := s.st.GetDeployment(context.Background(), id)
		if errors.Is(err, store.ErrNotFound) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // a rollback is created just after its id is stored
			continue
		}
		if err != nil {
			s.t.Fatal(err)
		}
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("deployment %s: no %s within %s (state %s, traffic %+v)", id, what, limit, d.State, d.Traffic)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostRevs is each host's last good revision in the group.
func (s *stratEnv) hostRevs() map[string]string {
	s.t.Helper()
	g, err := s.st.GetGroup(context.Background(), "shop", "web")
	must(s.t, err)
	revs, err := s.st.HostRevisions(context.Background(), g.ID)
	must(s.t, err)
	out := map[string]string{}
	for id, r := range revs {
		out[id[len("h-"):]] = r.Revision
	}
	return out
}

// testLog is the engine's log: discarded unless GANTRY_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("GANTRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func (f *fakeLB) noReadyCount() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.noReady
}

// waitLB polls a fake server until ok.
func (s *stratEnv) waitLB(name string, limit time.Duration, what string, ok func(fakeSrv) bool) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for !ok(s.lb.server(name)) {
		if time.Now().After(deadline) {
			srv := s.lb.server(name)
			s.t.Fatalf("server %s: not %s within %s (state %s weight %d)", name, what, limit, srv.state, srv.weight)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
