package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// lifecycle runs the machines' lifecycle events (OpsWorks semantics):
// setup once on a new machine after its agent joins, then the group's
// deployment (the deployment engine, through a deployment group that
// selects set-up machines), and configure on every machine of the
// environment whenever a machine enters or leaves online, a burst of such
// changes coalesced into one run, one run at a time per environment (the
// next starts once the one going has ended). Shutdown runs before a
// machine is destroyed (the applier calls it), after configure ran on the
// machines that stay without it (the applier marks it leaving and calls
// configureNow).
//
// What it acts on is derived from durable records, so a restarted server
// goes on where it was: a host's setup is the job "su-<host>" (created at
// most once, the agent starts it at most once), setup done is the host
// label gantry.setup=done, deployed is the host's revision in the
// deployment group, and the last configure's membership is in the
// environment's recorded runs.
type lifecycle struct {
	e *Engine

	mu       sync.Mutex
	byName   map[string]store.HostRecord // live hosts, by name (last tick)
	runs     map[string][]api.LifecycleRun
	loaded   map[string]bool
	members  map[string]string    // env -> membership signature configured last
	changed  map[string]time.Time // env -> when membership changed, pending configure
	deployed map[string]bool      // group id/revision deployments started
	seq      map[string]int
	// leaving are the machines an apply is removing, by env and provider
	// id: they show as PhaseShutdown, so that membership and the
	// configure context leave them out before their shutdown runs.
	leaving map[string]map[string]bool
	// lb is the load balancers' controller memory (lb.go).
	lb *lbState
}

func newLifecycle(e *Engine) *lifecycle {
	return &lifecycle{e: e, byName: map[string]store.HostRecord{}, runs: map[string][]api.LifecycleRun{}, loaded: map[string]bool{},
		members: map[string]string{}, changed: map[string]time.Time{}, deployed: map[string]bool{}, seq: map[string]int{},
		leaving: map[string]map[string]bool{}, lb: newLBState()}
}

// maxRuns is how many lifecycle runs an environment keeps.
const maxRuns = 200

// Start runs the lifecycle controller until ctx ends.
func (e *Engine) Start(ctx context.Context) {
	go e.reattach(ctx)
	go func() {
		t := time.NewTicker(e.cfg.Tick)
		defer t.Stop()
		for {
			if err := e.lc.tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("environment lifecycle", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-e.kick:
			}
		}
	}()
}

// reattach reads every recorded machine once at start, so that providers
// re-establish what lives in the server process (the docker provider's
// forwarders that containers reach the server through).
func (e *Engine) reattach(ctx context.Context) {
	recs, err := e.st.ListEnvironments(ctx)
	if err != nil {
		e.log.Error("reattach machines", "err", err)
		return
	}
	for _, rec := range recs {
		st, err := decodeState(rec.Name, rec.State)
		if err != nil || len(st.allMachines()) == 0 {
			continue
		}
		if rec, err = e.st.GetEnvironment(ctx, rec.Name); err != nil {
			continue
		}
		var vars []string
		_ = json.Unmarshal(rec.Vars, &vars)
		def, err := e.loadDefinition(rec.Name, rec.Definition, vars)
		if err != nil {
			def = nil // providers of the default configuration
		}
		for _, r := range st.allMachines() {
			p, err := e.stateProvider(def, r.Provider)
			if err != nil {
				continue
			}
			if _, _, err := p.ReadMachine(ctx, r.ID); err != nil {
				e.log.Warn("reattach machine", "env", rec.Name, "machine", r.Address, "err", err)
			}
		}
	}
}

func (l *lifecycle) hostID(name string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.byName[name]
	return h.ID, ok
}

// machineView is one machine's derived lifecycle state.
type machineView struct {
	r     *Resource
	host  store.HostRecord
	found bool
	phase string
	err   string
	fail  *api.EnvFailure // why it failed (phase failed)
	rev   string
}

