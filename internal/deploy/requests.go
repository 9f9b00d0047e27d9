package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
	"github.com/gantry-dev/gantry/internal/watch"
)

// CreateGroup validates and stores a deployment group.
func (e *Engine) CreateGroup(ctx context.Context, app string, req api.CreateGroupRequest) (api.DeploymentGroup, error) {
	if _, err := e.st.GetApplication(ctx, app); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.DeploymentGroup{}, fmt.Errorf("app %q %w. Create it with: gantry app create %s", app, store.ErrNotFound, app)
		}
		return api.DeploymentGroup{}, err
	}
	if err := validate.GroupName("name", req.Name); err != nil {
		return api.DeploymentGroup{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if strings.TrimSpace(req.Selector) == "" {
		return api.DeploymentGroup{}, fmt.Errorf("%w: selector is required (e.g. --selector role=web): a group is the hosts it selects", ErrInvalid)
	}
	if _, err := selector.Parse(req.Selector); err != nil {
		return api.DeploymentGroup{}, fmt.Errorf("%w: selector: %v", ErrInvalid, err)
	}
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		return api.DeploymentGroup{}, err
	}
	if err := checkHealth(req.HealthCheck); err != nil {
		return api.DeploymentGroup{}, err
	}
	if err := CheckLB(req.LoadBalancer); err != nil {
		return api.DeploymentGroup{}, err
	}
	g := api.DeploymentGroup{ID: ids.New("g"), App: app, Name: req.Name, Selector: req.Selector, Config: cfg.String(),
		HealthCheck: req.HealthCheck, AutoRollback: !req.NoAutoRollback, CreatedAt: e.now().UTC(), LoadBalancer: req.LoadBalancer}
	if err := e.st.CreateGroup(ctx, g); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.DeploymentGroup{}, fmt.Errorf("group %q of app %q %w: pick another name, or deploy to it with: gantry deploy %s %s", req.Name, app, store.ErrConflict, app, req.Name)
		}
		return api.DeploymentGroup{}, err
	}
	return g, nil
}

