package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/selector"
)

// Blue/green deployments of an environment's group (ManagedFleet).
//
// The environment owns the group's machines, so the deployment does not
// take replacement hosts from a selector: it asks the environment for
// them. The deployment is created with no host (phase provisioning) and
// the group's hosts as its originals; Fleets.Provision makes as many new
// machines as there are originals, and once each is online, set up, and a
// server of the load balancer in maint, the engine adds them to the
// deployment as its hosts (store AddDeploymentHosts) and goes on as for
// hand-onboarded hosts (deploying, shifting, kept). When it ends, the
// losing fleet is removed before the deployment finishes (phase
// releasing, Fleets.Release): the originals after a success, the
// replacements after a failure, a rollback or a stop. Machine names,
// data and addresses of the kept fleet do not change; the group's
// selector is the environment's and stays as it is.
//
// Why the deployment waits for the removal: while it is active the
// group's catch-up does not run, so the originals (still matching the
// group, with the old revision) are never caught up with the new one on
// their way out, and `gantry deployments show --wait` shows the whole
// operation, as CodeDeploy's "terminate original instances" step does.

// Fleets makes and removes the replacement machines of blue/green
// deployments of environment groups (internal/infra implements it).
type Fleets interface {
	// Owns reports whether an environment makes the group's machines.
	Owns(ctx context.Context, g api.DeploymentGroup) (bool, error)
	// Provision makes (the first time; later calls check on them) the
	// replacement machines of d, one for each of d.Traffic.Original, and
	// returns them once every one is online, set up, and a server of the
	// group's load balancer in maint. Until then hosts is nil and status
	// says what it waits for. An error is final: the deployment fails.
	Provision(ctx context.Context, d api.Deployment) (hosts []FleetHost, status string, err error)
	// Release removes d's original machines (keepReplacements) or its
	// replacement machines. done is true once they are gone; status says
	// what it waits for; an error is retried.
	Release(ctx context.Context, d api.Deployment, keepReplacements bool) (done bool, status string, err error)
}

// FleetHost is a replacement machine's host.
type FleetHost struct {
	ID   string
	Name string
}

// ProvisionTimeout bounds the making of a replacement fleet.
const ProvisionTimeout = 20 * time.Minute

// SetFleets gives the engine the environments' replacement fleets;
// without it a blue/green deployment needs a replacement selector. Call it
// before Start.
func (e *Engine) SetFleets(f Fleets) {
	e.traffic.mu.Lock()
	e.traffic.fleets = f
	e.traffic.mu.Unlock()
}

func (e *Engine) fleets() Fleets {
	e.traffic.mu.Lock()
	defer e.traffic.mu.Unlock()
	return e.traffic.fleets
}

// ownedFleet reports whether an environment makes g's machines.
func (e *Engine) ownedFleet(ctx context.Context, g api.DeploymentGroup) (bool, error) {
	f := e.fleets()
	if f == nil {
		return false, nil
	}
	return f.Owns(ctx, g)
}

// fleetPrepare makes a blue/green deployment of an environment's group:
// no host yet, the group's hosts as the originals.
func (e *Engine) fleetPrepare(ctx context.Context, g api.DeploymentGroup, n *newDeployment) error {
	sel, err := selector.Parse(g.Selector)
	if err != nil {
		return fmt.Errorf("%w: group selector: %v", ErrInvalid, err)
	}
	all, err := e.st.ListHosts(ctx, false)
	if err != nil {
		return err
	}
	var orig []string
	for _, h := range all {
		if sel.Matches(h.Labels) {
			orig = append(orig, h.Name)
		}
	}
	if len(orig) == 0 {
		return fmt.Errorf("%w: group %q has no machine that is set up: there is no traffic to move; deploy in place", ErrNothingToDeploy, g.Name)
	}
	slices.Sort(orig)
	n.hosts, n.provision = []string{}, true
	n.traffic.Original, n.traffic.ManagedFleet, n.traffic.Phase = orig, true, PhaseProvisioning
	n.traffic.Status = fmt.Sprintf("making %d replacement machine(s)", len(orig))
	if n.config == g.Config || n.config == "" {
		n.config = AllAtOnce.Name // the replacement hosts take no traffic yet
	}
	return nil
}