// tick looks at every environment once.
func (l *lifecycle) tick(ctx context.Context) error {
	envs, err := l.e.st.ListEnvironments(ctx)
	if err != nil {
		return err
	}
	hosts, err := l.e.st.ListHosts(ctx, false)
	if err != nil {
		return err
	}
	byName := make(map[string]store.HostRecord, len(hosts))
	for _, h := range hosts {
		byName[h.Name] = h
	}
	l.mu.Lock()
	l.byName = byName
	l.mu.Unlock()
	var errs []error
	for _, rec := range envs {
		st, err := decodeState(rec.Name, rec.State)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.tickEnv(ctx, rec, st, byName); err != nil {
			errs = append(errs, fmt.Errorf("environment %s: %w", rec.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (l *lifecycle) tickEnv(ctx context.Context, rec store.Environment, st *State, byName map[string]store.HostRecord) error {
	env := rec.Name
	l.loadRuns(rec)
	views, err := l.views(ctx, st, byName)
	if err != nil {
		return err
	}
	for _, v := range views {
		if err := l.advance(ctx, env, st, v, rec.Serial); err != nil {
			l.e.log.Error("machine lifecycle", "env", env, "machine", v.r.Name, "err", err)
		}
	}
	if err := l.reconcileLBTargets(ctx, st); err != nil {
		l.e.log.Error("environment load balancer", "env", env, "err", err)
	}
	if err := l.ensureDeployments(ctx, st, views); err != nil {
		l.e.log.Error("environment deployment", "env", env, "err", err)
	}
	l.fleetTick(ctx, st)
	l.balance(ctx, st, views)
	if err := l.updateRuns(ctx, env); err != nil {
		return err
	}
	return l.maybeConfigure(ctx, env, st, views, rec.Serial)
}

// views derives every machine's phase.
func (l *lifecycle) views(ctx context.Context, st *State, byName map[string]store.HostRecord) ([]machineView, error) {
	revs := map[string]map[string]store.HostRevision{}
	groups := map[string]api.DeploymentGroup{}
	failedBy := map[string]map[string]*api.EnvFailure{} // group id/revision -> failed hosts
	wanted := map[string]string{}                       // app/group -> the revision its machines should run
	l.mu.Lock()
	leaving := maps.Clone(l.leaving[st.Env])
	l.mu.Unlock()
	var out []machineView
	for _, r := range st.allMachines() {
		v := machineView{r: r}
		v.host, v.found = ownedHost(byName, st.Env, r) // a host of its name that is not its own is not the machine
		var rec *GroupRecord
		if g := st.Resources[groupAddress(r)]; g != nil {
			rec = g.Spec
		}
		switch {
		case leaving[r.ID]:
			v.phase = api.PhaseShutdown
		case !v.found:
			v.phase = api.PhaseJoining
		case v.host.Labels[LabelSetup] != "done":
			v.phase = api.PhaseSetup
			if rec != nil && rec.Setup != "" {
				if j, failed := l.setupFailed(ctx, v.host.ID); failed {
					v.phase, v.err = api.PhaseFailed, "setup failed: "+jobFailure(j)
					if fs := jobFailures(j, "setup", r.Group); len(fs) > 0 {
						v.fail = &fs[0]
					}
				}
			}
		case rec != nil && rec.App != "":
			key := rec.App + "/" + rec.DeployGroup
			g, ok := groups[key]
			if !ok {
				var err error
				if g, err = l.e.st.GetGroup(ctx, rec.App, rec.DeployGroup); err != nil && !errors.Is(err, store.ErrNotFound) {
					return nil, err
				}
				groups[key] = g
			}
			if g.ID == "" {
				v.phase = api.PhaseDeploying
				break
			}
			hr, ok := revs[g.ID]
			if !ok {
				var err error
				if hr, err = l.e.st.HostRevisions(ctx, g.ID); err != nil {
					return nil, err
				}
				revs[g.ID] = hr
			}
			v.rev = hr[v.host.ID].Revision
			want, ok := wanted[key]
			if !ok {
				want = l.wantedRevision(ctx, g, rec)
				wanted[key] = want
			}
			if v.rev == want {
				v.phase = l.onlineOrNot(v.host.ID)
			} else {
				v.phase = api.PhaseDeploying
				if l.e.dep.Active(g.ID) != "" {
					break
				}
				fk := g.ID + "/" + want
				if _, ok := failedBy[fk]; !ok {
					failedBy[fk] = l.failedHosts(ctx, g, want)
				}
				if f := failedBy[fk][v.host.ID]; f != nil {
					fail := *f
					fail.Group, fail.Machine = r.Group, r.Name
					v.phase, v.err, v.fail = api.PhaseFailed, "deployment of "+want+" failed on this machine ("+f.RunID+"): "+f.Error, &fail
				}
			}
		default:
			v.phase = l.onlineOrNot(v.host.ID)
		}
		out = append(out, v)
	}
	return out, nil
}

// setupFailed returns a host's setup job when it ended without success.
func (l *lifecycle) setupFailed(ctx context.Context, hostID string) (api.Job, bool) {
	j, err := l.e.st.GetJob(ctx, setupJobID(hostID))
	return j, err == nil && j.State == api.JobFinished && !jobSucceeded(j)
}

func (l *lifecycle) onlineOrNot(hostID string) string {
	if l.e.fl.HostOnline(hostID) {
		return api.PhaseOnline
	}
	return api.PhaseOffline
}

// failedHosts returns the hosts on which the group's latest finished
// deployment of rev (the newest one that had them) failed, with why (the
// hook that failed, its error and log). Views read it once per group and
// tick, not once per machine.
func (l *lifecycle) failedHosts(ctx context.Context, g api.DeploymentGroup, rev string) map[string]*api.EnvFailure {
	failed := map[string]*api.EnvFailure{}
	deps, err := l.e.st.ListDeployments(ctx, g.App, 50)
	if err != nil {
		return failed
	}
	decided := map[string]bool{}
	for _, d := range deps { // newest first
		if d.GroupID != g.ID || d.Revision != rev || !api.DeployDone(d.State) {
			continue
		}
		full, err := l.e.st.GetDeployment(ctx, d.ID)
		if err != nil {
			return failed
		}
		for _, h := range full.Hosts {
			if !decided[h.HostID] {
				decided[h.HostID] = true
				if h.State == api.HostDeployFailed {
					failed[h.HostID] = deployFailure(full, h)
				}
			}
		}
	}
	return failed
}

// deployFailure says why a deployment failed on a host: its failed hook
// with the hook's error and log tail, else the host's error.
func deployFailure(d api.Deployment, h api.DeploymentHost) *api.EnvFailure {
	f := &api.EnvFailure{Event: "deploy", Machine: h.HostName, RunID: d.ID, Error: h.Error}
	for _, ev := range h.Events {
		if ev.State != "failed" {
			continue
		}
		code := ev.ExitCode
		f.Step, f.ExitCode, f.LogTail = ev.Name, &code, strings.TrimRight(ev.LogTail, "\n")
		msg := fmt.Sprintf("%s failed (exit %d)", ev.Name, ev.ExitCode)
		if ev.Error != "" {
			msg += ": " + ev.Error
		}
		if h.Error != "" && !strings.Contains(h.Error, ev.Error) {
			msg += "; " + h.Error
		}
		f.Error = msg
	}
	if f.Error == "" {
		f.Error = "failed (gantry deployments show " + d.ID + ")"
	}
	return f
}

// advance starts a machine's setup or marks it done.
func (l *lifecycle) advance(ctx context.Context, env string, st *State, v machineView, serial int64) error {
	if !v.found || v.phase != api.PhaseSetup {
		return nil
	}
	var rec *GroupRecord
	if g := st.Resources[groupAddress(v.r)]; g != nil {
		rec = g.Spec
	}
	if rec == nil {
		return nil
	}
	done := func() error {
		labels := map[string]string{}
		for k, val := range v.host.Labels {
			labels[k] = val
		}
		labels[LabelSetup] = "done"
		if err := l.e.st.SetHostLabels(ctx, v.host.ID, labels); err != nil {
			return err
		}
		l.e.dep.CatchUpSoon()
		l.e.Kick()
		return nil
	}
	if rec.Setup == "" {
		return done()
	}
	id := setupJobID(v.host.ID)
	j, err := l.e.st.GetJob(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !l.e.fl.HostOnline(v.host.ID) {
			return nil
		}
		ctxJSON, envv := l.context(env, st, "setup", v.r, nil)
		if _, err := l.e.runJob(ctx, id, rec.Setup, rec.SetupTimeout, []target{{v.host, envv, ctxJSON}}); err != nil {
			return err
		}
		l.addRun(ctx, env, api.LifecycleRun{ID: id, Event: "setup", State: "running", Hosts: []string{v.r.Name}, Group: v.r.Group, Serial: serial, CreatedAt: l.e.now().UTC()})
		return nil
	case err != nil:
		return err
	case j.State == api.JobFinished && jobSucceeded(j):
		return done()
	}
	return nil
}

// ensureDeployments starts a group's first (or changed) revision's
// deployment once one of its machines is set up; later machines get it
// from the deployment engine's catch-up.
func (l *lifecycle) ensureDeployments(ctx context.Context, st *State, views []machineView) error {
	ready := map[string]int{}   // group address → its set-up machines
	pending := map[string]int{} // group address → machines still to be set up
	for _, v := range views {
		switch {
		case v.found && v.host.Labels[LabelSetup] == "done":
			ready[groupAddress(v.r)]++
		case v.phase != api.PhaseFailed:
			pending[groupAddress(v.r)]++
		}
	}
	var errs []error
	for addr := range ready {
		g := st.Resources[addr]
		if g == nil || g.Spec == nil || g.Spec.App == "" {
			continue
		}
		rec := g.Spec
		dg, err := l.e.st.GetGroup(ctx, rec.App, rec.DeployGroup)
		if err != nil {
			return err
		}
		key := dg.ID + "/" + rec.Revision
		l.mu.Lock()
		started := l.deployed[key]
		l.mu.Unlock()
		if dg.Revision == rec.Revision || started || l.e.dep.Active(dg.ID) != "" {
			continue
		}
		if l.wantedRevision(ctx, dg, rec) != rec.Revision {
			continue // a deployment by hand since the apply wins
		}
		if last := l.lastDeployment(ctx, dg); last != nil && last.Revision == rec.Revision {
			l.mu.Lock()
			l.deployed[key] = true // tried already (before a restart): no retry loop
			l.mu.Unlock()
			continue
		}
		req := api.DeployRequest{Revision: rec.Revision, Description: "environment " + st.Env, Strategy: rec.Strategy, Canary: rec.Canary, BlueGreen: rec.BlueGreen}
		if dg.Revision == "" {
			// The group's first revision: no stable machines to compare a
			// canary with, so it goes in place.
			req.Strategy, req.Canary, req.BlueGreen = "", nil, nil
		}
		d, err := l.e.dep.Deploy(ctx, rec.App, rec.DeployGroup, req)
		if err != nil && pending[addr] > 0 {
			// E.g. HalfAtATime refuses a group of one host: more of the
			// group's machines are being set up, so try again with them.
			l.e.log.Debug("environment deployment waits for more machines", "env", st.Env, "group", g.Group, "ready", ready[addr], "pending", pending[addr], "err", err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("deploy %s to %s: %w", rec.Revision, rec.DeployGroup, err))
			continue
		}
		l.mu.Lock()
		l.deployed[key] = true
		l.mu.Unlock()
		l.e.log.Info("environment deployment started", "env", st.Env, "group", g.Group, "deployment", d.ID, "revision", rec.Revision)
	}
	return errors.Join(errs...)
}

// wantedRevision is the revision a group's machines should run: the one
// the last apply set (rec.Revision), unless a deployment of another
// revision was made by hand since then (`gantry deploy`, a canary, a
// blue/green deployment; whether it succeeded, failed or was rolled back
// since): then the group's current revision, the last one that
// succeeded. The environment never deploys over such a deployment; the
// next apply that changes the definition's revision does.
//
// Every deployment since the apply counts, not only the last one: a
// failed canary's rollback (kind rollback) is the last, and the
// environment must not take it as a reason to redeploy the apply's
// revision over the hand deployment's.
func (l *lifecycle) wantedRevision(ctx context.Context, g api.DeploymentGroup, rec *GroupRecord) string {
	if g.Revision == "" {
		return rec.Revision
	}
	deps, err := l.e.st.ListDeployments(ctx, g.App, 200)
	if err != nil {
		return rec.Revision
	}
	for _, d := range deps { // newest first
		if !d.CreatedAt.After(rec.RevisionSetAt) {
			break
		}
		if d.GroupID == g.ID && d.Kind == "deploy" && d.Revision != rec.Revision && !strings.HasPrefix(d.Description, "environment ") {
			return g.Revision
		}
	}
	return rec.Revision
}

func (l *lifecycle) lastDeployment(ctx context.Context, g api.DeploymentGroup) *api.Deployment {
	deps, err := l.e.st.ListDeployments(ctx, g.App, 20)
	if err != nil {
		return nil
	}
	for _, d := range deps {
		if d.GroupID == g.ID && d.Kind != "catch-up" {
			return &d
		}
	}
	return nil
}

// membership is the signature of the online machines (names and host
// ids: a machine re-created under its name is a change) and their names.
func membership(views []machineView) (string, []string) {
	var names, sig []string
	for _, v := range views {
		if v.phase == api.PhaseOnline {
			names = append(names, v.r.Name)
			sig = append(sig, v.r.Name+"="+v.host.ID)
		}
	}
	sort.Strings(names)
	sort.Strings(sig)
	return strings.Join(sig, ","), names
}

// maybeConfigure fires configure once membership has settled.
func (l *lifecycle) maybeConfigure(ctx context.Context, env string, st *State, views []machineView, serial int64) error {
	sig, online := membership(views)
	now := l.e.now()
	l.mu.Lock()
	last, known := l.members[env]
	if !known {
		last = l.lastConfiguredLocked(env)
		l.members[env] = last
	}
	if sig == last {
		delete(l.changed, env)
		l.mu.Unlock()
		return nil
	}
	at, pending := l.changed[env]
	if !pending {
		l.changed[env] = now
		l.mu.Unlock()
		return nil
	}
	if now.Sub(at) < l.e.cfg.Debounce || l.configureBusyLocked(env, configureLimit(st)) {
		// Configure runs one at a time per environment: an older run that
		// ended after a newer one would leave the older membership in
		// place (a load balancer without the newest machines).
		l.mu.Unlock()
		return nil
	}
	delete(l.changed, env)
	l.members[env] = sig
	l.seq[env]++
	n := l.seq[env]
	l.mu.Unlock()
	_, err := l.configure(ctx, env, st, views, online, sig, n, serial)
	return err
}

// configure runs each group's configure script on its online machines
// and returns the ids of the jobs it started. A job it could not start is
// recorded as a failed run, so that the membership counts as configured
// (the next change runs configure again).
func (l *lifecycle) configure(ctx context.Context, env string, st *State, views []machineView, online []string, sig string, n int, serial int64) ([]string, error) {
	l.supersede(ctx, env)
	byGroup := map[string][]machineView{}
	for _, v := range views {
		if v.phase == api.PhaseOnline {
			byGroup[groupAddress(v.r)] = append(byGroup[groupAddress(v.r)], v)
		}
	}
	stamp := strconv.FormatInt(l.e.now().UnixNano(), 36)
	reason := "machines online: " + strings.Join(online, ", ")
	if len(online) == 0 {
		reason = "no machine online"
	}
	var ids []string
	recorded := false
	var errs []error
	for _, addr := range slices.Sorted(maps.Keys(byGroup)) {
		g := st.Resources[addr]
		if g == nil || g.Spec == nil || g.Spec.Configure == "" {
			continue
		}
		var ts []target
		var names []string
		for _, v := range byGroup[addr] {
			c, ev := l.context(env, st, "configure", v.r, views)
			ts = append(ts, target{v.host, ev, c})
			names = append(names, v.r.Name)
		}
		id := fmt.Sprintf("cf-%s-%s-%d-%s", env, stamp, n, g.Group)
		run := api.LifecycleRun{ID: id, Event: "configure", State: "running", Hosts: names, Online: online, Group: g.Group, Serial: serial,
			Signature: sig, Reason: reason, CreatedAt: l.e.now().UTC()}
		if _, err := l.e.runJob(ctx, id, g.Spec.Configure, g.Spec.ConfigureTimeout, ts); err != nil {
			errs = append(errs, err)
			run.State, run.Reason, run.EndedAt = "failed", err.Error(), ptrTime(l.e.now().UTC())
			for _, h := range names {
				run.Failures = append(run.Failures, api.EnvFailure{Event: "configure", Group: g.Group, Machine: h, RunID: id, Error: "not started: " + err.Error()})
			}
		} else {
			ids = append(ids, id)
		}
		recorded = true
		l.addRun(ctx, env, run)
	}
	if !recorded {
		// Nothing to run: remember the membership all the same.
		l.addRun(ctx, env, api.LifecycleRun{ID: fmt.Sprintf("cf-%s-%s-%d", env, stamp, n), Event: "configure", State: "succeeded", Online: online,
			Serial: serial, Signature: sig, Reason: "nothing to configure", CreatedAt: l.e.now().UTC(), EndedAt: ptrTime(l.e.now().UTC())})
	}
	return ids, errors.Join(errs...)
}

// leave marks machines (by provider id) as leaving the environment: from
// now on they show as PhaseShutdown and are out of the membership and of
// every script's context. unleave drops the marks (the apply is over).
func (l *lifecycle) leave(env string, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leaving[env] == nil {
		l.leaving[env] = map[string]bool{}
	}
	for _, id := range ids {
		l.leaving[env][id] = true
	}
}

func (l *lifecycle) unleave(env string, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		delete(l.leaving[env], id)
	}
	if len(l.leaving[env]) == 0 {
		delete(l.leaving, env)
	}
}

// configureNow runs configure at once (no debounce) if the membership of
// st differs from the one configured last, and waits for its jobs (each
// group's configure timeout plus a grace period). An apply calls it once
// leaving machines are marked, so that their peers stop using them before
// their shutdown runs. A failed configure is recorded (its run) and does
// not stop the caller; the error is for a job that could not be waited for.
func (l *lifecycle) configureNow(ctx context.Context, env string, st *State, serial int64) ([]string, error) {
	hosts, err := l.e.st.ListHosts(ctx, false)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]store.HostRecord, len(hosts))
	for _, h := range hosts {
		byName[h.Name] = h
	}
	views, err := l.views(ctx, st, byName)
	if err != nil {
		return nil, err
	}
	sig, online := membership(views)
	grace := configureLimit(st)
	// A configure still going ends first (one at a time per environment).
	for deadline := time.Now().Add(grace); ; {
		if err := l.updateRuns(ctx, env); err != nil {
			return nil, err
		}
		l.mu.Lock()
		busy := l.configureBusyLocked(env, grace)
		l.mu.Unlock()
		if !busy || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	l.mu.Lock()
	last, known := l.members[env]
	if !known {
		last = l.lastConfiguredLocked(env)
	}
	if sig == last {
		l.members[env] = last
		l.mu.Unlock()
		return nil, nil
	}
	l.members[env] = sig
	delete(l.changed, env)
	l.seq[env]++
	n := l.seq[env]
	l.mu.Unlock()
	ids, err := l.configure(ctx, env, st, views, online, sig, n, serial)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		j, err := l.e.waitJob(ctx, id, grace)
		l.finishRun(ctx, env, id, j)
		if err != nil {
			l.endRun(ctx, env, id, err.Error())
			errs = append(errs, err)
		}
	}
	return ids, errors.Join(errs...)
}

// progress says whether an environment's lifecycle work has settled:
// every machine online or failed, the membership online now configured
// (its configure run recorded), and no run still going (one that started
// more than limit before now is taken as hung, not going).
func progress(views []machineView, runs []api.LifecycleRun, limit time.Duration, now time.Time) *api.EnvProgress {
	var pending []string
	for _, v := range views {
		if v.phase != api.PhaseOnline && v.phase != api.PhaseFailed {
			pending = append(pending, fmt.Sprintf("%s (%s): %s", v.r.Address, v.r.Name, v.phase))
		}
	}
	if sig, _ := membership(views); sig != lastConfigured(runs) {
		pending = append(pending, "configure: the machines online changed; it runs once they settle")
	}
	for _, r := range runs {
		if (r.State == "running" || r.State == "superseded") && r.EndedAt == nil && r.Event != "setup" && now.Sub(r.CreatedAt) < limit {
			pending = append(pending, fmt.Sprintf("%s of group %s on %s (job %s): running", r.Event, r.Group, strings.Join(r.Hosts, ", "), r.ID))
		}
	}
	return &api.EnvProgress{Settled: len(pending) == 0, Pending: pending}
}

// shutdown runs a machine's shutdown script and waits for it (its timeout
// plus a grace period). A machine whose agent is offline is destroyed
// without it.
func (e *Engine) shutdown(ctx context.Context, env string, r *Resource, rec *GroupRecord) error {
	h, err := e.st.GetHostByName(ctx, r.Name)
	if err != nil || !owns(h, env, r.Address) {
		return fmt.Errorf("machine %s never joined: nothing to shut down", r.Name)
	}
	if !e.fl.HostOnline(h.ID) {
		return fmt.Errorf("machine %s is offline: shutdown skipped", r.Name)
	}
	st := newState(env)
	var serial int64
	if b, err := e.st.GetEnvironment(ctx, env); err == nil {
		serial = b.Serial
		if s, err := decodeState(env, b.State); err == nil {
			st = s
		}
	}
	c, ev := e.lc.context(env, st, "shutdown", r, nil)
	id := "sd-" + h.ID
	if _, err := e.runJob(ctx, id, rec.Shutdown, rec.ShutdownTimeout, []target{{h, ev, c}}); err != nil {
		return err
	}
	e.lc.addRun(ctx, env, api.LifecycleRun{ID: id, Event: "shutdown", State: "running", Hosts: []string{r.Name}, Group: r.Group, Serial: serial, CreatedAt: e.now().UTC()})
	j, err := e.waitJob(ctx, id, time.Duration(rec.ShutdownTimeout)*time.Second+30*time.Second)
	e.lc.finishRun(ctx, env, id, j)
	if err != nil {
		e.lc.endRun(ctx, env, id, err.Error())
		return err
	}
	if !jobSucceeded(j) {
		return fmt.Errorf("shutdown script failed on %s: %s", r.Name, jobFailure(j))
	}
	return nil
}

// context builds a lifecycle script's context (JSON at $GANTRY_CONTEXT)
// and environment. views, when given, decide which machines are online;
// otherwise the last computed phases are used.
func (l *lifecycle) context(env string, st *State, event string, self *Resource, views []machineView) (json.RawMessage, map[string]string) {
	if views == nil {
		l.mu.Lock()
		byName := l.byName
		l.mu.Unlock()
		vs, err := l.views(context.Background(), st, byName)
		if err == nil {
			views = vs
		}
	}
	type hostJSON struct {
		Name    string `json:"name"`
		Index   int    `json:"index"`
		Address string `json:"address"`
		ID      string `json:"id"`
	}
	groups := map[string]map[string][]hostJSON{}
	addrs := map[string][]string{}
	for _, r := range st.Resources {
		if r.Kind == KindGroup {
			groups[r.Group] = map[string][]hostJSON{"hosts": {}}
			addrs[r.Group] = nil
		}
	}
	for _, v := range views {
		if v.phase != api.PhaseOnline {
			continue
		}
		g := v.r.Group
		if groups[g] == nil {
			groups[g] = map[string][]hostJSON{"hosts": {}}
		}
		groups[g]["hosts"] = append(groups[g]["hosts"], hostJSON{v.r.Name, v.r.Index, v.r.IP, v.host.ID})
		addrs[g] = append(addrs[g], v.r.IP)
	}
	outs := map[string]json.RawMessage{}
	for k, v := range st.Outputs {
		outs[k] = v
	}
	doc := map[string]any{
		"env":     env,
		"event":   event,
		"host":    map[string]any{"name": self.Name, "group": self.Group, "index": self.Index, "address": self.IP},
		"groups":  groups,
		"outputs": outs,
	}
	b, _ := json.Marshal(doc)
	ev := map[string]string{"GANTRY_ENV": env, "GANTRY_EVENT": event, "GANTRY_GROUP": self.Group}
	for g, as := range addrs {
		ev["GANTRY_GROUP_"+envKey(g)+"_ADDRESSES"] = strings.Join(as, " ")
	}
	return b, ev
}

// envKey upper-cases a group name for an environment variable name.
func envKey(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// failedMachines returns the machines whose setup or deployment failed,
// by address, with the reason: the next apply replaces them.
func (l *lifecycle) failedMachines(ctx context.Context, st *State) map[string]string {
	l.mu.Lock()
	byName := l.byName
	l.mu.Unlock()
	out := map[string]string{}
	vs, err := l.views(ctx, st, byName)
	if err != nil {
		return out
	}
	for _, v := range vs {
		if v.phase == api.PhaseFailed {
			out[v.r.Address] = v.err
		}
	}
	return out
}