// checkHealth validates a health check (validate.HealthCheck: the same
// rules as an environment's health_check block).
func checkHealth(hc *api.HealthCheck) error {
	if err := validate.HealthCheck("health_check", hc); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Deploy starts a deployment of a revision (default the newest) to a group.
func (e *Engine) Deploy(ctx context.Context, app, group string, req api.DeployRequest) (api.Deployment, error) {
	g, err := e.st.GetGroup(ctx, app, group)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return api.Deployment{}, err
		}
		if _, aerr := e.st.GetApplication(ctx, app); errors.Is(aerr, store.ErrNotFound) {
			return api.Deployment{}, fmt.Errorf("app %q %w. Create it with: gantry app create %s", app, store.ErrNotFound, app)
		}
		return api.Deployment{}, fmt.Errorf("group %q of app %q %w. Create it with: gantry group create %s %s --selector SELECTOR", group, app, store.ErrNotFound, app, group)
	}
	rev := req.Revision
	if rev == "" {
		revs, err := e.st.ListRevisions(ctx, app)
		if err != nil {
			return api.Deployment{}, err
		}
		if len(revs) == 0 {
			return api.Deployment{}, fmt.Errorf("%w: app %q has no revision. Push one with: gantry push %s DIR", ErrNothingToDeploy, app, app)
		}
		rev = revs[0].ID
	}
	if err := validate.Text("description", req.Description, validate.MaxDescription); err != nil {
		return api.Deployment{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	cfg := req.Config
	if cfg == "" {
		cfg = g.Config
	}
	n := newDeployment{app: app, group: g, revision: rev, config: cfg, kind: KindDeploy, description: req.Description}
	if err := e.strategyFor(ctx, g, req, &n); err != nil {
		return api.Deployment{}, err
	}
	return e.create(ctx, n)
}

// Rollback rolls a group back by hand: if its last deployment failed or
// was stopped without being rolled back, the group's good revision is
// deployed again to the hosts it changed; otherwise the revision deployed
// successfully before the current one is deployed to every host.
func (e *Engine) Rollback(ctx context.Context, app, group string) (api.Deployment, error) {
	g, err := e.st.GetGroup(ctx, app, group)
	if err != nil {
		return api.Deployment{}, err
	}
	deps, err := e.st.ListDeployments(ctx, app, 500)
	if err != nil {
		return api.Deployment{}, err
	}
	var mine []api.Deployment
	for _, d := range deps {
		if d.GroupID == g.ID {
			mine = append(mine, d)
		}
	}
	if len(mine) > 0 && !api.DeployDone(mine[0].State) {
		if d, ok, err := e.rollbackBlueGreen(ctx, mine[0].ID); ok {
			return d, err // traffic back to the originals (bluegreen.go)
		}
		return api.Deployment{}, fmt.Errorf("%w (%s): stop it first with `gantry deployments stop %s`", ErrBusy, mine[0].ID, mine[0].ID)
	}
	if len(mine) > 0 && mine[0].State != api.DeploySucceeded && mine[0].RolledBackBy == "" && g.Revision != "" {
		last, err := e.st.GetDeployment(ctx, mine[0].ID)
		if err != nil {
			return api.Deployment{}, err
		}
		if hosts := changedHosts(last); len(hosts) > 0 {
			return e.create(ctx, newDeployment{app: app, group: g, revision: g.Revision, config: last.Config, kind: KindRollback,
				rollbackOf: last.ID, hosts: hosts, description: "rollback of " + last.ID + " by hand"})
		}
	}
	for _, d := range mine {
		if d.State == api.DeploySucceeded && d.Revision != g.Revision {
			return e.create(ctx, newDeployment{app: app, group: g, revision: d.Revision, config: g.Config, kind: KindRollback,
				description: "rollback by hand from " + g.Revision + " to " + d.Revision})
		}
	}
	return api.Deployment{}, fmt.Errorf("%w: group %s/%s has no earlier successful revision than %q", ErrNothingToRollBack, app, group, g.Revision)
}

// activeRun returns the run of an unfinished deployment this server runs;
// otherwise the stored deployment and why it cannot be acted on (what, if
// not "", is the action refused: "nothing to promote").
func (e *Engine) activeRun(ctx context.Context, id, what string) (*run, api.Deployment, error) {
	e.mu.Lock()
	r := e.active[id]
	e.mu.Unlock()
	if r != nil {
		return r, api.Deployment{}, nil
	}
	d, err := e.st.GetDeployment(ctx, id)
	if err != nil {
		return nil, d, err
	}
	if api.DeployDone(d.State) {
		msg := fmt.Sprintf("deployment %s is already %s", id, d.State)
		if what != "" {
			msg += ": nothing to " + what
		}
		return nil, d, fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil, d, fmt.Errorf("deployment %s is not run by this server", id)
}

// Stop asks a deployment to stop: no new batch starts; with force, the
// hooks running now are killed.
func (e *Engine) Stop(ctx context.Context, id string, force bool) (api.Deployment, error) {
	r, d, err := e.activeRun(ctx, id, "")
	if r == nil {
		return d, err
	}
	yes := true
	state := api.DeployStopping
	u := store.DeploymentUpdate{ID: id, StopRequested: &yes, State: &state}
	if force {
		u.Force = &yes
	}
	if err := e.st.UpdateDeployment(ctx, u); err != nil {
		return api.Deployment{}, err
	}
	e.mu.Lock()
	r.d.StopRequested, r.d.State = true, api.DeployStopping
	if force {
		r.d.Force = true
	}
	e.mu.Unlock()
	e.publishDeployment(r)
	e.poke()
	return e.st.GetDeployment(ctx, id)
}

// Watcher is one live subscriber to a deployment's events.
type Watcher = watch.Watcher[api.DeploymentEvent]

// Watch subscribes to a deployment's events and returns it as stored at
// subscription time; "done" ends the stream.
func (e *Engine) Watch(ctx context.Context, id string) (api.Deployment, *Watcher, func(), error) {
	w, cancel := e.watchers.Add(id)
	d, err := e.st.GetDeployment(ctx, id)
	if err != nil {
		cancel()
		return d, nil, nil, err
	}
	e.mu.Lock()
	if r := e.active[id]; r != nil {
		// Live progress not yet stored.
		for i := range d.Hosts {
			if p, ok := e.progress[execID(id, d.Hosts[i].HostID)]; ok && !finalHost(d.Hosts[i].State) {
				d.Hosts[i].Event, d.Hosts[i].Events = p.event, p.events
			}
		}
	}
	e.mu.Unlock()
	return d, w, cancel, nil
}

// publishDeployment tells watchers about a deployment's state and batch.
func (e *Engine) publishDeployment(r *run) {
	e.mu.Lock()
	c := r.d
	if c.Traffic != nil {
		// The watchers get their own copy: the engine goes on changing
		// the run's.
		c.Traffic = cloneTraffic(c.Traffic)
	}
	e.mu.Unlock()
	c.Hosts = nil
	e.watchers.Publish(c.ID, api.DeploymentEvent{Type: "deployment", Deployment: &c})
}

// HandleProgress takes a live lifecycle event from an agent (a best-effort
// Output chunk of stream protocol.StreamLifecycle). hostID is the host the
// bus authenticated: only that host's own execution of the deployment is
// updated (an execution id of another host, or of no running deployment,
// is ignored), and events are held to the caps of internal/protocol.
func (e *Engine) HandleProgress(hostID string, o protocol.Output) {
	var ev api.LifecycleEvent
	if err := json.Unmarshal(o.Data, &ev); err != nil || protocol.CheckLifecycleEvent(&ev) != nil {
		return
	}
	e.mu.Lock()
	r := e.byExec[o.ExecID]
	if r == nil {
		e.mu.Unlock()
		return
	}
	var host *api.DeploymentHost
	for i := range r.d.Hosts {
		if r.d.Hosts[i].HostID == hostID && execID(r.d.ID, hostID) == o.ExecID {
			host = &r.d.Hosts[i]
		}
	}
	if host == nil || host.State != api.HostDeployInProgress {
		e.mu.Unlock()
		return
	}
	p := e.progress[o.ExecID]
	p.depID, p.hostID = r.d.ID, hostID
	if ev.State != "skipped" || p.event == "" {
		// A skipped event is listed but is not where the host is.
		p.event = ev.Name
	}
	switch n := len(p.events); {
	case n > 0 && p.events[n-1].Name == ev.Name:
		p.events[n-1] = ev
	case n >= protocol.MaxProgressEvents:
		e.mu.Unlock()
		return // a real lifecycle has far fewer events
	default:
		p.events = append(p.events, ev)
	}
	e.progress[o.ExecID] = p
	c := *host
	c.Event = p.event
	c.Events = append([]api.LifecycleEvent(nil), p.events...)
	e.mu.Unlock()
	e.watchers.Publish(r.d.ID, api.DeploymentEvent{Type: "host", Host: &c})
}

// flushProgress writes live progress to the store (best effort, coalesced):
// `deployments show` sees where each host is.
func (e *Engine) flushProgress(ctx context.Context) {
	e.mu.Lock()
	if len(e.progress) == 0 {
		e.mu.Unlock()
		return
	}
	ups := make([]store.DeploymentHostUpdate, 0, len(e.progress))
	for id, p := range e.progress {
		ups = append(ups, store.DeploymentHostUpdate{DeploymentID: p.depID, HostID: p.hostID, Event: p.event,
			Events: append([]api.LifecycleEvent(nil), p.events...)})
		_ = id
	}
	clear(e.progress)
	e.mu.Unlock()
	if err := e.st.UpdateDeploymentHosts(ctx, ups); err != nil && ctx.Err() == nil {
		e.log.Warn("store live progress", "err", err)
	}
}

// seedAttempts marks the hosts that the group's deployments of its current
// revision already tried: catch-up is for hosts that never had it (joined
// or relabelled later), not a retry of hosts where it failed.
func (e *Engine) seedAttempts(ctx context.Context, g api.DeploymentGroup) error {
	key := g.ID + "/" + g.Revision
	e.mu.Lock()
	done := e.seeded[key]
	e.mu.Unlock()
	if done {
		return nil
	}
	deps, err := e.st.ListDeployments(ctx, g.App, 200)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if d.GroupID != g.ID || d.Revision != g.Revision {
			continue
		}
		full, err := e.st.GetDeployment(ctx, d.ID)
		if err != nil {
			return err
		}
		e.markAttempts(full)
	}
	e.mu.Lock()
	e.seeded[key] = true
	e.mu.Unlock()
	return nil
}

// markAttempts records the hosts a deployment tried.
func (e *Engine) markAttempts(d api.Deployment) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range d.Hosts {
		if h.State != api.HostDeploySkipped && h.State != api.HostDeployPending {
			e.attempts[d.GroupID+"/"+h.HostID+"/"+d.Revision] = true
		}
	}
}

