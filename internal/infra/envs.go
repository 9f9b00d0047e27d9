package infra

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
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
	var warnings []string
	scale := map[string]int{}
	switch {
	case len(packed) > 0:
		// A definition's counts win over earlier `gantry scale`s.
		for k, v := range req.Scale {
			scale[k] = v
		}
	case req.Destroy || len(req.Scale) > 0 || isFleetOp(ctx):
		if rec.Serial == 0 {
			return api.Plan{}, e.notFound(ctx, env)
		}
		packed = rec.Definition
		_ = json.Unmarshal(rec.Vars, &vars)
		if len(req.Match) > 0 {
			w, err := e.checkMatch(env, rec, st, vars, req)
			if err != nil {
				return api.Plan{}, err
			}
			warnings = append(warnings, w...)
		}
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
	pl.Source, pl.Warnings = req.Source, warnings
	if len(req.Definition) == 0 {
		pl.Source = st.Source
	}
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
	if len(req.Definition) == 0 && req.Plan == nil {
		// Destroy and scale act on an environment that exists: refused
		// before the lock, so that a typo creates nothing.
		if _, err := e.st.GetEnvironment(ctx, env); errors.Is(err, store.ErrNotFound) {
			return api.Environment{}, e.notFound(ctx, env)
		}
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
	destroy := req.Destroy || (req.Plan != nil && req.Plan.Destroy)
	if rec.Serial == 0 && destroy {
		return api.Environment{}, e.notFound(ctx, env)
	}
	if len(st.Replacing) > 0 && !destroy && !isFleetOp(ctx) {
		g := slices.Sorted(maps.Keys(st.Replacing))[0]
		id := st.Replacing[g].Deployment
		return api.Environment{}, fmt.Errorf("%w: group %s (deployment %s, phase %s); wait for it: gantry deployments show %s --wait (or end it: gantry deployments abort %s)",
			ErrBusy, g, id, st.Replacing[g].Phase, id, id)
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
	if rec.Serial == 0 {
		emit(api.ApplyEvent{Type: "log", Message: fmt.Sprintf("Creating environment %q (new).", env)})
	}
	for _, w := range pl.Warnings {
		emit(api.ApplyEvent{Type: "log", Message: "Warning: " + w})
	}
	sum := pl.Summary
	emit(api.ApplyEvent{Type: "plan", Summary: &sum, Serial: rec.Serial, Message: fmt.Sprintf("%d to create, %d to update, %d to replace, %d to destroy", pl.Summary.Create, pl.Summary.Update, pl.Summary.Replace, pl.Summary.Delete)})
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
	if err := a.commit(ctx, func(st *State) {
		if len(pl.Definition) > 0 {
			a.rec.Definition = pl.Definition
			a.rec.Vars, _ = json.Marshal(pl.Vars)
		}
		if pl.Source != "" {
			st.Source = pl.Source
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
	if errors.Is(err, store.ErrNotFound) {
		return api.Environment{}, e.notFound(ctx, env)
	}
	if err != nil {
		return api.Environment{}, err
	}
	return e.view(ctx, rec)
}

// notFound is the one error for an environment that does not exist: it
// lists the ones that do (store.ErrNotFound, so a 404).
func (e *Engine) notFound(ctx context.Context, env string) error {
	var names []string
	if recs, err := e.st.ListEnvironments(ctx); err == nil {
		for _, r := range recs {
			names = append(names, r.Name)
		}
	}
	return NotFound(env, names)
}

// NotFound phrases a missing environment, with those that exist:
//
//	environment "stagign" not found; environments: demo, dev
//	environment "dev" not found; there are no environments (gantry up DIR --env dev creates one)
//
// It wraps store.ErrNotFound, so the API answers 404.
func NotFound(env string, existing []string) error {
	list := "environments: " + strings.Join(existing, ", ")
	if len(existing) == 0 {
		list = fmt.Sprintf("there are no environments (gantry up DIR --env %s creates one)", env)
	}
	return fmt.Errorf("environment %q %w; %s", env, store.ErrNotFound, list)
}

// checkMatch compares the definition a caller names (destroy DIR, scale
// DIR) with the one applied to the environment. The same content matches;
// so does an edit of the same directory with the same groups (then with a
// warning: the applied definition is what is used). Anything else is
// refused, naming both.
func (e *Engine) checkMatch(env string, rec store.Environment, st *State, vars []string, req api.EnvRequest) (warnings []string, err error) {
	given, applied := definitionDigest(req.Match), definitionDigest(rec.Definition)
	if given == applied {
		return nil, nil
	}
	gdef, err := e.loadDefinition(env, req.Match, vars)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: the directory given cannot be compared with the definition applied to environment %q: %w", ErrInvalid, orUnknown(req.Source), env, err)
	}
	adef, err := e.loadDefinition(env, rec.Definition, vars)
	if err != nil {
		return nil, err
	}
	gGroups, aGroups := blockNames(gdef), blockNames(adef)
	sameSource := req.Source == "" || st.Source == "" || req.Source == st.Source
	if sameSource && gGroups == aGroups {
		return []string{fmt.Sprintf("%s changed since it was applied to environment %q (sha256 %s, applied %s): the applied definition is used; run gantry apply to apply the changes", orUnknown(req.Source), env, given, applied)}, nil
	}
	what := "destroy"
	if !req.Destroy {
		what = "scale"
	}
	return nil, fmt.Errorf("%w: %s (sha256 %s, %s) does not match the definition applied to environment %q (%s, sha256 %s, %s): %s acts on the applied definition; pass the directory it was applied from, or no directory", ErrInvalid,
		orUnknown(req.Source), given, gGroups, env, orUnknown(st.Source), applied, aGroups, what)
}

// blockNames names a definition's groups and hosts, for messages and
// comparisons ("groups db, web; hosts legacy").
func blockNames(d *config.Definition) string {
	s := "groups " + orNone(strings.Join(slices.Sorted(maps.Keys(d.Groups)), ", "))
	if len(d.Hosts) > 0 {
		s += "; hosts " + strings.Join(slices.Sorted(maps.Keys(d.Hosts)), ", ")
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orUnknown(source string) string {
	if source == "" {
		return "(directory unknown)"
	}
	return source
}

// definitionDigest is a digest of a packed definition's files (names and
// contents, not the archive's timestamps), 12 hex digits: the same
// directory packed twice has the same digest.
func definitionDigest(packed []byte) string {
	h := sha256.New()
	zr, err := gzip.NewReader(bytes.NewReader(packed))
	if err == nil {
		tr := tar.NewReader(zr)
		type entry struct {
			name string
			sum  [32]byte
		}
		var entries []entry
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if hdr.Typeflag != tar.TypeReg {
				continue
			}
			b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
			if err != nil {
				break
			}
			entries = append(entries, entry{strings.TrimPrefix(hdr.Name, "./"), sha256.Sum256(b)})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
		for _, en := range entries {
			fmt.Fprintf(h, "%s\x00%x\n", en.name, en.sum)
		}
	} else {
		h.Write(packed)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
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
		m := api.EnvMachine{Address: v.r.Address, Group: v.r.Group, Index: v.r.Index, Name: v.r.Name, IP: v.r.IP, Phase: v.phase, Revision: v.rev, Error: v.err, Failure: v.fail}
		if v.found {
			m.HostID = v.host.ID
		}
		if _, s, listed, known := e.lc.lbServer(st, v.r); known {
			m.LB = lbText(s, listed, known)
		}
		m.Fleet, m.FleetDeployment = fleetRole(st, v.r)
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
	out.Progress = progress(views, runs, max(configureLimit(st), 150*time.Second), e.now())
	if lbp := e.lc.lbPending(st, views); len(lbp) > 0 {
		out.Progress.Settled = false
		out.Progress.Pending = append(out.Progress.Pending, lbp...)
	}
	return out, nil
}
