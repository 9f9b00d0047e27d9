package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/store"
)

// The end of objects' lifecycles (issue 10, item 5): removing
// applications, deployment groups and destroyed environments, changing
// groups and schedules. Decisions:
//   - Something in use is not removed without force, and the refusal (409,
//     code in_use) names every user and a command that frees it. Users of
//     an application are its deployment groups and the environments whose
//     group has a deploy block naming it; a deployment group an
//     environment made (its deploy block) belongs to that environment.
//   - Nothing is removed while a deployment it owns is in progress, force
//     or not: the deployment engine would lose the records it works on.
//     The store checks this again inside its delete transaction.
//   - Not found names the valid choices, phrased as every other route's
//     (writeError's explainNotFound; environments here).
//   - An environment's record is removed only once it has no resources
//     (after `gantry destroy`), under its apply lock.

// lifecycleRoutes are the routes that change or remove applications,
// deployment groups, environments and schedules.
func (a *API) lifecycleRoutes() []route {
	return []route{
		{Method: "DELETE", Path: "/api/v1/apps/{app}", Summary: "Remove an application; in use (groups, environments) needs force=true, which removes its groups, revisions and bundles too; refused while a deployment is in progress.", Query: []string{"force"}, Resp: api.AppRemoval{}, Handler: a.deleteApp},
		{Method: "PATCH", Path: "/api/v1/apps/{app}/groups/{group}", Summary: "Change a deployment group's selector, configuration, health check or automatic rollback.", Body: api.UpdateGroupRequest{}, Resp: api.DeploymentGroup{}, Handler: a.updateGroup},
		{Method: "DELETE", Path: "/api/v1/apps/{app}/groups/{group}", Summary: "Remove a deployment group with its deployment history; one an environment made needs force=true; refused while a deployment to it is in progress.", Query: []string{"force"}, Resp: api.DeploymentGroup{}, Handler: a.deleteGroup},
		{Method: "DELETE", Path: "/api/v1/envs/{env}", Summary: "Remove a destroyed environment's record (state and history); refused while it has resources.", Resp: api.EnvRemoval{}, Handler: a.deleteEnv},
		{Method: "GET", Path: "/api/v1/schedules/{id}", Summary: "Show a schedule.", Resp: api.Schedule{}, Handler: a.getSchedule},
		{Method: "PATCH", Path: "/api/v1/schedules/{id}", Summary: "Change a schedule's expression, selector, script, timeout, or enable/disable it.", Body: api.UpdateScheduleRequest{}, Resp: api.Schedule{}, Handler: a.updateSchedule},
	}
}

// errInUse is the 409 of a removal refused because something uses the
// object.
func errInUse(msg string) error { return &apiError{http.StatusConflict, "in_use", msg} }

// forced reports whether the request has force=true.
func forced(r *http.Request) bool { return r.URL.Query().Get("force") == "true" }

// Not found: writeError phrases it for {app}, {group} and schedules' {id}
// (explainNotFound, listing the valid names); environments are phrased
// here (envNotFound).

// envUse is an environment group whose deploy block deploys an app.
type envUse struct {
	Env, Address, App, Group string
}

func (u envUse) String() string { return fmt.Sprintf("environment %q (%s)", u.Env, u.Address) }

// envUses returns the environment groups that deploy app ("" for all),
// ordered by environment and address.
func (a *API) envUses(ctx context.Context, app string) ([]envUse, error) {
	if a.d.Infra == nil {
		return nil, nil
	}
	envs, err := a.d.Infra.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []envUse
	for _, e := range envs {
		for name, g := range e.Groups {
			if g.App == "" || (app != "" && g.App != app) {
				continue
			}
			addr := "group." + name
			for _, m := range e.Machines {
				if m.Group == name && strings.HasPrefix(m.Address, "host.") {
					addr = "host." + name
				}
			}
			out = append(out, envUse{Env: e.Name, Address: addr, App: g.App, Group: g.DeployGroup})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Env != out[j].Env {
			return out[i].Env < out[j].Env
		}
		return out[i].Address < out[j].Address
	})
	return out, nil
}

