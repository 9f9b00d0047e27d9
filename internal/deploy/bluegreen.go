package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// Blue/green deployments (Strategy blue-green) of a group behind a load
// balancer. This file has the hand-onboarded hosts' case and the traffic
// part common to both; fleets.go the environment groups' (the environment
// makes the replacement machines and removes the losing fleet).
//
// The replacement hosts (BlueGreen.ReplacementSelector: online, not hosts
// of the group, already servers of the group's backend in maint) are the
// deployment's hosts: they get the revision (all at once unless a
// configuration is given) and their AllowTraffic lets them in at weight 0:
// ready and UP by the load balancer's checks, but taking no traffic.
// Then the traffic moves (phase shifting): all at once, or StepPercent more
// every StepIntervalMillis, by weights (traffic.ShareWeights): per step
// one command raising the replacements', then one lowering the originals'
// (setFleetWeights). At 100 % the originals run their block-traffic events
// (phase blocking, originals.go): BeforeBlockTraffic, BlockTraffic, which
// puts them in drain (no new sessions; health checks go on) with their
// weight back to 100, AfterBlockTraffic. Then they are kept (phase kept)
// for KeepOriginalMillis: `gantry rollback APP GROUP` or
// `gantry deployments abort ID` then sets the originals ready and the
// replacements in maint, and the deployment fails (nothing is redeployed).
// After the keep period (or `deployments promote`) the originals go to
// maint, the group's selector becomes the replacement selector, and the
// deployment succeeds.
//
// The replacement hosts run the in-place lifecycle, whose block-traffic
// events find them in maint already (CodeDeploy runs none there).

// DefaultKeepOriginal is how long a blue/green deployment keeps its
// original hosts ready to take the traffic back.
const DefaultKeepOriginal = 5 * time.Minute

// DefaultShiftInterval is the wait between blue/green traffic steps.
const DefaultShiftInterval = 30 * time.Second

// groupUpdater changes a group's settings (the store has it).
type groupUpdater interface {
	UpdateGroupSettings(ctx context.Context, g api.DeploymentGroup) error
}

// blueGreenSpecFor validates a deploy request's blue/green settings and
// returns them with the defaults.
func blueGreenSpecFor(g api.DeploymentGroup, spec *api.BlueGreenSpec) (api.BlueGreenSpec, error) {
	if g.LoadBalancer == nil {
		return api.BlueGreenSpec{}, needsLB(api.StrategyBlueGreen, g)
	}
	var s api.BlueGreenSpec
	if spec != nil {
		s = *spec
	}
	if s.ReplacementSelector != "" {
		if _, err := selector.Parse(s.ReplacementSelector); err != nil {
			return s, fmt.Errorf("%w: blue_green.replacement_selector: %v", ErrInvalid, err)
		}
	}
	if s.StepPercent < 0 || s.StepPercent > 100 {
		return s, fmt.Errorf("%w: blue_green.step_percent %d: 0 (all at once) to 100", ErrInvalid, s.StepPercent)
	}
	if s.StepPercent > 0 && s.StepIntervalMillis == 0 {
		s.StepIntervalMillis = DefaultShiftInterval.Milliseconds()
	}
	if s.StepIntervalMillis != 0 && (s.StepIntervalMillis < 1000 || s.StepIntervalMillis > time.Hour.Milliseconds()) {
		return s, fmt.Errorf("%w: blue_green.step_interval %dms: 1s to 1h", ErrInvalid, s.StepIntervalMillis)
	}
	if s.KeepOriginalMillis < 0 || s.KeepOriginalMillis > (48*time.Hour).Milliseconds() {
		return s, fmt.Errorf("%w: blue_green.keep_original %dms: 0 to 48h", ErrInvalid, s.KeepOriginalMillis)
	}
	if s.KeepOriginalMillis == 0 && !s.NoKeep {
		s.KeepOriginalMillis = DefaultKeepOriginal.Milliseconds()
	}
	if s.NoKeep {
		s.KeepOriginalMillis = 0
	}
	return s, nil
}

