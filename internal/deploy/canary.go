package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// Canary deployments (Strategy canary, on a group with a load balancer).
//
// The first Canary.Hosts hosts (in the planner's order) are deployed in
// place as batch 1; their AllowTraffic lets them in at the first step's
// weight. Then, for each step, the weights of the canary and the stable
// hosts are set (traffic.ShareWeights) and, every IntervalMillis, the
// load balancer's per-server counters are sampled and the interval is
// analysed (traffic.Analyze) and judged (traffic.Decide). After the last
// step, or `gantry deployments promote`, every weight returns to 100 and
// the other hosts are deployed as an ordinary in-place deployment. A
// failed analysis, `gantry deployments abort` or a stop drains the canary
// hosts at once (state drain: no new request reaches them) and the
// deployment fails; the automatic rollback redeploys the previous revision
// to them, and its AllowTraffic lets them in again.
//
// Every decision is stored in Deployment.Traffic before it is acted on;
// the counter sample is not (after a restart the next interval starts
// from a new sample).

// Traffic phases (api.DeployTraffic.Phase).
const (
	PhaseCanary    = "canary"    // canary hosts deployed, steps running
	PhasePromoting = "promoting" // weights back to 100; the rest of the hosts deploy
	PhasePromoted  = "promoted"  // the canary deployment succeeded
	PhaseAborted   = "aborted"   // the canary was drained; the deployment fails
	PhaseShifting  = "shifting"  // blue/green: traffic moving to the replacement
	PhaseKept      = "kept"      // blue/green: originals kept, ready to take traffic back
	PhaseDone      = "done"      // blue/green: finished
	PhaseDeploying = "deploying" // blue/green: the replacement hosts deploy
	// PhaseProvisioning: blue/green of an environment's group, the
	// replacement machines are being made (fleets.go).
	PhaseProvisioning = "provisioning"
	// PhaseReleasing: blue/green of an environment's group, the losing
	// fleet is being removed; the deployment then ends in Outcome.
	PhaseReleasing = "releasing"
)

// stratState is the memory of a canary or blue/green run that is not
// stored: the last sample of the load balancer's counters and whether the
// stored weights were applied since this server loaded the run.
type stratState struct {
	sample   []api.LBServerStatus
	sampleAt time.Time
	applied  bool
	// lbFailing: the last change failed (a retry's failure is not
	// recorded again).
	lbFailing bool
	// origJob: the blue/green original hosts' job exists (originals.go).
	origJob bool
}

// strategyStep runs the strategy-specific part of a step. It returns true
// when it handled the step (the generic batch planning must not run).
func (e *Engine) strategyStep(ctx context.Context, r *run, inProgress int, stop bool) (bool, error) {
	switch r.d.Strategy {
	case api.StrategyCanary:
		return e.canaryStep(ctx, r, inProgress, stop)
	case api.StrategyBlueGreen:
		return e.blueGreenStep(ctx, r, inProgress, stop)
	}
	return false, nil
}

// trafficOf returns a copy of the run's Traffic (nil if it has none),
// safe to change and store.
func (e *Engine) trafficOf(r *run) *api.DeployTraffic {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.d.Traffic == nil {
		return nil
	}
	return cloneTraffic(r.d.Traffic)
}

func cloneTraffic(t *api.DeployTraffic) *api.DeployTraffic {
	c := *t
	c.CanaryHosts = append([]string(nil), t.CanaryHosts...)
	c.Replacement = append([]string(nil), t.Replacement...)
	c.Original = append([]string(nil), t.Original...)
	if t.OriginalHosts != nil {
		c.OriginalHosts = append([]api.DeploymentHost{}, t.OriginalHosts...)
	}
	c.Analyses = append([]api.CanaryAnalysis(nil), t.Analyses...)
	c.Changes = append([]api.TrafficChange(nil), t.Changes...)
	if t.StepStartedAt != nil {
		at := *t.StepStartedAt
		c.StepStartedAt = &at
	}
	if t.Canary != nil {
		s := *t.Canary
		s.Steps = append([]api.CanaryStep(nil), t.Canary.Steps...)
		c.Canary = &s
	}
	if t.BlueGreen != nil {
		b := *t.BlueGreen
		c.BlueGreen = &b
	}
	return &c
}

