package infra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
)

// applier carries out one plan. Every step that changes infrastructure is
// recorded in the state (a store write, compare-and-set on the serial) as
// soon as it is done, so that a failed or interrupted apply leaves a state
// that matches reality and the next apply goes on from there.
type applier struct {
	e       *Engine
	env     string
	def     *config.Definition
	plan    api.Plan
	changes map[string]api.PlanChange
	emit    func(api.ApplyEvent)
	start   time.Time
	oldSt   *State // the state before the apply (old group records for shutdown)

	mu     sync.Mutex
	rec    store.Environment
	st     *State
	world  config.World
	failed []string
	// dirty is a change not yet recorded; flushAt is armed to record it.
	dirty    bool
	lastSave time.Time
	flushAt  *time.Timer
	saveErr  error
}

// saveEvery bounds how often an apply writes its state: changes that come
// faster are written together (at most this much later). An object created
// in that window by a server that then dies is found again by its labels
// (an orphan the next plan deletes).
const saveEvery = 100 * time.Millisecond

// save records the state (call with a.mu held).
func (a *applier) saveLocked(ctx context.Context) error {
	prev := a.rec.Serial
	next := a.rec
	next.Serial, next.State, next.UpdatedAt = prev+1, stateJSON(a.st), a.e.now().UTC()
	if next.CreatedAt.IsZero() {
		next.CreatedAt = next.UpdatedAt
	}
	if err := a.e.st.SaveEnvironment(ctx, next, prev); err != nil {
		return fmt.Errorf("record the state of %s: %w", a.env, err)
	}
	a.rec = next
	return nil
}

// commit changes the state and records it, at once or, when the last
// write was less than saveEvery ago, with the next batch.
func (a *applier) commit(ctx context.Context, f func(st *State)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a.st)
	a.st.changed()
	a.dirty = true
	if wait := saveEvery - time.Since(a.lastSave); wait > 0 {
		if a.flushAt == nil {
			a.flushAt = time.AfterFunc(wait, func() { _ = a.flush(context.WithoutCancel(ctx)) })
		}
		return a.saveErr
	}
	return a.saveDirtyLocked(ctx)
}

// flush records a pending change.
func (a *applier) flush(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.saveDirtyLocked(ctx)
}

func (a *applier) saveDirtyLocked(ctx context.Context) error {
	if a.flushAt != nil {
		a.flushAt.Stop()
		a.flushAt = nil
	}
	if !a.dirty {
		return a.saveErr
	}
	a.dirty, a.lastSave = false, time.Now()
	if err := a.saveLocked(ctx); err != nil && a.saveErr == nil {
		a.saveErr = err
	}
	return a.saveErr
}

func (a *applier) event(ev api.ApplyEvent) {
	ev.Elapsed = time.Since(a.start).Seconds()
	a.emit(ev)
}

// step runs one resource's change with started/done/failed events.
func (a *applier) step(addr, action string, f func() error) error {
	a.event(api.ApplyEvent{Type: "resource", Address: addr, Action: action, State: "started"})
	t0 := time.Now()
	err := f()
	if err != nil {
		a.mu.Lock()
		a.failed = append(a.failed, addr)
		a.mu.Unlock()
		a.event(api.ApplyEvent{Type: "resource", Address: addr, Action: action, State: "failed", Error: err.Error()})
		return fmt.Errorf("%s: %w", addr, err)
	}
	a.event(api.ApplyEvent{Type: "resource", Address: addr, Action: action, State: "done", Message: fmt.Sprintf("%.1fs", time.Since(t0).Seconds())})
	return nil
}

