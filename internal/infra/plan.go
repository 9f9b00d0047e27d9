package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/infra/planview"
	"github.com/gantry-dev/gantry/internal/provider"
)

// unknownText stands for a value known only after apply.
const unknownText = "(known after apply)"

// reasonDeleted is the drift of a resource that is gone.
const reasonDeleted = "deleted outside gantry"

// planInput is what a plan is made from.
type planInput struct {
	env     string
	def     *config.Definition // nil for a destroy without definition
	st      *State             // refreshed
	drift   map[string]string  // address -> why it must be created again
	orphans []orphan
	scale   map[string]int
	destroy bool
	// renewed are the networks the plan creates or replaces (their ids
	// are not known yet).
	renewed map[string]bool
}

// orphan is an object carrying the environment's labels that the state
// does not know (an apply was interrupted between creating and recording).
type orphan struct {
	prov     string // provider key TYPE.NAME
	found    provider.Found
	provider provider.Provider
}

// refresh reads every recorded resource back from its provider, updating
// addresses and noting what is gone, and lists objects the state does not
// know. It reads in parallel.
func (e *Engine) refresh(ctx context.Context, def *config.Definition, st *State) (map[string]string, []orphan, error) {
	drift := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var firstErr error
	for _, r := range st.Resources {
		if r.Kind == KindGroup {
			continue
		}
		p, err := e.stateProvider(def, r.Provider)
		if err != nil {
			return nil, nil, fmt.Errorf("refresh %s: %w", r.Address, err)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(r *Resource) {
			defer func() { <-sem; wg.Done() }()
			var exists bool
			var err error
			switch r.Kind {
			case KindNetwork:
				var ns provider.NetworkState
				ns, exists, err = p.ReadNetwork(ctx, r.ID)
				if err == nil && exists {
					mu.Lock()
					r.Subnet, r.Gateway = ns.Subnet, ns.Gateway
					mu.Unlock()
				}
			case KindMachine:
				var ms provider.MachineState
				ms, exists, err = p.ReadMachine(ctx, r.ID)
				if err == nil && exists {
					mu.Lock()
					if ms.Address != "" {
						r.IP = ms.Address
					}
					if !ms.Running {
						drift[r.Address] = "stopped outside gantry"
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("refresh %s (%s %s): %w", r.Address, r.Provider, r.ID, err)
			}
			if err == nil && !exists {
				drift[r.Address] = reasonDeleted
			}
		}(r)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, firstErr
	}
	orphans, err := e.findOrphans(ctx, def, st)
	return drift, orphans, err
}

// findOrphans lists, for every provider the definition or the state uses,
// the objects labelled with the environment that the state does not have.
func (e *Engine) findOrphans(ctx context.Context, def *config.Definition, st *State) ([]orphan, error) {
	known := map[string]bool{}
	keys := map[string]bool{}
	for _, r := range st.Resources {
		if r.ID != "" {
			known[r.ID] = true
		}
		if r.Provider != "" {
			keys[r.Provider] = true
		}
	}
	if def != nil {
		for k := range def.Providers {
			keys[k] = true
		}
	}
	var out []orphan
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		p, err := e.stateProvider(def, k)
		if err != nil {
			continue // a provider the definition dropped: its resources are refreshed above
		}
		found, err := p.List(ctx, st.Env)
		if err != nil {
			return nil, fmt.Errorf("list what provider %s has for environment %s: %w", k, st.Env, err)
		}
		for _, f := range found {
			if !known[f.ID] {
				out = append(out, orphan{prov: k, found: f, provider: p})
			}
		}
	}
	return out, nil
}

// stateProvider finds the provider instance for a TYPE.NAME key, from the
// definition (or, for resources of a provider block that was removed, a
// default configuration of that type).
func (e *Engine) stateProvider(def *config.Definition, key string) (provider.Provider, error) {
	if def != nil {
		if pb, ok := def.Providers[key]; ok {
			p, _, err := e.providerFor(pb)
			return p, err
		}
	}
	typ, name, _ := strings.Cut(key, ".")
	p, _, err := e.providerFor(&config.Provider{Type: typ, Name: name, Config: map[string]string{}})
	return p, err
}

// makePlan compares the definition with the refreshed state.
func (e *Engine) makePlan(ctx context.Context, in planInput) (api.Plan, error) {
	pl := api.Plan{Env: in.env, Changes: []api.PlanChange{}}
	st := in.st
	in.renewed = map[string]bool{}
	for _, o := range in.orphans {
		pl.Changes = append(pl.Changes, api.PlanChange{Address: o.found.Resource, Action: api.ActionDelete,
			Reason: fmt.Sprintf("orphan %s %s left by an interrupted apply (not in the state)", o.found.Kind, shortID(o.found.ID)),
			Attrs:  []api.AttrChange{{Name: "provider_id", Old: o.found.ID}, {Name: "provider", Old: o.prov}, {Name: "kind", Old: o.found.Kind}}})
	}
	wanted := map[string]bool{}
	if in.def != nil && !in.destroy {
		world := config.PlanWorld(in.def)
		for _, b := range in.def.Graph() {
			var err error
			switch b.Kind {
			case config.KindNetwork:
				err = e.planNetwork(in, b, &pl, wanted, world)
			case config.KindGroup, config.KindHost:
				err = e.planGroup(ctx, in, b, &pl, wanted, world)
			}
			if err != nil {
				return pl, err
			}
		}
		outs, err := in.def.EvalOutputs(world)
		if err != nil {
			return pl, diagError(err)
		}
		pl.Outputs = outputsJSON(outs)
	}
	for _, r := range st.Resources {
		if wanted[r.Address] {
			continue
		}
		c := api.PlanChange{Address: r.Address, Action: api.ActionDelete}
		if r.Kind == KindMachine {
			c.Attrs = []api.AttrChange{{Name: "name", Old: r.Name}, {Name: "ip", Old: r.IP}}
			if in.destroy {
				c.Reason = "destroy"
			}
		}
		pl.Changes = append(pl.Changes, c)
	}
	sort.SliceStable(pl.Changes, func(i, j int) bool { return lessAddress(pl.Changes[i].Address, pl.Changes[j].Address) })
	for _, c := range pl.Changes {
		switch c.Action {
		case api.ActionCreate:
			pl.Summary.Create++
		case api.ActionUpdate:
			pl.Summary.Update++
		case api.ActionReplace:
			pl.Summary.Replace++
		case api.ActionDelete:
			pl.Summary.Delete++
		}
	}
	// A machine to create must not take a name that a host the
	// environment does not own holds (ownership.go).
	if err := e.checkNames(ctx, in.env, pl); err != nil {
		return pl, err
	}
	return pl, nil
}

func (e *Engine) planNetwork(in planInput, b *config.Block, pl *api.Plan, wanted map[string]bool, world config.World) error {
	spec, err := in.def.EvalNetwork(b.Name, world)
	if err != nil {
		return diagError(err)
	}
	addr := b.Address()
	wanted[addr] = true
	want := networkAttrs(spec.Provider, spec.Attrs)
	old := in.st.Resources[addr]
	c := diffResource(addr, old, want, in.drift[addr], func(string) bool { return true })
	if c != nil {
		pl.Changes = append(pl.Changes, *c)
		if c.Action == api.ActionCreate || c.Action == api.ActionReplace {
			in.renewed[addr] = true
		}
	}
	if old != nil && c == nil {
		world.Networks[b.Name] = config.NetworkValue(b.Name, old.ID, old.Subnet, old.Gateway, true)
	}
	return nil
}

func networkAttrs(prov string, attrs map[string]string) map[string]string {
	m := map[string]string{"provider": prov}
	for k, v := range attrs {
		m["attrs."+k] = v
	}
	return m
}

// planGroup plans a group's record and its machines.
func (e *Engine) planGroup(ctx context.Context, in planInput, b *config.Block, pl *api.Plan, wanted map[string]bool, world config.World) error {
	host := b.Kind == config.KindHost
	var spec config.GroupSpec
	var err error
	if host {
		spec, err = in.def.EvalHost(b.Name, world)
	} else {
		spec, err = in.def.EvalGroup(b.Name, world)
	}
	if err != nil {
		return diagError(err)
	}
	if n, ok := in.scale[b.Name]; ok && !host {
		spec.Count = n
	}
	if err := checkLBPlan(in.def, b.Name, spec, host); err != nil {
		return err
	}
	rec, err := e.groupRecord(ctx, in.env, spec)
	if err != nil {
		return err
	}
	// The group's own record.
	gaddr := b.Address()
	wanted[gaddr] = true
	if c := diffResource(gaddr, in.st.Resources[gaddr], groupAttrs(spec, rec), "", func(string) bool { return false }); c != nil {
		scriptDiffs(c, in.st.Resources[gaddr], rec)
		pl.Changes = append(pl.Changes, *c)
	}
	pb := in.def.Providers[spec.Provider]
	_, info, err := e.providerFor(pb)
	if err != nil {
		return err
	}
	inPlace := map[string]bool{"labels": true}
	for _, a := range info.InPlace {
		inPlace[a] = true
	}
	// Which indexes: kept ones first, new ones take the lowest free index.
	existing := in.st.machines(b.Name)
	var prefer map[int]bool
	if !host {
		spec.Count, prefer = fleetPlan(in.st, b.Name, spec.Count)
	}
	keep := e.chooseKept(existing, spec.Count, host, prefer)
	var refs []config.MachineRef
	_, netIDs, netKnown := networkIDs(in.st, spec.Networks, in.renewed)
	for _, idx := range keep {
		addr := machineAddress(b.Name, idx, host)
		wanted[addr] = true
		want := machineAttrs(spec, netIDs, netKnown)
		old := in.st.Resources[addr]
		c := diffResource(addr, old, want, in.drift[addr], func(a string) bool { return !inPlace[a] })
		if c != nil {
			pl.Changes = append(pl.Changes, *c)
		}
		ref := config.MachineRef{Name: machineName(in.env, b.Name, idx, host), Index: idx}
		if old != nil && (c == nil || c.Action == api.ActionUpdate) {
			ref.Address, ref.ID, ref.Known = old.IP, old.ID, true
		}
		refs = append(refs, ref)
	}
	if host {
		if len(refs) > 0 {
			world.Hosts[b.Name] = config.HostValue(b.Name, refs[0])
		}
	} else {
		world.Groups[b.Name] = config.GroupValue(b.Name, spec.Labels, refs)
	}
	return nil
}

// scriptDiffs adds the unified diff of each changed script of a group's
// record (the state and the plan only compare digests).
func scriptDiffs(c *api.PlanChange, old *Resource, rec GroupRecord) {
	if c.Action != api.ActionUpdate || old == nil || old.Spec == nil {
		return
	}
	for i, at := range c.Attrs {
		var before, after string
		switch at.Name {
		case "setup":
			before, after = old.Spec.Setup, rec.Setup
		case "configure":
			before, after = old.Spec.Configure, rec.Configure
		case "shutdown":
			before, after = old.Spec.Shutdown, rec.Shutdown
		default:
			continue
		}
		if at.Unknown || before == after {
			continue
		}
		c.Attrs[i].Diff = planview.UnifiedDiff(before, after, 3)
	}
}

// chooseKept returns the indexes a group of count machines keeps: existing
// machines first (prefer ones first: a blue/green deployment's winning
// fleet; then, on scale-in, machines that are in a deployment are kept
// rather than removed, then the lowest indexes), then the lowest free
// indexes for new ones.
func (e *Engine) chooseKept(existing []*Resource, count int, host bool, prefer map[int]bool) []int {
	if host {
		return []int{0}
	}
	type cand struct {
		idx          int
		prefer, busy bool
	}
	var cs []cand
	for _, r := range existing {
		busy := false
		if h, ok := e.hostOf(r); ok {
			busy = e.dep.HostBusy(h)
		}
		cs = append(cs, cand{r.Index, prefer[r.Index], busy})
	}
	// Keep preferred machines first, then busy ones, then by index.
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].prefer != cs[j].prefer {
			return cs[i].prefer
		}
		if cs[i].busy != cs[j].busy {
			return cs[i].busy
		}
		return cs[i].idx < cs[j].idx
	})
	used := map[int]bool{}
	var out []int
	for _, c := range cs {
		if len(out) == count {
			break
		}
		out = append(out, c.idx)
		used[c.idx] = true
	}
	for i := 0; len(out) < count; i++ {
		if !used[i] {
			out = append(out, i)
			used[i] = true
		}
	}
	sort.Ints(out)
	return out
}

