package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/watch"
)

// EngineStore is what the deployment engine needs from the store.
type EngineStore interface {
	GetApplication(ctx context.Context, name string) (api.Application, error)
	GetRevision(ctx context.Context, app, id string) (api.Revision, error)
	ListRevisions(ctx context.Context, app string) ([]api.Revision, error)
	ListHosts(ctx context.Context, includeRevoked bool) ([]store.HostRecord, error)
	GetJob(ctx context.Context, id string) (api.Job, error)
	CreateGroup(ctx context.Context, g api.DeploymentGroup) error
	GetGroup(ctx context.Context, app, name string) (api.DeploymentGroup, error)
	ListGroups(ctx context.Context, app string) ([]api.DeploymentGroup, error)
	CreateDeployment(ctx context.Context, d api.Deployment, hosts []api.DeploymentHost) error
	AddDeploymentHosts(ctx context.Context, id string, minHealthy int, hosts []api.DeploymentHost) error
	GetDeployment(ctx context.Context, id string) (api.Deployment, error)
	ListDeployments(ctx context.Context, app string, limit int) ([]api.Deployment, error)
	ListActiveDeployments(ctx context.Context) ([]api.Deployment, error)
	UpdateDeployment(ctx context.Context, u store.DeploymentUpdate) error
	UpdateDeploymentHosts(ctx context.Context, ups []store.DeploymentHostUpdate) error
	HostRevisions(ctx context.Context, groupID string) (map[string]store.HostRevision, error)
	AddTrafficChange(ctx context.Context, depID string, c api.TrafficChange) error
}

// Fleet is what the deployment engine needs from the fleet engine: the
// dispatch of commands with its guarantees (persisted, resent, started at
// most once, results acknowledged once stored).
type Fleet interface {
	CreateInternalJob(ctx context.Context, job api.Job, execs []api.Execution) (api.Job, error)
	HostOnline(hostID string) bool
	Send(c protocol.Command) error
}

// BundlePath returns the server path, with a capability, from which host
// may fetch the blob digest.
type BundlePath func(hostID, digest string) string

// EngineConfig tunes the engine; zero values take the defaults named.
type EngineConfig struct {
	// OutputCap is the bytes of each script's output streams the agent
	// keeps (default 1 MiB).
	OutputCap int
	// CatchUpEvery is how often groups are checked for hosts that lack the
	// group's revision (default 2s).
	CatchUpEvery time.Duration
}

// Engine runs deployments: it plans batches, has the fleet engine dispatch
// one deploy command per host of a batch, takes the hosts' results, and
// decides success, failure, stop and rollback. Every decision is written to
// the store before it is acted on, and the engine's memory is rebuilt from
// the store at start, so a server killed at any point goes on where it was.
//
// A deployment's batch is an internal fleet job whose id is
// "<deployment>-b<batch>" and whose executions' ids are
// "<deployment>-<host>": recreating it after a crash finds the stored one,
// and an agent never starts the same host's step twice (its journal).
type Engine struct {
	st   EngineStore
	fl   Fleet
	path BundlePath
	cfg  EngineConfig
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	active   map[string]*run    // by deployment id
	byExec   map[string]*run    // execution id -> deployment
	attempts map[string]bool    // catch-up attempts: group/host/revision
	seeded   map[string]bool    // group/revision whose attempts are loaded
	progress map[string]progRec // unsaved live progress, by execution id

	watchers watch.Hub[api.DeploymentEvent]
	kick     chan struct{}
	// catchUpNow asks the loop for a catch-up pass at once.
	catchUpNow atomic.Bool
	// traffic drives the load balancers of groups that have one (traffic.go).
	traffic trafficState
}

// progRec is a host's live progress not yet written to the store.
type progRec struct {
	depID, hostID string
	event         string
	events        []api.LifecycleEvent
}

// run is an active deployment in memory.
type run struct {
	d       api.Deployment // with Hosts
	group   api.DeploymentGroup
	rev     api.Revision
	healthy map[string]bool // by host id, fixed when the run is loaded
	jobs    map[int]bool    // batch jobs known to exist
	cancels bool            // force-stop cancels sent
	strat   stratState      // canary / blue-green memory (canary.go)
}

