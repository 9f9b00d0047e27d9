package infra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// Load balancers of environments: a group with a load_balancer block is
// the load balancer of another group (its target). The lifecycle drives
// it through the traffic controller (Config.LB), from the tick:
//
//   - configure: the load balancer machine, once online (set up, agent
//     connected), gets the desired configuration (desiredLBConfig): one
//     backend named after the target group, one server per target machine
//     that exists and has an address, new ones in maint. It is sent again
//     when it changes, when the load balancer machine is re-created (a
//     new host id), and every lbRepair as a repair.
//   - join: a target machine that is online (set up, its revision
//     deployed, health gate passed) and not in a deployment, whose server
//     is in maint, is let in (LBAllow: the load balancer's own rise
//     checks make it UP), never before (joinCandidates).
//   - leave: a target machine that an apply removes is drained and
//     deleted from the load balancer (LBRemove, capped by drain_timeout)
//     before its shutdown script runs (Engine.lbRemove); it is then left
//     out of the desired configuration.
//
// The environment is not settled while an online target machine is not
// ready in its load balancer (lbPending), and `gantry env show` shows
// each target machine's state there (EnvMachine.LB).

// LB is what the engine needs from the traffic controller: one operation
// on the load balancer of the host named lbHost (its agent drives it).
type LB interface {
	Do(ctx context.Context, lbHost string, cmd protocol.LBCommand) (protocol.LBResult, error)
}

// lbRepair is how often a load balancer's configuration is sent again
// when nothing changed (a repair: a load balancer restarted by hand).
const lbRepair = 30 * time.Second

// lbStatusEvery is how often the servers' states are read when nothing is
// waiting to join.
const lbStatusEvery = 5 * time.Second

// lbKey names a load balancer group of an environment: "dev/lb".
func lbKey(env, group string) string { return env + "/" + group }

// lbState is the controller's memory of the load balancers: what was sent,
// the servers last reported, the machines removed.
type lbState struct {
	mu      sync.Mutex
	sent    map[string]lbSent                        // lbKey → last configuration sent
	busy    map[string]bool                          // lbKey → a worker runs
	servers map[string]map[string]api.LBServerStatus // lbKey → server name → status
	statAt  map[string]time.Time                     // lbKey → when servers were read
	removed map[string]bool                          // env/provider id → removed via LBRemove
	failed  map[string]lbFailure                     // env/machine name → last failed allow
	errs    map[string]string                        // lbKey → last configure error
}

type lbSent struct {
	hash, hostID string
	at           time.Time
}

type lbFailure struct {
	err string
	at  time.Time
}

func newLBState() *lbState {
	return &lbState{sent: map[string]lbSent{}, busy: map[string]bool{}, servers: map[string]map[string]api.LBServerStatus{},
		statAt: map[string]time.Time{}, removed: map[string]bool{}, failed: map[string]lbFailure{}, errs: map[string]string{}}
}

// lbAttrs are the attributes of a load_balancer block that plans compare
// (and show, as a load_balancer { … } block).
func lbAttrs(lb *config.LBSpec) map[string]string {
	if lb == nil {
		return nil
	}
	m := map[string]string{
		"load_balancer.target":        "group." + lb.Target,
		"load_balancer.listen":        strconv.Itoa(lb.Listen),
		"load_balancer.port":          strconv.Itoa(lb.Port),
		"load_balancer.balance":       lb.Balance,
		"load_balancer.drain_timeout": strconv.Itoa(lb.DrainTimeout) + "s",
		"load_balancer.driver":        lb.Driver,
	}
	if lb.Header != "" {
		m["load_balancer.header"] = lb.Header
	}
	hc := map[string]any{"interval": (time.Duration(lb.Check.IntervalMillis) * time.Millisecond).String(), "rise": lb.Check.Rise, "fall": lb.Check.Fall}
	if lb.Check.Path != "" {
		hc["path"] = lb.Check.Path
	}
	b, _ := json.Marshal(hc)
	m["load_balancer.health_check"] = string(b)
	return m
}

