package httpapi

import (
	"net/http"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
)

func (a *API) createApp(w http.ResponseWriter, r *http.Request) {
	var req api.Application
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	app, err := a.d.Revisions.CreateApp(r.Context(), req.Name)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, http.StatusCreated, app)
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request) {
	apps, err := a.d.Store.ListApplications(r.Context())
	writeList(a, w, r, apps, err)
}

// pushRevision takes a bundle as the raw request body.
func (a *API) pushRevision(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, deploy.MaxBundleBytes)
	rev, created, err := a.d.Revisions.Push(r.Context(), r.PathValue("app"), body, r.URL.Query().Get("description"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.d.Log.Info("revision pushed", "app", rev.App, "revision", rev.ID, "bytes", rev.Size)
	}
	writeJSON(w, status, rev)
}

func (a *API) listRevisions(w http.ResponseWriter, r *http.Request) {
	revs, err := a.d.Store.ListRevisions(r.Context(), r.PathValue("app"))
	writeList(a, w, r, revs, err)
}

func (a *API) getRevision(w http.ResponseWriter, r *http.Request) {
	rev, err := a.d.Store.GetRevision(r.Context(), r.PathValue("app"), r.PathValue("rev"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, rev)
}