// NewEngine makes a deployment engine; call Start.
func NewEngine(st EngineStore, fl Fleet, path BundlePath, cfg EngineConfig, log *slog.Logger) *Engine {
	if cfg.OutputCap <= 0 {
		cfg.OutputCap = 1 << 20
	}
	if cfg.CatchUpEvery <= 0 {
		cfg.CatchUpEvery = 2 * time.Second
	}
	return &Engine{st: st, fl: fl, path: path, cfg: cfg, log: log, now: time.Now,
		active: map[string]*run{}, byExec: map[string]*run{}, attempts: map[string]bool{}, seeded: map[string]bool{}, progress: map[string]progRec{},
		kick: make(chan struct{}, 1)}
}

// Errors the API maps to statuses (with ErrInvalid and store errors).
var (
	// ErrBusy means the group has a deployment in progress.
	ErrBusy = errors.New("the group has a deployment in progress")
	// ErrNothingToRollBack means there is no earlier good revision.
	ErrNothingToRollBack = errors.New("nothing to roll back to")
	// ErrNothingToDeploy means a well-formed request finds nothing to
	// deploy: no host matches the group's selector, or the application has
	// no revision. Not a usage error: the API answers 422 (CLI exit 1),
	// as it does for a job whose selector matches no host.
	ErrNothingToDeploy = errors.New("nothing to deploy")
	// ErrUnfit means a well-formed request that the group, as it is now,
	// cannot take: a configuration that keeps all of its hosts, a canary
	// or blue/green without a load balancer or with too few hosts. Like
	// ErrNothingToDeploy, not a usage error: 422 (CLI exit 1).
	ErrUnfit = errors.New("the group cannot take this deployment")
)

// Start loads active deployments and runs the engine until ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	deps, err := e.st.ListActiveDeployments(ctx)
	if err != nil {
		return fmt.Errorf("load active deployments: %w", err)
	}
	for _, d := range deps {
		if err := e.load(ctx, d); err != nil {
			return err
		}
	}
	if len(deps) > 0 {
		e.log.Info("resuming deployments", "deployments", len(deps))
	}
	if err := e.recoverRollbacks(ctx); err != nil {
		e.log.Error("recover rollbacks", "err", err)
	}
	go e.loop(ctx)
	e.poke()
	return nil
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// ExecDone is the fleet engine's OnExecDone callback.
func (e *Engine) ExecDone(jobID, execID string) {
	e.mu.Lock()
	_, ok := e.byExec[execID]
	e.mu.Unlock()
	if ok {
		e.poke()
	}
}

// load registers a deployment read from the store.
func (e *Engine) load(ctx context.Context, d api.Deployment) error {
	g, err := e.st.GetGroup(ctx, d.App, d.Group)
	if err != nil {
		return fmt.Errorf("deployment %s: group: %w", d.ID, err)
	}
	rev, err := e.st.GetRevision(ctx, d.App, d.Revision)
	if err != nil {
		return fmt.Errorf("deployment %s: revision: %w", d.ID, err)
	}
	failed, err := e.lastFailed(ctx, d)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", d.ID, err)
	}
	// The run owns its hosts: the caller may still read d (create returns it).
	d.Hosts = append([]api.DeploymentHost(nil), d.Hosts...)
	r := &run{d: d, group: g, rev: rev, healthy: map[string]bool{}, jobs: map[int]bool{}}
	for _, h := range d.Hosts {
		r.healthy[h.HostID] = e.fl.HostOnline(h.HostID) && !failed[h.HostID]
	}
	e.mu.Lock()
	e.active[d.ID] = r
	for _, h := range d.Hosts {
		e.byExec[execID(d.ID, h.HostID)] = r
	}
	e.mu.Unlock()
	return nil
}