// hostOf returns the host id of a machine, if its agent enrolled.
func (e *Engine) hostOf(r *Resource) (string, bool) {
	id, ok := e.lc.hostID(r.Name)
	return id, ok
}

// networkIDs returns the provider ids of named networks as the state has
// them; known is false when one of them is planned for (re)creation
// (renewed, by address). The attribute plans compare is "name:id" for each
// (a network created again gets a new id, which replaces its machines).
func networkIDs(st *State, names []string, renewed map[string]bool) (ids []string, attr string, known bool) {
	shown := make([]string, 0, len(names))
	for _, n := range names {
		r := st.Resources["network."+n]
		if r == nil || renewed["network."+n] {
			return nil, strings.Join(names, ","), false
		}
		ids = append(ids, r.ID)
		shown = append(shown, n+":"+shortID(r.ID))
	}
	return ids, strings.Join(shown, ","), true
}

// machineAttrs are the attributes of a machine that plans compare.
func machineAttrs(g config.GroupSpec, netIDs string, netKnown bool) map[string]string {
	m := map[string]string{"provider": g.Provider}
	if g.Image != "" || g.Unknown["image"] {
		m["image"] = g.Image
	}
	if g.CPUs != 0 {
		m["cpus"] = strconv.FormatFloat(g.CPUs, 'f', -1, 64)
	}
	if g.MemoryMB != 0 {
		m["memory"] = strconv.FormatInt(g.MemoryMB, 10) + " MiB"
	}
	if len(g.Networks) > 0 {
		m["networks"] = netIDs
		if !netKnown {
			m["networks"] = unknownText
		}
	}
	if len(g.Labels) > 0 || g.Unknown["labels"] {
		m["labels"] = labelsText(g.Labels)
	}
	for k, v := range g.Attrs {
		m["attrs."+k] = v
	}
	for k := range g.Unknown {
		if k == "image" || k == "labels" || strings.HasPrefix(k, "attrs.") {
			m[k] = unknownText
		}
	}
	return m
}