// parallel runs fs at once and joins their errors.
func parallel(fs []func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f() }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// run carries out the plan: orphans and machines of removed groups first,
// then every block in dependency order (in parallel where the graph
// allows), then removed networks, then the outputs.
func (a *applier) run(ctx context.Context) error {
	if ids := a.leaving(); len(ids) > 0 {
		a.e.lc.leave(a.env, ids)
		defer a.e.lc.unleave(a.env, ids)
		a.reconfigure(ctx)
	}
	var first []func() error
	for _, c := range a.plan.Changes {
		c := c
		if strings.HasPrefix(c.Reason, "orphan ") {
			first = append(first, func() error { return a.step(c.Address, c.Action, func() error { return a.deleteOrphan(ctx, c) }) })
			continue
		}
		r := a.oldSt.Resources[c.Address]
		if c.Action == api.ActionDelete && r != nil && r.Kind == KindMachine && !a.blockExists(r) {
			first = append(first, func() error { return a.step(c.Address, c.Action, func() error { return a.deleteMachine(ctx, r) }) })
		}
	}
	if err := parallel(first); err != nil {
		return err
	}
	if err := a.walk(ctx); err != nil {
		return err
	}
	var last []func() error
	for _, c := range a.plan.Changes {
		r := a.oldSt.Resources[c.Address]
		if c.Action != api.ActionDelete || r == nil || strings.HasPrefix(c.Reason, "orphan ") {
			continue
		}
		switch {
		case r.Kind == KindNetwork && !a.blockExists(r):
			last = append(last, func() error { return a.step(r.Address, c.Action, func() error { return a.deleteNetwork(ctx, r) }) })
		case r.Kind == KindGroup && !a.blockExists(r):
			last = append(last, func() error {
				return a.step(r.Address, c.Action, func() error {
					a.deleteDeployGroup(ctx, r)
					return a.commit(ctx, func(st *State) { delete(st.Resources, r.Address) })
				})
			})
		}
	}
	if err := parallel(last); err != nil {
		return err
	}
	return a.outputs(ctx)
}

