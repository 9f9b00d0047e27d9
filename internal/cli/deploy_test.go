package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// deployFake implements the deployment routes of the HTTP contract.
type deployFake struct {
	URL  string
	caFP string // pins the test server's certificate

	mu       sync.Mutex
	requests []string // "METHOD /path?query"
	bodies   []string
	groups   []api.DeploymentGroup
	list     []api.Deployment
	created  api.Deployment     // answer to POST .../deployments and .../rollback
	polls    []api.Deployment   // answers to GET /deployments/{id} before final
	final    api.Deployment     // GET /deployments/{id} after polls
	streams  []fakeDeployStream // connection i gets streams[i], extra ones the last
	conns    int                // connections to /events
	gets     int                // GET /deployments/{id}
	stopped  *api.StopRequest   // last stop request
}

// fakeDeployStream is one connection to /events: an error status, or
// events (without a "done" event the stream just ends).
type fakeDeployStream struct {
	status int
	events []api.DeploymentEvent
}

func newDeployFake(t *testing.T) *deployFake {
	t.Helper()
	f := &deployFake{}
	srv := httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.caFP = api.Fingerprint(srv.Certificate().Raw)
	return f
}

// gantry runs the CLI against f.
func (f *deployFake) gantry(t *testing.T, args ...string) result {
	t.Helper()
	return (&fakeServer{URL: f.URL, token: "admin-token", caFP: f.caFP}).gantry(t, nil, args...)
}

