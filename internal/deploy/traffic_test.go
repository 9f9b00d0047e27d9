package deploy

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// tcStore records traffic changes; the handler needs nothing else of the
// store.
type tcStore struct {
	EngineStore
	mu      sync.Mutex
	changes []api.TrafficChange
}

func (s *tcStore) AddTrafficChange(_ context.Context, depID string, c api.TrafficChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.changes = append(s.changes, c)
	return nil
}

// tcLB records commands and answers with res/err.
type tcLB struct {
	mu   sync.Mutex
	cmds []protocol.LBCommand
	host []string
	res  protocol.LBResult
	err  error
}

func (l *tcLB) Do(_ context.Context, lbHost string, cmd protocol.LBCommand) (protocol.LBResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds, l.host = append(l.cmds, cmd), append(l.host, lbHost)
	return l.res, l.err
}

// tcEngine is an engine with one running deployment d-1 of a group behind
// lb1/web: host h-a ("web-a") in progress, h-b ("web-b") pending.
func tcEngine(t *testing.T, lb *api.LBTarget) (*Engine, *tcStore, *tcLB, *Watcher) {
	st := &tcStore{}
	e := NewEngine(st, nil, nil, EngineConfig{}, slog.New(slog.DiscardHandler))
	l := &tcLB{res: protocol.LBResult{Detail: "drained 3 sessions in 2.9s", ElapsedMillis: 2900}}
	e.SetLoadBalancers(l)
	r := &run{d: api.Deployment{ID: "d-1", App: "shop", Group: "web", GroupID: "g-1", State: api.DeployRunning, Hosts: []api.DeploymentHost{
		{HostID: "h-a", HostName: "web-a", State: api.HostDeployInProgress, Batch: 1},
		{HostID: "h-b", HostName: "web-b", State: api.HostDeployPending},
	}}, group: api.DeploymentGroup{ID: "g-1", App: "shop", Name: "web", LoadBalancer: lb}}
	e.active["d-1"] = r
	w, cancel := e.watchers.Add("d-1")
	t.Cleanup(cancel)
	return e, st, l, w
}

func TestTrafficRefusals(t *testing.T) {
	lb := &api.LBTarget{Host: "lb1", Backend: "web"}
	ok := protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic}
	cases := []struct {
		name string
		host string
		req  func(r *protocol.TrafficRequest)
		prep func(e *Engine)
		want string
	}{
		{"another host's exec id", "h-b", func(r *protocol.TrafficRequest) {}, nil, "not in progress"},
		{"host not in the deployment", "h-zzz", func(r *protocol.TrafficRequest) { r.ExecID = "d-1-h-zzz" }, nil, "not part of deployment d-1"},
		{"wrong exec id", "h-a", func(r *protocol.TrafficRequest) { r.ExecID = "d-1-h-b" }, nil, `execution "d-1-h-b" is not the step of host web-a`},
		{"unknown deployment", "h-a", func(r *protocol.TrafficRequest) { r.DeploymentID = "d-9" }, nil, "deployment d-9 is not running"},
		{"finished deployment", "h-a", func(r *protocol.TrafficRequest) {}, func(e *Engine) { e.active["d-1"].d.State = api.DeploySucceeded }, "deployment d-1 is succeeded"},
		{"finished host", "h-a", func(r *protocol.TrafficRequest) {}, func(e *Engine) { e.active["d-1"].d.Hosts[0].State = api.HostDeployFailed }, "web-a is failed"},
		{"not a traffic event", "h-a", func(r *protocol.TrafficRequest) { r.Event = appspec.EventApplicationStop }, nil, `event "ApplicationStop"`},
		{"group without a load balancer", "h-a", func(r *protocol.TrafficRequest) {}, func(e *Engine) { e.active["d-1"].group.LoadBalancer = nil }, "has no load balancer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, st, l, _ := tcEngine(t, lb)
			if c.prep != nil {
				c.prep(e)
			}
			req := ok
			c.req(&req)
			rep := e.Traffic(t.Context(), c.host, req)
			if !strings.Contains(rep.Error, c.want) {
				t.Fatalf("reply error %q, want it to contain %q", rep.Error, c.want)
			}
			if len(l.cmds) != 0 || len(st.changes) != 0 {
				t.Fatalf("refused request reached the load balancer: %+v %+v", l.cmds, st.changes)
			}
		})
	}
	// The same request, right, goes through.
	e, _, l, _ := tcEngine(t, lb)
	if rep := e.Traffic(t.Context(), "h-a", ok); rep.Error != "" || len(l.cmds) != 1 {
		t.Fatalf("valid request: %+v, %d commands", rep, len(l.cmds))
	}
}

