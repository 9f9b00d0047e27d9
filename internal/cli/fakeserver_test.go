package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// fakeServer implements the HTTP contract the CLI codes against, in memory.
type fakeServer struct {
	URL   string
	token string

	mu        sync.Mutex
	hosts     []api.Host
	tokens    []api.JoinToken
	apiTokens []api.APIToken
	// caFP pins the test server's certificate (GANTRY_CA_FINGERPRINT).
	caFP      string
	jobs      map[string]*fakeJob
	jobOrder  []string
	schedules []api.Schedule
	requests  []string // "METHOD /path?query"
	auths     []string // Authorization header per request
	bodies    []string // request bodies
	// finish decides how a new job's executions end; by default every host
	// succeeds printing "hello from NAME".
	finish func(e *api.Execution)
	// streams, if set, scripts the event stream connections of new jobs.
	streams func(j *fakeJob) []fakeStream
}

// fakeJob is a job with its final state and scripted event connections.
type fakeJob struct {
	final   api.Job
	streams []fakeStream // connection i gets streams[i]; extra ones the last
	conns   int
	gets    int
}

// fakeStream is one connection to /events: an error status, or events
// (a stream without a "done" event just ends, as when the server dies).
type fakeStream struct {
	status int
	events []api.JobEvent
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	now := time.Now()
	f := &fakeServer{token: "admin-token", jobs: map[string]*fakeJob{}}
	f.hosts = []api.Host{
		{ID: "h1", Name: "web-1", Status: api.HostOnline, Labels: map[string]string{"role": "web", "env": "prod"},
			Facts:    api.Facts{Hostname: "web-1.example", OS: "linux", Arch: "amd64", CPUs: 4, MemoryBytes: 8 << 30, Addresses: []string{"10.0.0.1"}, AgentVersion: "v1"},
			LastSeen: now.Add(-3500 * time.Millisecond), EnrolledAt: now.Add(-time.Hour)},
		{ID: "h2", Name: "web-22", Status: api.HostOnline, Labels: map[string]string{"role": "web"},
			Facts: api.Facts{OS: "linux", Arch: "arm64"}, LastSeen: now.Add(-90 * time.Second), EnrolledAt: now.Add(-time.Hour)},
		{ID: "h3", Name: "db-1", Status: api.HostOffline, Labels: map[string]string{"role": "db"},
			Facts: api.Facts{OS: "linux", Arch: "amd64"}, EnrolledAt: now.Add(-time.Hour)},
		{ID: "h4", Name: "old-1", Status: api.HostRevoked, EnrolledAt: now.Add(-48 * time.Hour)},
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.caFP = api.Fingerprint(srv.Certificate().Raw) // httptest's certificate is its own CA
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.bodies = append(f.bodies, body.String())
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(w, http.StatusUnauthorized, "unauthorized", "invalid or missing API token")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/"), "/")
	for i, p := range parts {
		parts[i], _ = url.PathUnescape(p)
	}
	route := r.Method + " " + parts[0]
	if len(parts) > 1 {
		route += "/{}"
	}
	if len(parts) > 2 {
		route += "/" + parts[2]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch route {
	case "GET whoami":
		reply(w, 200, api.Identity{TokenID: "t1", Name: "admin", Role: "admin"})
	case "GET hosts":
		f.listHosts(w, r)
	case "GET hosts/{}", "PATCH hosts/{}/labels", "DELETE hosts/{}":
		f.host(w, r, parts[1], body.Bytes())
	case "POST join-tokens":
		var req api.CreateJoinTokenRequest
		_ = json.Unmarshal(body.Bytes(), &req)
		jt := api.JoinToken{ID: "jt" + strconv.Itoa(len(f.tokens)+1), Token: "gjt_secret", Labels: req.Labels, AgentLabels: req.AgentLabels,
			MaxUses: req.MaxUses, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Duration(req.TTLSeconds) * time.Second)}
		f.tokens = append(f.tokens, jt)
		reply(w, 201, jt)
	case "GET join-tokens":
		out := []api.JoinToken{}
		for _, jt := range f.tokens {
			jt.Token = ""
			out = append(out, jt)
		}
		reply(w, 200, out)
	case "POST tokens", "GET tokens", "DELETE tokens/{}", "DELETE join-tokens/{}":
		f.apiTokenRoute(w, r, route, parts, body.Bytes())
	case "POST jobs":
		f.createJob(w, body.Bytes())
	case "GET jobs":
		out := []api.Job{}
		for i := len(f.jobOrder) - 1; i >= 0; i-- {
			j := f.jobs[f.jobOrder[i]].final
			j.Counts, j.Executions = countStates(j.Executions), nil
			out = append(out, j)
		}
		reply(w, 200, out)
	case "GET jobs/{}":
		j, ok := f.jobs[parts[1]]
		if !ok {
			fail(w, 404, "not_found", "job "+parts[1]+" not found")
			return
		}
		j.gets++
		reply(w, 200, j.final)
	case "GET jobs/{}/events":
		f.events(w, parts[1])
	case "POST schedules":
		var s api.Schedule
		_ = json.Unmarshal(body.Bytes(), &s)
		if strings.Count(s.Cron, " ") != 4 && !strings.HasPrefix(s.Cron, "@") {
			fail(w, 400, "bad_request", fmt.Sprintf("invalid cron expression %q", s.Cron))
			return
		}
		next := time.Now().Add(5 * time.Minute)
		s.ID, s.CreatedAt, s.NextRunAt = "s"+strconv.Itoa(len(f.schedules)+1), time.Now(), &next
		f.schedules = append(f.schedules, s)
		reply(w, 201, s)
	case "GET schedules":
		reply(w, 200, append([]api.Schedule{}, f.schedules...))
	case "DELETE schedules/{}":
		for i, s := range f.schedules {
			if s.ID == parts[1] {
				f.schedules = append(f.schedules[:i], f.schedules[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		fail(w, 404, "not_found", "schedule "+parts[1]+" not found")
	default:
		fail(w, 404, "not_found", "no route "+route)
	}
}

// matches implements a tiny selector language: "" or "k=v[,k=v...]".
func matches(selector string, h api.Host) bool {
	if selector == "" {
		return true
	}
	for _, req := range strings.Split(selector, ",") {
		k, v, _ := strings.Cut(req, "=")
		if h.Labels[k] != v {
			return false
		}
	}
	return true
}

func badSelector(w http.ResponseWriter, selector string) bool {
	if i := strings.Index(selector, "=="); i >= 0 {
		fail(w, 400, "bad_request", fmt.Sprintf("invalid selector %q: unexpected '=' at position %d", selector, i+1))
		return true
	}
	return false
}

func (f *fakeServer) listHosts(w http.ResponseWriter, r *http.Request) {
	sel := r.URL.Query().Get("selector")
	if badSelector(w, sel) {
		return
	}
	out := []api.Host{}
	for _, h := range f.hosts {
		if (h.Status != api.HostRevoked || r.URL.Query().Get("include_revoked") == "true") && matches(sel, h) {
			out = append(out, h)
		}
	}
	reply(w, 200, out)
}

func (f *fakeServer) host(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	for i := range f.hosts {
		h := &f.hosts[i]
		if h.ID != key && h.Name != key {
			continue
		}
		switch r.Method {
		case http.MethodDelete:
			h.Status = api.HostRevoked
			w.WriteHeader(204)
		case http.MethodPatch:
			var req api.LabelsRequest
			_ = json.Unmarshal(body, &req)
			if h.Labels == nil {
				h.Labels = map[string]string{}
			}
			for k, v := range req.Set {
				h.Labels[k] = v
			}
			for _, k := range req.Remove {
				delete(h.Labels, k)
			}
			reply(w, 200, h)
		default:
			reply(w, 200, h)
		}
		return
	}
	fail(w, 404, "not_found", fmt.Sprintf("host %q not found", key))
}

func (f *fakeServer) createJob(w http.ResponseWriter, body []byte) {
	var spec api.JobSpec
	_ = json.Unmarshal(body, &spec)
	if badSelector(w, spec.Selector) {
		return
	}
	now := time.Now()
	id := "j" + strconv.Itoa(len(f.jobOrder)+1)
	job := api.Job{ID: id, Selector: spec.Selector, Script: spec.Script, Concurrency: spec.Concurrency,
		TimeoutSeconds: spec.TimeoutSeconds, User: spec.User, State: api.JobRunning, CreatedAt: now}
	if job.TimeoutSeconds == 0 {
		job.TimeoutSeconds = 600
	}
	for _, h := range f.hosts {
		if h.Status != api.HostRevoked && matches(spec.Selector, h) {
			job.Executions = append(job.Executions, api.Execution{ID: id + "-" + h.ID, JobID: id, HostID: h.ID, HostName: h.Name, State: api.ExecPending})
		}
	}
	if len(job.Executions) == 0 && spec.Selector != "" { // as the real server does
		fail(w, http.StatusUnprocessableEntity, "no_hosts", fmt.Sprintf("no host matches the selector %q", spec.Selector))
		return
	}
	reply(w, 201, job)

	final := job
	final.Executions = append([]api.Execution(nil), job.Executions...)
	final.State, final.FinishedAt = api.JobFinished, &now
	for i := range final.Executions {
		e := &final.Executions[i]
		start, end := now, now.Add(1200*time.Millisecond)
		e.StartedAt, e.FinishedAt = &start, &end
		e.State, e.ExitCode, e.Stdout = api.ExecSucceeded, new(int), "hello from "+e.HostName+"\n"
		if f.finish != nil {
			f.finish(e)
		}
	}
	fj := &fakeJob{final: final}
	if f.streams != nil {
		fj.streams = f.streams(fj)
	} else {
		fj.streams = []fakeStream{{events: defaultEvents(final)}}
	}
	f.jobs[id] = fj
	f.jobOrder = append(f.jobOrder, id)
}

// defaultEvents streams each execution's output in one chunk, then done.
func defaultEvents(final api.Job) []api.JobEvent {
	var evs []api.JobEvent
	for _, e := range final.Executions {
		running := e
		running.State = api.ExecRunning
		evs = append(evs, api.JobEvent{Type: "state", HostID: e.HostID, HostName: e.HostName, Execution: &running})
	}
	for _, e := range final.Executions {
		evs = append(evs, outputEvent(e.HostName, "stdout", e.Stdout), outputEvent(e.HostName, "stderr", e.Stderr))
	}
	return append(evs, doneEvent(final))
}

// sequenced sets the stream offsets of output events, as the server does.
func sequenced(evs ...api.JobEvent) []api.JobEvent {
	off := map[[2]string]int64{}
	for i, ev := range evs {
		if ev.Type == "output" {
			k := [2]string{ev.HostName, ev.Stream}
			evs[i].Offset = off[k]
			off[k] += int64(len(ev.Data))
		}
	}
	return evs
}

func outputEvent(host, stream, data string) api.JobEvent {
	return api.JobEvent{Type: "output", HostName: host, Stream: stream, Data: data}
}

func doneEvent(final api.Job) api.JobEvent { return api.JobEvent{Type: "done", Job: &final} }

func (f *fakeServer) events(w http.ResponseWriter, id string) {
	j, ok := f.jobs[id]
	if !ok {
		fail(w, 404, "not_found", "job "+id+" not found")
		return
	}
	s := j.streams[min(j.conns, len(j.streams)-1)]
	j.conns++
	if s.status != 0 {
		fail(w, s.status, "internal", "stream unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, ev := range s.events {
		if ev.Type == "output" && ev.Data == "" {
			continue
		}
		_ = enc.Encode(ev)
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	reply(w, status, api.Error{Error: msg, Code: code})
}

// lastRequest returns the last request line and body the server saw.
func (f *fakeServer) lastRequest() (line, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		return "", ""
	}
	return f.requests[len(f.requests)-1], f.bodies[len(f.bodies)-1]
}

// body returns the body of the i-th request.
func (f *fakeServer) body(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[i]
}

func (f *fakeServer) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// job returns a copy of a job's record.
func (f *fakeServer) job(id string) fakeJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.jobs[id]
}

// result is the outcome of one in-process CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// gantry runs the CLI in-process against f with env (GANTRY_SERVER and
// GANTRY_TOKEN point at f unless env sets them; GANTRY_CONFIG points into
// a temporary directory) and fast reconnection.
func (f *fakeServer) gantry(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	full := map[string]string{"GANTRY_CONFIG": filepath.Join(t.TempDir(), "config.json")}
	if f != nil {
		full["GANTRY_SERVER"], full["GANTRY_TOKEN"], full["GANTRY_CA_FINGERPRINT"] = f.URL, f.token, f.caFP
	}
	for k, v := range env {
		full[k] = v
	}
	var stdout, stderr bytes.Buffer
	a := newApp(&stdout, &stderr, func(k string) string { return full[k] })
	a.follow = followTuning{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, Grace: 200 * time.Millisecond, PollInterval: 5 * time.Millisecond}
	code := a.execute(t.Context(), args)
	return result{code, stdout.String(), stderr.String()}
}

// expect checks the exit code and that each wanted string appears in
// stdout+stderr, reporting the full output otherwise.
func (r result) expect(t *testing.T, code int, wants ...string) {
	t.Helper()
	all := r.stdout + r.stderr
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(all, w) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
		}
	}
}

// writeFile writes a file under a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