// lastFailed returns the hosts that failed in the group's last finished
// deployment before d: they count as unhealthy (CodeDeploy: a host is
// healthy unless its last deployment failed).
func (e *Engine) lastFailed(ctx context.Context, d api.Deployment) (map[string]bool, error) {
	deps, err := e.st.ListDeployments(ctx, d.App, 200)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range deps {
		if p.GroupID != d.GroupID || p.ID == d.ID || !api.DeployDone(p.State) || !p.CreatedAt.Before(d.CreatedAt) {
			continue
		}
		full, err := e.st.GetDeployment(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		for _, h := range full.Hosts {
			if h.State == api.HostDeployFailed {
				out[h.HostID] = true
			}
		}
		break
	}
	return out, nil
}

// execID is the execution id of a host's step in a deployment.
func execID(depID, hostID string) string { return depID + "-" + hostID }

// batchJobID is the id of a deployment's batch job.
func batchJobID(depID string, batch int) string { return fmt.Sprintf("%s-b%d", depID, batch) }

// loop steps active deployments on every kick and every second, flushes
// live progress, and catches new hosts up.
func (e *Engine) loop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastCatchUp := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
		e.flushProgress(ctx)
		e.mu.Lock()
		runs := make([]*run, 0, len(e.active))
		for _, r := range e.active {
			runs = append(runs, r)
		}
		e.mu.Unlock()
		sort.Slice(runs, func(i, j int) bool { return runs[i].d.CreatedAt.Before(runs[j].d.CreatedAt) })
		for _, r := range runs {
			if err := e.step(ctx, r); err != nil && ctx.Err() == nil {
				e.log.Error("deployment step (will retry)", "deployment", r.d.ID, "err", err)
			}
		}
		if time.Since(lastCatchUp) >= e.cfg.CatchUpEvery || e.catchUpNow.Swap(false) {
			lastCatchUp = time.Now()
			if err := e.catchUp(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("catch-up", "err", err)
			}
		}
	}
}

// step moves one deployment forward. It is idempotent: it reads what is
// done from the store and the fleet, and writes each decision before acting
// on it.
func (e *Engine) step(ctx context.Context, r *run) error {
	if err := e.collect(ctx, r); err != nil {
		return err
	}
	d := &r.d
	inProgress := 0
	for _, h := range d.Hosts {
		if h.State == api.HostDeployInProgress {
			inProgress++
		}
	}
	// Stop writes these from a request's goroutine.
	e.mu.Lock()
	stop, force := d.StopRequested, d.Force
	e.mu.Unlock()
	if handled, err := e.strategyStep(ctx, r, inProgress, stop); handled || err != nil {
		return err
	}
	if stop {
		if force && !r.cancels && inProgress > 0 {
			e.cancelRunning(r)
		}
		if inProgress > 0 {
			return nil
		}
		return e.finish(ctx, r, api.DeployStopped, "stopped on request")
	}
	hosts := make([]PlanHost, len(d.Hosts))
	for i, h := range d.Hosts {
		hosts[i] = PlanHost{ID: h.HostID, Name: h.HostName, Status: planStatus(h.State), Healthy: r.healthy[h.HostID], Revision: h.PreviousRevision}
	}
	Order(hosts)
	start, verdict := Next(hosts, d.MinHealthy)
	switch {
	case len(start) > 0:
		return e.startBatch(ctx, r, hosts, start)
	case verdict == Succeed:
		return e.finish(ctx, r, api.DeploySucceeded, "")
	case verdict == Fail:
		return e.finish(ctx, r, api.DeployFailed, failReason(*d))
	}
	return nil
}

// failReason says why a deployment failed.
func failReason(d api.Deployment) string {
	var failed []string
	pending := 0
	for _, h := range d.Hosts {
		switch h.State {
		case api.HostDeployFailed:
			msg := h.HostName
			if h.Error != "" {
				msg += " (" + h.Error + ")"
			}
			failed = append(failed, msg)
		case api.HostDeployPending:
			pending++
		}
	}
	msg := fmt.Sprintf("%d host(s) failed: %s", len(failed), strings.Join(failed, "; "))
	if pending > 0 {
		msg += fmt.Sprintf("; %d host(s) not deployed: the minimum of %d healthy hosts would not hold", pending, d.MinHealthy)
	} else {
		msg += fmt.Sprintf("; fewer than the minimum of %d healthy hosts, or no host, succeeded", d.MinHealthy)
	}
	return msg
}