func (f *deployFake) serve(w http.ResponseWriter, r *http.Request) {
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.bodies = append(f.bodies, body.String())
	if r.Header.Get("Authorization") != "Bearer admin-token" {
		fail(w, http.StatusUnauthorized, "unauthorized", "invalid or missing API token")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v1/"), "/")
	for i, p := range parts {
		parts[i], _ = url.PathUnescape(p)
	}
	route := r.Method
	for i, p := range parts {
		if i%2 == 1 {
			p = "{}"
		}
		route += " " + p
	}
	switch route {
	case "POST apps {} groups":
		var req api.CreateGroupRequest
		_ = json.Unmarshal(body.Bytes(), &req)
		g := api.DeploymentGroup{ID: "g1", App: parts[1], Name: req.Name, Selector: req.Selector, Config: req.Config,
			HealthCheck: req.HealthCheck, AutoRollback: !req.NoAutoRollback, CreatedAt: time.Now()}
		f.groups = append(f.groups, g)
		reply(w, 201, g)
	case "GET apps {} groups":
		reply(w, 200, append([]api.DeploymentGroup{}, f.groups...))
	case "GET apps {} groups {}":
		for _, g := range f.groups {
			if g.App == parts[1] && g.Name == parts[3] {
				reply(w, 200, g)
				return
			}
		}
		fail(w, 404, "not_found", "deployment group "+parts[3]+" not found")
	case "POST apps {} groups {} deployments", "POST apps {} groups {} rollback":
		reply(w, 201, f.created)
	case "GET deployments":
		reply(w, 200, append([]api.Deployment{}, f.list...))
	case "GET deployments {}":
		f.gets++
		if f.gets <= len(f.polls) {
			reply(w, 200, f.polls[f.gets-1])
			return
		}
		reply(w, 200, f.final)
	case "GET deployments {} events":
		if len(f.streams) == 0 {
			fail(w, 404, "not_found", "no stream")
			return
		}
		s := f.streams[min(f.conns, len(f.streams)-1)]
		f.conns++
		if s.status != 0 {
			fail(w, s.status, "internal", "stream unavailable")
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, ev := range s.events {
			_ = enc.Encode(ev)
		}
	case "POST deployments {} stop":
		var req api.StopRequest
		_ = json.Unmarshal(body.Bytes(), &req)
		f.stopped = &req
		d := f.final
		d.State, d.StopRequested, d.Force = api.DeployStopping, true, req.Force
		reply(w, 200, d)
	default:
		fail(w, 404, "not_found", "no route "+route)
	}
}

// request returns the i-th request line and body.
func (f *deployFake) request(i int) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 {
		i += len(f.requests)
	}
	if i < 0 || i >= len(f.requests) {
		return "", ""
	}
	return f.requests[i], f.bodies[i]
}

func (f *deployFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func tp(t time.Time) *time.Time { return &t }

// scenario sets up deployment d1 of shop/web to web-1 and web-22, one at a
// time: web-1 succeeds in batch 1; web-22 succeeds too, or fails in
// ApplicationStart in batch 2 and an automatic rollback d2 starts.
func (f *deployFake) scenario(failWeb22 bool) {
	t0 := time.Now().Add(-time.Minute)
	base := api.Deployment{ID: "d1", App: "shop", Group: "web", GroupID: "g1", Revision: "r-3f2a9c0d1e2b",
		Config: "OneAtATime", MinHealthy: 1, State: api.DeployRunning, Kind: "deploy", CreatedAt: t0}
	created := base
	created.Hosts = []api.DeploymentHost{
		{HostID: "h1", HostName: "web-1", State: api.HostDeployPending},
		{HostID: "h2", HostName: "web-22", State: api.HostDeployPending},
	}
	ev := func(name, state string, code int, log, errMsg string) api.LifecycleEvent {
		return api.LifecycleEvent{Name: name, State: state, StartedAt: tp(t0), FinishedAt: tp(t0.Add(1500 * time.Millisecond)),
			ExitCode: code, LogTail: log, Error: errMsg}
	}
	web1 := api.DeploymentHost{HostID: "h1", HostName: "web-1", Batch: 1, State: api.HostDeploySucceeded, Event: "ValidateService",
		StartedAt: tp(t0), FinishedAt: tp(t0.Add(3 * time.Second)),
		Events: []api.LifecycleEvent{ev("ApplicationStop", "skipped", 0, "", ""), ev("BeforeInstall", "succeeded", 0, "installing deps\n", ""),
			ev("ApplicationStart", "succeeded", 0, "", ""), ev("ValidateService", "succeeded", 0, "ok\n", "")}}
	web22 := api.DeploymentHost{HostID: "h2", HostName: "web-22", Batch: 2, State: api.HostDeploySucceeded, Event: "ValidateService",
		StartedAt: tp(t0), FinishedAt: tp(t0.Add(3 * time.Second)), Events: web1.Events}
	final := base
	final.State, final.Batch, final.FinishedAt = api.DeploySucceeded, 2, tp(t0.Add(10*time.Second))
	if failWeb22 {
		web22.State, web22.Event, web22.Error = api.HostDeployFailed, "ApplicationStart", "ApplicationStart: script exited with status 3"
		web22.Events = []api.LifecycleEvent{ev("ApplicationStop", "succeeded", 0, "", ""), ev("BeforeInstall", "succeeded", 0, "", ""),
			ev("ApplicationStart", "failed", 3, "starting shop\nport 8080 in use\n", "scripts/start.sh exited with status 3")}
		final.State, final.RolledBackBy = api.DeployFailed, "d2"
		final.Error = "1 of 2 hosts failed: fewer healthy hosts than the minimum of 1"
	}
	final.Hosts = []api.DeploymentHost{web1, web22}
	hostEv := func(h api.DeploymentHost, batch int, event, state, errMsg string) api.DeploymentEvent {
		h.Batch, h.Event, h.State, h.Error, h.Events = batch, event, state, errMsg, nil
		return api.DeploymentEvent{Type: "host", Host: &h}
	}
	depEv := func(state string, batch int) api.DeploymentEvent {
		d := base
		d.State, d.Batch = state, batch
		return api.DeploymentEvent{Type: "deployment", Deployment: &d}
	}
	done := final
	f.created, f.final = created, final
	f.streams = []fakeDeployStream{{events: []api.DeploymentEvent{
		depEv(api.DeployRunning, 1),
		hostEv(web1, 1, "BeforeInstall", api.HostDeployInProgress, ""),
		hostEv(web1, 1, "BeforeInstall", api.HostDeployInProgress, ""), // a repeat prints nothing
		hostEv(web1, 1, "ValidateService", api.HostDeployInProgress, ""),
		hostEv(web1, 1, "ValidateService", api.HostDeploySucceeded, ""),
		depEv(api.DeployRunning, 2),
		hostEv(web22, 2, "ApplicationStart", api.HostDeployInProgress, ""),
		hostEv(web22, 2, web22.Event, web22.State, web22.Error),
		{Type: "done", Deployment: &done},
	}}}
}

func TestGroupCreateRequests(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want api.CreateGroupRequest
	}{
		{"plain", []string{"--selector", "role=web"}, api.CreateGroupRequest{Name: "web", Selector: "role=web"}},
		{"min healthy percent", []string{"--selector", "role=web", "--min-healthy", "75%"},
			api.CreateGroupRequest{Name: "web", Selector: "role=web", Config: "75%"}},
		{"min healthy count, no rollback", []string{"-l", "role=web", "--min-healthy", "4", "--no-auto-rollback"},
			api.CreateGroupRequest{Name: "web", Selector: "role=web", Config: "4", NoAutoRollback: true}},
		{"config and http", []string{"--selector", "role=web", "--config", "HalfAtATime", "--health-http", "http://127.0.0.1:8080/healthz",
			"--health-status", "204", "--health-timeout", "90s"},
			api.CreateGroupRequest{Name: "web", Selector: "role=web", Config: "HalfAtATime",
				HealthCheck: &api.HealthCheck{HTTP: "http://127.0.0.1:8080/healthz", ExpectStatus: 204, TimeoutSeconds: 90}}},
		{"http default status", []string{"--selector", "a=b", "--health-http", "http://x/"},
			api.CreateGroupRequest{Name: "web", Selector: "a=b", HealthCheck: &api.HealthCheck{HTTP: "http://x/", ExpectStatus: 200}}},
		{"tcp", []string{"--selector", "a=b", "--health-tcp", "5432"},
			api.CreateGroupRequest{Name: "web", Selector: "a=b", HealthCheck: &api.HealthCheck{TCP: "5432"}}},
		{"command", []string{"--selector", "a=b", "--health-command", `/usr/bin/check --queue 'orders eu' "x \"y\"" a\ b ''`},
			api.CreateGroupRequest{Name: "web", Selector: "a=b",
				HealthCheck: &api.HealthCheck{Command: []string{"/usr/bin/check", "--queue", "orders eu", `x "y"`, "a b", ""}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newDeployFake(t)
			r := f.gantry(t, append([]string{"group", "create", "shop", "web"}, tc.args...)...)
			r.expect(t, 0, "Deployment group web of shop created", "gantry deploy shop web")
			line, body := f.request(0)
			if line != "POST /api/v1/apps/shop/groups" {
				t.Errorf("request %q", line)
			}
			var got api.CreateGroupRequest
			if err := json.Unmarshal([]byte(body), &got); err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("body %s\ngot  %+v (%v)\nwant %+v", body, got, err, tc.want)
			}
			if !strings.Contains(body, `"selector":`) {
				t.Errorf("selector not sent: %s", body)
			}
		})
	}
}

func TestDeployUsageErrors(t *testing.T) {
	f := newDeployFake(t)
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"group config and min healthy", []string{"group", "create", "shop", "web", "-l", "a=b", "--config", "AllAtOnce", "--min-healthy", "2"},
			[]string{"--config and --min-healthy are exclusive", "gantry group create --help"}},
		{"two health checks", []string{"group", "create", "shop", "web", "-l", "a=b", "--health-http", "http://x/", "--health-tcp", "80"},
			[]string{"--health-http and --health-tcp are exclusive"}},
		{"three health checks", []string{"group", "create", "shop", "web", "-l", "a=b", "--health-http", "u", "--health-tcp", "80", "--health-command", "true"},
			[]string{"--health-http and --health-tcp and --health-command are exclusive"}},
		{"no selector", []string{"group", "create", "shop", "web"}, []string{"--selector is required"}},
		// The server refuses an empty group selector: the CLI says so first.
		{"empty selector", []string{"group", "create", "shop", "web", "-l", " "}, []string{"--selector is required", "so it cannot be empty"}},
		{"bad min healthy", []string{"group", "create", "shop", "web", "-l", "a=b", "--min-healthy", "most"}, []string{`invalid --min-healthy "most"`}},
		{"percent over 100", []string{"group", "create", "shop", "web", "-l", "a=b", "--min-healthy", "150%"}, []string{"at most 100%"}},
		{"unterminated quote", []string{"group", "create", "shop", "web", "-l", "a=b", "--health-command", "check 'x"},
			[]string{"invalid --health-command: unterminated single quote"}},
		{"status without http", []string{"group", "create", "shop", "web", "-l", "a=b", "--health-status", "204"}, []string{"--health-status needs --health-http"}},
		{"timeout without check", []string{"group", "create", "shop", "web", "-l", "a=b", "--health-timeout", "5s"}, []string{"--health-timeout needs a health check"}},
		{"deploy config and min healthy", []string{"deploy", "shop", "web", "--config", "AllAtOnce", "--min-healthy", "50%"},
			[]string{"--config and --min-healthy are exclusive", "gantry deploy --help"}},
		{"deploy missing group", []string{"deploy", "shop"}, []string{"missing GROUP argument"}},
		{"rollback extra", []string{"rollback", "shop", "web", "x"}, []string{`unexpected argument "x"`}},
		{"ls two apps", []string{"deployments", "ls", "a", "b"}, []string{`unexpected argument "b"`}},
		{"ls negative limit", []string{"deployments", "ls", "--limit", "-1"}, []string{"invalid --limit -1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.gantry(t, tc.args...).expect(t, 2, tc.wants...)
		})
	}
	if n := f.count(); n != 0 {
		t.Errorf("usage errors reached the server (%d requests)", n)
	}
}

