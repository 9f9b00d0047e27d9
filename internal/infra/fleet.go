package infra

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/store"
)

// Replacement fleets: the machines of a blue/green deployment of an
// environment's group (deploy.Fleets; the deployment side is
// internal/deploy/fleets.go).
//
// Design: the replacement fleet is made as a temporary scale-out of the
// group. State.Replacing records, per group, the deployment, the original
// machines and, once made, the replacement ones. While the record is
// there, plans count the group as its count plus the originals (so an
// apply neither removes nor adds to either fleet) and keep both fleets'
// indexes first; once the deployment has decided, the record's phase
// says which fleet stays (retire: the replacements, discard: the
// originals) and an apply removes the other one, each machine drained out
// of the load balancer before its shutdown event, as a scale-in does.
// Replacement machines get the next free indexes (web-2, web-3 for a
// group of two): names stay derived from indexes, so nothing in the
// configuration language, the plan or the ownership checks changes, and
// the group's machines after a blue/green deployment are simply the
// higher indexes. The alternative weighed, names decoupled from indexes
// so that the replacements could take over web-0 and web-1, would have
// touched every one of those.
//
// The load balancer reconciler never lets a machine of a replacement
// record in on its own (the deployment moves the traffic), and user
// applies and scales wait until the record is gone (ErrBusy).

// Replacement phases (Replacement.Phase).
const (
	// FleetProvisioning: the replacement machines are being made.
	FleetProvisioning = "provisioning"
	// FleetReady: they are made; the deployment runs on them.
	FleetReady = "ready"
	// FleetRetire: the deployment succeeded; the originals are removed.
	FleetRetire = "retire"
	// FleetDiscard: the deployment failed or stopped; the replacements
	// are removed.
	FleetDiscard = "discard"
)

