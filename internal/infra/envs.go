package infra

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// checkEnvName refuses what cannot name an environment instance.
func checkEnvName(env string) error {
	if err := validate.EnvName("env", env); err != nil {
		return fmt.Errorf("%w: %w (it prefixes machine names)", ErrInvalid, err)
	}
	return nil
}

// Plan refreshes the environment's state from its providers and returns
// what an apply of the request would do. It takes no lock.
func (e *Engine) Plan(ctx context.Context, env string, req api.EnvRequest) (api.Plan, error) {
	if err := checkEnvName(env); err != nil {
		return api.Plan{}, err
	}
	rec, st, err := e.env(ctx, env)
	if err != nil {
		return api.Plan{}, err
	}
	return e.plan(ctx, rec, st, req)
}

// plan makes a plan against a loaded record and state.
func (e *Engine) plan(ctx context.Context, rec store.Environment, st *State, req api.EnvRequest) (api.Plan, error) {
	env := rec.Name
	packed, vars := req.Definition, req.Vars
	scale := map[string]int{}
	switch {
	case len(packed) > 0:
		// A definition's counts win over earlier `gantry scale`s.
		for k, v := range req.Scale {
			scale[k] = v
		}
	case req.Destroy || len(req.Scale) > 0:
		if rec.Serial == 0 {
			if req.Destroy {
				return api.Plan{Env: env, Changes: []api.PlanChange{}, Destroy: true, CreatedAt: e.now().UTC()}, nil
			}
			return api.Plan{}, fmt.Errorf("%w: environment %s was never applied: run `gantry up DIR --env %s` first", store.ErrNotFound, env, env)
		}
		packed = rec.Definition
		_ = json.Unmarshal(rec.Vars, &vars)
		for k, v := range st.Scale {
			scale[k] = v
		}
		for k, v := range req.Scale {
			scale[k] = v
		}
	default:
		return api.Plan{}, fmt.Errorf("%w: no definition: pass the directory of the environment's *.hcl files", ErrInvalid)
	}
	def, err := e.loadDefinition(env, packed, vars)
	if err != nil {
		return api.Plan{}, err
	}
	for g, n := range scale {
		b := def.Groups[g]
		if b == nil {
			return api.Plan{}, fmt.Errorf("%w: scale %s=%d: the definition has no group %q (groups: %s)", ErrInvalid, g, n, g, strings.Join(slices.Sorted(maps.Keys(def.Groups)), ", "))
		}
		if err := validate.GroupCount.CheckAs("scale "+g, int64(n)); err != nil {
			return api.Plan{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	work := st.clone()
	drift, orphans, err := e.refresh(ctx, def, work)
	if err != nil {
		return api.Plan{}, fmt.Errorf("%w: %w", ErrProvider, err)
	}
	for addr, why := range e.lc.failedMachines(ctx, work) {
		if _, gone := drift[addr]; !gone {
			drift[addr] = why
		}
	}
	pl, err := e.makePlan(ctx, planInput{env: env, def: def, st: work, drift: drift, orphans: orphans, scale: scale, destroy: req.Destroy})
	if err != nil {
		return pl, err
	}
	pl.Serial, pl.Definition, pl.Vars, pl.Destroy, pl.CreatedAt = rec.Serial, packed, vars, req.Destroy, e.now().UTC()
	if len(scale) > 0 {
		pl.Scale = scale
	}
	return pl, nil
}

// Apply takes the environment's lock and applies a plan: the saved or
// confirmed one in req.Plan (refused if the state moved since), or one
// made now from the request. emit receives progress; the result is the
// environment afterwards (also on failure, with the error).
func (e *Engine) Apply(ctx context.Context, env string, req api.EnvRequest, emit func(api.ApplyEvent)) (api.Environment, error) {
	if err := checkEnvName(env); err != nil {
		return api.Environment{}, err
	}
	if err := cmp.Or(validate.LockTimeout.Check(int64(req.LockTimeoutSeconds)), validate.Text("who", req.Who, 256)); err != nil {
		return api.Environment{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	who := req.Who
	if who == "" {
		who = "unknown"
	}
	release, err := e.lock(ctx, env, who, time.Duration(req.LockTimeoutSeconds)*time.Second)
	if err != nil {
		return api.Environment{}, err
	}
	defer release()
	rec, st, err := e.env(ctx, env)
	if err != nil {
		return api.Environment{}, err
	}
	if rec.Serial == 0 && req.Destroy {
		return api.Environment{}, fmt.Errorf("environment %s: %w (nothing to destroy)", env, store.ErrNotFound)
	}
	var pl api.Plan
	if req.Plan != nil {
		pl = *req.Plan
		if pl.Env != env {
			return api.Environment{}, fmt.Errorf("%w: the plan is for environment %q, not %q", ErrInvalid, pl.Env, env)
		}
		if pl.Serial != rec.Serial {
			return api.Environment{}, fmt.Errorf("%w: it was made at state serial %d and the state is now at %d (another apply ran since): run plan again", ErrStale, pl.Serial, rec.Serial)
		}
		for _, g := range slices.Sorted(maps.Keys(pl.Scale)) {
			if err := validate.GroupCount.CheckAs("plan scale "+g, int64(pl.Scale[g])); err != nil {
				return api.Environment{}, fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
	} else {
		if pl, err = e.plan(ctx, rec, st, req); err != nil {
			return api.Environment{}, err
		}
	}
	sum := pl.Summary
	emit(api.ApplyEvent{Type: "plan", Summary: &sum, Message: fmt.Sprintf("%d to create, %d to update, %d to replace, %d to destroy", pl.Summary.Create, pl.Summary.Update, pl.Summary.Replace, pl.Summary.Delete)})
	var def *config.Definition
	if len(pl.Definition) > 0 {
		if def, err = e.loadDefinition(env, pl.Definition, pl.Vars); err != nil {
			return api.Environment{}, err
		}
	}
	a := &applier{e: e, env: env, def: def, plan: pl, changes: map[string]api.PlanChange{}, emit: emit, start: time.Now(),
		oldSt: st.clone(), rec: rec, st: st}
	if def != nil {
		a.world = config.PlanWorld(def)
	}
	a.oldSt.machines("") // builds its index now: blocks read it in parallel
	for _, c := range pl.Changes {
		a.changes[c.Address] = c
	}
	// The definition is recorded first, so that scale and destroy find it.
	if err := a.commit(ctx, func(*State) {
		if len(pl.Definition) > 0 {
			a.rec.Definition = pl.Definition
			a.rec.Vars, _ = json.Marshal(pl.Vars)
		}
		if a.rec.Definition == nil {
			a.rec.Definition = []byte{}
		}
		if a.rec.Vars == nil {
			a.rec.Vars = []byte("[]")
		}
	}); err != nil {
		return api.Environment{}, err
	}
	runErr := a.run(ctx)
	if err := a.flush(ctx); err != nil {
		runErr = errors.Join(runErr, err)
	}
	e.Kick()
	out, err := e.Get(ctx, env)
	if err != nil {
		return out, errors.Join(runErr, err)
	}
	return out, runErr
}

// Get returns an environment with its machines' phases and its runs.
func (e *Engine) Get(ctx context.Context, env string) (api.Environment, error) {
	rec, err := e.st.GetEnvironment(ctx, env)
	if err != nil {
		return api.Environment{}, err
	}
	return e.view(ctx, rec)
}

// List returns every environment.
func (e *Engine) List(ctx context.Context) ([]api.Environment, error) {
	recs, err := e.st.ListEnvironments(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Environment, 0, len(recs))
	for _, rec := range recs {
		v, err := e.view(ctx, rec)
		if err != nil {
			return nil, err
		}
		v.Events = nil
		out = append(out, v)
	}
	return out, nil
}

func (e *Engine) view(ctx context.Context, rec store.Environment) (api.Environment, error) {
	st, err := decodeState(rec.Name, rec.State)
	if err != nil {
		return api.Environment{}, err
	}
	out := api.Environment{Name: rec.Name, Serial: rec.Serial, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
		Lock: e.lockHolder(ctx, rec.Name), Resources: []api.EnvResource{}, Machines: []api.EnvMachine{}, Groups: map[string]api.EnvGroup{}}
	var rs []*Resource
	for _, r := range st.Resources {
		rs = append(rs, r)
	}
	sortResources(rs)
	for _, r := range rs {
		if r.Kind == KindGroup {
			g := api.EnvGroup{}
			if r.Spec != nil {
				g.App, g.DeployGroup, g.Revision = r.Spec.App, r.Spec.DeployGroup, r.Spec.Revision
			}
			out.Groups[r.Group] = g
			continue
		}
		out.Resources = append(out.Resources, api.EnvResource{Address: r.Address, Kind: r.Kind, Provider: r.Provider, ProviderID: r.ID, Attrs: r.Attrs})
	}
	e.lc.mu.Lock()
	byName := e.lc.byName
	e.lc.mu.Unlock()
	if hosts, err := e.st.ListHosts(ctx, false); err == nil {
		byName = map[string]store.HostRecord{}
		for _, h := range hosts {
			byName[h.Name] = h
		}
	}
	views, err := e.lc.views(ctx, st, byName)
	if err != nil {
		return out, err
	}
	for _, v := range views {
		m := api.EnvMachine{Address: v.r.Address, Group: v.r.Group, Index: v.r.Index, Name: v.r.Name, IP: v.r.IP, Phase: v.phase, Revision: v.rev, Error: v.err}
		if v.found {
			m.HostID = v.host.ID
		}
		out.Machines = append(out.Machines, m)
		g := out.Groups[v.r.Group]
		g.Count++
		if v.phase == api.PhaseOnline {
			g.Online++
		}
		out.Groups[v.r.Group] = g
	}
	if len(st.Outputs) > 0 {
		out.Outputs = map[string]any{}
		for k, v := range st.Outputs {
			var x any
			_ = json.Unmarshal(v, &x)
			out.Outputs[k] = x
		}
	}
	var runs []api.LifecycleRun
	if e.lc.isLoaded(rec.Name) {
		runs = e.lc.runsOf(rec.Name)
	} else {
		_ = json.Unmarshal(rec.Events, &runs)
	}
	out.Events = runs
	return out, nil
}
