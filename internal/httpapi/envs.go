package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// maxEnvRequest caps a plan or apply request (a packed definition, base64
// in JSON, or a saved plan carrying one).
const maxEnvRequest = 100 << 20

// envRoutes are the routes of environments as code.
func (a *API) envRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/envs", Summary: "List environments.", Resp: []api.Environment{}, Handler: a.listEnvs},
		{Method: "GET", Path: "/api/v1/envs/{env}", Summary: "Show an environment: resources, machines and their lifecycle phase, outputs, lifecycle runs.", Resp: api.Environment{}, Handler: a.getEnv},
		{Method: "POST", Path: "/api/v1/envs/{env}/plan", Summary: "Refresh and plan: what an apply of this definition (or scale, or destroy) would do.", Body: api.EnvRequest{}, Resp: api.Plan{}, MaxBody: maxEnvRequest, Handler: a.planEnv},
		{Method: "GET", Path: "/api/v1/envs/{env}/lb", Summary: "Show the servers of an environment's load balancers as they report them (one view per load balancer group; ?group=G for the one of group G or in front of it).", Resp: []api.LBView{}, Handler: a.envLB},
		{Method: "POST", Path: "/api/v1/envs/{env}/apply", Summary: "Apply a plan (or plan and apply) under the environment's lock; streams NDJSON progress ending with a done event.", Body: api.EnvRequest{}, Resp: api.ApplyEvent{}, MaxBody: maxEnvRequest, Handler: a.applyEnv},
	}
}

func (a *API) listEnvs(w http.ResponseWriter, r *http.Request) {
	envs, err := a.d.Infra.List(r.Context())
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, envs)
}

func (a *API) getEnv(w http.ResponseWriter, r *http.Request) {
	env, err := a.d.Infra.Get(r.Context(), r.PathValue("env"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, env)
}

func (a *API) planEnv(w http.ResponseWriter, r *http.Request) {
	var req api.EnvRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	p, err := a.d.Infra.Plan(r.Context(), r.PathValue("env"), req)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, p)
}

// applyEnv streams an apply's events. The stream starts with the first
// event, so that a refusal (lock held, stale plan, bad definition) is an
// ordinary error status. The apply goes on if the client goes away: it
// is not left half-done because a terminal closed.
func (a *API) applyEnv(w http.ResponseWriter, r *http.Request) {
	var req api.EnvRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	var mu sync.Mutex
	started, gone := false, false
	enc := json.NewEncoder(w)
	emit := func(ev api.ApplyEvent) {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(200)
			started = true
		}
		if enc.Encode(ev) != nil {
			gone = true
			return
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if req.Who == "" {
		if p, ok := principal(r); ok {
			req.Who = p.Name
		}
	}
	env, err := a.d.Infra.Apply(context.WithoutCancel(r.Context()), r.PathValue("env"), req, emit)
	mu.Lock()
	wasStarted := started
	mu.Unlock()
	if err != nil && !wasStarted {
		writeError(w, r, err, a.d.Log)
		return
	}
	done := api.ApplyEvent{Type: "done", Environment: &env}
	if err != nil {
		done.Error = streamError(r, err, a.d.Log)
	}
	emit(done)
}

// principal returns the caller's token, if the route is authenticated.
func principal(r *http.Request) (store.APIToken, bool) {
	t, ok := r.Context().Value(principalKey{}).(store.APIToken)
	return t, ok
}

// envLB shows an environment's load balancers: each load balancer group's
// machine, its driver and its servers as the load balancer reports them.
func (a *API) envLB(w http.ResponseWriter, r *http.Request) {
	lbs, err := a.d.Infra.LoadBalancers(r.Context(), r.PathValue("env"), r.URL.Query().Get("group"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if a.d.Traffic == nil {
		writeError(w, r, &apiError{http.StatusServiceUnavailable, "unavailable", "this server drives no load balancer"}, a.d.Log)
		return
	}
	out := []api.LBView{}
	for _, l := range lbs {
		v, err := a.d.Traffic.View(r.Context(), l.LB)
		if err != nil {
			writeError(w, r, LBError(err), a.d.Log)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}