// leaving returns the provider ids of the machines the plan removes or
// replaces (an orphan is not in the state: nobody configured it).
func (a *applier) leaving() []string {
	var ids []string
	for _, c := range a.plan.Changes {
		r := a.oldSt.Resources[c.Address]
		if r == nil || r.Kind != KindMachine || c.Action == api.ActionUpdate || strings.HasPrefix(c.Reason, "orphan ") {
			continue
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// reconfigure runs configure on the machines that stay, without the
// leaving ones, and waits for it: a load balancer stops sending requests
// to a machine before the machine's shutdown script runs.
func (a *applier) reconfigure(ctx context.Context) {
	if err := a.flush(ctx); err != nil {
		return
	}
	a.mu.Lock()
	st, serial := a.st.clone(), a.rec.Serial
	a.mu.Unlock()
	ids, err := a.e.lc.configureNow(ctx, a.env, st, serial)
	if len(ids) > 0 {
		a.event(api.ApplyEvent{Type: "log", Message: fmt.Sprintf("configure ran on the machines that stay (%s), before the leaving ones shut down", strings.Join(ids, ", "))})
	}
	if err != nil {
		a.event(api.ApplyEvent{Type: "log", Message: "configure before removing machines: " + err.Error()})
	}
}

// blockExists reports whether the definition still has the block of a
// recorded resource (false throughout a destroy).
func (a *applier) blockExists(r *Resource) bool {
	if a.def == nil || a.plan.Destroy {
		return false
	}
	switch r.Kind {
	case KindNetwork:
		return a.def.Networks[strings.TrimPrefix(r.Address, "network.")] != nil
	case KindGroup:
		if r.Spec != nil && r.Spec.Host {
			return a.def.Hosts[r.Group] != nil
		}
		return a.def.Groups[r.Group] != nil
	default:
		if r.Host {
			return a.def.Hosts[r.Group] != nil
		}
		return a.def.Groups[r.Group] != nil
	}
}

// walk applies every block once its dependencies are done; a block whose
// dependency failed is skipped.
func (a *applier) walk(ctx context.Context) error {
	if a.def == nil || a.plan.Destroy {
		return nil
	}
	blocks := a.def.Graph()
	done := map[string]chan struct{}{}
	var failedMu sync.Mutex
	failed := map[string]bool{}
	for _, b := range blocks {
		done[b.Address()] = make(chan struct{})
	}
	errs := make([]error, len(blocks))
	var wg sync.WaitGroup
	for i, b := range blocks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[b.Address()])
			for _, d := range b.DependsOn {
				ch, ok := done[d]
				if !ok {
					continue
				}
				<-ch
				failedMu.Lock()
				bad := failed[d]
				failedMu.Unlock()
				if bad {
					failedMu.Lock()
					failed[b.Address()] = true
					failedMu.Unlock()
					errs[i] = fmt.Errorf("%s: not applied: its dependency %s failed", b.Address(), d)
					return
				}
			}
			var err error
			switch b.Kind {
			case config.KindNetwork:
				err = a.applyNetwork(ctx, b)
			default:
				err = a.applyGroup(ctx, b)
			}
			if err != nil {
				failedMu.Lock()
				failed[b.Address()] = true
				failedMu.Unlock()
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// worldCopy returns a copy of the world safe to evaluate with.
func (a *applier) worldCopy() config.World {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := config.World{Groups: map[string]cty.Value{}, Hosts: map[string]cty.Value{}, Networks: map[string]cty.Value{}}
	for k, v := range a.world.Groups {
		w.Groups[k] = v
	}
	for k, v := range a.world.Hosts {
		w.Hosts[k] = v
	}
	for k, v := range a.world.Networks {
		w.Networks[k] = v
	}
	return w
}

func (a *applier) applyNetwork(ctx context.Context, b *config.Block) error {
	addr := b.Address()
	c, changed := a.changes[addr]
	if changed {
		spec, err := a.def.EvalNetwork(b.Name, a.worldCopy())
		if err != nil {
			return diagError(err)
		}
		p, err := a.e.stateProvider(a.def, spec.Provider)
		if err != nil {
			return err
		}
		err = a.step(addr, c.Action, func() error {
			if old := a.oldSt.Resources[addr]; old != nil && c.Action == api.ActionReplace {
				if err := a.deleteNetwork(ctx, old); err != nil {
					return err
				}
			}
			ns, err := p.CreateNetwork(ctx, provider.Network{Env: a.env, Resource: addr, Name: a.env + "-" + b.Name, Attrs: spec.Attrs})
			if err != nil {
				return err
			}
			return a.commit(ctx, func(st *State) {
				st.Resources[addr] = &Resource{Address: addr, Kind: KindNetwork, Provider: spec.Provider, ID: ns.ID, Name: a.env + "-" + b.Name,
					Subnet: ns.Subnet, Gateway: ns.Gateway, Attrs: networkAttrs(spec.Provider, spec.Attrs), CreatedAt: a.e.now().UTC()}
			})
		})
		if err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.st.Resources[addr]; r != nil {
		a.world.Networks[b.Name] = config.NetworkValue(b.Name, r.ID, r.Subnet, r.Gateway, true)
	}
	return nil
}

func (a *applier) deleteNetwork(ctx context.Context, r *Resource) error {
	p, err := a.e.stateProvider(a.def, r.Provider)
	if err != nil {
		return err
	}
	if err := p.DeleteNetwork(ctx, r.ID); err != nil {
		return err
	}
	return a.commit(ctx, func(st *State) {
		if cur := st.Resources[r.Address]; cur != nil && cur.ID == r.ID {
			delete(st.Resources, r.Address)
		}
	})
}

func (a *applier) deleteOrphan(ctx context.Context, c api.PlanChange) error {
	var id, prov, kind string
	for _, at := range c.Attrs {
		switch at.Name {
		case "provider_id":
			id = at.Old
		case "provider":
			prov = at.Old
		case "kind":
			kind = at.Old
		}
	}
	p, err := a.e.stateProvider(a.def, prov)
	if err != nil {
		return err
	}
	if kind == "network" {
		return p.DeleteNetwork(ctx, id)
	}
	return p.DeleteMachine(ctx, id)
}

// applyGroup applies a group's (or host's) record and machines: removals
// (with shutdown) first, then the record, then new and replaced machines
// and in-place updates, in parallel.
func (a *applier) applyGroup(ctx context.Context, b *config.Block) error {
	host := b.Kind == config.KindHost
	var spec config.GroupSpec
	var err error
	if host {
		spec, err = a.def.EvalHost(b.Name, a.worldCopy())
	} else {
		spec, err = a.def.EvalGroup(b.Name, a.worldCopy())
	}
	if err != nil {
		return diagError(err)
	}
	if n, ok := a.plan.Scale[b.Name]; ok && !host {
		spec.Count = n
	}
	var removals, work []func() error
	for _, r := range a.oldSt.machines(b.Name) {
		if r.Host != host {
			continue
		}
		c, ok := a.changes[r.Address]
		if ok && c.Action == api.ActionDelete {
			removals = append(removals, func() error { return a.step(r.Address, c.Action, func() error { return a.deleteMachine(ctx, r) }) })
		}
	}
	if err := parallel(removals); err != nil {
		return err
	}
	gaddr := b.Address()
	if c, ok := a.changes[gaddr]; ok {
		if err := a.step(gaddr, c.Action, func() error { return a.applyRecord(ctx, gaddr, spec) }); err != nil {
			return err
		}
	}
	for _, c := range a.plan.Changes {
		if name, idx := splitIndex(c.Address); name == gaddr && idx >= 0 && c.Action != api.ActionDelete {
			work = append(work, a.machineWork(ctx, c, b.Name, idx, host, spec))
		}
	}
	err = parallel(work)
	// The group's machines now: its indexes are below the old ones' highest
	// plus the count (looked up by address, not by scanning the state).
	bound := spec.Count
	for _, r := range a.oldSt.machines(b.Name) {
		bound = max(bound, r.Index+1+spec.Count)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var refs []config.MachineRef
	for i := 0; i < bound; i++ {
		if r := a.st.Resources[machineAddress(b.Name, i, host)]; r != nil && r.Kind == KindMachine {
			refs = append(refs, config.MachineRef{Name: r.Name, Index: r.Index, Address: r.IP, ID: r.ID, Known: true})
		}
	}
	if host {
		if len(refs) > 0 {
			a.world.Hosts[b.Name] = config.HostValue(b.Name, refs[0])
		}
	} else {
		a.world.Groups[b.Name] = config.GroupValue(b.Name, spec.Labels, refs)
	}
	return err
}

// machineWork is the work of one machine change of a group.
func (a *applier) machineWork(ctx context.Context, c api.PlanChange, group string, idx int, host bool, spec config.GroupSpec) func() error {
	return func() error {
		return a.step(c.Address, c.Action, func() error {
			old := a.oldSt.Resources[c.Address]
			switch c.Action {
			case api.ActionCreate, api.ActionReplace:
				if old != nil {
					if err := a.deleteMachine(ctx, old); err != nil {
						return fmt.Errorf("remove the old machine: %w", err)
					}
				}
				return a.createMachine(ctx, spec, group, idx, host)
			case api.ActionUpdate:
				return a.updateMachine(ctx, old, spec)
			}
			return nil
		})
	}
}

// applyRecord records a group's lifecycle settings and makes or updates
// its deployment group.
func (a *applier) applyRecord(ctx context.Context, addr string, spec config.GroupSpec) error {
	rec, err := a.e.groupRecord(ctx, a.env, spec)
	if err != nil {
		return err
	}
	if rec.App != "" {
		if err := a.e.ensureDeployGroup(ctx, a.env, spec.Name, rec, a.lbTargetOf(spec.Name)); err != nil {
			return err
		}
	}
	return a.commit(ctx, func(st *State) {
		rec.RevisionSetAt = a.e.now().UTC()
		if old := st.Resources[addr]; old != nil && old.Spec != nil && old.Spec.Revision == rec.Revision {
			rec.RevisionSetAt = old.Spec.RevisionSetAt
		}
		st.Resources[addr] = &Resource{Address: addr, Kind: KindGroup, Group: spec.Name, Spec: &rec, Attrs: groupAttrs(spec, rec), CreatedAt: a.e.now().UTC()}
	})
}

// deleteDeployGroup removes the deployment group a group's deploy block
// made, once the group is gone (destroy, or the block removed), so that
// the application can be removed without --force. A deployment still
// running keeps it (the store refuses): that is logged, not an error, as
// its machines are gone already.
func (a *applier) deleteDeployGroup(ctx context.Context, r *Resource) {
	if r.Spec == nil || r.Spec.App == "" || r.Spec.DeployGroup == "" {
		return
	}
	err := a.e.st.DeleteGroup(ctx, r.Spec.App, r.Spec.DeployGroup)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.event(api.ApplyEvent{Type: "log", Address: r.Address, Message: fmt.Sprintf("deployment group %s/%s kept: %v", r.Spec.App, r.Spec.DeployGroup, err)})
	}
}

// deploySelector selects the machines of a group that finished setup.
func deploySelector(env, group string) string {
	return provider.LabelEnv + "=" + env + "," + provider.LabelGroup + "=" + group + "," + LabelSetup + "=done"
}

// LabelSetup marks a host whose setup script succeeded (the deployment
// group selects only those, so that deploy follows setup).
const LabelSetup = "gantry.setup"

// ensureDeployGroup makes the group's deployment group, or updates its
// settings.
func (e *Engine) ensureDeployGroup(ctx context.Context, env, group string, rec GroupRecord, lb *api.LBTarget) error {
	sel := deploySelector(env, group)
	g, err := e.st.GetGroup(ctx, rec.App, rec.DeployGroup)
	if errors.Is(err, store.ErrNotFound) {
		_, err = e.dep.CreateGroup(ctx, rec.App, api.CreateGroupRequest{Name: rec.DeployGroup, Selector: sel, Config: rec.Config, HealthCheck: rec.HealthCheck,
			LoadBalancer: lb})
		if err != nil {
			return fmt.Errorf("deployment group %s/%s: %w", rec.App, rec.DeployGroup, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	hc, _ := json.Marshal(g.HealthCheck)
	want, _ := json.Marshal(rec.HealthCheck)
	if g.Selector != sel || g.Config != rec.Config || string(hc) != string(want) || !g.AutoRollback || !sameLBTarget(g.LoadBalancer, lb) {
		g.Selector, g.Config, g.HealthCheck, g.AutoRollback, g.LoadBalancer = sel, rec.Config, rec.HealthCheck, true, lb
		return e.st.UpdateGroupSettings(ctx, g)
	}
	return nil
}

// createMachine makes one machine and records it.
func (a *applier) createMachine(ctx context.Context, spec config.GroupSpec, group string, idx int, host bool) error {
	addr := machineAddress(group, idx, host)
	name := machineName(a.env, group, idx, host)
	// A host of that name is revoked only if it is this machine's own
	// (an earlier incarnation); another's is never touched (ownership.go).
	if err := a.e.claimName(ctx, a.env, addr, name); err != nil {
		return err
	}
	pb := a.def.Providers[spec.Provider]
	p, _, err := a.e.providerFor(pb)
	if err != nil {
		return err
	}
	a.mu.Lock()
	nets, netIDs, _ := networkIDs(a.st, spec.Networks, nil)
	a.mu.Unlock()
	labels := map[string]string{provider.LabelEnv: a.env, provider.LabelGroup: group, provider.LabelResource: addr}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	token, err := a.e.cfg.NewJoinToken(ctx, MachineOwner(a.env, addr), labels, 30*time.Minute)
	if err != nil {
		return fmt.Errorf("join token: %w", err)
	}
	ag := a.e.cfg.Agent
	ag.JoinToken, ag.Name = token, name
	m := provider.Machine{Env: a.env, Group: group, Resource: addr, Name: name, Image: spec.Image, CPUs: spec.CPUs, MemoryMB: spec.MemoryMB,
		Networks: nets, Labels: spec.Labels, Attrs: spec.Attrs, Agent: ag}
	ms, err := p.CreateMachine(ctx, m)
	if err != nil {
		return err
	}
	a.e.Kick() // the lifecycle waits for its agent
	return a.commit(ctx, func(st *State) {
		st.Resources[addr] = &Resource{Address: addr, Kind: KindMachine, Group: group, Index: idx, Host: host, Provider: spec.Provider, ID: ms.ID,
			Name: name, IP: ms.Address, Attrs: machineAttrs(spec, netIDs, true), CreatedAt: a.e.now().UTC()}
	})
}

// updateMachine changes a machine in place: labels on its host, size on
// the provider.
func (a *applier) updateMachine(ctx context.Context, old *Resource, spec config.GroupSpec) error {
	a.mu.Lock()
	_, netIDs, _ := networkIDs(a.st, spec.Networks, nil)
	a.mu.Unlock()
	want := machineAttrs(spec, netIDs, true)
	if want["cpus"] != old.Attrs["cpus"] || want["memory"] != old.Attrs["memory"] {
		p, err := a.e.stateProvider(a.def, old.Provider)
		if err != nil {
			return err
		}
		m := provider.Machine{Env: a.env, Group: old.Group, Resource: old.Address, Name: old.Name, Image: spec.Image, CPUs: spec.CPUs, MemoryMB: spec.MemoryMB, Labels: spec.Labels, Attrs: spec.Attrs}
		if err := p.UpdateMachine(ctx, old.ID, m); err != nil {
			return err
		}
	}
	if want["labels"] != old.Attrs["labels"] {
		if h, err := a.e.st.GetHostByName(ctx, old.Name); err == nil && owns(h, a.env, old.Address) {
			labels := map[string]string{}
			for k, v := range h.Labels {
				if strings.HasPrefix(k, "gantry.") {
					labels[k] = v
				}
			}
			for k, v := range spec.Labels {
				labels[k] = v
			}
			if err := a.e.st.SetHostLabels(ctx, h.ID, labels); err != nil {
				return err
			}
		}
	}
	return a.commit(ctx, func(st *State) {
		if r := st.Resources[old.Address]; r != nil {
			r.Attrs = want
		}
	})
}

// deleteMachine runs the machine's shutdown script, deletes it, revokes
// its host and records that it is gone.
func (a *applier) deleteMachine(ctx context.Context, r *Resource) error {
	var rec *GroupRecord
	if g := a.oldSt.Resources[groupAddress(r)]; g != nil {
		rec = g.Spec
	}
	a.e.Kick() // configure runs once it is gone
	p, err := a.e.stateProvider(a.def, r.Provider)
	if err != nil {
		return err
	}
	// Out of its load balancer (drained) before its shutdown script runs,
	// unless this apply removes the load balancer too.
	if !a.lbGoes(r) {
		if msg := a.e.lbRemove(ctx, a.env, a.oldSt, r); msg != "" {
			a.event(api.ApplyEvent{Type: "log", Address: r.Address, Message: msg})
		}
	}
	if rec != nil && rec.Shutdown != "" {
		// A machine deleted or stopped outside gantry has no agent to run
		// its shutdown: it is not waited for.
		if ms, exists, err := p.ReadMachine(ctx, r.ID); err == nil && (!exists || !ms.Running) {
			why := "deleted"
			if exists {
				why = "stopped"
			}
			a.event(api.ApplyEvent{Type: "log", Address: r.Address, Message: "shutdown skipped: the machine was " + why + " outside gantry"})
		} else if err := a.e.shutdown(ctx, a.env, r, rec); err != nil {
			a.event(api.ApplyEvent{Type: "log", Address: r.Address, Message: "shutdown: " + err.Error()})
		}
	}
	if err := p.DeleteMachine(ctx, r.ID); err != nil {
		return err
	}
	a.e.revokeOwnedHost(ctx, a.env, r)
	if a.e.cfg.VoidJoinTokens != nil {
		a.e.cfg.VoidJoinTokens(ctx, MachineOwner(a.env, r.Address))
	}
	return a.commit(ctx, func(st *State) {
		if cur := st.Resources[r.Address]; cur != nil && cur.ID == r.ID {
			delete(st.Resources, r.Address)
		}
	})
}

// MachineOwner is the owner of the join tokens made for the machine at
// address addr of environment env: "env:dev/group.web[1]".
func MachineOwner(env, addr string) string { return "env:" + env + "/" + addr }

// groupAddress is the address of a machine's group record.
func groupAddress(r *Resource) string {
	if r.Host {
		return "host." + r.Group
	}
	return "group." + r.Group
}

// outputs evaluates the outputs with what now exists and records them.
func (a *applier) outputs(ctx context.Context) error {
	if a.def == nil || a.plan.Destroy {
		// A destroy takes both fleets of a blue/green deployment: nothing
		// is left to replace or remove.
		return a.commit(ctx, func(st *State) { st.Outputs = nil; st.Scale = nil; st.Replacing = nil })
	}
	outs, err := a.def.EvalOutputs(a.worldCopy())
	if err != nil {
		return diagError(err)
	}
	return a.commit(ctx, func(st *State) { st.Outputs = outputsJSON(outs); st.Scale = a.plan.Scale })
}