// blueGreenPrepare chooses a blue/green deployment's hosts: the
// replacement hosts are the deployment's, the group's hosts the originals.
// Every replacement host must be online, outside the group, and a server
// of the backend in maint.
func (e *Engine) blueGreenPrepare(ctx context.Context, g api.DeploymentGroup, n *newDeployment) error {
	spec := n.traffic.BlueGreen
	owned, err := e.ownedFleet(ctx, g)
	if err != nil {
		return err
	}
	switch {
	case owned && spec.ReplacementSelector != "":
		return fmt.Errorf("%w: group %q is an environment's: the environment makes the replacement machines itself; drop --replacement-selector", ErrInvalid, g.Name)
	case owned:
		return e.fleetPrepare(ctx, g, n)
	case strings.TrimSpace(spec.ReplacementSelector) == "":
		return fmt.Errorf("%w: blue_green.replacement_selector is required (--replacement-selector) for a group of hand-onboarded hosts: the label selector of the replacement hosts, e.g. color=green (an environment's group makes its own replacement machines)", ErrInvalid)
	}
	gsel, err := selector.Parse(g.Selector)
	if err != nil {
		return fmt.Errorf("%w: group selector: %v", ErrInvalid, err)
	}
	rsel, _ := selector.Parse(spec.ReplacementSelector)
	all, err := e.st.ListHosts(ctx, false)
	if err != nil {
		return err
	}
	var repl, orig, overlap, offline []string
	var ids []string
	for _, h := range all {
		inGroup, inRepl := gsel.Matches(h.Labels), rsel.Matches(h.Labels)
		switch {
		case inGroup && inRepl:
			overlap = append(overlap, h.Name)
		case inGroup:
			orig = append(orig, h.Name)
		case inRepl && !e.fl.HostOnline(h.ID):
			offline = append(offline, h.Name)
		case inRepl:
			repl = append(repl, h.Name)
			ids = append(ids, h.ID)
		}
	}
	switch {
	case len(overlap) > 0:
		return fmt.Errorf("%w: the replacement selector %q also matches host(s) of group %q (%s): the replacement hosts must be other hosts", ErrUnfit, spec.ReplacementSelector, g.Name, strings.Join(overlap, ", "))
	case len(offline) > 0:
		return fmt.Errorf("%w: replacement host(s) %s are offline: every replacement host must be online (see gantry hosts ls)", ErrNothingToDeploy, strings.Join(offline, ", "))
	case len(repl) == 0:
		return fmt.Errorf("%w: no host matches the replacement selector %q (label the replacement hosts, e.g. gantry hosts label HOST color=green)", ErrNothingToDeploy, spec.ReplacementSelector)
	case len(orig) == 0:
		return fmt.Errorf("%w: group %q has no host (selector %q): there is no traffic to move; deploy in place", ErrNothingToDeploy, g.Name, g.Selector)
	}
	if lb := e.loadBalancer(); lb != nil {
		res, err := lb.Do(ctx, g.LoadBalancer.Host, traffic.Command(*g.LoadBalancer, protocol.LBStatus))
		if err != nil {
			return fmt.Errorf("blue-green: load balancer %s: %w", g.LoadBalancer.Host, err)
		}
		state := map[string]string{}
		for _, s := range res.Servers {
			if s.Backend == "" || s.Backend == g.LoadBalancer.Backend {
				state[s.Name] = s.State
			}
		}
		for _, h := range repl {
			st, ok := state[h]
			switch {
			case !ok:
				return fmt.Errorf("%w: replacement host %s is not a server of backend %s on %s: add it (in maint) to the load balancer first", ErrNothingToDeploy, h, g.LoadBalancer.Backend, g.LoadBalancer.Host)
			case st != api.LBMaint:
				return fmt.Errorf("%w: replacement host %s is %s in backend %s: it must be in maint (taking no traffic) before a blue/green deployment", ErrNothingToDeploy, h, st, g.LoadBalancer.Backend)
			}
		}
	}
	sort.Strings(repl)
	sort.Strings(orig)
	n.hosts = ids
	n.traffic.Replacement, n.traffic.Original = repl, orig
	if n.config == g.Config || n.config == "" {
		n.config = AllAtOnce.Name // the replacement hosts take no traffic yet
	}
	return nil
}