func planStatus(s string) HostStatus {
	switch s {
	case api.HostDeployInProgress:
		return InProgress
	case api.HostDeploySucceeded:
		return Succeeded
	case api.HostDeployFailed:
		return Failed
	case api.HostDeploySkipped:
		return Skipped
	}
	return Pending
}

// collect makes sure every in-progress batch has its job, and takes the
// results of the hosts whose step is over.
func (e *Engine) collect(ctx context.Context, r *run) error {
	d := &r.d
	batches := map[int][]int{} // batch -> host indexes in progress
	for i, h := range d.Hosts {
		if h.State == api.HostDeployInProgress {
			batches[h.Batch] = append(batches[h.Batch], i)
		}
	}
	var ups []store.DeploymentHostUpdate
	for b, idx := range batches {
		job, err := e.ensureJob(ctx, r, b, idx)
		if err != nil {
			return err
		}
		execs := map[string]api.Execution{}
		for _, x := range job.Executions {
			execs[x.ID] = x
		}
		for _, i := range idx {
			h := d.Hosts[i]
			x, ok := execs[execID(d.ID, h.HostID)]
			if !ok || !api.ExecDone(x.State) {
				continue
			}
			ups = append(ups, hostResult(d.ID, h, x, e.now().UTC()))
		}
	}
	if len(ups) == 0 {
		return nil
	}
	if err := e.st.UpdateDeploymentHosts(ctx, ups); err != nil {
		return fmt.Errorf("store host results: %w", err)
	}
	e.applyHosts(r, ups)
	return nil
}

// hostResult turns a finished execution into the host's final update.
func hostResult(depID string, h api.DeploymentHost, x api.Execution, now time.Time) store.DeploymentHostUpdate {
	u := store.DeploymentHostUpdate{DeploymentID: depID, HostID: h.HostID, State: api.HostDeployFailed, FinishedAt: x.FinishedAt, Error: x.Error}
	if u.FinishedAt == nil {
		u.FinishedAt = &now
	}
	var res protocol.DeployResult
	if len(x.Result) > 0 {
		if err := json.Unmarshal(x.Result, &res); err != nil {
			u.Error = "unreadable result from the agent: " + err.Error()
		}
		u.Events = res.Events
		if n := len(res.Events); n > 0 {
			u.Event = res.Events[n-1].Name
			if res.FailedEvent != "" {
				u.Event = res.FailedEvent
			}
		}
	}
	if x.State == api.ExecSucceeded && res.Succeeded {
		u.State, u.Error = api.HostDeploySucceeded, ""
	}
	if u.State == api.HostDeployFailed && u.Error == "" {
		u.Error = "the host's step ended " + x.State
	}
	if x.State != api.ExecSucceeded && x.State != api.ExecFailed {
		u.Error = x.State + ": " + u.Error
	}
	return u
}

// ensureJob creates (or finds) the job of a batch.
func (e *Engine) ensureJob(ctx context.Context, r *run, batch int, idx []int) (api.Job, error) {
	d := &r.d
	id := batchJobID(d.ID, batch)
	if r.jobs[batch] {
		return e.st.GetJob(ctx, id)
	}
	hosts := make([]api.DeploymentHost, 0, len(idx))
	for _, i := range idx {
		hosts = append(hosts, d.Hosts[i])
	}
	stored, err := e.deployJob(ctx, r, id, fmt.Sprintf("deploy %s %s to %s/%s (batch %d)", d.App, d.Revision, d.App, d.Group, batch), hosts, execID,
		func(h api.DeploymentHost) protocol.DeployCommand {
			return protocol.DeployCommand{Digest: r.rev.Digest, Size: r.rev.Size, BundlePath: e.path(h.HostID, r.rev.Digest), HealthCheck: r.group.HealthCheck}
		})
	if err != nil {
		return api.Job{}, fmt.Errorf("batch %d job: %w", batch, err)
	}
	r.jobs[batch] = true
	return stored, nil
}