// fleetProvision is the provisioning phase: it asks the environment for
// the replacement machines and makes them the deployment's hosts.
func (e *Engine) fleetProvision(ctx context.Context, r *run, t *api.DeployTraffic, abort, stop bool) error {
	switch {
	case stop:
		return e.blueGreenEnd(ctx, r, t, api.DeployStopped, "stopped while the replacement machines were made")
	case abort:
		return e.blueGreenEnd(ctx, r, t, api.DeployFailed, "aborted by hand while the replacement machines were made")
	}
	f := e.fleets()
	if f == nil {
		return errors.New("blue-green: no environment engine to make the replacement machines")
	}
	hosts, status, err := f.Provision(ctx, r.d)
	if err != nil {
		return e.blueGreenEnd(ctx, r, t, api.DeployFailed, "replacement machines: "+err.Error()+"; the original machines kept the traffic")
	}
	if hosts == nil {
		if e.now().Sub(r.d.CreatedAt) > ProvisionTimeout {
			return e.blueGreenEnd(ctx, r, t, api.DeployFailed, fmt.Sprintf("the replacement machines were not ready after %s (%s); the original machines kept the traffic", ProvisionTimeout, status))
		}
		return e.fleetStatus(ctx, r, t, status)
	}
	if err := e.addFleetHosts(ctx, r, hosts); err != nil {
		return err
	}
	t.Replacement = nil
	for _, h := range hosts {
		t.Replacement = append(t.Replacement, h.Name)
	}
	slices.Sort(t.Replacement)
	t.Phase, t.Status = PhaseDeploying, ""
	e.log.Info("blue/green: replacement machines ready", "deployment", r.d.ID, "machines", t.Replacement)
	return e.saveTraffic(ctx, r, t)
}

// fleetStatus records what a provisioning or releasing deployment waits
// for, when it changed.
func (e *Engine) fleetStatus(ctx context.Context, r *run, t *api.DeployTraffic, status string) error {
	if status == "" || status == t.Status {
		return nil
	}
	t.Status = status
	return e.saveTraffic(ctx, r, t)
}

// addFleetHosts adds the replacement machines to the deployment (once:
// after a restart some may be in it already).
func (e *Engine) addFleetHosts(ctx context.Context, r *run, hosts []FleetHost) error {
	revs, err := e.st.HostRevisions(ctx, r.d.GroupID)
	if err != nil {
		return err
	}
	e.mu.Lock()
	have := map[string]bool{}
	for _, h := range r.d.Hosts {
		have[h.HostID] = true
	}
	e.mu.Unlock()
	var add []api.DeploymentHost
	for _, h := range hosts {
		if !have[h.ID] {
			add = append(add, api.DeploymentHost{HostID: h.ID, HostName: h.Name, State: api.HostDeployPending, PreviousRevision: revs[h.ID].Revision})
		}
	}
	if len(add) == 0 {
		return nil
	}
	cfg, err := ParseConfig(r.d.Config)
	if err != nil {
		return err
	}
	minHealthy := cfg.MinHealthy(len(have) + len(add))
	if err := e.st.AddDeploymentHosts(ctx, r.d.ID, minHealthy, add); err != nil {
		return fmt.Errorf("blue-green: add the replacement machines to the deployment: %w", err)
	}
	e.mu.Lock()
	r.d.Hosts = append(r.d.Hosts, add...)
	r.d.MinHealthy = minHealthy
	slices.SortFunc(r.d.Hosts, func(a, b api.DeploymentHost) int { return strings.Compare(a.HostName, b.HostName) })
	for _, h := range add {
		r.healthy[h.HostID] = e.fl.HostOnline(h.HostID)
		e.byExec[execID(r.d.ID, h.HostID)] = r
	}
	e.mu.Unlock()
	e.publishDeployment(r)
	return nil
}

// blueGreenEnd ends a blue/green deployment in state: at once for
// hand-onboarded hosts; after the losing fleet is removed (phase
// releasing) for an environment's group.
func (e *Engine) blueGreenEnd(ctx context.Context, r *run, t *api.DeployTraffic, state, reason string) error {
	if !t.ManagedFleet {
		return e.finish(ctx, r, state, reason)
	}
	t.Phase, t.Outcome, t.Status = PhaseReleasing, state, ""
	if reason != "" {
		t.Reason = reason
	}
	if err := e.saveTraffic(ctx, r, t); err != nil {
		return err
	}
	return e.fleetRelease(ctx, r, t, false)
}

// fleetRelease is the releasing phase: the losing fleet is removed, then
// the deployment ends in its outcome. A forced stop ends it at once (the
// environment still removes the fleet on its own).
func (e *Engine) fleetRelease(ctx context.Context, r *run, t *api.DeployTraffic, force bool) error {
	reason := ""
	if t.Outcome != api.DeploySucceeded {
		reason = t.Reason
	}
	f := e.fleets()
	if f == nil {
		return errors.New("blue-green: no environment engine to remove the losing machines")
	}
	done, status, err := f.Release(ctx, r.d, t.Outcome == api.DeploySucceeded)
	switch {
	case force && !done:
		e.log.Warn("blue/green: stopped by force before the losing machines were removed (the environment goes on removing them)", "deployment", r.d.ID)
	case err != nil:
		e.log.Warn("blue/green: remove the losing machines (will retry)", "deployment", r.d.ID, "err", err)
		return e.fleetStatus(ctx, r, t, "removing the losing machines failed (retrying): "+err.Error())
	case !done:
		return e.fleetStatus(ctx, r, t, status)
	}
	return e.finish(ctx, r, t.Outcome, reason)
}