// Replacement is a blue/green deployment's replacement fleet of a group.
type Replacement struct {
	// Deployment is the blue/green deployment's id.
	Deployment string `json:"deployment"`
	// Size is how many replacement machines are made (the originals').
	Size int `json:"size"`
	// Before are the group's machines (addresses) when the fleet was
	// asked for; Originals those of them the deployment moves traffic
	// from.
	Before    []string `json:"before"`
	Originals []string `json:"originals"`
	// Machines are the replacement machines' addresses, once made.
	Machines []string `json:"machines,omitempty"`
	// Phase is one of the Fleet* phases.
	Phase string `json:"phase"`
	// Error is why making the fleet failed ("" if it did not).
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ErrBusy refuses an apply or scale of an environment while one of its
// groups has a replacement fleet (the API answers 409).
var ErrBusy = fmt.Errorf("%w: a blue/green deployment is replacing a group's machines", store.ErrConflict)

// fleetOps runs one replacement-fleet operation (an apply) per group at
// a time, in the background: the deployment engine's calls never wait.
type fleetOps struct {
	mu      sync.Mutex
	running map[string]string // env/group -> what
}

// fleetOpKey marks the context of an apply made for a replacement fleet
// (it may run while the group has a Replacement record).
type fleetOpKey struct{}

func isFleetOp(ctx context.Context) bool { return ctx.Value(fleetOpKey{}) != nil }

// start runs op for key unless one runs; it reports what runs.
func (e *Engine) startFleetOp(key, what string, op func(ctx context.Context) error) string {
	e.fops.mu.Lock()
	defer e.fops.mu.Unlock()
	if cur, ok := e.fops.running[key]; ok {
		return cur
	}
	if e.fops.running == nil {
		e.fops.running = map[string]string{}
	}
	e.fops.running[key] = what
	go func() {
		ctx := context.WithValue(context.Background(), fleetOpKey{}, true)
		err := op(ctx)
		if err != nil {
			e.log.Warn("replacement fleet", "group", key, "op", what, "err", err)
		}
		e.fops.mu.Lock()
		delete(e.fops.running, key)
		e.fops.mu.Unlock()
		e.Kick()
	}()
	return what
}

// setReplacing records group's replacement fleet.
func (s *State) setReplacing(group string, rp *Replacement) {
	if s.Replacing == nil {
		s.Replacing = map[string]*Replacement{}
	}
	s.Replacing[group] = rp
}

// fleetOp is the operation running for key ("" for none).
func (e *Engine) fleetOp(key string) string {
	e.fops.mu.Lock()
	defer e.fops.mu.Unlock()
	return e.fops.running[key]
}

// groupOfDeployment finds the environment and group whose deployment
// group is app/name.
func (e *Engine) groupOfDeployment(ctx context.Context, app, name string) (env, group string, st *State, err error) {
	recs, err := e.st.ListEnvironments(ctx)
	if err != nil {
		return "", "", nil, err
	}
	for _, rec := range recs {
		s, err := decodeState(rec.Name, rec.State)
		if err != nil {
			continue
		}
		for _, r := range s.Resources {
			if r.Kind == KindGroup && r.Spec != nil && r.Spec.App == app && r.Spec.DeployGroup == name && !r.Spec.Host {
				return rec.Name, r.Group, s, nil
			}
		}
	}
	return "", "", nil, nil
}

// Owns reports whether an environment makes the deployment group's
// machines (deploy.Fleets).
func (e *Engine) Owns(ctx context.Context, g api.DeploymentGroup) (bool, error) {
	env, _, _, err := e.groupOfDeployment(ctx, g.App, g.Name)
	return env != "", err
}

// Provision makes the replacement machines of blue/green deployment d,
// and returns them once each is online, set up and in the load
// balancer, in maint (deploy.Fleets).
func (e *Engine) Provision(ctx context.Context, d api.Deployment) ([]deploy.FleetHost, string, error) {
	env, group, st, err := e.groupOfDeployment(ctx, d.App, d.Group)
	if err != nil {
		return nil, "", err
	}
	if env == "" {
		return nil, "", fmt.Errorf("group %s of app %s is no longer an environment's", d.Group, d.App)
	}
	key := env + "/" + group
	rp := st.Replacing[group]
	switch {
	case rp != nil && rp.Deployment != d.ID:
		return nil, "", fmt.Errorf("group %s of environment %s is being replaced by deployment %s", group, env, rp.Deployment)
	case rp != nil && rp.Error != "":
		return nil, "", errors.New(rp.Error)
	case rp == nil || rp.Phase == FleetProvisioning:
		n := len(d.Traffic.Original)
		what := e.startFleetOp(key, "make", func(ctx context.Context) error { return e.provisionFleet(ctx, env, group, d) })
		if what != "make" {
			return nil, "waiting for the removal of an earlier replacement fleet", nil
		}
		return nil, fmt.Sprintf("making %d replacement machine(s) of group %s in environment %s", n, group, env), nil
	case rp.Phase != FleetReady:
		return nil, "", fmt.Errorf("the replacement machines of group %s are being removed (%s)", group, rp.Phase)
	}
	return e.lc.fleetReady(ctx, st, rp)
}

// provisionFleet records the replacement fleet of d and applies the
// environment's definition, which makes its machines.
func (e *Engine) provisionFleet(ctx context.Context, env, group string, d api.Deployment) error {
	var before []string
	ended := false
	err := e.updateState(ctx, env, "blue/green "+d.ID, func(st *State) error {
		if st.Resources["group."+group] == nil {
			return fmt.Errorf("group %s is no longer in environment %s", group, env)
		}
		if rp := st.Replacing[group]; rp != nil {
			before = rp.Before
			return nil
		}
		// The deployment may have ended, or be ending (aborted,
		// stopped), while this waited for the lock: then nothing is made.
		if cur, err := e.st.GetDeployment(ctx, d.ID); err != nil || api.DeployDone(cur.State) || cur.Traffic != nil && cur.Traffic.Phase == deploy.PhaseReleasing {
			ended = true
			return nil
		}
		orig := map[string]bool{}
		for _, n := range d.Traffic.Original {
			orig[n] = true
		}
		rp := &Replacement{Deployment: d.ID, Size: len(d.Traffic.Original), Phase: FleetProvisioning, CreatedAt: e.now().UTC()}
		for _, r := range st.machines(group) {
			rp.Before = append(rp.Before, r.Address)
			if orig[r.Name] {
				rp.Originals = append(rp.Originals, r.Address)
			}
		}
		if len(rp.Originals) != rp.Size {
			return fmt.Errorf("the group's set-up machines (%s) are not all machines of environment %s", strings.Join(d.Traffic.Original, ", "), env)
		}
		st.setReplacing(group, rp)
		before = rp.Before
		return nil
	})
	if err != nil {
		return e.fleetFailed(ctx, env, group, d.ID, err)
	}
	if ended {
		return nil
	}
	_, err = e.Apply(ctx, env, api.EnvRequest{Who: "blue/green " + d.ID, LockTimeoutSeconds: 600}, func(ev api.ApplyEvent) {
		if ev.Type == "error" || ev.Error != "" {
			e.log.Warn("replacement fleet apply", "env", env, "group", group, "address", ev.Address, "error", ev.Error, "message", ev.Message)
		}
	})
	if err != nil {
		return e.fleetFailed(ctx, env, group, d.ID, fmt.Errorf("make the replacement machines: %w", err))
	}
	return e.updateState(ctx, env, "blue/green "+d.ID, func(st *State) error {
		rp := st.Replacing[group]
		if rp == nil || rp.Deployment != d.ID {
			return nil
		}
		rp.Machines = nil
		for _, r := range st.machines(group) {
			if !slices.Contains(before, r.Address) {
				rp.Machines = append(rp.Machines, r.Address)
			}
		}
		if len(rp.Machines) != rp.Size {
			rp.Error = fmt.Sprintf("%d replacement machine(s) were made, %d wanted", len(rp.Machines), rp.Size)
		}
		rp.Phase = FleetReady
		return nil
	})
}

// fleetFailed records why the replacement fleet could not be made: the
// deployment's next Provision fails it.
func (e *Engine) fleetFailed(ctx context.Context, env, group, id string, cause error) error {
	err := e.updateState(ctx, env, "blue/green "+id, func(st *State) error {
		rp := st.Replacing[group]
		if rp == nil {
			rp = &Replacement{Deployment: id, Phase: FleetProvisioning, CreatedAt: e.now().UTC()}
			st.setReplacing(group, rp)
		}
		if rp.Deployment == id {
			rp.Error = cause.Error()
		}
		return nil
	})
	return errors.Join(cause, err)
}

// fleetReady returns the replacement machines once every one is online,
// set up, and listed by the load balancer in maint; else what it waits
// for. A machine whose setup failed fails the fleet.
func (l *lifecycle) fleetReady(ctx context.Context, st *State, rp *Replacement) ([]deploy.FleetHost, string, error) {
	l.mu.Lock()
	byName := l.byName
	l.mu.Unlock()
	var hosts []deploy.FleetHost
	var waiting []string
	for _, addr := range rp.Machines {
		r := st.Resources[addr]
		if r == nil {
			return nil, "", fmt.Errorf("replacement machine %s is gone", addr)
		}
		h, found := ownedHost(byName, st.Env, r)
		switch {
		case !found:
			waiting = append(waiting, r.Name+" joining")
			continue
		case h.Labels[LabelSetup] != "done":
			if j, failed := l.setupFailed(ctx, h.ID); failed {
				return nil, "", fmt.Errorf("replacement machine %s: setup failed: %s", r.Name, jobFailure(j))
			}
			waiting = append(waiting, r.Name+" setting up")
			continue
		case !l.e.fl.HostOnline(h.ID):
			waiting = append(waiting, r.Name+" offline")
			continue
		}
		if _, s, listed, known := l.lbServer(st, r); !known || !listed || s.State != api.LBMaint {
			waiting = append(waiting, r.Name+" joining the load balancer")
			continue
		}
		hosts = append(hosts, deploy.FleetHost{ID: h.ID, Name: r.Name})
	}
	if len(waiting) > 0 {
		return nil, "waiting for " + strings.Join(waiting, ", "), nil
	}
	return hosts, "", nil
}

// Release removes the losing fleet of blue/green deployment d: the
// originals when keepReplacements, else the replacement machines
// (deploy.Fleets). done is true once they are gone.
func (e *Engine) Release(ctx context.Context, d api.Deployment, keepReplacements bool) (bool, string, error) {
	env, group, st, err := e.groupOfDeployment(ctx, d.App, d.Group)
	if err != nil || env == "" {
		return env == "", "", err // an environment destroyed meanwhile took both fleets
	}
	rp := st.Replacing[group]
	if rp == nil || rp.Deployment != d.ID {
		// Not recorded yet: a make that still waits for the lock records
		// it, and its machines must then go too.
		if e.fleetOp(env+"/"+group) == "make" {
			return false, "waiting for the replacement machines to be made before removing them", nil
		}
		return true, "", nil
	}
	return false, e.releaseFleet(env, group, st, rp, keepReplacements), nil
}

// releaseFleet starts the removal of a replacement record's losing fleet
// and says what runs.
func (e *Engine) releaseFleet(env, group string, st *State, rp *Replacement, keepReplacements bool) string {
	phase, goes := FleetDiscard, rp.Machines
	if keepReplacements {
		phase, goes = FleetRetire, rp.Originals
	}
	id := rp.Deployment
	what := "remove"
	names := make([]string, 0, len(goes))
	for _, a := range goes {
		if r := st.Resources[a]; r != nil {
			names = append(names, r.Name)
		}
	}
	status := fmt.Sprintf("removing %s", strings.Join(names, ", "))
	if len(names) == 0 {
		status = "closing the replacement record"
	}
	if cur := e.startFleetOp(env+"/"+group, what, func(ctx context.Context) error {
		return e.removeFleet(ctx, env, group, id, phase)
	}); cur != what {
		return "waiting for the replacement machines to be made before removing them"
	}
	return status
}

// removeFleet sets a replacement record's phase, applies the definition
// (which removes the losing fleet), and drops the record.
func (e *Engine) removeFleet(ctx context.Context, env, group, id, phase string) error {
	who := "blue/green " + id
	gone := false
	err := e.updateState(ctx, env, who, func(st *State) error {
		rp := st.Replacing[group]
		switch {
		case rp == nil || rp.Deployment != id:
			gone = true
		case st.Resources["group."+group] == nil:
			// The group was removed meanwhile (destroy, or the block
			// deleted): its machines went with it.
			gone = true
			delete(st.Replacing, group)
		default:
			rp.Phase = phase
		}
		return nil
	})
	if err != nil || gone {
		return err
	}
	if _, err := e.Apply(ctx, env, api.EnvRequest{Who: who, LockTimeoutSeconds: 600}, func(api.ApplyEvent) {}); err != nil {
		return fmt.Errorf("remove the %s machines: %w", map[bool]string{true: "original", false: "replacement"}[phase == FleetRetire], err)
	}
	return e.updateState(ctx, env, who, func(st *State) error {
		if rp := st.Replacing[group]; rp != nil && rp.Deployment == id {
			delete(st.Replacing, group)
			if len(st.Replacing) == 0 {
				st.Replacing = nil
			}
		}
		return nil
	})
}

// updateState changes an environment's recorded state under its lock.
func (e *Engine) updateState(ctx context.Context, env, who string, f func(st *State) error) error {
	release, err := e.lock(ctx, env, who, 10*time.Minute)
	if err != nil {
		return err
	}
	defer release()
	rec, st, err := e.env(ctx, env)
	if err != nil {
		return err
	}
	if rec.Serial == 0 {
		return store.ErrNotFound
	}
	if err := f(st); err != nil {
		return err
	}
	next := rec
	next.Serial, next.State, next.UpdatedAt = rec.Serial+1, stateJSON(st), e.now().UTC()
	return e.st.SaveEnvironment(ctx, next, rec.Serial)
}

// fleetTick removes, on the environment's own, the losing fleet of a
// replacement record whose deployment ended without doing it (stopped by
// force, or gone).
func (l *lifecycle) fleetTick(ctx context.Context, st *State) {
	for _, group := range slices.Sorted(maps.Keys(st.Replacing)) {
		rp := st.Replacing[group]
		d, err := l.e.st.GetDeployment(ctx, rp.Deployment)
		switch {
		case errors.Is(err, store.ErrNotFound):
			l.e.releaseFleet(st.Env, group, st, rp, false)
		case err != nil:
			l.e.log.Warn("replacement fleet", "env", st.Env, "group", group, "err", err)
		case api.DeployDone(d.State):
			l.e.releaseFleet(st.Env, group, st, rp, d.State == api.DeploySucceeded)
		}
	}
}

// replacing returns the machines (addresses) of the groups' replacement
// records, both fleets, and while the replacement machines are being
// made every machine of the group that was not there before: the load
// balancer reconciler leaves them all to the deployment.
func replacing(st *State) map[string]bool {
	out := map[string]bool{}
	for group, rp := range st.Replacing {
		for _, a := range slices.Concat(rp.Originals, rp.Machines) {
			out[a] = true
		}
		if rp.Phase == FleetProvisioning {
			for _, r := range st.machines(group) {
				if !slices.Contains(rp.Before, r.Address) {
					out[r.Address] = true
				}
			}
		}
	}
	return out
}

// fleetRole is a machine's part in its group's blue/green deployment
// ("original" or "replacement", and the deployment), "" outside one.
func fleetRole(st *State, r *Resource) (role, deployment string) {
	rp := st.Replacing[r.Group]
	switch {
	case rp == nil || r.Host:
		return "", ""
	case slices.Contains(rp.Originals, r.Address):
		return "original", rp.Deployment
	case slices.Contains(rp.Machines, r.Address) || rp.Phase == FleetProvisioning && !slices.Contains(rp.Before, r.Address):
		return "replacement", rp.Deployment
	}
	return "", ""
}

// fleetPlan adjusts a group's count and kept machines for its replacement
// record: while the fleets run side by side the group counts both; once
// decided, the losing fleet is not kept. prefer are the indexes kept
// first.
func fleetPlan(st *State, group string, count int) (int, map[int]bool) {
	rp := st.Replacing[group]
	if rp == nil {
		return count, nil
	}
	var keep []string
	switch rp.Phase {
	case FleetProvisioning, FleetReady:
		count += rp.Size
		keep = slices.Concat(rp.Originals, rp.Machines)
	case FleetRetire:
		keep = rp.Machines
	case FleetDiscard:
		keep = rp.Originals
	}
	prefer := map[int]bool{}
	for _, a := range keep {
		if r := st.Resources[a]; r != nil {
			prefer[r.Index] = true
		}
	}
	return count, prefer
}