// blueGreenStep runs a blue/green deployment's step (see above).
func (e *Engine) blueGreenStep(ctx context.Context, r *run, inProgress int, stop bool) (bool, error) {
	t := e.trafficOf(r)
	if t == nil || t.BlueGreen == nil || r.group.LoadBalancer == nil {
		return false, nil
	}
	e.mu.Lock()
	abort, promote := r.d.Traffic.AbortRequested, r.d.Traffic.PromoteRequested
	e.mu.Unlock()
	switch t.Phase {
	case PhaseProvisioning:
		return true, e.fleetProvision(ctx, r, t, abort, stop)
	case PhaseReleasing:
		e.mu.Lock()
		force := r.d.Force
		e.mu.Unlock()
		return true, e.fleetRelease(ctx, r, t, stop && force)
	case PhaseDeploying, "":
		if stop || inProgress > 0 {
			return false, nil // the generic path deploys, waits and stops
		}
		pending := 0
		var failed []string
		for _, h := range r.d.Hosts {
			switch h.State {
			case api.HostDeployPending:
				pending++
			case api.HostDeployFailed:
				failed = append(failed, h.HostName+" ("+h.Error+")")
			}
		}
		if len(failed) > 0 {
			return true, e.blueGreenFail(ctx, r, t, api.DeployFailed, "replacement host(s) failed: "+strings.Join(failed, "; ")+"; the original hosts kept the traffic")
		}
		if abort {
			return true, e.blueGreenFail(ctx, r, t, api.DeployFailed, "aborted by hand before the traffic moved")
		}
		if pending > 0 {
			return false, nil
		}
		// Every replacement host is deployed and UP at weight 0.
		now := e.now().UTC()
		t.Phase, t.Weight, t.StepStartedAt = PhaseShifting, 0, &now
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return true, err
		}
		return true, e.blueGreenShift(ctx, r, t)
	case PhaseShifting:
		if abort || stop {
			return true, e.blueGreenBack(ctx, r, t, stop)
		}
		if !r.strat.applied {
			if err := e.setFleetWeights(ctx, r, t, traffic.WeightMap(t.Weight, t.Replacement, t.Original), shiftDetail(t.Weight)); err != nil {
				return true, err
			}
			r.strat.applied = true
		}
		interval := time.Duration(t.BlueGreen.StepIntervalMillis) * time.Millisecond
		if e.now().Sub(*t.StepStartedAt)+intervalSlack < interval {
			return true, nil
		}
		return true, e.blueGreenShift(ctx, r, t)
	case PhaseBlocking:
		if abort || stop {
			return true, e.blueGreenBack(ctx, r, t, stop)
		}
		if !r.strat.applied {
			if err := e.setFleetWeights(ctx, r, t, traffic.WeightMap(100, t.Replacement, t.Original), shiftDetail(100)); err != nil {
				return true, err
			}
			r.strat.applied = true
		}
		return true, e.originalsStep(ctx, r, t)
	case PhaseKept:
		if abort || stop {
			return true, e.blueGreenBack(ctx, r, t, stop)
		}
		if !r.strat.applied {
			if err := e.blueGreenKeep(ctx, r, t); err != nil {
				return true, err
			}
		}
		keep := time.Duration(t.BlueGreen.KeepOriginalMillis) * time.Millisecond
		if !promote && e.now().Sub(*t.StepStartedAt) < keep {
			return true, nil
		}
		t.Phase, t.Reason = PhaseDone, "the original hosts were kept "+keep.String()
		if promote {
			t.Reason = "the keep period was ended by hand (gantry deployments promote)"
		}
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return true, err
		}
		return true, e.blueGreenDone(ctx, r, t)
	case PhaseDone:
		return true, e.blueGreenDone(ctx, r, t)
	case PhaseAborted:
		return true, e.blueGreenBack(ctx, r, t, stop)
	}
	return false, nil
}