// deployJob creates (or finds: the fleet keeps a job by its id) the
// internal job id that sends each of hosts its deploy command: cmdOf's,
// completed with the run's deployment and load balancer. execOf names
// each host's execution.
func (e *Engine) deployJob(ctx context.Context, r *run, id, script string, hosts []api.DeploymentHost, execOf func(depID, hostID string) string,
	cmdOf func(api.DeploymentHost) protocol.DeployCommand) (api.Job, error) {
	d := &r.d
	var execs []api.Execution
	for _, h := range hosts {
		cmd := cmdOf(h)
		cmd.JobID, cmd.DeploymentID, cmd.Application, cmd.GroupName, cmd.GroupID = id, d.ID, d.App, d.Group, d.GroupID
		cmd.Revision, cmd.OutputCap = d.Revision, e.cfg.OutputCap
		if lb := r.group.LoadBalancer; lb != nil {
			cmd.Traffic, cmd.TrafficTimeoutMillis = true, trafficWait(*lb).Milliseconds()
		}
		payload, err := json.Marshal(cmd)
		if err != nil {
			return api.Job{}, err
		}
		execs = append(execs, api.Execution{ID: execOf(d.ID, h.HostID), HostID: h.HostID, HostName: h.HostName, Payload: payload})
	}
	return e.fl.CreateInternalJob(ctx, api.Job{ID: id, Kind: api.JobKindDeploy, Selector: r.group.Selector, Script: script}, execs)
}

// startBatch records the next batch, then dispatches it.
func (e *Engine) startBatch(ctx context.Context, r *run, hosts []PlanHost, start []int) error {
	d := &r.d
	batch := d.Batch + 1
	now := e.now().UTC()
	var ups []store.DeploymentHostUpdate
	for _, i := range start {
		ups = append(ups, store.DeploymentHostUpdate{DeploymentID: d.ID, HostID: hosts[i].ID, State: api.HostDeployInProgress, Batch: batch, StartedAt: &now})
	}
	if err := e.st.UpdateDeploymentHosts(ctx, ups); err != nil {
		return fmt.Errorf("store batch %d: %w", batch, err)
	}
	e.applyHosts(r, ups)
	if err := e.st.UpdateDeployment(ctx, store.DeploymentUpdate{ID: d.ID, Batch: &batch}); err != nil {
		return fmt.Errorf("store batch %d: %w", batch, err)
	}
	e.mu.Lock()
	d.Batch = batch
	e.mu.Unlock()
	e.log.Info("deployment batch", "deployment", d.ID, "batch", batch, "hosts", len(start))
	e.publishDeployment(r)
	var idx []int
	for i, h := range d.Hosts {
		if h.State == api.HostDeployInProgress && h.Batch == batch {
			idx = append(idx, i)
		}
	}
	_, err := e.ensureJob(ctx, r, batch, idx)
	return err
}

// applyHosts mirrors stored host updates in memory and publishes them.
func (e *Engine) applyHosts(r *run, ups []store.DeploymentHostUpdate) {
	index := map[string]int{}
	for i, h := range r.d.Hosts {
		index[h.HostID] = i
	}
	var evs []api.DeploymentEvent
	e.mu.Lock()
	for _, u := range ups {
		i, ok := index[u.HostID]
		if !ok {
			continue
		}
		h := &r.d.Hosts[i]
		if finalHost(h.State) {
			continue
		}
		if u.State != "" {
			h.State = u.State
		}
		if u.Batch != 0 {
			h.Batch = u.Batch
		}
		if u.Event != "" {
			h.Event = u.Event
		}
		if u.Error != "" {
			h.Error = u.Error
		}
		if u.StartedAt != nil {
			h.StartedAt = u.StartedAt
		}
		if u.FinishedAt != nil {
			h.FinishedAt = u.FinishedAt
		}
		if u.Events != nil {
			h.Events = u.Events
		}
		if finalHost(h.State) {
			delete(e.progress, execID(r.d.ID, h.HostID))
		}
		c := *h
		evs = append(evs, api.DeploymentEvent{Type: "host", Host: &c})
	}
	e.mu.Unlock()
	e.watchers.Publish(r.d.ID, evs...)
}