// catchUp deploys each group's revision to the hosts that match the group
// but do not have it (hosts that joined, or were relabelled), once per
// host and revision.
func (e *Engine) catchUp(ctx context.Context) error {
	groups, err := e.st.ListGroups(ctx, "")
	if err != nil {
		return err
	}
	var hosts []store.HostRecord
	for _, g := range groups {
		if g.Revision == "" || e.activeIn(g.ID) != "" {
			continue
		}
		if hosts == nil {
			if hosts, err = e.st.ListHosts(ctx, false); err != nil {
				return err
			}
		}
		sel, err := selector.Parse(g.Selector)
		if err != nil {
			continue
		}
		revs, err := e.st.HostRevisions(ctx, g.ID)
		if err != nil {
			return err
		}
		if err := e.seedAttempts(ctx, g); err != nil {
			return err
		}
		var todo []string
		var names []string
		e.mu.Lock()
		for _, h := range hosts {
			key := g.ID + "/" + h.ID + "/" + g.Revision
			if !sel.Matches(h.Labels) || revs[h.ID].Revision == g.Revision || e.attempts[key] || !e.fl.HostOnline(h.ID) {
				continue
			}
			e.attempts[key] = true
			todo, names = append(todo, h.ID), append(names, h.Name)
		}
		e.mu.Unlock()
		if len(todo) == 0 {
			continue
		}
		d, err := e.create(ctx, newDeployment{app: g.App, group: g, revision: g.Revision, config: AllAtOnce.Name, kind: KindCatchUp,
			hosts: todo, description: "catch-up of " + strings.Join(names, ", ")})
		if err != nil {
			if errors.Is(err, ErrBusy) || errors.Is(err, store.ErrConflict) {
				e.mu.Lock()
				for _, h := range todo {
					delete(e.attempts, g.ID+"/"+h+"/"+g.Revision)
				}
				e.mu.Unlock()
				continue
			}
			e.log.Error("catch-up deployment", "group", g.App+"/"+g.Name, "err", err)
			continue
		}
		e.log.Info("catching up hosts with the group's revision", "deployment", d.ID, "group", g.App+"/"+g.Name, "hosts", names)
	}
	return nil
}