// blueGreenShift moves the traffic one step further (all of it without
// steps), then keeps the originals when it is all moved.
func (e *Engine) blueGreenShift(ctx context.Context, r *run, t *api.DeployTraffic) error {
	w := 100
	if p := t.BlueGreen.StepPercent; p > 0 {
		w = min(100, t.Weight+p)
	}
	now := e.now().UTC()
	t.Weight, t.StepStartedAt = w, &now
	if w >= 100 {
		t.Phase = PhaseBlocking
	}
	if err := e.saveTraffic(ctx, r, t); err != nil {
		return err
	}
	r.strat.applied = false
	if err := e.setFleetWeights(ctx, r, t, traffic.WeightMap(w, t.Replacement, t.Original), shiftDetail(w)); err != nil {
		return err
	}
	r.strat.applied = true
	if w < 100 {
		return nil
	}
	return e.blueGreenBlock(ctx, r, t)
}

// shiftDetail describes a traffic step of w percent.
func shiftDetail(w int) string {
	if w >= 100 {
		return "blue/green: all the traffic to the replacement hosts"
	}
	return fmt.Sprintf("blue/green: %d%% to the replacement hosts", w)
}

// blueGreenKeep gives the replacement hosts all the traffic and puts the
// originals in drain with their weight back to 100, ready to take the
// traffic back in one change.
func (e *Engine) blueGreenKeep(ctx context.Context, r *run, t *api.DeployTraffic) error {
	r.strat.applied = false
	w := map[string]int{}
	for _, h := range t.Replacement {
		w[h] = traffic.DefaultWeight
	}
	for _, h := range t.Original {
		w[h] = 0
	}
	if err := e.setFleetWeights(ctx, r, t, w, shiftDetail(100)); err != nil {
		return err
	}
	if err := e.setStates(ctx, r, t.Original, api.LBDrain, traffic.DefaultWeight, "blue/green: original kept, ready to take the traffic back"); err != nil {
		return err
	}
	r.strat.applied = true
	return nil
}

// setFleetWeights sets the weights w of a blue/green deployment's servers
// in two commands, the replacement hosts' first. As the traffic moves,
// the replacements' weights only grow and the originals' only shrink, so
// the backend keeps a server with a weight at every instant. In one
// command the load balancer applies the weights one server after the
// other (by name): with the originals first, a move all at once had every
// server at weight 0 for a few milliseconds, and haproxy answered 503
// (seen under 8 clients in test/e2e TestTrafficBlueGreen).
func (e *Engine) setFleetWeights(ctx context.Context, r *run, t *api.DeployTraffic, w map[string]int, detail string) error {
	first, then := map[string]int{}, map[string]int{}
	for s, v := range w {
		if slices.Contains(t.Replacement, s) {
			first[s] = v
		} else {
			then[s] = v
		}
	}
	for _, part := range []map[string]int{first, then} {
		if len(part) == 0 {
			continue
		}
		if err := e.setWeights(ctx, r, part, detail); err != nil {
			return err
		}
	}
	return nil
}

// setStates sets the state (and weight when >= 0) of servers, one command
// each, and records them.
func (e *Engine) setStates(ctx context.Context, r *run, servers []string, state string, weight int, detail string) error {
	var errs []error
	for _, s := range servers {
		cmd := lbCommand(r, protocol.LBSet)
		cmd.Server, cmd.State, cmd.Weight = s, state, weight
		start := time.Now()
		res, err := e.lbDo(ctx, r, cmd)
		el := time.Since(start).Milliseconds()
		if res.ElapsedMillis > 0 {
			el = res.ElapsedMillis
		}
		c := api.TrafficChange{Server: s, Action: state, Weight: max(weight, 0), Detail: detail, ElapsedMillis: el}
		if err != nil {
			c.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s %s: %w", state, s, err))
		}
		e.stratChange(ctx, r, c)
	}
	return errors.Join(errs...)
}

