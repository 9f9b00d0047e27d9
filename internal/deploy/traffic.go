package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/traffic"
	"github.com/gantry-dev/gantry/internal/validate"
)

// LoadBalancers is how the engine changes a load balancer: the server's
// traffic.Controller, which sends the command to the gantry agent on the
// load balancer's machine (lbHost is its gantry host name).
type LoadBalancers interface {
	Do(ctx context.Context, lbHost string, cmd protocol.LBCommand) (protocol.LBResult, error)
}

// trafficState is the engine's side of traffic control.
type trafficState struct {
	mu       sync.Mutex
	lbs      LoadBalancers
	fleets   Fleets                  // the environments' replacement fleets (fleets.go)
	inflight map[string]*trafficCall // by host id: the request being handled
	// joined, if set (tests), is called when a repeat joins a call.
	joined func()
}

// trafficCall is a traffic request being handled. The agent sends its
// request again while it waits (a server restarted meanwhile would never
// answer the first one); a repeat joins the call in flight.
type trafficCall struct {
	key  string // exec id and event
	done chan struct{}
	rep  protocol.TrafficReply
}

// SetLoadBalancers gives the engine its way to the load balancers; without
// it, a group's traffic events fail with an error saying so. Call it
// before Start.
func (e *Engine) SetLoadBalancers(lbs LoadBalancers) {
	e.traffic.mu.Lock()
	e.traffic.lbs = lbs
	e.traffic.mu.Unlock()
}

// loadBalancer returns the engine's way to the load balancers (nil
// before SetLoadBalancers).
func (e *Engine) loadBalancer() LoadBalancers {
	e.traffic.mu.Lock()
	defer e.traffic.mu.Unlock()
	return e.traffic.lbs
}

// Traffic defaults and bounds.
const (
	// DefaultDrainTimeout caps a drain when the group's load balancer sets
	// none.
	DefaultDrainTimeout = 30 * time.Second
	// AllowTimeout caps the wait for a host let in again to be UP by the
	// load balancer's own checks (rise checks in a row).
	AllowTimeout = 60 * time.Second
	// trafficMargin is added to the agent's wait for the server's answer:
	// the server's own margin to reach the load balancer, and the change's
	// recording.
	trafficMargin = 30 * time.Second
)

// DrainTimeoutRange is the range of a load balancer's drain timeout
// (api.LBTarget.DrainTimeoutSeconds).
var DrainTimeoutRange = validate.DrainTimeout

// drainTimeout is the drain cap of a group's load balancer.
func drainTimeout(t api.LBTarget) time.Duration {
	if t.DrainTimeoutSeconds > 0 {
		return time.Duration(t.DrainTimeoutSeconds) * time.Second
	}
	return DefaultDrainTimeout
}

// trafficWait is how long an agent waits for the answer to a traffic
// request of a group behind t: the longer of the drain and the allow, with
// a margin.
func trafficWait(t api.LBTarget) time.Duration {
	return max(drainTimeout(t), AllowTimeout) + trafficMargin
}