// blueGreenAttrs are the attributes of a deploy block's blue_green block
// that plans compare and show: those set (the deployment applies the
// defaults of the others).
func blueGreenAttrs(bg *api.BlueGreenSpec) map[string]string {
	if bg == nil {
		return nil
	}
	m := map[string]string{}
	ms := func(n int64) string { return validate.DurationString(time.Duration(n) * time.Millisecond) }
	if bg.StepPercent > 0 {
		m["deploy.blue_green.shift_step"] = strconv.Itoa(bg.StepPercent) + "%"
	}
	if bg.StepIntervalMillis > 0 {
		m["deploy.blue_green.shift_interval"] = ms(bg.StepIntervalMillis)
	}
	if bg.NoKeep || bg.KeepOriginalMillis > 0 {
		m["deploy.blue_green.keep_original"] = ms(bg.KeepOriginalMillis)
	}
	return m
}

// checkLBPlan refuses what a plan cannot do with load balancers: a load
// balancer group of more than one machine (`gantry scale lb=2`), and a
// canary or blue-green deployment of a group without a load balancer.
func checkLBPlan(def *config.Definition, name string, spec config.GroupSpec, host bool) error {
	if host {
		return nil
	}
	if def.LBTargetOf(name) != "" && spec.Count != 1 {
		return fmt.Errorf("%w: group %q is the load balancer of group %q: its count is 1, got %d (one load balancer machine per group for now)",
			ErrInvalid, name, def.LBTargetOf(name), spec.Count)
	}
	if spec.Deploy != nil && (spec.Deploy.Strategy == api.StrategyCanary || spec.Deploy.Strategy == api.StrategyBlueGreen) &&
		def.LoadBalancerOf(name) == "" {
		shown := spec.Deploy.Strategy
		if shown == api.StrategyBlueGreen {
			shown = "blue_green" // as the definition spells it
		}
		return fmt.Errorf("%w: group %q: deploy.strategy %q needs a load balancer in front of the group: add a group with "+
			"load_balancer { target = group.%s  port = … }", ErrInvalid, name, shown, name)
	}
	return nil
}

// lbGroups returns the load balancer groups recorded in st, by name.
func lbGroups(st *State) map[string]*config.LBSpec {
	out := map[string]*config.LBSpec{}
	for _, r := range st.Resources {
		if r.Kind == KindGroup && r.Spec != nil && r.Spec.LoadBalancer != nil && !r.Spec.Host {
			out[r.Group] = r.Spec.LoadBalancer
		}
	}
	return out
}

// lbOf returns the load balancer group of target group in st ("" and nil
// for none).
func lbOf(st *State, target string) (string, *config.LBSpec) {
	gs := lbGroups(st)
	for _, name := range slices.Sorted(maps.Keys(gs)) {
		if gs[name].Target == target {
			return name, gs[name]
		}
	}
	return "", nil
}

// wantLBTarget is the load balancer a target group's deployment group
// names: the load balancer machine (a managed haproxy: no socket).
func wantLBTarget(st *State, group string) *api.LBTarget {
	name, spec := lbOf(st, group)
	if spec == nil {
		return nil
	}
	return &api.LBTarget{Host: machineName(st.Env, name, 0, false), Backend: group, Driver: spec.Driver, DrainTimeoutSeconds: spec.DrainTimeout}
}

// lbMember is a target machine as the load balancer sees it.
type lbMember struct {
	Name, Addr string
}

// desiredLBConfig is the configuration of a load balancer: one backend
// named after the target group, its members' servers (sorted, weight 100,
// new ones in maint).
func desiredLBConfig(spec *config.LBSpec, members []lbMember) api.LBConfig {
	be := api.LBBackend{Name: spec.Target, Listen: spec.Listen, Balance: spec.Balance, Check: spec.Check, Header: spec.Header, Servers: []api.LBServer{}}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b lbMember) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	for _, m := range ms {
		be.Servers = append(be.Servers, api.LBServer{Name: m.Name, Addr: m.Addr, Port: spec.Port, Weight: 100, State: api.LBMaint})
	}
	return api.LBConfig{Backends: []api.LBBackend{be}}
}