// activeDeployment returns the first deployment in progress of app (and
// of group id groupID unless ""), or "".
func (a *API) activeDeployment(ctx context.Context, app, groupID string) (string, error) {
	ds, err := a.d.Store.ListActiveDeployments(ctx)
	if err != nil {
		return "", err
	}
	for _, d := range ds {
		if d.App == app && (groupID == "" || d.GroupID == groupID) {
			return d.ID, nil
		}
	}
	return "", nil
}

// errDeploying is the refusal of a removal while deployment id runs.
func errDeploying(what, id string) error {
	return errInUse(fmt.Sprintf("%s has deployment %s in progress; stop it first ('gantry deployments stop %s') or wait for it to end", what, id, id))
}

// storeBusy turns the store's refusal of a delete during a deployment
// (which names it) into the API's in_use error.
func storeBusy(what string, err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	msg := err.Error()
	if i := strings.Index(msg, "deployment "); i >= 0 {
		if id, _, ok := strings.Cut(msg[i+len("deployment "):], " "); ok {
			return errDeploying(what, id)
		}
	}
	return errInUse(what + " has a deployment in progress; see 'gantry deployments ls'")
}

// joinAnd joins names as "a, b and c".
func joinAnd(names []string) string {
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func (a *API) deleteApp(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("app")
	app, err := a.d.Store.GetApplication(ctx, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	what := fmt.Sprintf("app %q", name)
	if id, err := a.activeDeployment(ctx, name, ""); err != nil || id != "" {
		if err == nil {
			err = errDeploying(what, id)
		}
		writeError(w, r, err, a.d.Log)
		return
	}
	groups, err := a.d.Store.ListGroups(ctx, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	uses, err := a.envUses(ctx, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	groupNames := []string{}
	for _, g := range groups {
		groupNames = append(groupNames, g.Name)
	}
	if !forced(r) && (len(groups) > 0 || len(uses) > 0) {
		writeError(w, r, errInUse(appInUse(name, groups, uses)), a.d.Log)
		return
	}
	revs, err := a.d.Store.ListRevisions(ctx, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if err := a.d.Store.DeleteApplication(ctx, name); err != nil {
		writeError(w, r, storeBusy(what, err), a.d.Log)
		return
	}
	a.d.Log.Info("application removed", "app", name, "groups", len(groups), "revisions", len(revs), "force", forced(r))
	writeJSON(w, http.StatusOK, api.AppRemoval{App: app, Groups: groupNames, Revisions: len(revs)})
}

// appInUse is the refusal of `gantry app rm` without --force.
func appInUse(app string, groups []api.DeploymentGroup, uses []envUse) string {
	owned := map[string]bool{}
	for _, u := range uses {
		owned[u.Group] = true
	}
	var parts []string
	var names []string
	hint := ""
	for _, g := range groups {
		names = append(names, g.Name)
		if hint == "" && !owned[g.Name] {
			hint = fmt.Sprintf("'gantry group rm %s %s'", app, g.Name)
		}
	}
	if len(names) == 1 {
		parts = append(parts, "deployment group "+names[0])
	} else if len(names) > 1 {
		parts = append(parts, "deployment groups "+strings.Join(names, ", "))
	}
	var envs []string
	for _, u := range uses {
		envs = append(envs, u.String())
		if hint == "" {
			hint = fmt.Sprintf("'gantry destroy --env %s'", u.Env)
		}
	}
	if len(envs) > 0 {
		parts = append(parts, "by "+joinAnd(envs))
	}
	return fmt.Sprintf("app %q is in use by %s; remove them first (%s) or use --force", app, strings.Join(parts, " and "), hint)
}

func (a *API) updateGroup(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateGroupRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	g, err := a.d.Store.GetGroup(r.Context(), r.PathValue("app"), r.PathValue("group"))
	if err == nil {
		g, err = deploy.ChangeGroup(g, req)
	}
	if err == nil {
		err = a.d.Store.UpdateGroupSettings(r.Context(), g)
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if a.d.Deploy != nil {
		a.d.Deploy.CatchUpSoon() // hosts the new selector matches get the revision
	}
	writeJSON(w, http.StatusOK, g)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	app := r.PathValue("app")
	g, err := a.d.Store.GetGroup(ctx, app, r.PathValue("group"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	what := fmt.Sprintf("group %q of app %q", g.Name, app)
	if id, err := a.activeDeployment(ctx, app, g.ID); err != nil || id != "" {
		if err == nil {
			err = errDeploying(what, id)
		}
		writeError(w, r, err, a.d.Log)
		return
	}
	if !forced(r) {
		uses, err := a.envUses(ctx, app)
		if err != nil {
			writeError(w, r, err, a.d.Log)
			return
		}
		for _, u := range uses {
			if u.Group == g.Name {
				writeError(w, r, errInUse(fmt.Sprintf("%s belongs to %s, whose deploy block made it; 'gantry destroy --env %s' removes it, or use --force (the environment's next apply makes it again)",
					what, u, u.Env)), a.d.Log)
				return
			}
		}
	}
	if err := a.d.Store.DeleteGroup(ctx, app, g.Name); err != nil {
		writeError(w, r, storeBusy(what, err), a.d.Log)
		return
	}
	a.d.Log.Info("deployment group removed", "app", app, "group", g.Name, "force", forced(r))
	writeJSON(w, http.StatusOK, g)
}

// envLockTTL bounds how long `env rm` holds an environment's apply lock.
const envLockTTL = 30 * time.Second

func (a *API) deleteEnv(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("env")
	rec, err := a.d.Store.GetEnvironment(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		err = a.envNotFound(ctx, name)
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	lease, holder := "env/"+name, "env rm"
	if p, ok := principal(r); ok {
		holder = "env rm by " + p.Name
	}
	if _, err := a.d.Store.AcquireLease(ctx, lease, holder, time.Now(), envLockTTL); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			err = errInUse(fmt.Sprintf("environment %q is locked by an apply in progress; wait for it to end, then destroy it ('gantry destroy --env %s')", name, name))
		}
		writeError(w, r, err, a.d.Log)
		return
	}
	defer func() { _ = a.d.Store.ReleaseLease(context.WithoutCancel(ctx), lease, holder) }()
	env, err := a.d.Infra.Get(ctx, name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if n := len(env.Resources) + len(env.Groups); n > 0 {
		machines := ""
		if len(env.Machines) > 0 {
			machines = fmt.Sprintf(" (%s)", countOf(len(env.Machines), "machine"))
		}
		writeError(w, r, errInUse(fmt.Sprintf("environment %q still has %s%s; destroy it first: gantry destroy --env %s",
			name, countOf(n, "resource"), machines, name)), a.d.Log)
		return
	}
	var runs []json.RawMessage
	_ = json.Unmarshal(rec.Events, &runs)
	if err := a.d.Store.DeleteEnvironment(ctx, name); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	a.d.Infra.Forget(name)
	a.d.Log.Info("environment record removed", "env", name, "serial", rec.Serial)
	writeJSON(w, http.StatusOK, api.EnvRemoval{Name: name, Serial: rec.Serial, Runs: len(runs)})
}

// envNotFound is the 404 of a missing environment, listing the others.
func (a *API) envNotFound(ctx context.Context, name string) error {
	recs, err := a.d.Store.ListEnvironments(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range recs {
		names = append(names, e.Name)
	}
	return infra.NotFound(name, names)
}

// countOf renders "1 machine", "3 machines".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func (a *API) getSchedule(w http.ResponseWriter, r *http.Request) {
	s, err := a.d.Store.GetSchedule(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, http.StatusOK, a.d.Fleet.WithNextRun(s))
}

func (a *API) updateSchedule(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateScheduleRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	s, err := a.d.Store.GetSchedule(r.Context(), r.PathValue("id"))
	if err == nil {
		s, err = a.d.Fleet.UpdateSchedule(s, req)
	}
	if err == nil {
		err = a.d.Store.UpdateSchedule(r.Context(), s)
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
