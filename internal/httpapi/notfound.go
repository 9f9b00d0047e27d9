package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gantry-dev/gantry/internal/store"
)

// maxChoices is how many valid names a "not found" message lists.
const maxChoices = 10

// explainNotFound rewrites a 404 in one phrasing per kind of object, with
// the names that do exist and the command that makes the missing one:
//
//	app "x" not found; apps: shop, web. Create it with: gantry app create x
//	app "x" not found; there are no apps. Create it with: gantry app create x
//
// It checks the route's path values from the outside in (the app before its
// group), so that `deploy nosuchapp prod` names the missing app rather than
// suggesting a group the server would refuse to create. It returns "" when
// every object the path names exists (the handler's own message stands,
// e.g. a revision named in the body), and lists nothing when the store
// cannot list.
func (a *API) explainNotFound(r *http.Request) string {
	ctx := r.Context()
	st := a.d.Store
	if app := r.PathValue("app"); app != "" {
		// Removing something missing: list, do not suggest creating it.
		removing := r.Method == http.MethodDelete
		if _, err := st.GetApplication(ctx, app); errors.Is(err, store.ErrNotFound) {
			return a.appNotFound(ctx, app, removing)
		}
		if group := r.PathValue("group"); group != "" {
			if _, err := st.GetGroup(ctx, app, group); errors.Is(err, store.ErrNotFound) {
				return a.groupNotFound(ctx, app, group, removing)
			}
		}
		if rev := r.PathValue("rev"); rev != "" {
			if _, err := st.GetRevision(ctx, app, rev); errors.Is(err, store.ErrNotFound) {
				return a.revisionNotFound(ctx, app, rev)
			}
		}
		return ""
	}
	if ref := r.PathValue("host"); ref != "" {
		return a.hostNotFound(ctx, ref)
	}
	id := r.PathValue("id")
	if id == "" {
		return ""
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/v1/jobs/"):
		if _, err := st.GetJob(ctx, id); errors.Is(err, store.ErrNotFound) {
			var names []string
			jobs, _ := st.ListJobs(ctx, maxChoices)
			for _, j := range jobs {
				names = append(names, j.ID)
			}
			return fmt.Sprintf("job %q not found; %s. List them with: gantry jobs ls", id, among("recent jobs", "jobs", names))
		}
	case strings.HasPrefix(p, "/api/v1/deployments/"):
		if _, err := st.GetDeployment(ctx, id); errors.Is(err, store.ErrNotFound) {
			var names []string
			deps, _ := st.ListDeployments(ctx, "", maxChoices)
			for _, d := range deps {
				names = append(names, d.ID)
			}
			return fmt.Sprintf("deployment %q not found; %s. List them with: gantry deployments ls", id, among("recent deployments", "deployments", names))
		}
	case strings.HasPrefix(p, "/api/v1/schedules/"):
		if _, err := st.GetSchedule(ctx, id); errors.Is(err, store.ErrNotFound) {
			var names []string
			schs, _ := st.ListSchedules(ctx)
			for _, s := range schs {
				names = append(names, s.ID)
			}
			return fmt.Sprintf("schedule %q not found; %s. List them with: gantry schedule ls", id, among("schedules", "schedules", names))
		}
	}
	return ""
}

// appNotFound is the message for an unknown application; removing: the
// request was to remove it (the hint lists instead of creating).
func (a *API) appNotFound(ctx context.Context, app string, removing bool) string {
	var names []string
	apps, _ := a.d.Store.ListApplications(ctx)
	for _, ap := range apps {
		names = append(names, ap.Name)
	}
	if removing {
		return fmt.Sprintf("app %q not found; %s. List them with: gantry app ls", app, among("apps", "apps", names))
	}
	return fmt.Sprintf("app %q not found; %s. Create it with: gantry app create %s", app, among("apps", "apps", names), app)
}

// groupNotFound is the message for an unknown deployment group of an
// existing application.
func (a *API) groupNotFound(ctx context.Context, app, group string, removing bool) string {
	var names []string
	groups, _ := a.d.Store.ListGroups(ctx, app)
	for _, g := range groups {
		names = append(names, g.Name)
	}
	if removing {
		return fmt.Sprintf("group %q of app %q not found; %s. List them with: gantry group ls %s",
			group, app, among("groups of "+app, "groups of "+app, names), app)
	}
	return fmt.Sprintf("group %q of app %q not found; %s. Create it with: gantry group create %s %s --selector SELECTOR",
		group, app, among("groups of "+app, "groups of "+app, names), app, group)
}

// revisionNotFound is the message for an unknown revision of an existing
// application.
func (a *API) revisionNotFound(ctx context.Context, app, rev string) string {
	var names []string
	revs, _ := a.d.Store.ListRevisions(ctx, app)
	for _, rv := range revs {
		names = append(names, rv.ID)
	}
	if len(names) == 0 {
		return fmt.Sprintf("revision %q of app %q not found; app %s has no revisions. Push one with: gantry push %s DIR", rev, app, app, app)
	}
	return fmt.Sprintf("revision %q of app %q not found; %s. List them with: gantry revisions %s", rev, app, among("revisions of "+app+" (newest first)", "", names), app)
}

// hostNotFound is the message for an unknown host id or name ("" if it
// exists after all).
func (a *API) hostNotFound(ctx context.Context, ref string) string {
	hosts, err := a.d.Store.ListHosts(ctx, false)
	if err != nil {
		return ""
	}
	var names []string
	for _, h := range hosts {
		if h.ID == ref || h.Name == ref {
			return ""
		}
		names = append(names, h.Name)
	}
	return fmt.Sprintf("host %q not found; %s. List them with: gantry hosts ls", ref, among("hosts", "hosts", names))
}

// among lists the names that exist, the first maxChoices of them:
// "apps: shop, web", "hosts: a, …, j and 5 more", or "there are no apps"
// (environments are phrased alike by infra.NotFound).
func among(label, plural string, names []string) string {
	if len(names) == 0 {
		return "there are no " + plural
	}
	s := label + ": " + strings.Join(names[:min(len(names), maxChoices)], ", ")
	if more := len(names) - maxChoices; more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