// configHash identifies a configuration.
func configHash(c api.LBConfig) string {
	b, _ := json.Marshal(c)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// lbTargetView is what the join decision needs of a target machine.
type lbTargetView struct {
	Name  string
	Phase string
	// Busy is true while a deployment runs on it (the deployment drains
	// and lets it in itself).
	Busy bool
}

// joinCandidates returns the target machines to let in: online, not in a
// deployment, and in maint in the load balancer. A machine the load
// balancer does not list yet waits for the configuration that adds it.
func joinCandidates(targets []lbTargetView, servers map[string]api.LBServerStatus) []string {
	var out []string
	for _, t := range targets {
		s, ok := servers[t.Name]
		if t.Phase == api.PhaseOnline && !t.Busy && ok && s.State == api.LBMaint {
			out = append(out, t.Name)
		}
	}
	return out
}

// lbMembers are the target group's machines that belong in its load
// balancer: recorded, with an address, not removed from it (a leaving
// machine stays until its LBRemove).
func (l *lifecycle) lbMembers(st *State, target string) []lbMember {
	l.lb.mu.Lock()
	defer l.lb.mu.Unlock()
	var out []lbMember
	for _, r := range st.machines(target) {
		if r.Host || r.IP == "" || l.lb.removed[st.Env+"/"+r.ID] {
			continue
		}
		out = append(out, lbMember{Name: r.Name, Addr: r.IP})
	}
	return out
}

// balance starts, for every load balancer group of the environment whose
// machine is online, a worker that configures it and lets in the target
// machines that are ready (one worker per load balancer at a time; the
// tick does not wait for it).
func (l *lifecycle) balance(ctx context.Context, st *State, views []machineView) {
	if l.e.cfg.LB == nil {
		return
	}
	groups := lbGroups(st)
	l.forgetRemoved(st)
	fleets := replacing(st) // left to their blue/green deployment
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		spec := groups[name]
		var lbv *machineView
		var targets []lbTargetView
		for i, v := range views {
			switch {
			case v.r.Group == name && !v.r.Host:
				lbv = &views[i]
			case v.r.Group == spec.Target && !v.r.Host:
				t := lbTargetView{Name: v.r.Name, Phase: v.phase}
				if v.found {
					t.Busy = l.e.dep.HostBusy(v.host.ID) || fleets[v.r.Address]
				}
				targets = append(targets, t)
			}
		}
		if lbv == nil || lbv.phase != api.PhaseOnline {
			continue
		}
		key := lbKey(st.Env, name)
		cfg := desiredLBConfig(spec, l.lbMembers(st, spec.Target))
		l.lb.mu.Lock()
		if l.lb.busy[key] {
			l.lb.mu.Unlock()
			continue
		}
		l.lb.busy[key] = true
		l.lb.mu.Unlock()
		go func() {
			defer func() {
				l.lb.mu.Lock()
				delete(l.lb.busy, key)
				l.lb.mu.Unlock()
			}()
			l.lbWork(ctx, key, lbv.r.Name, lbv.host.ID, spec, cfg, targets)
		}()
	}
}