func TestSplitWords(t *testing.T) {
	cases := map[string][]string{
		"":                         nil,
		"  a  b\tc ":               {"a", "b", "c"},
		`a'b c'd`:                  {"ab cd"},
		`"$HOME \$x \a" 'it''s'`:   {`$HOME $x \a`, "its"},
		`x\ y \\ \'`:               {"x y", `\`, "'"},
		`curl -fsS "http://h/a b"`: {"curl", "-fsS", "http://h/a b"},
	}
	for in, want := range cases {
		got, err := splitWords(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
		if len(want) > 0 {
			if back, _ := splitWords(quoteWords(want)); !reflect.DeepEqual(back, want) {
				t.Errorf("quoteWords(%q) = %q does not split back", want, quoteWords(want))
			}
		}
	}
	for _, bad := range []string{`'x`, `"x`, `x\`} {
		if _, err := splitWords(bad); err == nil {
			t.Errorf("splitWords(%q) accepted", bad)
		}
	}
}

func TestGroupListAndShow(t *testing.T) {
	f := newDeployFake(t)
	f.gantry(t, "group", "ls", "shop").expect(t, 0, "No deployment groups")
	f.gantry(t, "group", "create", "shop", "web", "-l", "role=web", "--health-command", "check 'a b'", "--health-timeout", "2m").expect(t, 0)
	f.gantry(t, "group", "ls", "shop").expect(t, 0, "NAME", "HEALTH CHECK", "web", "role=web", "OneAtATime", "command check 'a b' (within 2m0s)", "on")
	f.gantry(t, "group", "show", "shop", "web").expect(t, 0, "Selector:", "role=web", "Auto rollback:", "nothing deployed yet")
	r := f.gantry(t, "group", "show", "shop", "web", "-o", "json")
	var g api.DeploymentGroup
	if err := json.Unmarshal([]byte(r.stdout), &g); err != nil || g.HealthCheck == nil || g.HealthCheck.TimeoutSeconds != 120 {
		t.Errorf("json %v: %s", err, r.stdout)
	}
	f.gantry(t, "group", "show", "shop", "nope").expect(t, 1, "deployment group nope not found")
}

func TestDeployNoWait(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(false)
	r := f.gantry(t, "deploy", "shop", "web", "--revision", "r-3f2a9c0d1e2b", "--min-healthy", "4", "--description", "hotfix")
	r.expect(t, 0, "gantry deployments show d1")
	if r.stdout != "d1\n" {
		t.Errorf("stdout %q, want the deployment id", r.stdout)
	}
	line, body := f.request(0)
	var req api.DeployRequest
	_ = json.Unmarshal([]byte(body), &req)
	if line != "POST /api/v1/apps/shop/groups/web/deployments" || req != (api.DeployRequest{Revision: "r-3f2a9c0d1e2b", Config: "4", Description: "hotfix"}) {
		t.Errorf("request %s %s", line, body)
	}
	if f.count() != 1 {
		t.Errorf("without --wait the deployment was followed")
	}
}

func TestDeployWaitFailure(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(true)
	r := f.gantry(t, "deploy", "shop", "web", "--wait")
	r.expect(t, 1,
		"deployment d1: revision r-3f2a9c0d1e2b of shop to group web, 2 hosts, running\ndeployment d1: batch 1, running\n",
		"web-1   batch 1  BeforeInstall       in progress\n",
		"web-1   batch 1  ValidateService     succeeded\n",
		"web-22  batch 2  ApplicationStart    failed: ApplicationStart: script exited with status 3\n",
		"web-22: ApplicationStart failed (exit 3): scripts/start.sh exited with status 3\n    starting shop\n    port 8080 in use\n",
		"Deployment d1 failed: 1 succeeded, 1 failed",
		"Error: 1 of 2 hosts failed",
		"automatic rollback was started: deployment d2",
		"gantry deployments show d2",
	)
	if strings.Count(r.stdout, "BeforeInstall       in progress") != 1 {
		t.Errorf("a repeated event printed twice:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Errorf("escape codes without a terminal:\n%q", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
	if line, _ := f.request(1); line != "GET /api/v1/deployments/d1/events" {
		t.Errorf("followed with %q", line)
	}
}

func TestDeployWaitSuccess(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(false)
	r := f.gantry(t, "deploy", "shop", "web", "--wait")
	r.expect(t, 0, "web-22  batch 2  ValidateService     succeeded", "Deployment d1 succeeded: 2 succeeded")
	if strings.Contains(r.stdout, "rollback") {
		t.Errorf("success mentions a rollback:\n%s", r.stdout)
	}
}

func TestDeployWaitJSON(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(true)
	r := f.gantry(t, "deploy", "shop", "web", "--wait", "-o", "json")
	r.expect(t, 1)
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("stdout is not one JSON deployment: %v\n%s", err, r.stdout)
	}
	if d.State != api.DeployFailed || d.RolledBackBy != "d2" || len(d.Hosts) != 2 || len(d.Hosts[1].Events) != 3 {
		t.Errorf("deployment %+v", d)
	}
}

func TestDeployStreamEndsEarlyPolls(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream fakeDeployStream
	}{
		{"stream ends", fakeDeployStream{}}, // events set below
		{"stream unavailable", fakeDeployStream{status: 503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newDeployFake(t)
			f.scenario(true)
			if tc.stream.status == 0 {
				tc.stream.events = f.streams[0].events[:3] // the server dies before "done"
			}
			f.streams = []fakeDeployStream{tc.stream}
			mid := f.final
			mid.State, mid.Batch, mid.RolledBackBy, mid.Error = api.DeployRunning, 2, "", ""
			mid.Hosts = []api.DeploymentHost{f.final.Hosts[0], f.final.Hosts[1]}
			mid.Hosts[1].State, mid.Hosts[1].Error = api.HostDeployInProgress, ""
			f.polls = []api.Deployment{mid, mid}
			r := f.gantry(t, "rollback", "shop", "web", "--wait")
			r.expect(t, 1, "polling the deployment", "web-22  batch 2  ApplicationStart    in progress",
				"web-22  batch 2  ApplicationStart    failed", "Deployment d1 failed", "gantry deployments show d2")
			if f.gets != 3 || f.conns != 1 {
				t.Errorf("%d polls, %d stream connections", f.gets, f.conns)
			}
			if line, body := f.request(0); line != "POST /api/v1/apps/shop/groups/web/rollback" || body != "" {
				t.Errorf("rollback request %q %q", line, body)
			}
		})
	}
}

func TestDeployStreamClientErrorStops(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(false)
	f.streams = []fakeDeployStream{{status: 403}}
	f.gantry(t, "deploy", "shop", "web", "--wait").expect(t, 1, "following deployment d1", "gantry deployments show d1")
	if f.gets != 0 {
		t.Errorf("polled after a 403")
	}
}

func TestDeployViewTerminal(t *testing.T) {
	var b strings.Builder
	v := newDeployView(&b, true)
	v.setDeployment(api.Deployment{ID: "d1", State: api.DeployRunning, Batch: 1, Hosts: []api.DeploymentHost{
		{HostID: "h1", HostName: "web-1", Batch: 1, State: api.HostDeployInProgress, Event: "BeforeInstall"},
		{HostID: "h2", HostName: "web-22", State: api.HostDeployPending},
	}})
	first := b.String()
	if !strings.Contains(first, "web-1   1      BeforeInstall  in progress") || !strings.Contains(first, "[....................] 0/2 hosts  batch 1") {
		t.Errorf("first drawing:\n%s", first)
	}
	if strings.Contains(first, "\x1b[3A") {
		t.Errorf("the first drawing moved up")
	}
	b.Reset()
	v.setHost(api.DeploymentHost{HostID: "h1", HostName: "web-1", Batch: 1, State: api.HostDeploySucceeded, Event: "ValidateService"})
	if !strings.HasPrefix(b.String(), "\x1b[4A\x1b[2K") || !strings.Contains(b.String(), "[##########..........] 1/2 hosts  batch 1") {
		t.Errorf("redraw %q", b.String())
	}
	b.Reset()
	v.setHost(api.DeploymentHost{HostID: "h1", HostName: "web-1", Batch: 1, State: api.HostDeploySucceeded, Event: "ValidateService"})
	if b.Len() != 0 {
		t.Errorf("no change redrew: %q", b.String())
	}
}

func TestDeploymentsList(t *testing.T) {
	f := newDeployFake(t)
	f.gantry(t, "deployments", "ls").expect(t, 0, "No deployments yet.")
	f.list = []api.Deployment{
		{ID: "d2", App: "shop", Group: "web", Revision: "r-1", Kind: "rollback", State: api.DeployRunning, CreatedAt: time.Now().Add(-5 * time.Second),
			Counts: map[string]int{api.HostDeployInProgress: 1, api.HostDeployPending: 5}},
		{ID: "d1", App: "shop", Group: "web", Revision: "r-2", Kind: "deploy", State: api.DeployFailed, CreatedAt: time.Now().Add(-3 * time.Minute),
			Counts: map[string]int{api.HostDeploySucceeded: 5, api.HostDeployFailed: 1}},
	}
	r := f.gantry(t, "deployments", "ls", "shop", "--limit", "5")
	r.expect(t, 0, "ID  APP   GROUP  REVISION  KIND      STATE    HOSTS                     CREATED\n",
		"d2  shop  web    r-1       rollback  running  1 in progress, 5 pending  5s ago\n",
		"d1  shop  web    r-2       deploy    failed   5 succeeded, 1 failed     3m ago\n")
	if line, _ := f.request(-1); line != "GET /api/v1/deployments?app=shop&limit=5" {
		t.Errorf("request %q", line)
	}
	r = f.gantry(t, "deployments", "ls", "-o", "json")
	var deps []api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &deps); err != nil || len(deps) != 2 {
		t.Errorf("json %v: %s", err, r.stdout)
	}
	if line, _ := f.request(-1); line != "GET /api/v1/deployments?limit=20" {
		t.Errorf("request %q", line)
	}
}