func finalHost(s string) bool {
	return s == api.HostDeploySucceeded || s == api.HostDeployFailed || s == api.HostDeploySkipped
}

// cancelRunning asks the agents of in-progress hosts to kill their hooks.
func (e *Engine) cancelRunning(r *run) {
	now := e.now().UTC()
	for _, h := range r.d.Hosts {
		if h.State != api.HostDeployInProgress {
			continue
		}
		id := execID(r.d.ID, h.HostID)
		c := protocol.Command{ID: ids.New("c"), HostID: h.HostID, Kind: protocol.CmdCancel, IssuedAt: now, ExpiresAt: now.Add(time.Minute),
			Cancel: &protocol.CancelCommand{ExecID: id}}
		if err := e.fl.Send(c); err != nil {
			e.log.Warn("send cancel", "deployment", r.d.ID, "host", h.HostName, "err", err)
		}
	}
	r.cancels = true
}

// finish ends a deployment: pending hosts are skipped, the final state is
// stored (with the id of its rollback, if one is due), and the rollback is
// created.
func (e *Engine) finish(ctx context.Context, r *run, state, reason string) error {
	d := &r.d
	now := e.now().UTC()
	var ups []store.DeploymentHostUpdate
	for _, h := range d.Hosts {
		if h.State == api.HostDeployPending {
			ups = append(ups, store.DeploymentHostUpdate{DeploymentID: d.ID, HostID: h.HostID, State: api.HostDeploySkipped,
				Error: "not deployed: the deployment ended first", FinishedAt: &now})
		}
	}
	if len(ups) > 0 {
		if err := e.st.UpdateDeploymentHosts(ctx, ups); err != nil {
			return err
		}
		e.applyHosts(r, ups)
	}
	var rollback *api.Deployment
	if state != api.DeploySucceeded {
		rb, why := e.rollbackFor(r)
		if rb != nil {
			rollback = rb
			reason += "; rolling back to " + rb.Revision + " (" + rb.ID + ")"
		} else if why != "" {
			reason += "; " + why
		}
	}
	u := store.DeploymentUpdate{ID: d.ID, State: &state, FinishedAt: &now, Traffic: e.finalTraffic(r, state)}
	if reason != "" {
		u.Error = &reason
	}
	if rollback != nil {
		u.RolledBackBy = &rollback.ID
	}
	if err := e.st.UpdateDeployment(ctx, u); err != nil {
		return fmt.Errorf("store final state: %w", err)
	}
	e.mu.Lock()
	d.State, d.FinishedAt, d.Error = state, &now, reason
	if rollback != nil {
		d.RolledBackBy = rollback.ID
	}
	delete(e.active, d.ID)
	for _, h := range d.Hosts {
		delete(e.byExec, execID(d.ID, h.HostID))
		delete(e.progress, execID(d.ID, h.HostID))
	}
	if d.Traffic != nil {
		for _, h := range d.Traffic.OriginalHosts {
			delete(e.byExec, origExecID(d.ID, h.HostID))
		}
	}
	e.mu.Unlock()
	e.markAttempts(*d)
	e.log.Info("deployment finished", "deployment", d.ID, "state", state, "error", reason)
	full, err := e.st.GetDeployment(ctx, d.ID)
	if err != nil {
		full = *d
	}
	e.watchers.Publish(d.ID, api.DeploymentEvent{Type: "done", Deployment: &full})
	e.watchers.Close(d.ID)
	if rollback != nil {
		if err := e.createRollback(ctx, *d, rollback.ID); err != nil {
			e.log.Error("start rollback (will retry at start-up)", "deployment", d.ID, "err", err)
		}
	}
	return nil
}