func TestTrafficDrainAndAllow(t *testing.T) {
	lb := &api.LBTarget{Host: "lb1", Backend: "web", Socket: "/run/haproxy/admin.sock", StateFile: "/var/lib/haproxy/state"}
	e, st, l, w := tcEngine(t, lb)
	rep := e.Traffic(t.Context(), "h-a", protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic})
	if rep.Error != "" || rep.Log != "drained 3 sessions in 2.9s" {
		t.Fatalf("drain reply %+v", rep)
	}
	want := protocol.LBCommand{Socket: lb.Socket, StateFile: lb.StateFile, Op: protocol.LBDrain, Backend: "web", Server: "web-a", Weight: -1, TimeoutMillis: 30000}
	if len(l.cmds) != 1 || l.host[0] != "lb1" || l.cmds[0].Op != want.Op || l.cmds[0].Server != want.Server || l.cmds[0].Backend != want.Backend ||
		l.cmds[0].TimeoutMillis != want.TimeoutMillis || l.cmds[0].Socket != want.Socket || l.cmds[0].StateFile != want.StateFile || l.cmds[0].Weight != -1 {
		t.Fatalf("drain command %+v to %v, want %+v to lb1", l.cmds, l.host, want)
	}
	l.res = protocol.LBResult{Detail: "UP after 2 checks, ready", ElapsedMillis: 2100, Servers: []api.LBServerStatus{{Backend: "web", Name: "web-a", Weight: 100}}}
	rep = e.Traffic(t.Context(), "h-a", protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventAllowTraffic})
	if rep.Error != "" || rep.Log != "UP after 2 checks, ready" {
		t.Fatalf("allow reply %+v", rep)
	}
	if c := l.cmds[1]; c.Op != protocol.LBAllow || c.Server != "web-a" || c.Weight != -1 || c.TimeoutMillis != AllowTimeout.Milliseconds() {
		t.Fatalf("allow command %+v", c)
	}
	// Both changes are stored, kept in memory and published.
	if len(st.changes) != 2 {
		t.Fatalf("stored changes %+v", st.changes)
	}
	d, a := st.changes[0], st.changes[1]
	if d.Action != api.LBDrain || d.Server != "web-a" || d.Backend != "web" || d.LoadBalancerID != "lb1" || d.DeploymentID != "d-1" ||
		d.Detail != "drained 3 sessions in 2.9s" || d.ElapsedMillis != 2900 || d.At.IsZero() || d.Error != "" {
		t.Fatalf("drain change %+v", d)
	}
	if a.Action != api.LBReady || a.Weight != 100 || a.ElapsedMillis != 2100 {
		t.Fatalf("allow change %+v", a)
	}
	if got := e.active["d-1"].d.Traffic; got == nil || len(got.Changes) != 2 {
		t.Fatalf("changes in memory: %+v", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var evs []api.DeploymentEvent
	for len(evs) < 2 {
		got, ok := w.Next(ctx)
		if !ok {
			t.Fatalf("published: %+v", evs)
		}
		evs = append(evs, got...)
	}
	if evs[0].Type != "traffic" || evs[0].Traffic == nil || evs[0].Traffic.Action != api.LBDrain || evs[1].Traffic.Action != api.LBReady {
		t.Fatalf("published events %+v", evs)
	}

	// The group's drain timeout is the drain's cap.
	lb.DrainTimeoutSeconds = 5
	e, _, l, _ = tcEngine(t, lb)
	e.Traffic(t.Context(), "h-a", protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic})
	if l.cmds[0].TimeoutMillis != 5000 {
		t.Fatalf("drain timeout %d ms, want 5000", l.cmds[0].TimeoutMillis)
	}
}