func TestDeploymentsShow(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(true)
	r := f.gantry(t, "deployments", "show", "d1")
	r.expect(t, 0, "Application:     shop", "Revision:        r-3f2a9c0d1e2b", "Config:          OneAtATime", "Min healthy:     1 host",
		"State:           failed (1 succeeded, 1 failed)", "Rolled back by:  d2", "Error:           1 of 2 hosts failed",
		"HOST    BATCH  STATE      EVENT             DURATION  ERROR",
		"web-22  2      failed     ApplicationStart  3s        ApplicationStart: script exited with status 3")
	if strings.Contains(r.stdout, "port 8080") {
		t.Errorf("logs shown without --host")
	}

	r = f.gantry(t, "deployments", "show", "d1", "--host", "h2")
	r.expect(t, 0, "State:           failed (1 succeeded, 1 failed)", "== web-22 (h2): failed, batch 2, 3s",
		"EVENT             STATE      DURATION  EXIT",
		"ApplicationStart  failed     1.5s      3",
		"ApplicationStart (failed, exit 3):\n    starting shop\n    port 8080 in use\n    error: scripts/start.sh exited with status 3\n")
	if strings.Contains(r.stdout, "web-1 ") {
		t.Errorf("--host shows other hosts:\n%s", r.stdout)
	}
	r = f.gantry(t, "deployments", "show", "d1", "--host", "web-1")
	r.expect(t, 0, "ApplicationStop   skipped    1.5s      -", "BeforeInstall (succeeded, exit 0):\n    installing deps\n")

	r = f.gantry(t, "deployments", "show", "d1", "--host", "web-1", "-o", "json")
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Hosts) != 1 || d.Hosts[0].HostName != "web-1" {
		t.Errorf("json %v: %s", err, r.stdout)
	}
	f.gantry(t, "deployments", "show", "d1", "--host", "db-1").expect(t, 1, `deployment d1 has no host "db-1" (its hosts: web-1, web-22)`)
}

func TestDeploymentsStop(t *testing.T) {
	f := newDeployFake(t)
	f.scenario(false)
	f.gantry(t, "deployments", "stop", "d1", "--force").expect(t, 0, "Stop requested for deployment d1 (now stopping)", "running hooks are killed")
	line, body := f.request(0)
	if line != "POST /api/v1/deployments/d1/stop" || body != `{"force":true}` {
		t.Errorf("request %q %q", line, body)
	}
	f.gantry(t, "deployments", "stop", "d1").expect(t, 0, "finish their current lifecycle events")
	if _, body := f.request(-1); body != `{}` {
		t.Errorf("body %q", body)
	}
}
