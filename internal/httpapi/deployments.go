package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/store"
)

// deploymentRoutes are the routes of deployment groups, deployments and
// bundle downloads.
func (a *API) deploymentRoutes() []route {
	return []route{
		{Method: "POST", Path: "/api/v1/apps/{app}/groups", Summary: "Create a deployment group.", Body: api.CreateGroupRequest{}, Resp: api.DeploymentGroup{}, Status: 201, Handler: a.createGroup},
		{Method: "GET", Path: "/api/v1/apps/{app}/groups", Summary: "List an application's deployment groups.", Resp: []api.DeploymentGroup{}, Handler: a.listGroups},
		{Method: "GET", Path: "/api/v1/apps/{app}/groups/{group}", Summary: "Show a deployment group.", Resp: api.DeploymentGroup{}, Handler: a.getGroup},
		{Method: "GET", Path: "/api/v1/apps/{app}/groups/{group}/lb", Summary: "Show the servers of a deployment group's load balancer backend as the load balancer reports them.", Resp: api.LBView{}, Handler: a.groupLB},
		{Method: "POST", Path: "/api/v1/apps/{app}/groups/{group}/deployments", Summary: "Deploy a revision (default the newest) to a group.", Idempotent: true, Body: api.DeployRequest{}, Resp: api.Deployment{}, Status: 201, Handler: a.deploy},
		{Method: "POST", Path: "/api/v1/apps/{app}/groups/{group}/rollback", Summary: "Roll a group back to its previous good revision.", Idempotent: true, Resp: api.Deployment{}, Status: 201, Handler: a.rollback},
		{Method: "GET", Path: "/api/v1/deployments", Summary: "List deployments, newest first.", Query: []string{"app", "limit"}, Resp: []api.Deployment{}, Handler: a.listDeployments},
		{Method: "GET", Path: "/api/v1/deployments/{id}", Summary: "Show a deployment with every host's events.", Resp: api.Deployment{}, Handler: a.getDeployment},
		{Method: "GET", Path: "/api/v1/deployments/{id}/events", Summary: "Stream a deployment's events as NDJSON until it ends.", Resp: api.DeploymentEvent{}, Handler: a.deploymentEvents},
		{Method: "POST", Path: "/api/v1/deployments/{id}/stop", Summary: "Stop a deployment: no new batches; force kills running hooks.", Body: api.StopRequest{}, Resp: api.Deployment{}, Handler: a.stopDeployment},
		{Method: "POST", Path: "/api/v1/deployments/{id}/promote", Summary: "Promote a canary (skip its remaining steps) or end a blue/green deployment's keep period.", Resp: api.Deployment{}, Handler: a.promoteDeployment},
		{Method: "POST", Path: "/api/v1/deployments/{id}/abort", Summary: "Abort a canary or blue/green deployment: traffic back to the stable hosts at once, then roll back.", Resp: api.Deployment{}, Handler: a.abortDeployment},
		{Method: "GET", Path: "/api/v1/blobs/{digest}", Summary: "Download a bundle with a capability from a deploy command (agents; no bearer token).", Public: true, Query: []string{"host", "exp", "sig"}, Handler: a.getBlob},
	}
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) {
	var req api.CreateGroupRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	g, err := a.d.Deploy.CreateGroup(r.Context(), r.PathValue("app"), req)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) {
	gs, err := a.d.Store.ListGroups(r.Context(), r.PathValue("app"))
	writeList(a, w, r, gs, err)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := a.d.Store.GetGroup(r.Context(), r.PathValue("app"), r.PathValue("group"))
	writeResult(a, w, r, http.StatusOK, g, err)
}

func (a *API) deploy(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(r *http.Request) (string, any, error) {
		var req api.DeployRequest
		if err := decode(r, &req); err != nil {
			return "", nil, err
		}
		d, err := a.d.Deploy.Deploy(r.Context(), r.PathValue("app"), r.PathValue("group"), req)
		return d.ID, d, err
	}, a.loadDeployment)
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(r *http.Request) (string, any, error) {
		d, err := a.d.Deploy.Rollback(r.Context(), r.PathValue("app"), r.PathValue("group"))
		return d.ID, d, err
	}, a.loadDeployment)
}

