package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/pki"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
	"github.com/gantry-dev/gantry/internal/watch"
)

// route is one entry of the API table.
type route struct {
	Method, Path, Summary string
	Public                bool   // no bearer token (health, enrollment)
	Admin                 bool   // only admin tokens (token management)
	Body                  any    // request body type, for the OpenAPI document
	RawBody               string // media type of a raw (non-JSON) request body
	Resp                  any    // response body type
	Status                int    // success status (default 200)
	Query                 []string
	// Idempotent routes accept an Idempotency-Key header (idempotency.go).
	Idempotent bool
	// MaxBody caps the request body (default 1 MiB).
	MaxBody int64
	Handler http.HandlerFunc
}

// Whoami is the body of GET /api/v1/whoami.
type Whoami struct {
	TokenID string `json:"token_id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
}

func (a *API) routes() []route {
	return append(append([]route{
		{Method: "GET", Path: "/healthz", Summary: "Liveness: the process serves HTTP.", Public: true, Handler: a.healthz},
		{Method: "GET", Path: "/readyz", Summary: "Readiness: store and bus are up.", Public: true, Handler: a.readyz},
		{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics.", Handler: a.metricsHandler().ServeHTTP},
		{Method: "GET", Path: "/api/v1/openapi.json", Summary: "This document.", Handler: a.openapi},
		{Method: "GET", Path: "/api/v1/whoami", Summary: "The caller's token.", Resp: Whoami{}, Handler: a.whoami},
		{Method: "POST", Path: "/api/v1/enroll", Summary: "Enroll an agent with a join token (no bearer token).", Public: true, Body: api.EnrollRequest{}, Resp: api.EnrollResponse{}, Status: 201, Handler: a.enroll},
		{Method: "GET", Path: "/api/v1/hosts", Summary: "List hosts, optionally by label selector.", Query: []string{"selector", "include_revoked"}, Resp: []api.Host{}, Handler: a.listHosts},
		{Method: "GET", Path: "/api/v1/hosts/{host}", Summary: "Show a host by id or name.", Resp: api.Host{}, Handler: a.getHost},
		{Method: "PATCH", Path: "/api/v1/hosts/{host}/labels", Summary: "Set and remove labels.", Body: api.LabelsRequest{}, Resp: api.Host{}, Handler: a.labelHost},
		{Method: "DELETE", Path: "/api/v1/hosts/{host}", Summary: "Revoke a host: drop its connection and refuse it from now on.", Status: 204, Handler: a.removeHost},
		{Method: "POST", Path: "/api/v1/join-tokens", Summary: "Create a join token (admin).", Admin: true, Body: api.CreateJoinTokenRequest{}, Resp: api.JoinToken{}, Status: 201, Handler: a.createJoinToken},
		{Method: "GET", Path: "/api/v1/join-tokens", Summary: "List join tokens (without secrets) (admin).", Admin: true, Resp: []api.JoinToken{}, Handler: a.listJoinTokens},
		{Method: "POST", Path: "/api/v1/jobs", Summary: "Run a script on every host matching a selector.", Idempotent: true, Body: api.JobSpec{}, Resp: api.Job{}, Status: 201, Handler: a.createJob},
		{Method: "GET", Path: "/api/v1/jobs", Summary: "List jobs, newest first.", Query: []string{"limit"}, Resp: []api.Job{}, Handler: a.listJobs},
		{Method: "GET", Path: "/api/v1/jobs/{id}", Summary: "Show a job with every host's result.", Resp: api.Job{}, Handler: a.getJob},
		{Method: "GET", Path: "/api/v1/jobs/{id}/events", Summary: "Stream a job's events as NDJSON until it finishes.", Resp: api.JobEvent{}, Handler: a.jobEvents},
		{Method: "POST", Path: "/api/v1/apps", Summary: "Create an application.", Body: api.Application{}, Resp: api.Application{}, Status: 201, Handler: a.createApp},
		{Method: "GET", Path: "/api/v1/apps", Summary: "List applications.", Resp: []api.Application{}, Handler: a.listApps},
		{Method: "POST", Path: "/api/v1/apps/{app}/revisions", Summary: "Push a bundle (.tar.gz or .zip bytes as the body) as a revision; 200 if it was pushed before.", Query: []string{"description"}, RawBody: "application/octet-stream", Resp: api.Revision{}, Status: 201, Handler: a.pushRevision},
		{Method: "GET", Path: "/api/v1/apps/{app}/revisions", Summary: "List an application's revisions, newest first.", Resp: []api.Revision{}, Handler: a.listRevisions},
		{Method: "GET", Path: "/api/v1/apps/{app}/revisions/{rev}", Summary: "Show a revision with its appspec.yml.", Resp: api.Revision{}, Handler: a.getRevision},
	}, append(append(append(a.deploymentRoutes(), a.envRoutes()...), a.tokenRoutes()...), a.lifecycleRoutes()...)...), []route{
		{Method: "POST", Path: "/api/v1/schedules", Summary: "Run a job on a cron schedule.", Body: api.Schedule{}, Resp: api.Schedule{}, Status: 201, Handler: a.createSchedule},
		{Method: "GET", Path: "/api/v1/schedules", Summary: "List schedules.", Resp: []api.Schedule{}, Handler: a.listSchedules},
		{Method: "DELETE", Path: "/api/v1/schedules/{id}", Summary: "Delete a schedule.", Status: 204, Handler: a.deleteSchedule},
	}...)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.d.Ready != nil && !a.d.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	if _, err := a.d.Store.CountAPITokens(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready"})
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request) {
	t := r.Context().Value(principalKey{}).(store.APIToken)
	writeJSON(w, 200, Whoami{TokenID: t.ID, Name: t.Name, Role: t.Role})
}

// enroll admits a new agent: one use of a join token buys one host.
func (a *API) enroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if req.JoinToken == "" {
		writeError(w, r, errUnauthorized("join_token is required"), a.d.Log)
		return
	}
	if !nkeys.IsValidPublicUserKey(req.NKey) {
		writeError(w, r, errBadRequest("nkey must be a NATS user public key"), a.d.Log)
		return
	}
	if err := validateHostName(req.Name); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	if err := validateLabels(labels); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	now := time.Now().UTC()
	hash := HashToken(pki.JoinTokenSecret(req.JoinToken))
	labels, err := a.enrollLabels(r.Context(), hash, labels, now) // see enroll.go
	h := store.HostRecord{NKey: req.NKey, Host: api.Host{ID: ids.New("h"), Name: req.Name, Labels: labels, Facts: enrollFacts(req.Facts), Status: api.HostOffline, EnrolledAt: now}}
	if err == nil {
		err = a.d.Store.EnrollHost(r.Context(), hash, now, h)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errUnauthorized("join token is not valid (create one with `gantry token create`)")
	case errors.Is(err, store.ErrExpired):
		err = errForbidden("join token has expired (create a new one with `gantry token create`)")
	case errors.Is(err, store.ErrUsedUp):
		err = errForbidden("join token has been used up (create one with `gantry token create --uses N`)")
	case errors.Is(err, store.ErrConflict):
		err = &apiError{http.StatusConflict, "conflict", fmt.Sprintf("a host named %q is already enrolled: start the agent with another --name, or remove the old host with `gantry hosts rm %s`", req.Name, req.Name)}
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	a.d.Log.Info("host enrolled", "host", h.ID, "name", h.Name, "remote", r.RemoteAddr)
	writeJSON(w, 201, api.EnrollResponse{HostID: h.ID, NATSURLs: a.d.BusURLs, ServerKey: a.d.ServerKey, HeartbeatMillis: a.d.Fleet.Heartbeat().Milliseconds()})
}

// enrollFacts caps the facts an enrolling agent reports as the bus caps
// those of its hellos (protocol.ClipFacts).
func enrollFacts(f api.Facts) api.Facts {
	f, _ = protocol.ClipFacts(f)
	return f
}

func validateHostName(n string) error {
	if err := validate.HostName("name", n); err != nil {
		return errBadRequest(err.Error())
	}
	return nil
}

func validateLabels(l map[string]string) error {
	if err := validate.LabelSet("labels", l); err != nil {
		return errBadRequest(err.Error())
	}
	return nil
}

func (a *API) listHosts(w http.ResponseWriter, r *http.Request) {
	sel, err := selector.Parse(r.URL.Query().Get("selector"))
	if err != nil {
		writeError(w, r, errBadRequest(err.Error()), a.d.Log)
		return
	}
	hosts, err := a.d.Store.ListHosts(r.Context(), r.URL.Query().Get("include_revoked") == "true")
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	out := []api.Host{}
	for _, h := range hosts {
		if sel.Matches(h.Labels) {
			out = append(out, h.Host)
		}
	}
	writeJSON(w, 200, out)
}

// host resolves {host}: an id, or else a name.
func (a *API) host(r *http.Request) (store.HostRecord, error) {
	ref := r.PathValue("host")
	if strings.HasPrefix(ref, "h-") {
		if h, err := a.d.Store.GetHost(r.Context(), ref); err == nil {
			return h, nil
		}
	}
	h, err := a.d.Store.GetHostByName(r.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		return h, fmt.Errorf("host %q: %w (see `gantry hosts ls`)", ref, store.ErrNotFound)
	}
	return h, err
}

func (a *API) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := a.host(r)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, h.Host)
}

func (a *API) labelHost(w http.ResponseWriter, r *http.Request) {
	var req api.LabelsRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if err := validateLabels(req.Set); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	h, err := a.host(r)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	labels := map[string]string{}
	for k, v := range h.Labels {
		labels[k] = v
	}
	for k, v := range req.Set {
		labels[k] = v
	}
	for _, k := range req.Remove {
		delete(labels, k)
	}
	if err := validateLabels(labels); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if err := a.d.Store.SetHostLabels(r.Context(), h.ID, labels); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	h.Labels = labels
	writeJSON(w, 200, h.Host)
}

func (a *API) removeHost(w http.ResponseWriter, r *http.Request) {
	h, err := a.host(r)
	if err == nil {
		err = a.d.Store.RevokeHost(r.Context(), h.ID)
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if err := a.d.Revoke(h.NKey); err != nil {
		a.d.Log.Warn("revoke: drop connection", "host", h.ID, "err", err)
	}
	a.d.Fleet.Forget(h.ID)
	a.d.Log.Info("host revoked", "host", h.ID, "name", h.Name)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) createJoinToken(w http.ResponseWriter, r *http.Request) {
	req := api.CreateJoinTokenRequest{TTLSeconds: 3600, MaxUses: 1}
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	for _, err := range []error{validate.JoinTokenTTL.Check(int64(req.TTLSeconds)), validate.JoinTokenUses.Check(int64(req.MaxUses))} {
		if err != nil {
			writeError(w, r, errBadRequest(err.Error()), a.d.Log)
			return
		}
	}
	if err := validateLabels(req.Labels); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if err := a.validateAgentLabelKeys(r.Context(), req.AgentLabels); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	now := time.Now().UTC()
	secret := ids.Secret("gjt")
	if err := validate.Text("owner", req.Owner, 256); err != nil {
		writeError(w, r, errBadRequest(err.Error()), a.d.Log)
		return
	}
	t := store.JoinTokenRecord{Hash: HashToken(secret), JoinToken: api.JoinToken{ID: ids.New("jt"), Labels: req.Labels, AgentLabels: req.AgentLabels, ExpiresAt: now.Add(time.Duration(req.TTLSeconds) * time.Second), MaxUses: req.MaxUses, CreatedAt: now,
		Internal: req.Internal, Owner: req.Owner}}
	if err := a.d.Store.CreateJoinToken(r.Context(), t); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	out := t.JoinToken
	out.Token = pki.FormatJoinToken(secret, a.d.CAFingerprint)
	writeJSON(w, 201, out)
}

func (a *API) listJoinTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.d.Store.ListJoinTokens(r.Context())
	writeList(a, w, r, ts, err)
}

func (a *API) createJob(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(r *http.Request) (string, any, error) {
		var spec api.JobSpec
		if err := decode(r, &spec); err != nil {
			return "", nil, err
		}
		job, err := a.d.Fleet.CreateJob(r.Context(), spec)
		return job.ID, job, err
	}, a.loadJob)
}

// loadJob is a job's replay for a repeated Idempotency-Key.
func (a *API) loadJob(ctx context.Context, id string) (any, error) {
	job, err := a.d.Store.GetJob(ctx, id)
	return withCounts(job), err
}

func (a *API) listJobs(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	jobs, err := a.d.Store.ListJobs(r.Context(), limit)
	writeList(a, w, r, jobs, err)
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := a.d.Store.GetJob(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 200, withCounts(job))
}

func withCounts(j api.Job) api.Job {
	if j.Counts == nil {
		j.Counts = map[string]int{}
		for _, x := range j.Executions {
			j.Counts[x.State]++
		}
	}
	return j
}

// jobEvents streams NDJSON: current states, live events, then "done".
func (a *API) jobEvents(w0 http.ResponseWriter, r *http.Request) {
	job, w, cancel, err := a.d.Fleet.Watch(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w0, r, err, a.d.Log)
		return
	}
	defer cancel()
	var head []api.JobEvent
	for i := range job.Executions {
		x := job.Executions[i]
		head = append(head, api.JobEvent{Type: "state", HostID: x.HostID, HostName: x.HostName, Execution: &x})
	}
	if job.State == api.JobFinished {
		head = append(head, api.JobEvent{Type: "done", Job: &job})
		w = nil
	}
	streamNDJSON(w0, r, head, w)
}

// streamNDJSON writes head, then the watcher's events as they come (none
// if w is nil), one JSON document per line, until the watcher ends: the
// record is final ("done" was sent), the reader is too slow, or it left (the
// client then reloads the record).
func streamNDJSON[T any](w0 http.ResponseWriter, r *http.Request, head []T, w *watch.Watcher[T]) {
	w0.Header().Set("Content-Type", "application/x-ndjson")
	w0.Header().Set("Cache-Control", "no-store")
	w0.WriteHeader(200)
	enc := json.NewEncoder(w0)
	flush := func() {
		if f, ok := w0.(http.Flusher); ok {
			f.Flush()
		}
	}
	for _, ev := range head {
		_ = enc.Encode(ev)
	}
	flush()
	if w == nil {
		return
	}
	for {
		events, ok := w.Next(r.Context())
		if !ok {
			return
		}
		for _, ev := range events {
			if err := enc.Encode(ev); err != nil {
				return
			}
		}
		flush() // once per drained batch, not per event
	}
}

func (a *API) createSchedule(w http.ResponseWriter, r *http.Request) {
	var req api.Schedule
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	s, err := a.d.Fleet.NewSchedule(req)
	if err == nil {
		err = a.d.Store.CreateSchedule(r.Context(), s)
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	writeJSON(w, 201, s)
}

func (a *API) listSchedules(w http.ResponseWriter, r *http.Request) {
	ss, err := a.d.Store.ListSchedules(r.Context())
	for i := range ss {
		ss[i] = a.d.Fleet.WithNextRun(ss[i])
	}
	writeList(a, w, r, ss, err)
}

func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	if err := a.d.Store.DeleteSchedule(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// queryLimit reads the limit query parameter of list routes (default 50).
func queryLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("limit %q: want a number from %d to %d", s, validate.ListLimit.Min, validate.ListLimit.Max))
	}
	if err := validate.ListLimit.Check(int64(n)); err != nil {
		return 0, errBadRequest(err.Error())
	}
	return n, nil
}