// groupAttrs are the attributes of a group's record that plans compare.
func groupAttrs(g config.GroupSpec, rec GroupRecord) map[string]string {
	m := map[string]string{}
	if !g.Host {
		m["count"] = strconv.Itoa(g.Count)
	}
	for name, s := range map[string]string{"setup": rec.Setup, "configure": rec.Configure, "shutdown": rec.Shutdown} {
		if g.Unknown[name] {
			m[name] = unknownText
		} else if s != "" {
			m[name] = scriptText(s)
		}
	}
	m["setup_timeout"] = strconv.Itoa(rec.SetupTimeout) + "s"
	m["configure_timeout"] = strconv.Itoa(rec.ConfigureTimeout) + "s"
	m["shutdown_timeout"] = strconv.Itoa(rec.ShutdownTimeout) + "s"
	if rec.HealthCheck != nil {
		b, _ := json.Marshal(rec.HealthCheck)
		m["health_check"] = string(b)
	}
	if rec.App != "" {
		m["deploy.app"] = rec.App
		m["deploy.revision"] = rec.Revision
		m["deploy.config"] = rec.Config
		m["deploy.group"] = rec.DeployGroup
	}
	if rec.App != "" && rec.Strategy != "" {
		m["deploy.strategy"] = rec.Strategy
	}
	if rec.Canary != nil {
		b, _ := json.Marshal(rec.Canary)
		m["deploy.canary"] = string(b)
	}
	maps.Copy(m, blueGreenAttrs(rec.BlueGreen))
	if g.Unknown["deploy"] {
		m["deploy.revision"] = unknownText
	}
	for k, v := range lbAttrs(rec.LoadBalancer) {
		m[k] = v
	}
	if g.Unknown["load_balancer"] {
		m["load_balancer.health_check"] = unknownText
	}
	return m
}