// CheckLB validates a deployment group's load balancer (field names as in
// the API's load_balancer object).
func CheckLB(t *api.LBTarget) error {
	if t == nil {
		return nil
	}
	if t.Host == "" {
		return fmt.Errorf("%w: load_balancer.host is required: the gantry host name of the load balancer machine (e.g. --lb lb1/web)", ErrInvalid)
	}
	if err := validate.HostName("load_balancer.host", t.Host); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if t.Backend == "" {
		return fmt.Errorf("%w: load_balancer.backend is required: the haproxy backend whose servers are the group's hosts (e.g. --lb lb1/web)", ErrInvalid)
	}
	if len(t.Backend) > 64 || strings.IndexFunc(t.Backend, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':')
	}) >= 0 {
		return fmt.Errorf("%w: load_balancer.backend %q: want 1 to 64 letters, digits, '-', '_', '.' and ':' (an haproxy backend name)", ErrInvalid, t.Backend)
	}
	if t.Driver != "" && t.Driver != "haproxy" {
		return fmt.Errorf("%w: load_balancer.driver %q: the only driver is haproxy (the default)", ErrInvalid, t.Driver)
	}
	for _, p := range []struct{ field, path string }{{"load_balancer.socket", t.Socket}, {"load_balancer.state_file", t.StateFile}} {
		if p.path != "" && (!filepath.IsAbs(p.path) || strings.ContainsAny(p.path, "\x00\n")) {
			return fmt.Errorf("%w: %s %q: want an absolute path on the load balancer machine", ErrInvalid, p.field, p.path)
		}
	}
	if t.StateFile != "" && t.Socket == "" {
		return fmt.Errorf("%w: load_balancer.state_file needs load_balancer.socket: a state file is for a load balancer gantry does not configure", ErrInvalid)
	}
	if err := DrainTimeoutRange.Check(int64(t.DrainTimeoutSeconds)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Traffic handles a traffic request of the agent of hostID (the host the
// bus authenticated) running its step of a deployment whose group is
// behind a load balancer: at BlockTraffic the host's server is drained
// (its sessions end, capped by the drain timeout) and put in maintenance;
// at AllowTraffic it is let in again once the load balancer's own checks
// find it UP. The request is refused unless the deployment is running on
// this server, the host is in progress in it and ExecID is that host's
// step. Every change is stored with the deployment and published as a
// "traffic" event. The reply's Log becomes the event's log.
func (e *Engine) Traffic(ctx context.Context, hostID string, req protocol.TrafficRequest) protocol.TrafficReply {
	r, host, lb, err := e.trafficCheck(hostID, req)
	if err != nil {
		return protocol.TrafficReply{Error: err.Error()}
	}
	key := req.ExecID + "\x00" + req.Event
	e.traffic.mu.Lock()
	if e.traffic.inflight == nil {
		e.traffic.inflight = map[string]*trafficCall{}
	}
	if call := e.traffic.inflight[hostID]; call != nil {
		e.traffic.mu.Unlock()
		if call.key != key {
			return protocol.TrafficReply{Error: "another traffic request of this host is being handled"}
		}
		if e.traffic.joined != nil {
			e.traffic.joined()
		}
		select {
		case <-call.done:
			return call.rep
		case <-ctx.Done():
			return protocol.TrafficReply{Error: "the server is shutting down"}
		}
	}
	call := &trafficCall{key: key, done: make(chan struct{})}
	e.traffic.inflight[hostID] = call
	e.traffic.mu.Unlock()
	call.rep = e.trafficDo(ctx, r, host, lb, req)
	e.traffic.mu.Lock()
	delete(e.traffic.inflight, hostID)
	e.traffic.mu.Unlock()
	close(call.done)
	return call.rep
}

// trafficDo makes the change of a checked traffic request.
func (e *Engine) trafficDo(ctx context.Context, r *run, host api.DeploymentHost, lb api.LBTarget, req protocol.TrafficRequest) protocol.TrafficReply {
	lbs := e.loadBalancer()
	if lbs == nil {
		return protocol.TrafficReply{Error: "this server drives no load balancer (traffic control is not set up)"}
	}
	cmd := protocol.LBCommand{Driver: lb.Driver, Socket: lb.Socket, StateFile: lb.StateFile, Backend: lb.Backend, Server: host.HostName, Weight: -1}
	change := api.TrafficChange{Backend: lb.Backend, Server: host.HostName, DeploymentID: r.d.ID, LoadBalancerID: lb.Host}
	switch req.Event {
	case appspec.EventBlockTraffic:
		cmd.Op, cmd.TimeoutMillis = protocol.LBDrain, drainTimeout(lb).Milliseconds()
		change.Action = api.LBDrain
		if req.ExecID == origExecID(r.d.ID, host.HostID) { // checked by trafficCheck
			// Kept in drain at full weight: ready to take the traffic back.
			cmd.State, cmd.Weight = api.LBDrain, traffic.DefaultWeight
			change.Weight = traffic.DefaultWeight
		}
	case appspec.EventAllowTraffic:
		cmd.Op, cmd.TimeoutMillis = protocol.LBAllow, AllowTimeout.Milliseconds()
		cmd.Weight = e.allowWeight(r, host.HostName)
		change.Action, change.Weight = api.LBReady, max(cmd.Weight, 0)
	}
	start := e.now()
	res, err := lbs.Do(ctx, lb.Host, cmd)
	change.At = e.now().UTC()
	change.ElapsedMillis = res.ElapsedMillis
	if change.ElapsedMillis == 0 {
		change.ElapsedMillis = change.At.Sub(start).Milliseconds()
	}
	change.Detail = res.Detail
	if change.Detail == "" && err == nil {
		change.Detail = defaultDetail(req.Event, time.Duration(change.ElapsedMillis)*time.Millisecond)
	}
	if change.Action == api.LBReady && change.Weight == 0 {
		change.Weight = serverWeight(res.Servers, lb.Backend, host.HostName)
	}
	if err != nil {
		// The load balancer's own refusal says it best; else what failed
		// on the way (the controller's error names the host).
		change.Error = res.Error
		if change.Error == "" {
			change.Error = err.Error()
		}
	}
	e.recordTraffic(ctx, r, change)
	if err != nil {
		return protocol.TrafficReply{Error: trafficError(req.Event, host.HostName, lb, change.Error), Log: change.Detail}
	}
	return protocol.TrafficReply{Log: change.Detail}
}

// trafficCheck finds the run, host and load balancer of a traffic
// request, or says why it is refused.
func (e *Engine) trafficCheck(hostID string, req protocol.TrafficRequest) (*run, api.DeploymentHost, api.LBTarget, error) {
	if req.Event != appspec.EventBlockTraffic && req.Event != appspec.EventAllowTraffic {
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("traffic request: event %q: want %s or %s", req.Event, appspec.EventBlockTraffic, appspec.EventAllowTraffic)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.active[req.DeploymentID]
	if r == nil {
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("deployment %s is not running on this server: traffic is only changed for a running step", req.DeploymentID)
	}
	if api.DeployDone(r.d.State) {
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("deployment %s is %s: traffic is only changed for a running step", r.d.ID, r.d.State)
	}
	var host *api.DeploymentHost
	for i := range r.d.Hosts {
		if r.d.Hosts[i].HostID == hostID {
			host = &r.d.Hosts[i]
		}
	}
	if o := originalOf(r, hostID, req.ExecID); host == nil && o != nil && req.Event == appspec.EventBlockTraffic && r.group.LoadBalancer != nil {
		// A blue/green original host's BlockTraffic (originals.go).
		return r, *o, *r.group.LoadBalancer, nil
	}
	switch {
	case host == nil:
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("host %s is not part of deployment %s", hostID, r.d.ID)
	case host.State != api.HostDeployInProgress:
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("host %s is %s in deployment %s, not in progress", host.HostName, host.State, r.d.ID)
	case req.ExecID != execID(r.d.ID, hostID):
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("execution %q is not the step of host %s in deployment %s", req.ExecID, host.HostName, r.d.ID)
	case r.group.LoadBalancer == nil:
		return nil, api.DeploymentHost{}, api.LBTarget{}, fmt.Errorf("group %s/%s has no load balancer", r.d.App, r.d.Group)
	}
	return r, *host, *r.group.LoadBalancer, nil
}

// allowWeight is the weight a host gets when it is let in again: -1 keeps
// the weight the load balancer has for it (an in-place deployment).
func (e *Engine) allowWeight(r *run, hostName string) int {
	return e.strategyAllowWeight(r, hostName)
}

// recordTraffic stores a change with its deployment, keeps it in memory
// and publishes it. A change that cannot be stored is still published and
// logged: it happened.
func (e *Engine) recordTraffic(ctx context.Context, r *run, c api.TrafficChange) {
	if err := e.st.AddTrafficChange(context.WithoutCancel(ctx), r.d.ID, c); err != nil {
		e.log.Error("store a load balancer change", "deployment", r.d.ID, "server", c.Server, "action", c.Action, "err", err)
	}
	e.mu.Lock()
	if r.d.Traffic == nil {
		r.d.Traffic = &api.DeployTraffic{}
	}
	r.d.Traffic.Changes = append(r.d.Traffic.Changes, c)
	e.mu.Unlock()
	lvl := "load balancer change"
	args := []any{"deployment", r.d.ID, "lb", c.LoadBalancerID, "backend", c.Backend, "server", c.Server, "action", c.Action, "detail", c.Detail, "elapsed_ms", c.ElapsedMillis}
	if c.Error != "" {
		e.log.Warn(lvl+" failed", append(args, "err", c.Error)...)
	} else {
		e.log.Info(lvl, args...)
	}
	e.watchers.Publish(r.d.ID, api.DeploymentEvent{Type: "traffic", Traffic: &c})
}

// defaultDetail describes a change whose driver said nothing.
func defaultDetail(event string, took time.Duration) string {
	if event == appspec.EventBlockTraffic {
		return "drained in " + took.Round(100*time.Millisecond).String()
	}
	return "ready, UP in " + took.Round(100*time.Millisecond).String()
}

// serverWeight is a server's weight in a status list (0 if absent).
func serverWeight(ss []api.LBServerStatus, backend, name string) int {
	for _, s := range ss {
		if s.Name == name && (s.Backend == "" || s.Backend == backend) {
			return s.Weight
		}
	}
	return 0
}

// trafficError is the host's error for a failed traffic change.
func trafficError(event, host string, lb api.LBTarget, msg string) string {
	what := "drain " + host
	if event == appspec.EventAllowTraffic {
		what = "let " + host + " in again"
	}
	return fmt.Sprintf("could not %s (backend %s on %s): %s", what, lb.Backend, lb.Host, msg)
}