// rollbackFor decides whether a failed or stopped deployment is rolled back:
// automatic rollback is on, it is a plain deployment, the group has a good
// revision other than this one, and some host was changed.
func (e *Engine) rollbackFor(r *run) (*api.Deployment, string) {
	d := r.d
	switch {
	case d.Kind != KindDeploy:
		return nil, ""
	case !r.group.AutoRollback:
		return nil, "automatic rollback is off for this group"
	case r.group.Revision == "":
		return nil, "no rollback: the group has no earlier successful revision"
	case r.group.Revision == d.Revision:
		return nil, "no rollback: the group's last good revision is this one"
	case d.Strategy == api.StrategyBlueGreen:
		return nil, "no redeployment: the original hosts of a blue/green deployment were not changed"
	}
	if len(changedHosts(d)) == 0 {
		return nil, "no rollback: no host was changed"
	}
	return &api.Deployment{ID: ids.New("d"), Revision: r.group.Revision}, ""
}

// changedHosts are the hosts a deployment started on.
func changedHosts(d api.Deployment) []string {
	var out []string
	for _, h := range d.Hosts {
		if h.State == api.HostDeploySucceeded || h.State == api.HostDeployFailed {
			out = append(out, h.HostID)
		}
	}
	return out
}

// createRollback starts the rollback deployment of failed (already
// stored with its RolledBackBy id).
func (e *Engine) createRollback(ctx context.Context, failed api.Deployment, id string) error {
	g, err := e.st.GetGroup(ctx, failed.App, failed.Group)
	if err != nil {
		return err
	}
	_, err = e.create(ctx, newDeployment{id: id, app: failed.App, group: g, revision: g.Revision, config: failed.Config,
		kind: KindRollback, rollbackOf: failed.ID, hosts: changedHosts(failed),
		description: "automatic rollback of " + failed.ID})
	if errors.Is(err, store.ErrConflict) {
		return nil // created before a crash
	}
	return err
}

// recoverRollbacks creates rollbacks decided before a crash but not
// created.
func (e *Engine) recoverRollbacks(ctx context.Context) error {
	deps, err := e.st.ListDeployments(ctx, "", 200)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if d.RolledBackBy == "" {
			continue
		}
		if _, err := e.st.GetDeployment(ctx, d.RolledBackBy); !errors.Is(err, store.ErrNotFound) {
			continue
		}
		full, err := e.st.GetDeployment(ctx, d.ID)
		if err != nil {
			return err
		}
		e.log.Info("starting a rollback decided before a restart", "deployment", d.ID, "rollback", d.RolledBackBy)
		if err := e.createRollback(ctx, full, d.RolledBackBy); err != nil {
			return err
		}
	}
	return nil
}

// Deployment kinds.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	KindCatchUp  = "catch-up"
)

// newDeployment is what create needs.
type newDeployment struct {
	id, app     string
	group       api.DeploymentGroup
	revision    string
	config      string
	kind        string
	rollbackOf  string
	description string
	hosts       []string // host ids; nil = every host matching the group's selector
	// provision: no host yet, an environment makes them (fleets.go).
	provision bool
	// strategy and traffic are a canary or blue/green deployment's
	// (canary.go, bluegreen.go); "" and nil for in place.
	strategy string
	traffic  *api.DeployTraffic
}

