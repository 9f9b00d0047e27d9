package deploy

import (
	"context"
	"fmt"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// The original hosts' events of a blue/green deployment, in CodeDeploy's
// order. Once all the traffic is on the replacement hosts (phase
// blocking), each original host runs BeforeBlockTraffic, BlockTraffic and
// AfterBlockTraffic (protocol.RoleOriginal), the hooks of the revision it
// has. At its BlockTraffic the server drains it and keeps it in drain
// with its weight back to 100 (lb.DrainKeep): no new session, health
// checks going on, and one change takes the traffic back. When every
// original is done the keep period starts (phase kept). A failed event on
// an original moves the traffic back to the originals and fails the
// deployment, as CodeDeploy fails it. An original that is offline runs
// nothing: the server drains it itself.

// PhaseBlocking: blue/green, the traffic is on the replacement hosts and
// the original hosts run their block-traffic events.
const PhaseBlocking = "blocking"

// origExecID is the execution id of an original host's block-traffic step.
func origExecID(depID, hostID string) string { return depID + "-o-" + hostID }

// origJobID is the id of a deployment's original hosts' job.
func origJobID(depID string) string { return depID + "-originals" }

// blueGreenBlock records the original hosts of the deployment (once) and
// starts their block-traffic events.
func (e *Engine) blueGreenBlock(ctx context.Context, r *run, t *api.DeployTraffic) error {
	if t.OriginalHosts == nil {
		all, err := e.st.ListHosts(ctx, false)
		if err != nil {
			return err
		}
		ids := map[string]string{}
		for _, h := range all {
			ids[h.Name] = h.ID
		}
		t.OriginalHosts = []api.DeploymentHost{}
		for _, n := range t.Original {
			h := api.DeploymentHost{HostID: ids[n], HostName: n, State: api.HostDeployPending}
			if h.HostID == "" || !e.fl.HostOnline(h.HostID) {
				h.State, h.Error = api.HostDeploySkipped, "offline: its block-traffic hooks did not run"
			}
			t.OriginalHosts = append(t.OriginalHosts, h)
		}
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return err
		}
	}
	_, err := e.ensureOrigJob(ctx, r, t)
	return err
}

// ensureOrigJob creates (or finds) the job of the original hosts that
// run their events, and routes their executions to the run.
func (e *Engine) ensureOrigJob(ctx context.Context, r *run, t *api.DeployTraffic) (api.Job, error) {
	d := &r.d
	id := origJobID(d.ID)
	if r.strat.origJob {
		return e.st.GetJob(ctx, id)
	}
	var hosts []api.DeploymentHost
	for _, h := range t.OriginalHosts {
		if h.State != api.HostDeploySkipped {
			hosts = append(hosts, h)
		}
	}
	var stored api.Job
	if len(hosts) > 0 {
		var err error
		stored, err = e.deployJob(ctx, r, id, fmt.Sprintf("blue/green %s: block traffic on the original hosts of %s/%s", d.ID, d.App, d.Group), hosts, origExecID,
			func(api.DeploymentHost) protocol.DeployCommand {
				return protocol.DeployCommand{Role: protocol.RoleOriginal}
			})
		if err != nil {
			return api.Job{}, fmt.Errorf("original hosts' job: %w", err)
		}
	}
	e.mu.Lock()
	for _, h := range hosts {
		e.byExec[origExecID(d.ID, h.HostID)] = r
	}
	e.mu.Unlock()
	r.strat.origJob = true
	return stored, nil
}

// originalsStep is the blocking phase: it takes the original hosts'
// results, drains the skipped ones itself, and starts the keep period once
// every one is done (or moves the traffic back if one failed).
func (e *Engine) originalsStep(ctx context.Context, r *run, t *api.DeployTraffic) error {
	if t.OriginalHosts == nil || !r.strat.origJob {
		if err := e.blueGreenBlock(ctx, r, t); err != nil {
			return err
		}
	}
	job, err := e.ensureOrigJob(ctx, r, t)
	if err != nil {
		return err
	}
	execs := map[string]api.Execution{}
	for _, x := range job.Executions {
		execs[x.ID] = x
	}
	changed, pending := false, 0
	var failed []string
	for i, h := range t.OriginalHosts {
		if finalHost(h.State) {
			if h.State == api.HostDeployFailed {
				failed = append(failed, h.HostName+": "+h.Error)
			}
			continue
		}
		x, ok := execs[origExecID(r.d.ID, h.HostID)]
		if !ok || !api.ExecDone(x.State) {
			pending++
			continue
		}
		u := hostResult(r.d.ID, h, x, e.now().UTC())
		h.State, h.Error, h.Event, h.Events, h.FinishedAt = u.State, u.Error, u.Event, u.Events, u.FinishedAt
		t.OriginalHosts[i] = h
		changed = true
		if h.State == api.HostDeployFailed {
			failed = append(failed, h.HostName+": "+h.Error)
		}
	}
	if changed {
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return err
		}
	}
	if pending > 0 {
		return nil
	}
	if len(failed) > 0 {
		t.Phase, t.Weight = PhaseAborted, 0
		t.Reason = "rolled back: the block-traffic events of original host(s) failed (" + strings.Join(failed, "; ") + "); the traffic went back to the original hosts"
		if err := e.saveTraffic(ctx, r, t); err != nil {
			return err
		}
		return e.blueGreenBack(ctx, r, t, false)
	}
	var skipped []string
	for _, h := range t.OriginalHosts {
		if h.State == api.HostDeploySkipped {
			skipped = append(skipped, h.HostName)
		}
	}
	if err := e.setStates(ctx, r, skipped, api.LBDrain, traffic.DefaultWeight, "blue/green: original kept (offline: no hooks), ready to take the traffic back"); err != nil {
		return err
	}
	now := e.now().UTC()
	t.Phase, t.StepStartedAt = PhaseKept, &now
	if err := e.saveTraffic(ctx, r, t); err != nil {
		return err
	}
	r.strat.applied = true // weights set before, drains done by BlockTraffic
	return nil
}

// originalOf returns the original host of a blue/green run that is
// running its block-traffic events (nil for any other).
func originalOf(r *run, hostID, execID string) *api.DeploymentHost {
	t := r.d.Traffic
	if r.d.Strategy != api.StrategyBlueGreen || t == nil || t.Phase != PhaseBlocking || execID != origExecID(r.d.ID, hostID) {
		return nil
	}
	for i := range t.OriginalHosts {
		if t.OriginalHosts[i].HostID == hostID {
			return &t.OriginalHosts[i]
		}
	}
	return nil
}