// saveTraffic stores t as the run's Traffic, then swaps it in memory (the
// changes recorded meanwhile are kept) and tells watchers.
func (e *Engine) saveTraffic(ctx context.Context, r *run, t *api.DeployTraffic) error {
	// A promote or abort may have been asked for since t was read.
	merge := func() {
		if r.d.Traffic != nil {
			t.PromoteRequested = t.PromoteRequested || r.d.Traffic.PromoteRequested
			t.AbortRequested = t.AbortRequested || r.d.Traffic.AbortRequested
		}
	}
	e.mu.Lock()
	merge()
	e.mu.Unlock()
	if err := e.st.UpdateDeployment(ctx, store.DeploymentUpdate{ID: r.d.ID, Traffic: t}); err != nil {
		return fmt.Errorf("store traffic progress: %w", err)
	}
	e.mu.Lock()
	merge()
	if r.d.Traffic != nil {
		t.Changes = r.d.Traffic.Changes
	}
	// The run keeps its own copy: the caller may go on changing t.
	r.d.Traffic = cloneTraffic(t)
	e.mu.Unlock()
	e.publishDeployment(r)
	return nil
}

// stratChange records a change made to the load balancer by a strategy
// (stored with the deployment, published as a "traffic" event).
func (e *Engine) stratChange(ctx context.Context, r *run, c api.TrafficChange) {
	if c.At.IsZero() {
		c.At = e.now().UTC()
	}
	c.DeploymentID = r.d.ID
	if r.group.LoadBalancer != nil {
		c.Backend = r.group.LoadBalancer.Backend
		c.LoadBalancerID = r.group.LoadBalancer.Host
	}
	e.recordTraffic(ctx, r, c)
}

// strategyAllowWeight is the weight a canary host gets when its
// AllowTraffic lets it in during the canary phase (its share of the
// current step), and a blue/green replacement host's (0: ready, but no
// traffic until the shift); -1 (keep the weight) otherwise.
func (e *Engine) strategyAllowWeight(r *run, hostName string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := r.d.Traffic
	if t == nil {
		return -1
	}
	switch r.d.Strategy {
	case api.StrategyCanary:
		if t.Phase != PhaseCanary && t.Phase != "" {
			return -1
		}
		for _, h := range t.CanaryHosts {
			if h == hostName {
				n := len(t.CanaryHosts)
				fw, _ := traffic.ShareWeights(t.Weight, n, len(r.d.Hosts)-n)
				return fw
			}
		}
	case api.StrategyBlueGreen:
		for _, h := range t.Replacement {
			if h == hostName {
				return 0
			}
		}
	}
	return -1
}

// checkStrategyHosts refuses a canary deployment to too few hosts.
func checkStrategyHosts(n newDeployment, hosts int) error {
	if n.strategy == api.StrategyCanary && n.traffic != nil && n.traffic.Canary != nil {
		_, err := canarySpecFor(n.group, n.traffic.Canary, hosts)
		return err
	}
	return nil
}

// finalTraffic is a strategy deployment's Traffic as it ends in state
// (nil for others): a canary promoted, a blue/green done.
func (e *Engine) finalTraffic(r *run, state string) *api.DeployTraffic {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.d.Traffic == nil || r.d.Strategy != api.StrategyCanary && r.d.Strategy != api.StrategyBlueGreen {
		return nil
	}
	t := cloneTraffic(r.d.Traffic)
	switch {
	case state == api.DeploySucceeded && r.d.Strategy == api.StrategyCanary:
		t.Phase = PhasePromoted
	case state == api.DeploySucceeded:
		t.Phase = PhaseDone
	case t.Phase != PhaseAborted:
		t.Phase = PhaseAborted
		if t.Reason == "" {
			t.Reason = "the deployment " + state
		}
	}
	r.d.Traffic = t
	return t
}

// needsLB is the refusal of a strategy on a group without a load balancer.
func needsLB(strategy string, g api.DeploymentGroup) error {
	return fmt.Errorf("%w: strategy %s needs a deployment group with a load balancer; group %q has none: give it one with: gantry group update %s %s --lb HOST/BACKEND (an environment's group: a load_balancer block targeting it), or deploy with --strategy in-place",
		ErrUnfit, strategy, g.Name, g.App, g.Name)
}