// create stores a deployment and starts it.
func (e *Engine) create(ctx context.Context, n newDeployment) (api.Deployment, error) {
	rev, err := e.st.GetRevision(ctx, n.app, n.revision)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Deployment{}, fmt.Errorf("revision %q of app %q %w. List them with: gantry revisions %s", n.revision, n.app, store.ErrNotFound, n.app)
		}
		return api.Deployment{}, fmt.Errorf("revision %s: %w", n.revision, err)
	}
	cfg, err := ParseConfig(n.config)
	if err != nil {
		return api.Deployment{}, err
	}
	sel, err := selector.Parse(n.group.Selector)
	if err != nil {
		return api.Deployment{}, fmt.Errorf("%w: group selector: %v", ErrInvalid, err)
	}
	all, err := e.st.ListHosts(ctx, false)
	if err != nil {
		return api.Deployment{}, err
	}
	want := map[string]bool{}
	for _, id := range n.hosts {
		want[id] = true
	}
	revs, err := e.st.HostRevisions(ctx, n.group.ID)
	if err != nil {
		return api.Deployment{}, err
	}
	var hosts []api.DeploymentHost
	for _, h := range all {
		if n.hosts != nil && !want[h.ID] || n.hosts == nil && !sel.Matches(h.Labels) {
			continue
		}
		hosts = append(hosts, api.DeploymentHost{HostID: h.ID, HostName: h.Name, State: api.HostDeployPending, PreviousRevision: revs[h.ID].Revision})
	}
	if len(hosts) == 0 && !n.provision {
		return api.Deployment{}, fmt.Errorf("%w: no host matches the selector %q of group %q (hosts enrolled: %d). List them with their labels: gantry hosts ls", ErrNothingToDeploy, n.group.Selector, n.group.Name, len(all))
	}
	if err := checkStrategyHosts(n, len(hosts)); err != nil {
		return api.Deployment{}, err
	}
	if err := cfg.Check(len(hosts)); err != nil && !n.provision {
		if n.kind != KindRollback {
			return api.Deployment{}, err
		}
		// A rollback covers only the hosts that changed: a minimum sized
		// for the whole group may not fit them.
		cfg = OneAtATime
	}
	if n.id == "" {
		n.id = ids.New("d")
	}
	d := api.Deployment{ID: n.id, App: n.app, Group: n.group.Name, GroupID: n.group.ID, Revision: n.revision,
		Config: cfg.String(), MinHealthy: cfg.MinHealthy(len(hosts)), State: api.DeployRunning, Kind: n.kind,
		RollbackOf: n.rollbackOf, Description: n.description, CreatedAt: e.now().UTC(), Strategy: api.StrategyInPlace}
	if n.strategy != "" {
		d.Strategy, d.Traffic = n.strategy, n.traffic
	}
	if err := e.st.CreateDeployment(ctx, d, hosts); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if busy := e.activeIn(n.group.ID); busy != "" && busy != n.id {
				return api.Deployment{}, fmt.Errorf("%w (%s): wait for it, or stop it with `gantry deployments stop %s`", ErrBusy, busy, busy)
			}
		}
		return api.Deployment{}, err
	}
	d.Hosts = hosts
	if err := e.load(ctx, d); err != nil {
		return api.Deployment{}, err
	}
	e.log.Info("deployment created", "deployment", d.ID, "app", d.App, "group", d.Group, "revision", d.Revision, "kind", d.Kind,
		"hosts", len(hosts), "config", d.Config, "min_healthy", d.MinHealthy, "revision_digest", rev.Digest)
	e.poke()
	d.Counts = map[string]int{api.HostDeployPending: len(hosts)}
	return d, nil
}

// activeIn returns the id of the group's active deployment, if any.
func (e *Engine) activeIn(groupID string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, r := range e.active {
		if r.d.GroupID == groupID {
			return id
		}
	}
	return ""
}

// HostBusy reports whether a host has a part in a deployment that is not
// final (pending or in progress): scale-in leaves such hosts alone.
func (e *Engine) HostBusy(hostID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.active {
		for _, h := range r.d.Hosts {
			if h.HostID == hostID && !finalHost(h.State) {
				return true
			}
		}
	}
	return false
}

// CatchUpSoon asks for a catch-up pass now rather than at the next period:
// a host has just come to match a group (the environments engine labels a
// machine once its setup is done).
func (e *Engine) CatchUpSoon() {
	e.catchUpNow.Store(true)
	e.poke()
}

// Active returns the id of the group's deployment that is not final, or "".
func (e *Engine) Active(groupID string) string { return e.activeIn(groupID) }