// groupRecord evaluates what a group's lifecycle needs, resolving the
// deployed revision (the application's newest when the definition names
// none).
func (e *Engine) groupRecord(ctx context.Context, env string, g config.GroupSpec) (GroupRecord, error) {
	rec := GroupRecord{Setup: g.Setup, Configure: g.Configure, Shutdown: g.Shutdown,
		SetupTimeout: g.SetupTimeout, ConfigureTimeout: g.ConfigureTimeout, ShutdownTimeout: g.ShutdownTimeout,
		HealthCheck: g.HealthCheck, Host: g.Host, LoadBalancer: g.LoadBalancer}
	if rec.SetupTimeout == 0 {
		rec.SetupTimeout = 600
	}
	if rec.ConfigureTimeout == 0 {
		rec.ConfigureTimeout = 300
	}
	if rec.ShutdownTimeout == 0 {
		rec.ShutdownTimeout = 120
	}
	if g.Deploy == nil {
		return rec, nil
	}
	kind := "group"
	if g.Host {
		kind = "host"
	}
	rec.App, rec.Config, rec.DeployGroup = g.Deploy.App, g.Deploy.Config, env+"-"+g.Name
	rec.Canary, rec.BlueGreen = g.Deploy.Canary, g.Deploy.BlueGreen
	if g.Deploy.Strategy != api.StrategyInPlace {
		rec.Strategy = g.Deploy.Strategy
	}
	if rec.Config == "" {
		rec.Config = "OneAtATime"
	}
	if _, err := e.st.GetApplication(ctx, rec.App); err != nil {
		return rec, fmt.Errorf("%w: %s %q: deploy.app %q: %v (create it with `gantry app create %s` and push a revision with `gantry push %s DIR`)", ErrInvalid, kind, g.Name, rec.App, err, rec.App, rec.App)
	}
	if g.Deploy.Revision != "" {
		if _, err := e.st.GetRevision(ctx, rec.App, g.Deploy.Revision); err != nil {
			return rec, fmt.Errorf("%w: %s %q: deploy.revision %q: %v (see `gantry revisions %s`)", ErrInvalid, kind, g.Name, g.Deploy.Revision, err, rec.App)
		}
		rec.Revision = g.Deploy.Revision
		return rec, nil
	}
	revs, err := e.st.ListRevisions(ctx, rec.App)
	if err != nil {
		return rec, err
	}
	if len(revs) == 0 {
		return rec, fmt.Errorf("%w: %s %q: application %s has no revision yet: push one with `gantry push %s DIR`", ErrInvalid, kind, g.Name, rec.App, rec.App)
	}
	rec.Revision = revs[0].ID
	return rec, nil
}