// lbCommand is the command of op for the run's group's load balancer.
func lbCommand(r *run, op string) protocol.LBCommand {
	return traffic.Command(*r.group.LoadBalancer, op)
}

// lbDo runs cmd on the run's group's load balancer.
func (e *Engine) lbDo(ctx context.Context, r *run, cmd protocol.LBCommand) (protocol.LBResult, error) {
	if r.group.LoadBalancer == nil {
		return protocol.LBResult{}, errors.New("the group has no load balancer")
	}
	lb := e.loadBalancer()
	if lb == nil {
		return protocol.LBResult{}, errors.New("this server has no load balancer controller")
	}
	// The engine's loop waits for the answer: a load balancer that does
	// not answer must not hold up every other deployment for long.
	ctx, cancel := context.WithTimeout(ctx, lbCallTimeout)
	defer cancel()
	return lb.Do(ctx, r.group.LoadBalancer.Host, cmd)
}

// lbCallTimeout caps a strategy's load balancer call (weights, states,
// status: each takes milliseconds).
const lbCallTimeout = 10 * time.Second

// lbGiveUp is how long a canary step goes on while its load balancer
// cannot be changed or read before the canary is aborted.
func lbGiveUp(spec api.CanarySpec) time.Duration {
	return max(30*time.Second, 3*time.Duration(spec.IntervalMillis)*time.Millisecond)
}

// setWeights sets several servers' weights in one command and records one
// change per server.
func (e *Engine) setWeights(ctx context.Context, r *run, weights map[string]int, detail string) error {
	cmd := lbCommand(r, protocol.LBWeights)
	cmd.Weights = weights
	start := time.Now()
	res, err := e.lbDo(ctx, r, cmd)
	el := time.Since(start).Milliseconds()
	if res.ElapsedMillis > 0 {
		el = res.ElapsedMillis
	}
	names := make([]string, 0, len(weights))
	for s := range weights {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		c := api.TrafficChange{Server: s, Action: "weight", Weight: weights[s], Detail: detail, ElapsedMillis: el}
		if err != nil {
			c.Error = err.Error()
		}
		if err == nil || !r.strat.lbFailing {
			e.stratChange(ctx, r, c)
		}
	}
	r.strat.lbFailing = err != nil
	if err != nil {
		return fmt.Errorf("set weights on the load balancer: %w", err)
	}
	return nil
}

// lbStatus samples the backend's servers.
func (e *Engine) lbStatus(ctx context.Context, r *run) ([]api.LBServerStatus, error) {
	res, err := e.lbDo(ctx, r, lbCommand(r, protocol.LBStatus))
	if err != nil {
		return nil, fmt.Errorf("load balancer status: %w", err)
	}
	return res.Servers, nil
}