// lbWork configures one load balancer if needed, reads its servers and
// lets in the target machines that are ready.
func (l *lifecycle) lbWork(ctx context.Context, key, lbHost, hostID string, spec *config.LBSpec, cfg api.LBConfig, targets []lbTargetView) {
	now := l.e.now()
	hash := configHash(cfg)
	l.lb.mu.Lock()
	sent := l.lb.sent[key]
	statAt := l.lb.statAt[key]
	servers := maps.Clone(l.lb.servers[key])
	l.lb.mu.Unlock()
	do := func(cmd protocol.LBCommand, timeout time.Duration) (protocol.LBResult, error) {
		cmd.Driver = spec.Driver
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := l.e.cfg.LB.Do(c, lbHost, cmd)
		if err == nil && res.Error != "" {
			err = errors.New(res.Error)
		}
		return res, err
	}
	record := func(res protocol.LBResult) {
		m := map[string]api.LBServerStatus{}
		for _, s := range res.Servers {
			if s.Backend == "" || s.Backend == spec.Target {
				m[s.Name] = s
			}
		}
		l.lb.mu.Lock()
		l.lb.servers[key] = m
		l.lb.statAt[key] = l.e.now()
		l.lb.mu.Unlock()
		servers = m
	}
	if sent.hash != hash || sent.hostID != hostID || now.Sub(sent.at) >= lbRepair {
		res, err := do(protocol.LBCommand{Op: protocol.LBConfigure, Config: &cfg, Weight: -1}, 60*time.Second)
		l.lb.mu.Lock()
		if err != nil {
			l.lb.errs[key] = err.Error()
			l.lb.mu.Unlock()
			l.e.log.Warn("configure load balancer", "lb", key, "host", lbHost, "err", err)
			return
		}
		delete(l.lb.errs, key)
		l.lb.sent[key] = lbSent{hash: hash, hostID: hostID, at: l.e.now()}
		l.lb.mu.Unlock()
		l.e.log.Info("load balancer configured", "lb", key, "host", lbHost, "servers", len(cfg.Backends[0].Servers), "detail", res.Detail)
		statAt = time.Time{} // read what it serves now
	}
	waiting := false
	for _, t := range targets {
		if s, ok := servers[t.Name]; t.Phase == api.PhaseOnline && (!ok || s.State == api.LBMaint) {
			waiting = true
		}
	}
	if waiting || l.e.now().Sub(statAt) >= lbStatusEvery {
		res, err := do(protocol.LBCommand{Op: protocol.LBStatus, Backend: spec.Target, Weight: -1}, 10*time.Second)
		if err != nil {
			l.e.log.Warn("load balancer status", "lb", key, "host", lbHost, "err", err)
			return
		}
		record(res)
	}
	join := joinCandidates(targets, servers)
	if len(join) == 0 {
		return
	}
	// Each allow waits for the load balancer's own checks (rise in a row).
	wait := time.Duration(spec.Check.IntervalMillis*(spec.Check.Rise+spec.Check.Fall+2))*time.Millisecond + 10*time.Second
	env, _, _ := cutKey(key)
	var wg sync.WaitGroup
	for _, name := range join {
		fk := env + "/" + name
		l.lb.mu.Lock()
		f, failed := l.lb.failed[fk]
		l.lb.mu.Unlock()
		if failed && l.e.now().Sub(f.at) < 5*time.Second {
			continue // retried after a pause
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := do(protocol.LBCommand{Op: protocol.LBAllow, Backend: spec.Target, Server: name, Weight: -1, TimeoutMillis: wait.Milliseconds()}, wait+10*time.Second)
			l.lb.mu.Lock()
			if err != nil {
				l.lb.failed[fk] = lbFailure{err: err.Error(), at: l.e.now()}
			} else {
				delete(l.lb.failed, fk)
			}
			l.lb.mu.Unlock()
			if err != nil {
				l.e.log.Warn("let a machine into its load balancer", "lb", key, "machine", name, "err", err)
				return
			}
			l.e.log.Info("machine joined its load balancer", "lb", key, "machine", name, "detail", res.Detail)
			if len(res.Servers) > 0 {
				l.lb.mu.Lock()
				m := maps.Clone(l.lb.servers[key])
				if m == nil {
					m = map[string]api.LBServerStatus{}
				}
				for _, s := range res.Servers {
					if s.Backend == "" || s.Backend == spec.Target {
						m[s.Name] = s
					}
				}
				l.lb.servers[key] = m
				l.lb.mu.Unlock()
			} else {
				l.lb.mu.Lock()
				l.lb.statAt[key] = time.Time{}
				l.lb.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.e.Kick()
}

// cutKey splits an lbKey.
func cutKey(key string) (env, group string, ok bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

// forgetRemoved drops the removal marks of machines no longer recorded.
func (l *lifecycle) forgetRemoved(st *State) {
	ids := map[string]bool{}
	for _, r := range st.allMachines() {
		ids[st.Env+"/"+r.ID] = true
	}
	l.lb.mu.Lock()
	defer l.lb.mu.Unlock()
	for k := range l.lb.removed {
		if env, _, _ := cutKey(k); env == st.Env && !ids[k] {
			delete(l.lb.removed, k)
		}
	}
}

// lbServer returns what the load balancer of a target machine last
// reported of it, and whether it is known at all.
func (l *lifecycle) lbServer(st *State, r *Resource) (lbGroup string, s api.LBServerStatus, listed, known bool) {
	name, spec := lbOf(st, r.Group)
	if spec == nil || r.Host {
		return "", s, false, false
	}
	key := lbKey(st.Env, name)
	l.lb.mu.Lock()
	defer l.lb.mu.Unlock()
	m, known := l.lb.servers[key]
	s, listed = m[r.Name]
	return name, s, listed, known
}

// lbText is a target machine's state in its load balancer for `gantry
// env show`: "ready 100", "maint", "drain" (with its health when not UP),
// "absent", or "" when not known.
func lbText(s api.LBServerStatus, listed, known bool) string {
	switch {
	case !known:
		return ""
	case !listed:
		return "absent"
	}
	t := s.State
	if s.State == api.LBReady {
		t += " " + strconv.Itoa(s.Weight)
	}
	if s.Health != "" && s.Health != "UP" && s.State != api.LBMaint {
		t += " " + s.Health
	}
	return t
}

// lbPending lists the online target machines that are not yet ready in
// their load balancer: the environment is not settled until they are.
// Nothing is listed without a traffic controller, or when the load
// balancer machine failed (it is reported as failed itself).
func (l *lifecycle) lbPending(st *State, views []machineView) []string {
	if l.e.cfg.LB == nil {
		return nil
	}
	failedLB := map[string]bool{}
	for _, v := range views {
		if v.phase == api.PhaseFailed {
			failedLB[v.r.Group] = true
		}
	}
	var out []string
	for _, v := range views {
		if v.phase != api.PhaseOnline || v.r.Host {
			continue
		}
		name, s, listed, known := l.lbServer(st, v.r)
		if name == "" || failedLB[name] {
			continue
		}
		if v.found && l.e.dep.HostBusy(v.host.ID) {
			continue // its deployment lets it in
		}
		lbHost := machineName(st.Env, name, 0, false)
		switch {
		case !known || !listed:
			why := "not configured yet"
			l.lb.mu.Lock()
			if e := l.lb.errs[lbKey(st.Env, name)]; e != "" {
				why = "configuring it failed: " + e
			}
			l.lb.mu.Unlock()
			out = append(out, fmt.Sprintf("%s: joining load balancer %s (%s)", v.r.Name, lbHost, why))
		case s.State == api.LBMaint:
			why := ""
			l.lb.mu.Lock()
			if f, ok := l.lb.failed[st.Env+"/"+v.r.Name]; ok {
				why = ": " + f.err
			}
			l.lb.mu.Unlock()
			out = append(out, fmt.Sprintf("%s: joining load balancer %s (maint%s)", v.r.Name, lbHost, why))
		}
	}
	return out
}

// lbRemove drains a target machine that is leaving and deletes it from
// its load balancer (LBRemove, capped by drain_timeout), before its
// shutdown script runs. It reports what was done, "" when the machine is
// behind no load balancer. A failure is reported, not returned: the
// machine goes all the same (the next configuration drops its server).
func (e *Engine) lbRemove(ctx context.Context, env string, st *State, r *Resource) string {
	if e.cfg.LB == nil || r.Host {
		return ""
	}
	name, spec := lbOf(st, r.Group)
	if spec == nil {
		return ""
	}
	lbHost := machineName(env, name, 0, false)
	mark := func() {
		e.lc.lb.mu.Lock()
		e.lc.lb.removed[env+"/"+r.ID] = true
		if m := e.lc.lb.servers[lbKey(env, name)]; m != nil {
			delete(m, r.Name)
		}
		e.lc.lb.mu.Unlock()
	}
	h, err := e.st.GetHostByName(ctx, lbHost)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !e.fl.HostOnline(h.ID)) {
		mark()
		return fmt.Sprintf("load balancer %s is not online: %s not drained", lbHost, r.Name)
	}
	drain := time.Duration(spec.DrainTimeout) * time.Second
	c, cancel := context.WithTimeout(ctx, drain+30*time.Second)
	defer cancel()
	start := e.now()
	res, err := e.cfg.LB.Do(c, lbHost, protocol.LBCommand{Driver: spec.Driver, Op: protocol.LBRemove, Backend: spec.Target, Server: r.Name,
		Weight: -1, TimeoutMillis: drain.Milliseconds()})
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	mark()
	took := e.now().Sub(start).Round(10 * time.Millisecond)
	if err != nil {
		return fmt.Sprintf("removing %s from load balancer %s failed after %s: %v", r.Name, lbHost, took, err)
	}
	detail := res.Detail
	if detail == "" {
		detail = "drained"
	}
	if res.TimedOut {
		detail += fmt.Sprintf(" (sessions still open at drain_timeout %s)", drain)
	}
	return fmt.Sprintf("%s left load balancer %s: %s, in %s", r.Name, lbHost, detail, took)
}

// reconcileLBTargets keeps the load balancer of every target group's
// deployment group as the state says (a load balancer added, changed or
// removed after the deployment group was made).
func (l *lifecycle) reconcileLBTargets(ctx context.Context, st *State) error {
	var errs []error
	for _, r := range st.Resources {
		if r.Kind != KindGroup || r.Spec == nil || r.Spec.App == "" || r.Spec.Host {
			continue
		}
		want := wantLBTarget(st, r.Group)
		g, err := l.e.st.GetGroup(ctx, r.Spec.App, r.Spec.DeployGroup)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if sameLBTarget(g.LoadBalancer, want) {
			continue
		}
		g.LoadBalancer = want
		if err := l.e.st.UpdateGroupSettings(ctx, g); err != nil {
			errs = append(errs, fmt.Errorf("deployment group %s/%s: load balancer: %w", g.App, g.Name, err))
		}
	}
	return errors.Join(errs...)
}

// sameLBTarget compares two load balancer targets as the deployment
// engine reads them (no driver is haproxy, no drain timeout 30 s).
func sameLBTarget(a, b *api.LBTarget) bool {
	if a == nil || b == nil {
		return a == b
	}
	norm := func(t api.LBTarget) api.LBTarget {
		if t.Driver == "" {
			t.Driver = config.DefaultLBDriver
		}
		if t.DrainTimeoutSeconds == 0 {
			t.DrainTimeoutSeconds = config.DefaultLBDrainTimeout
		}
		return t
	}
	return norm(*a) == norm(*b)
}

// lbTargetOf is the load balancer a group's deployment group names, from
// the definition being applied (nil when no group balances it).
func (a *applier) lbTargetOf(group string) *api.LBTarget {
	if a.def == nil {
		return nil
	}
	name := a.def.LoadBalancerOf(group)
	if name == "" {
		return nil
	}
	t := &api.LBTarget{Host: machineName(a.env, name, 0, false), Backend: group, Driver: config.DefaultLBDriver, DrainTimeoutSeconds: config.DefaultLBDrainTimeout}
	if spec, err := a.def.EvalGroup(name, a.worldCopy()); err == nil && spec.LoadBalancer != nil {
		t.Driver, t.DrainTimeoutSeconds = spec.LoadBalancer.Driver, spec.LoadBalancer.DrainTimeout
	}
	return t
}

// EnvLB is one load balancer of an environment: the group whose machine
// it is, the group it balances, and the target the traffic controller
// reads it with.
type EnvLB struct {
	Group, Target string
	LB            api.LBTarget
}

// LoadBalancers returns the load balancers of environment env, by group
// name; only the one of group (a load balancer group or the group it
// balances) when group is not "". An unknown environment is
// store.ErrNotFound; an unknown group, or one without a load balancer, an
// ErrInvalid that says which groups have one.
func (e *Engine) LoadBalancers(ctx context.Context, env, group string) ([]EnvLB, error) {
	rec, err := e.st.GetEnvironment(ctx, env)
	if errors.Is(err, store.ErrNotFound) {
		return nil, e.notFound(ctx, env)
	}
	if err != nil {
		return nil, err
	}
	st, err := decodeState(env, rec.State)
	if err != nil {
		return nil, err
	}
	gs := lbGroups(st)
	var out, all []EnvLB
	for _, name := range slices.Sorted(maps.Keys(gs)) {
		spec := gs[name]
		l := EnvLB{Group: name, Target: spec.Target, LB: api.LBTarget{Host: machineName(env, name, 0, false), Backend: spec.Target, Driver: spec.Driver,
			DrainTimeoutSeconds: spec.DrainTimeout}}
		all = append(all, l)
		if group == "" || group == name || group == spec.Target {
			out = append(out, l)
		}
	}
	if group != "" && len(out) == 0 {
		var names []string
		for _, l := range all {
			names = append(names, l.Group+" (of "+l.Target+")")
		}
		have := "none has one"
		if len(names) > 0 {
			have = "load balancers: " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%w: group %q of environment %s is no load balancer and has none (%s)", ErrInvalid, group, env, have)
	}
	return out, nil
}

// lbGoes reports whether the apply deletes the load balancer machine in
// front of machine r (a destroy, the load balancer group removed): r is
// then not drained out of it.
func (a *applier) lbGoes(r *Resource) bool {
	name, spec := lbOf(a.oldSt, r.Group)
	if spec == nil {
		return false
	}
	if a.plan.Destroy {
		return true
	}
	c, ok := a.changes[machineAddress(name, 0, false)]
	return ok && c.Action == api.ActionDelete
}