// diffResource compares a recorded resource with what is wanted. forces
// tells which changed attributes force a replacement. nil means no change.
func diffResource(addr string, old *Resource, want map[string]string, drift string, forces func(string) bool) *api.PlanChange {
	if old == nil || drift != "" {
		c := &api.PlanChange{Address: addr, Action: api.ActionCreate, Reason: drift}
		if old != nil && drift != reasonDeleted {
			c.Action = api.ActionReplace
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			c.Attrs = append(c.Attrs, api.AttrChange{Name: k, New: want[k], Unknown: want[k] == unknownText})
		}
		return c
	}
	c := &api.PlanChange{Address: addr, Action: api.ActionUpdate}
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range old.Attrs {
		keys[k] = true
	}
	var forced []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		o, n := old.Attrs[k], want[k]
		if o == n {
			continue
		}
		ac := api.AttrChange{Name: k, Old: o, New: n, Unknown: n == unknownText}
		if forces(k) {
			ac.ForcesReplace = true
			forced = append(forced, k)
		}
		c.Attrs = append(c.Attrs, ac)
	}
	if len(c.Attrs) == 0 {
		return nil
	}
	if len(forced) > 0 {
		c.Action = api.ActionReplace
		c.Reason = strings.Join(forced, ", ") + " forces replacement"
	}
	return c
}

// outputsJSON encodes outputs; unknown ones become the unknown text.
func outputsJSON(outs map[string]cty.Value) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for k, v := range outs {
		if !v.IsWhollyKnown() {
			m[k], _ = json.Marshal(unknownText)
			continue
		}
		b, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			m[k], _ = json.Marshal(err.Error())
			continue
		}
		m[k] = b
	}
	return m
}

func labelsText(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func scriptText(s string) string {
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("<%d lines, sha256 %s>", strings.Count(strings.TrimRight(s, "\n"), "\n")+1, hex.EncodeToString(sum[:])[:12])
}

func shortID(id string) string {
	if len(id) > 12 && !strings.ContainsAny(id, "/@|") {
		return id[:12]
	}
	return id
}