// TestTrafficRefusedByLB: the load balancer's refusal (the last ready
// server) is the host's error, and is recorded as a change with its error.
func TestTrafficRefusedByLB(t *testing.T) {
	e, st, l, _ := tcEngine(t, &api.LBTarget{Host: "lb1", Backend: "web"})
	l.res, l.err = protocol.LBResult{Error: "web-a is the last ready server of web"}, errors.New("load balancer refused: drain on lb1: web-a is the last ready server of web")
	rep := e.Traffic(t.Context(), "h-a", protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic})
	if !strings.Contains(rep.Error, "could not drain web-a") || !strings.Contains(rep.Error, "last ready server") {
		t.Fatalf("reply %+v", rep)
	}
	if len(st.changes) != 1 || !strings.Contains(st.changes[0].Error, "last ready server") {
		t.Fatalf("changes %+v", st.changes)
	}
	// Without a way to the load balancers, the event fails and says why.
	e, _, _, _ = tcEngine(t, &api.LBTarget{Host: "lb1", Backend: "web"})
	e.SetLoadBalancers(nil)
	if rep := e.Traffic(t.Context(), "h-a", protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic}); !strings.Contains(rep.Error, "no load balancer") {
		t.Fatalf("without load balancers: %+v", rep)
	}
}

func TestCheckLB(t *testing.T) {
	good := []api.LBTarget{
		{Host: "lb1", Backend: "web"},
		{Host: "lb-1.example", Backend: "be_web:8080", Driver: "haproxy", Socket: "/run/haproxy/admin.sock", StateFile: "/var/lib/haproxy/state", DrainTimeoutSeconds: 3600},
	}
	for _, g := range good {
		if err := CheckLB(&g); err != nil {
			t.Errorf("CheckLB(%+v): %v", g, err)
		}
	}
	bad := map[string]api.LBTarget{
		"load_balancer.host is required":        {Backend: "web"},
		"load_balancer.backend is required":     {Host: "lb1"},
		`load_balancer.backend "a b"`:           {Host: "lb1", Backend: "a b"},
		`load_balancer.driver "nginx"`:          {Host: "lb1", Backend: "web", Driver: "nginx"},
		`load_balancer.socket "run/x"`:          {Host: "lb1", Backend: "web", Socket: "run/x"},
		"state_file needs load_balancer.socket": {Host: "lb1", Backend: "web", StateFile: "/x"},
		"drain_timeout_seconds: 3601":           {Host: "lb1", Backend: "web", DrainTimeoutSeconds: 3601},
		"drain_timeout_seconds: -1":             {Host: "lb1", Backend: "web", DrainTimeoutSeconds: -1},
		"load_balancer.host: host name \"l b\"": {Host: "l b", Backend: "web"},
	}
	for want, b := range bad {
		err := CheckLB(&b)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckLB(%+v) = %v, want an invalid error containing %q", b, err, want)
		}
	}
}

// tcGateLB blocks each command until gate is closed.
type tcGateLB struct {
	gate  chan struct{}
	calls atomic.Int32
}

func (l *tcGateLB) Do(ctx context.Context, lbHost string, cmd protocol.LBCommand) (protocol.LBResult, error) {
	l.calls.Add(1)
	<-l.gate
	return protocol.LBResult{Detail: "drained 1 sessions in 1.0s"}, nil
}

// TestTrafficRepeatJoins: the agent sends its request again while it
// waits; a repeat joins the call in flight (one drain, both answered), and
// another request of the host meanwhile is refused.
func TestTrafficRepeatJoins(t *testing.T) {
	e, st, _, _ := tcEngine(t, &api.LBTarget{Host: "lb1", Backend: "web"})
	l := &tcGateLB{gate: make(chan struct{})}
	e.SetLoadBalancers(l)
	joined := make(chan struct{})
	e.traffic.joined = func() { close(joined) }
	req := protocol.TrafficRequest{ExecID: "d-1-h-a", DeploymentID: "d-1", Event: appspec.EventBlockTraffic}
	reps := make(chan protocol.TrafficReply, 2)
	go func() { reps <- e.Traffic(t.Context(), "h-a", req) }()
	for l.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() { reps <- e.Traffic(t.Context(), "h-a", req) }()
	<-joined
	other := req
	other.Event = appspec.EventAllowTraffic
	if rep := e.Traffic(t.Context(), "h-a", other); !strings.Contains(rep.Error, "another traffic request") {
		t.Fatalf("another request meanwhile: %+v", rep)
	}
	close(l.gate)
	for range 2 {
		if rep := <-reps; rep.Error != "" || rep.Log != "drained 1 sessions in 1.0s" {
			t.Fatalf("reply %+v", rep)
		}
	}
	if n := l.calls.Load(); n != 1 || len(st.changes) != 1 {
		t.Fatalf("%d load balancer commands, %d changes; want 1 and 1", n, len(st.changes))
	}
}