// loadDeployment is a deployment's replay for a repeated Idempotency-Key.
func (a *API) loadDeployment(ctx context.Context, id string) (any, error) {
	return a.d.Store.GetDeployment(ctx, id)
}

func (a *API) listDeployments(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	ds, err := a.d.Store.ListDeployments(r.Context(), r.URL.Query().Get("app"), limit)
	writeList(a, w, r, ds, err)
}

func (a *API) getDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := a.d.Store.GetDeployment(r.Context(), r.PathValue("id"))
	writeResult(a, w, r, http.StatusOK, d, err)
}

func (a *API) stopDeployment(w http.ResponseWriter, r *http.Request) {
	var req api.StopRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			writeError(w, r, err, a.d.Log)
			return
		}
	}
	d, err := a.d.Deploy.Stop(r.Context(), r.PathValue("id"), req.Force)
	writeResult(a, w, r, http.StatusOK, d, err)
}

func (a *API) promoteDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := a.d.Deploy.Promote(r.Context(), r.PathValue("id"))
	writeResult(a, w, r, http.StatusOK, d, err)
}

func (a *API) abortDeployment(w http.ResponseWriter, r *http.Request) {
	d, err := a.d.Deploy.Abort(r.Context(), r.PathValue("id"))
	writeResult(a, w, r, http.StatusOK, d, err)
}

// deploymentEvents streams NDJSON: the deployment's hosts as they are, live
// events, then "done".
func (a *API) deploymentEvents(w0 http.ResponseWriter, r *http.Request) {
	d, w, cancel, err := a.d.Deploy.Watch(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w0, r, err, a.d.Log)
		return
	}
	defer cancel()
	if api.DeployDone(d.State) {
		streamNDJSON(w0, r, []api.DeploymentEvent{{Type: "done", Deployment: &d}}, nil)
		return
	}
	head := d
	head.Hosts = nil
	evs := []api.DeploymentEvent{{Type: "deployment", Deployment: &head}}
	for i := range d.Hosts {
		evs = append(evs, api.DeploymentEvent{Type: "host", Host: &d.Hosts[i]})
	}
	streamNDJSON(w0, r, evs, w)
}

// getBlob serves a bundle to an agent holding a capability.
func (a *API) getBlob(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if err := a.d.Capabilities.Check(digest, r.URL.Query()); err != nil {
		writeError(w, r, errForbidden(err.Error()), a.d.Log)
		return
	}
	// A capability is only as good as its host's enrollment: `gantry hosts
	// rm` voids the host's links at once, not when they expire.
	host := r.URL.Query().Get("host")
	if h, err := a.d.Store.GetHost(r.Context(), host); errors.Is(err, store.ErrNotFound) || (err == nil && h.Status == api.HostRevoked) {
		writeError(w, r, errForbidden(fmt.Sprintf("%v: host %s is no longer enrolled (removed with `gantry hosts rm`)", deploy.ErrCapability, host)), a.d.Log)
		return
	} else if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	if a.d.Blobs != nil {
		data, err := a.d.Blobs.Get(r.Context(), digest)
		if err != nil {
			writeError(w, r, err, a.d.Log)
			return
		}
		if data != nil {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			_, _ = w.Write(data)
			return
		}
	}
	rc, size, err := a.d.Store.OpenBlob(r.Context(), digest)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil && !errors.Is(err, r.Context().Err()) {
		a.d.Log.Warn("serve blob", "digest", digest, "host", r.URL.Query().Get("host"), "err", err)
	}
}

// writeResult writes v with status, or the error.
func writeResult[T any](a *API, w http.ResponseWriter, r *http.Request, status int, v T, err error) {
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, status, v)
}