// canarySpecFor validates a deploy request's canary settings for a group
// of n hosts (n < 0: not known yet) and returns them with the defaults.
func canarySpecFor(g api.DeploymentGroup, spec *api.CanarySpec, n int) (api.CanarySpec, error) {
	if g.LoadBalancer == nil {
		return api.CanarySpec{}, needsLB(api.StrategyCanary, g)
	}
	var s api.CanarySpec
	if spec != nil {
		s = *spec
		s.Steps = append([]api.CanaryStep(nil), spec.Steps...)
	}
	if len(s.Steps) == 0 {
		// Argo's and Flagger's usual shape: a small share, a half, then all.
		s.Steps = []api.CanaryStep{{Weight: 10, PauseMillis: 60_000}, {Weight: 50, PauseMillis: 60_000}, {Weight: 100, PauseMillis: 60_000}}
	}
	s = traffic.WithDefaults(s)
	if err := traffic.CheckSpec(s); err != nil {
		return api.CanarySpec{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if n >= 0 && n < s.Hosts+1 {
		return api.CanarySpec{}, fmt.Errorf("%w: a canary of %d host(s) needs at least %d hosts in group %q (it has %d): the stable hosts are what the canary is compared with; lower canary.hosts (--canary-hosts) or deploy with --strategy in-place",
			ErrUnfit, s.Hosts, s.Hosts+1, g.Name, n)
	}
	return s, nil
}

// canaryStep runs a canary deployment's step (see the comment above).
func (e *Engine) canaryStep(ctx context.Context, r *run, inProgress int, stop bool) (bool, error) {
	t := e.trafficOf(r)
	if t == nil || t.Canary == nil || r.group.LoadBalancer == nil {
		return false, nil
	}
	switch t.Phase {
	case PhasePromoting, PhasePromoted:
		if !r.strat.applied {
			if err := e.setWeights(ctx, r, e.allWeights(r, 100), "canary promoted: every host back to weight 100"); err != nil {
				if t.StepStartedAt != nil && e.now().Sub(*t.StepStartedAt) > lbGiveUp(*t.Canary) {
					return true, e.finish(ctx, r, api.DeployFailed, "canary promoted, but the load balancer's weights could not be set back to 100: "+err.Error())
				}
				return true, err
			}
			r.strat.applied = true
		}
		return false, nil // the rest is an in-place deployment
	case PhaseAborted:
		if inProgress > 0 {
			return false, nil // finish the running canary steps first
		}
		state := api.DeployFailed
		if stop {
			state = api.DeployStopped
		}
		return true, e.canaryAbort(ctx, r, t, state, t.Reason)
	}
	if stop {
		if inProgress > 0 {
			return false, nil // the generic path waits (or cancels with --force)
		}
		return true, e.canaryAbort(ctx, r, t, api.DeployStopped, "stopped on request")
	}
	if len(t.CanaryHosts) == 0 {
		// Choose the canary: the first hosts in the planner's order,
		// healthy ones first (an offline host would only fail the canary).
		hosts := e.planHosts(r)
		sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Healthy && !hosts[j].Healthy })
		n := min(t.Canary.Hosts, len(hosts))
		for _, h := range hosts[:n] {
			t.CanaryHosts = append(t.CanaryHosts, h.Name)
		}
		t.Phase, t.Weight = PhaseCanary, t.Canary.Steps[0].Weight
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return true, err
		}
	}
	canary := map[string]bool{}
	for _, h := range t.CanaryHosts {
		canary[h] = true
	}
	var pending []int
	hosts := e.planHosts(r)
	done := 0
	for i, h := range hosts {
		if !canary[h.Name] {
			continue
		}
		switch h.Status {
		case Pending:
			pending = append(pending, i)
		case InProgress:
			return true, nil
		case Failed, Skipped:
			return true, e.canaryAbort(ctx, r, t, api.DeployFailed, "canary host "+h.Name+" failed: "+hostError(r, h.ID))
		case Succeeded:
			done++
		}
	}
	if len(pending) > 0 {
		return true, e.startBatch(ctx, r, hosts, pending)
	}
	e.mu.Lock()
	abort, promote := r.d.Traffic.AbortRequested, r.d.Traffic.PromoteRequested
	e.mu.Unlock()
	switch {
	case abort:
		return true, e.canaryAbort(ctx, r, t, api.DeployFailed, "canary aborted by hand (gantry deployments abort)")
	case promote:
		t.PromoteRequested = true
		return e.canaryPromote(ctx, r, t, "canary promoted by hand at step "+fmt.Sprint(t.Step+1))
	}
	return e.canarySteps(ctx, r, t, canary)
}

// hostError is a host's error in the run ("" if none).
func hostError(r *run, hostID string) string {
	for _, h := range r.d.Hosts {
		if h.HostID == hostID {
			if h.Error != "" {
				return h.Error
			}
			return h.State
		}
	}
	return ""
}

// planHosts returns the run's hosts as the planner sees them, in Order.
func (e *Engine) planHosts(r *run) []PlanHost {
	d := &r.d
	hosts := make([]PlanHost, len(d.Hosts))
	for i, h := range d.Hosts {
		hosts[i] = PlanHost{ID: h.HostID, Name: h.HostName, Status: planStatus(h.State), Healthy: r.healthy[h.HostID], Revision: h.PreviousRevision}
	}
	Order(hosts)
	return hosts
}