// blueGreenBack moves the traffic back to the originals (ready, weight
// 100) and takes the replacements out (maint), then fails (or stops) the
// deployment. Nothing is redeployed: the originals never changed.
func (e *Engine) blueGreenBack(ctx context.Context, r *run, t *api.DeployTraffic, stop bool) error {
	if t.Phase != PhaseAborted {
		t.Phase, t.Reason = PhaseAborted, "rolled back: the traffic went back to the original hosts"
		if stop {
			t.Reason = "stopped: the traffic went back to the original hosts"
		}
		t.Weight = 0
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return err
		}
	}
	start := time.Now()
	// The originals first: the backend always has ready servers.
	err1 := e.setStates(ctx, r, t.Original, api.LBReady, traffic.DefaultWeight, "blue/green rollback: original back in service")
	err2 := e.setStates(ctx, r, t.Replacement, api.LBMaint, traffic.DefaultWeight, "blue/green rollback: replacement out of service")
	took := time.Since(start)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("blue/green rollback (will retry): %w", err)
	}
	e.log.Info("blue/green traffic moved back to the originals", "deployment", r.d.ID, "took", took)
	state := api.DeployFailed
	if stop {
		state = api.DeployStopped
	}
	return e.blueGreenEnd(ctx, r, t, state, fmt.Sprintf("%s in %s", t.Reason, took.Round(time.Millisecond)))
}

// blueGreenFail ends a blue/green deployment whose traffic never moved:
// the replacement hosts are put back in maint.
func (e *Engine) blueGreenFail(ctx context.Context, r *run, t *api.DeployTraffic, state, reason string) error {
	t.Phase, t.Reason = PhaseAborted, reason
	if err := e.saveTraffic(ctx, r, t); err != nil {
		return err
	}
	var started []string
	for _, h := range r.d.Hosts {
		if h.State == api.HostDeploySucceeded || h.State == api.HostDeployFailed {
			started = append(started, h.HostName)
		}
	}
	if err := e.setStates(ctx, r, started, api.LBMaint, -1, "blue/green failed: replacement out of service"); err != nil {
		reason += "; load balancer: " + err.Error()
	}
	return e.blueGreenEnd(ctx, r, t, state, reason)
}

// blueGreenDone lets the originals go (maint), makes the replacement
// selector the group's (an environment's group: removes the originals),
// and ends the deployment.
func (e *Engine) blueGreenDone(ctx context.Context, r *run, t *api.DeployTraffic) error {
	if err := e.setStates(ctx, r, t.Original, api.LBMaint, -1, "blue/green done: original out of service"); err != nil {
		return err
	}
	if t.ManagedFleet {
		return e.blueGreenEnd(ctx, r, t, api.DeploySucceeded, "") // the environment removes the originals
	}
	gu, ok := e.st.(groupUpdater)
	if !ok {
		return errors.New("blue/green: the store cannot update the group's selector")
	}
	g, err := e.st.GetGroup(ctx, r.d.App, r.d.Group)
	if err != nil {
		return err
	}
	if g.Selector != t.BlueGreen.ReplacementSelector {
		g.Selector = t.BlueGreen.ReplacementSelector
		if err := gu.UpdateGroupSettings(ctx, g); err != nil {
			return fmt.Errorf("blue/green: set the group's selector: %w", err)
		}
		e.log.Info("blue/green: the group's hosts are the replacement hosts", "group", r.d.App+"/"+r.d.Group, "selector", g.Selector)
	}
	return e.finish(ctx, r, api.DeploySucceeded, "")
}

// rollbackBlueGreen is `gantry rollback` during a blue/green deployment
// that moved traffic (phase shifting or kept): it aborts it, which moves
// the traffic back to the originals. ok is false for any other deployment.
func (e *Engine) rollbackBlueGreen(ctx context.Context, id string) (api.Deployment, bool, error) {
	e.mu.Lock()
	r := e.active[id]
	var phase string
	if r != nil && r.d.Strategy == api.StrategyBlueGreen && r.d.Traffic != nil {
		phase = r.d.Traffic.Phase
	}
	e.mu.Unlock()
	if phase != PhaseShifting && phase != PhaseBlocking && phase != PhaseKept {
		return api.Deployment{}, false, nil
	}
	d, err := e.Abort(ctx, id)
	return d, true, err
}