// canaryWeights are the weights of every host of the run for a canary
// share of p percent.
func (e *Engine) canaryWeights(r *run, t *api.DeployTraffic, p int) map[string]int {
	canary := map[string]bool{}
	for _, h := range t.CanaryHosts {
		canary[h] = true
	}
	var stable []string
	for _, h := range r.d.Hosts {
		if !canary[h.HostName] {
			stable = append(stable, h.HostName)
		}
	}
	return traffic.WeightMap(p, t.CanaryHosts, stable)
}

// allWeights gives every host of the run weight w.
func (e *Engine) allWeights(r *run, w int) map[string]int {
	out := map[string]int{}
	for _, h := range r.d.Hosts {
		out[h.HostName] = w
	}
	return out
}

// canarySteps runs the steps once the canary hosts are deployed.
func (e *Engine) canarySteps(ctx context.Context, r *run, t *api.DeployTraffic, canary map[string]bool) (bool, error) {
	spec := traffic.WithDefaults(*t.Canary)
	now := e.now().UTC()
	if t.Step >= len(spec.Steps) {
		return e.canaryPromote(ctx, r, t, "every canary step passed")
	}
	step := spec.Steps[t.Step]
	if t.StepStartedAt == nil {
		// A new step: store it, then apply its weights.
		t.Weight, t.StepStartedAt = step.Weight, &now
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return true, err
		}
		r.strat.applied = false
	}
	ended := step.PauseMillis > 0 && now.Sub(*t.StepStartedAt) >= time.Duration(step.PauseMillis)*time.Millisecond
	if !r.strat.applied {
		if err := e.setWeights(ctx, r, e.canaryWeights(r, t, t.Weight), fmt.Sprintf("canary step %d: %d%% to the canary", t.Step+1, t.Weight)); err != nil {
			if now.Sub(*t.StepStartedAt) > lbGiveUp(spec) {
				return true, e.canaryAbort(ctx, r, t, api.DeployFailed, fmt.Sprintf("canary step %d: the weights could not be set since %s: %v", t.Step+1, t.StepStartedAt.Format(time.RFC3339), err))
			}
			return true, err
		}
		r.strat.applied = true
		r.strat.sample = nil
	}
	if r.strat.sample == nil {
		s, err := e.lbStatus(ctx, r)
		if err != nil && !ended {
			return true, err // no baseline yet: try again at the next tick
		}
		if err == nil {
			r.strat.sample, r.strat.sampleAt = s, now
			return true, nil
		}
	}
	interval := time.Duration(spec.IntervalMillis) * time.Millisecond
	since := now.Sub(r.strat.sampleAt)
	analysed := false
	// The loop ticks every second: an interval that is due within the
	// tick's jitter is due now.
	if r.strat.sample != nil && (since+intervalSlack >= interval || ended && since >= intervalSlack) {
		var a api.CanaryAnalysis
		after, err := e.lbStatus(ctx, r)
		if err != nil {
			// An unreadable load balancer is no data, never a pass.
			a = api.CanaryAnalysis{Verdict: traffic.VerdictNoData, Reason: err.Error()}
			after = nil
		} else {
			a = traffic.Analyze(spec, r.strat.sample, after, canary)
		}
		a.At, a.Step, a.Weight = now, t.Step, t.Weight
		r.strat.sample, r.strat.sampleAt = after, now
		if after == nil {
			r.strat.sampleAt = time.Time{}
		}
		t.Analyses = append(t.Analyses, a)
		if len(t.Analyses) > maxAnalyses {
			t.Analyses = t.Analyses[len(t.Analyses)-maxAnalyses:]
		}
		t.Failures = traffic.Failures(spec, t.Analyses)
		analysed = true
		ac := a
		e.watchers.Publish(r.d.ID, api.DeploymentEvent{Type: "analysis", Analysis: &ac})
		e.log.Info("canary analysis", "deployment", r.d.ID, "step", t.Step+1, "weight", t.Weight, "verdict", a.Verdict, "reason", a.Reason)
	}
	if !analysed && !ended {
		return true, nil
	}
	dec, why := traffic.Decide(spec, t.Step, t.Analyses, ended)
	switch dec {
	case traffic.Abort:
		return true, e.canaryAbort(ctx, r, t, api.DeployFailed, why)
	case traffic.NextStep:
		if t.Step+1 >= len(spec.Steps) {
			return e.canaryPromote(ctx, r, t, "every canary step passed")
		}
		t.Step++
		t.StepStartedAt = nil
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return true, err
		}
		e.poke() // apply the next step's weights now
		return true, nil
	}
	return true, e.saveTraffic(ctx, r, t)
}

// intervalSlack is how early an analysis may run (the engine loop's
// timing jitter), and the shortest interval analysed at a step's end.
const intervalSlack = 200 * time.Millisecond

// maxAnalyses caps the analyses kept in a deployment (a manual step may
// last hours: the newest are kept).
const maxAnalyses = 500

// canaryPromote ends the canary: stored first, then every weight back to
// 100; the generic planner deploys the other hosts (it returns false so
// that the same step goes on with it).
func (e *Engine) canaryPromote(ctx context.Context, r *run, t *api.DeployTraffic, reason string) (bool, error) {
	now := e.now().UTC()
	t.Phase, t.Reason, t.Weight, t.StepStartedAt = PhasePromoting, reason, 100, &now
	if err := e.saveTraffic(ctx, r, t); err != nil {
		return true, err
	}
	e.log.Info("canary promoted", "deployment", r.d.ID, "reason", reason)
	if err := e.setWeights(ctx, r, e.allWeights(r, 100), reason+": every host back to weight 100"); err != nil {
		r.strat.applied = false
		return true, err
	}
	r.strat.applied = true
	return false, nil
}

// canaryAbort drains the canary hosts at once (state drain, weight 100 for
// when they are let in again), gives the stable hosts their weight back,
// and ends the deployment in state (failed or stopped: the automatic
// rollback redeploys the canary hosts). A load balancer that cannot be
// reached does not hold the deployment up: the error is recorded, and the
// rollback's BlockTraffic drains the hosts again.
func (e *Engine) canaryAbort(ctx context.Context, r *run, t *api.DeployTraffic, state, reason string) error {
	if t.Phase != PhaseAborted {
		t.Phase, t.Reason = PhaseAborted, reason
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return err
		}
	}
	var failed []string
	for _, name := range t.CanaryHosts {
		if !e.hostStarted(r, name) {
			continue // never deployed: nothing to drain
		}
		cmd := lbCommand(r, protocol.LBSet)
		cmd.Server, cmd.State, cmd.Weight = name, api.LBDrain, traffic.DefaultWeight
		start := time.Now()
		res, err := e.lbDo(ctx, r, cmd)
		el := time.Since(start).Milliseconds()
		if res.ElapsedMillis > 0 {
			el = res.ElapsedMillis
		}
		c := api.TrafficChange{Server: name, Action: "drain", Detail: "canary drained: " + reason, ElapsedMillis: el}
		if err != nil {
			c.Error = err.Error()
			failed = append(failed, name+": "+err.Error())
		}
		e.stratChange(ctx, r, c)
	}
	stable := map[string]int{}
	canary := map[string]bool{}
	for _, h := range t.CanaryHosts {
		canary[h] = true
	}
	for _, h := range r.d.Hosts {
		if !canary[h.HostName] {
			stable[h.HostName] = traffic.DefaultWeight
		}
	}
	if err := e.setWeights(ctx, r, stable, "canary aborted: the stable hosts back to weight 100"); err != nil {
		failed = append(failed, err.Error())
	}
	if len(failed) > 0 {
		e.log.Error("canary abort: load balancer changes failed", "deployment", r.d.ID, "errors", strings.Join(failed, "; "))
		reason += "; load balancer: " + strings.Join(failed, "; ")
	}
	e.log.Info("canary aborted", "deployment", r.d.ID, "reason", reason)
	return e.finish(ctx, r, state, reason)
}

// hostStarted reports whether the run's host of that name was deployed to.
func (e *Engine) hostStarted(r *run, name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range r.d.Hosts {
		if h.HostName == name {
			return h.State != api.HostDeployPending && h.State != api.HostDeploySkipped
		}
	}
	return false
}

// Promote asks a canary deployment to skip its remaining steps (or a
// blue/green deployment to end its keep period now).
func (e *Engine) Promote(ctx context.Context, id string) (api.Deployment, error) {
	return e.request(ctx, id, "promote", func(t *api.DeployTraffic) { t.PromoteRequested = true })
}

// Abort asks a canary or blue/green deployment to move traffic back to its
// stable (original) hosts at once and fail.
func (e *Engine) Abort(ctx context.Context, id string) (api.Deployment, error) {
	return e.request(ctx, id, "abort", func(t *api.DeployTraffic) { t.AbortRequested = true })
}

// request records a promote or abort of an active canary or blue/green
// deployment and wakes the engine.
func (e *Engine) request(ctx context.Context, id, what string, set func(*api.DeployTraffic)) (api.Deployment, error) {
	r, d, err := e.activeRun(ctx, id, what)
	if r == nil {
		return d, err
	}
	e.mu.Lock()
	strategy, t := r.d.Strategy, r.d.Traffic
	var phase string
	if t != nil {
		phase = t.Phase
	}
	e.mu.Unlock()
	if (strategy != api.StrategyCanary && strategy != api.StrategyBlueGreen) || t == nil {
		return api.Deployment{}, fmt.Errorf("%w: deployment %s is an %s deployment: only canary and blue-green deployments can be promoted or aborted (stop it with: gantry deployments stop %s)",
			ErrInvalid, id, orInPlace(strategy), id)
	}
	switch phase {
	case PhasePromoting, PhasePromoted, PhaseAborted, PhaseDone, PhaseReleasing:
		return api.Deployment{}, fmt.Errorf("%w: deployment %s is past that point (phase %s): nothing to %s", ErrInvalid, id, phase, what)
	}
	e.mu.Lock()
	c := cloneTraffic(r.d.Traffic)
	e.mu.Unlock()
	set(c)
	if err := e.st.UpdateDeployment(ctx, store.DeploymentUpdate{ID: id, Traffic: c}); err != nil {
		return api.Deployment{}, err
	}
	e.mu.Lock()
	if r.d.Traffic != nil {
		nt := cloneTraffic(r.d.Traffic)
		set(nt)
		r.d.Traffic = nt
	}
	e.mu.Unlock()
	e.log.Info("deployment "+what+" requested", "deployment", id)
	e.publishDeployment(r)
	e.poke()
	return e.st.GetDeployment(ctx, id)
}

func orInPlace(s string) string {
	if s == "" {
		return api.StrategyInPlace
	}
	return s
}

// strategyFor validates a deploy request's strategy and fills n's
// strategy and traffic.
func (e *Engine) strategyFor(ctx context.Context, g api.DeploymentGroup, req api.DeployRequest, n *newDeployment) error {
	switch req.Strategy {
	case "", api.StrategyInPlace:
		if req.Canary != nil || req.BlueGreen != nil {
			return fmt.Errorf("%w: canary and blue_green settings need strategy %q or %q", ErrInvalid, api.StrategyCanary, api.StrategyBlueGreen)
		}
		return nil
	case api.StrategyCanary:
		if req.BlueGreen != nil {
			return fmt.Errorf("%w: blue_green settings are for strategy %q, not canary", ErrInvalid, api.StrategyBlueGreen)
		}
		spec, err := canarySpecFor(g, req.Canary, -1)
		if err != nil {
			return err
		}
		n.strategy, n.traffic = api.StrategyCanary, &api.DeployTraffic{Canary: &spec, Phase: PhaseCanary}
		return nil
	case api.StrategyBlueGreen:
		if req.Canary != nil {
			return fmt.Errorf("%w: canary settings are for strategy %q, not blue-green", ErrInvalid, api.StrategyCanary)
		}
		spec, err := blueGreenSpecFor(g, req.BlueGreen)
		if err != nil {
			return err
		}
		n.strategy, n.traffic = api.StrategyBlueGreen, &api.DeployTraffic{BlueGreen: &spec, Phase: PhaseDeploying}
		return e.blueGreenPrepare(ctx, g, n)
	}
	return fmt.Errorf("%w: strategy %q: one of %s, %s, %s", ErrInvalid, req.Strategy, api.StrategyInPlace, api.StrategyCanary, api.StrategyBlueGreen)
}
