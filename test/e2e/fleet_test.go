package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// A server and 3 agents; jobs on a 2-host selector: outputs, exit codes,
// and a failing host making the exit status non-zero.
func TestRunOnSelector(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"web-1": "role=web", "web-2": "role=web", "db-1": "role=db"})

	r := c.gantry("run", "--selector", "role=web", "--", `echo "out-$GANTRY_HOST_NAME"; echo "warn-$GANTRY_HOST_NAME" >&2`)
	r.ok(t)
	for _, want := range []string{"web-1 | out-web-1", "web-2 | out-web-2", "web-1 ! warn-web-1", "2 hosts: 2 succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("run output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "db-1") {
		t.Errorf("db-1 does not match role=web but appears:\n%s", r.stdout)
	}
	// The summary names the job and how to see it again; the hint works.
	m := regexp.MustCompile(`\(job (j-[a-z0-9]+): 'gantry jobs show (j-[a-z0-9]+)'\)`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] {
		t.Fatalf("run summary does not name its job:\n%s", r.stdout)
	}
	show := c.gantry("jobs", "show", m[2])
	show.ok(t)
	if !strings.Contains(show.stdout, "out-web-2") {
		t.Errorf("gantry jobs show %s lacks the job's output:\n%s", m[2], show.stdout)
	}

	r = c.gantry("run", "--selector", "role=web", "-o", "json", "--", `echo "$GANTRY_HOST_NAME"; [ "$GANTRY_HOST_NAME" != web-2 ] || exit 3`)
	if r.code != 1 {
		t.Fatalf("a failing host must make the exit status 1, got %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil {
		t.Fatalf("json output: %v\n%s", err, r.stdout)
	}
	x := byHost(job)
	if len(x) != 2 {
		t.Fatalf("want 2 executions, got %d", len(x))
	}
	if e := x["web-1"]; e.State != api.ExecSucceeded || e.ExitCode == nil || *e.ExitCode != 0 || e.Stdout != "web-1\n" {
		t.Errorf("web-1: %+v", e)
	}
	if e := x["web-2"]; e.State != api.ExecFailed || e.ExitCode == nil || *e.ExitCode != 3 || e.Stdout != "web-2\n" {
		t.Errorf("web-2: %+v", e)
	}
	if job.State != api.JobFinished {
		t.Errorf("job state %q", job.State)
	}

	// The job is stored and listed.
	r = c.gantry("jobs", "ls", "-o", "json")
	r.ok(t)
	if !strings.Contains(r.stdout, job.ID) {
		t.Errorf("jobs ls lacks %s:\n%s", job.ID, r.stdout)
	}
	if got := c.job(job.ID); byHost(got)["web-2"].Stdout != "web-2\n" {
		t.Errorf("stored output: %+v", got.Executions)
	}
}

// A timed-out script's whole process group is killed, output is capped.
func TestTimeoutAndOutputCap(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"h1": "role=x"})
	marker := fmt.Sprintf("%d.%d", 400+time.Now().Nanosecond()%500, time.Now().Nanosecond()%1000)
	start := time.Now()
	r := c.gantry("run", "--selector", "role=x", "--timeout", "1s", "-o", "json", "--", "sleep "+marker+" & sleep "+marker+"; echo never")
	if r.code != 1 {
		t.Fatalf("timed-out job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("a 1s timeout took %s", time.Since(start))
	}
	var job api.Job
	_ = json.Unmarshal([]byte(r.stdout), &job)
	if x := byHost(job)["h1"]; x.State != api.ExecTimedOut || strings.Contains(x.Stdout, "never") {
		t.Fatalf("want timed_out without output, got %+v", x)
	}
	// Both sleeps (the backgrounded one too) are gone.
	eventually(t, 5*time.Second, "sleep processes killed", func() (bool, string) {
		n := countProcs("sleep " + marker)
		return n == 0, fmt.Sprintf("%d left", n)
	})

	r = c.gantry("run", "--selector", "role=x", "-o", "json", "--", "head -c 3000000 /dev/zero | tr '\\0' a")
	r.ok(t)
	job = api.Job{}
	_ = json.Unmarshal([]byte(r.stdout), &job)
	x := byHost(job)["h1"]
	if !x.StdoutTruncated || len(x.Stdout) < 1<<20 || len(x.Stdout) > 1<<20+200 || !strings.Contains(x.Stdout, "truncated") {
		t.Errorf("output cap: truncated=%v len=%d tail=%q", x.StdoutTruncated, len(x.Stdout), tail(x.Stdout, 60))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// countProcs counts processes whose command line is exactly cmdline.
func countProcs(cmdline string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			n++
		}
	}
	return n
}

// An agent killed goes offline within 3 heartbeats; restarted, it is online
// again with the same identity.
func TestAgentOfflineAndBack(t *testing.T) {
	// Enrolled under a 5 s heartbeat; the server then restarts with 300 ms.
	c := newCluster(t, clusterOpts{heartbeat: 5 * time.Second})
	c.agentsOnline(map[string]string{"a1": "role=x"})
	c.server.stop()
	c.heartbeat = 300 * time.Millisecond
	c.startServer()
	// The store still says online from before the restart: wait for the
	// agent to be back on the new server's bus before sampling.
	eventually(t, 15*time.Second, "agent reconnected to the restarted server", func() (bool, string) {
		return strings.Contains(c.agents["a1"].out.String(), "reconnected to bus"), ""
	})
	c.waitHost("a1", api.HostOnline, 10*time.Second)
	// The agent follows the server's new heartbeat (told in every hello
	// reply), so it stays online: sampled for 2.5 s, more than 8 intervals.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		if h, _ := c.host("a1"); h.Status != api.HostOnline {
			t.Fatalf("a live agent was seen %s: it does not follow the server's heartbeat", h.Status)
		}
	}
	before, _ := c.host("a1")
	c.agents["a1"].kill()
	killed := time.Now()
	c.waitHost("a1", api.HostOffline, 10*time.Second)
	// 3 heartbeats plus the monitor's half-interval tick and CLI polling.
	if took := time.Since(killed); took > 3*300*time.Millisecond+2*time.Second {
		t.Errorf("offline after %s, want about 3 heartbeats (900ms)", took)
	}
	// A job now accounts for it as offline, with a non-zero exit.
	r := c.gantry("run", "--selector", "role=x", "--", "true")
	if r.code != 1 || !strings.Contains(r.stdout, "offline") {
		t.Errorf("job on an offline host: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.startAgent("a1", "", "") // no join token needed any more
	after := c.waitHost("a1", api.HostOnline, 10*time.Second)
	if after.ID != before.ID {
		t.Errorf("identity changed: %s → %s", before.ID, after.ID)
	}
	r = c.gantry("hosts", "ls", "-o", "json")
	var hosts []api.Host
	_ = json.Unmarshal([]byte(r.stdout), &hosts)
	if len(hosts) != 1 {
		t.Errorf("want exactly one host after restart, got %d", len(hosts))
	}
	if f := after.Facts; f.Hostname == "" || f.CPUs < 1 || f.MemoryBytes == 0 || f.Arch == "" || f.AgentVersion == "" {
		t.Errorf("facts incomplete: %+v", f)
	}
}

// Bad, expired and used-up join tokens: a clear error, the agent exits
// non-zero, nothing is enrolled.
func TestJoinTokenErrors(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	used := c.joinToken("--uses", "1")
	c.startAgent("first", "", used)
	c.waitHost("first", api.HostOnline, 15*time.Second)
	expired := c.joinToken("--ttl", "1s")
	expiresBy := time.Now().Add(1200 * time.Millisecond)
	eventually(t, 5*time.Second, "token expiry", func() (bool, string) { return time.Now().After(expiresBy), "" })
	cases := []struct{ name, token, want string }{
		{"bad", "gjt_not-a-real-token." + strings.TrimPrefix(c.caFP, "sha256:"), "not valid"},
		{"nopin", "gjt_not-a-real-token", "carries no CA fingerprint"},
		{"expired", expired, "expired"},
		{"usedup", used, "used up"},
		{"none", "", "--join-token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := c.startAgent("agent-"+tc.name, "", tc.token)
			if code := p.exitCode(15 * time.Second); code == 0 {
				t.Fatalf("agent exited 0 with a %s token", tc.name)
			}
			if !strings.Contains(p.out.String(), tc.want) {
				t.Errorf("agent output lacks %q:\n%s", tc.want, p.out)
			}
			if _, ok := c.host("agent-" + tc.name); ok {
				t.Errorf("host enrolled with a %s token", tc.name)
			}
			if _, err := os.Stat(filepath.Join(c.agentDir("agent-"+tc.name), "identity.json")); err == nil {
				t.Errorf("identity saved after a refused enrollment")
			}
		})
	}
}

// Malformed selector, unknown host, oversized script, wrong flags.
func TestBadInput(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"only": "role=x"})
	big := filepath.Join(t.TempDir(), "big.sh")
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", 300<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"malformed selector", []string{"run", "--selector", "role=web,,zone", "--", "true"}, 2, "column 10"},
		{"selector operator", []string{"hosts", "ls", "--selector", "role=~web"}, 2, "column"},
		{"no match", []string{"run", "--selector", "role=nothing", "--", "true"}, 1, "no host matches"},
		{"unknown host", []string{"hosts", "show", "no-such-host"}, 1, "no-such-host"},
		{"unknown host rm", []string{"hosts", "rm", "no-such-host"}, 1, "not found"},
		{"oversized script", []string{"run", "--selector", "role=x", "--script", big}, 2, "262144"},
		{"wrong flag", []string{"run", "--bogus"}, 2, "unknown flag: --bogus"},
		{"missing selector", []string{"run", "--", "true"}, 2, "--selector"},
		{"bad timeout", []string{"run", "--selector", "role=x", "--timeout", "soon", "--", "true"}, 2, "--timeout"},
		{"bad output", []string{"hosts", "ls", "-o", "yaml"}, 2, "table, json"},
		{"bad cron", []string{"schedule", "create", "--cron", "61 * * * *", "--selector", "role=x", "--", "true"}, 2, "cron"},
		{"bad label", []string{"hosts", "label", "only", "bad key=v"}, 2, "label"},
		{"unknown job", []string{"jobs", "show", "j-nope"}, 1, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.gantry(tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:%s\nstderr:%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
		})
	}
	// Wrong token: refused.
	r := runCLI(t, []string{"GANTRY_SERVER=" + c.url, "GANTRY_TOKEN=wrong-token", "GANTRY_CA_FINGERPRINT=" + c.caFP, "GANTRY_CONFIG=" + filepath.Join(c.dir, "none.json")}, "hosts", "ls")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid token") {
		t.Errorf("wrong token: exit %d: %s", r.code, r.stderr)
	}
}

// Every route but /healthz and /readyz needs a token; the OpenAPI document
// lists the routes; /metrics is Prometheus text.
func TestHTTPSurface(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", c.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(p, ""); code != 200 {
			t.Errorf("%s without token: %d", p, code)
		}
	}
	for _, p := range []string{"/metrics", "/api/v1/hosts", "/api/v1/jobs", "/api/v1/openapi.json", "/api/v1/schedules", "/api/v1/join-tokens"} {
		if code, _ := get(p, ""); code != 401 {
			t.Errorf("%s without token: %d, want 401", p, code)
		}
		if code, _ := get(p, "not-the-token"); code != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", p, code)
		}
	}
	code, body := get("/metrics", c.token)
	if code != 200 || !strings.Contains(body, "gantry_http_requests_total") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%.300s", code, body)
	}
	code, body = get("/api/v1/openapi.json", c.token)
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &doc) != nil || doc.OpenAPI == "" {
		t.Fatalf("openapi: %d %.200s", code, body)
	}
	for path, method := range map[string]string{"/api/v1/jobs": "post", "/api/v1/jobs/{id}/events": "get", "/api/v1/hosts/{host}": "delete", "/api/v1/enroll": "post", "/api/v1/schedules/{id}": "delete"} {
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi lacks %s %s", method, path)
		}
	}
	if code, _ := get("/api/v1/nope", c.token); code != 404 {
		t.Errorf("unknown route: %d", code)
	}
}

// login saves a profile with mode 0600 that later commands use.
func TestLoginProfile(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	cfg := filepath.Join(t.TempDir(), "gantry", "config.json")
	env := []string{"GANTRY_CONFIG=" + cfg, "GANTRY_SERVER=", "GANTRY_TOKEN="}
	if r := runCLI(t, env, "login", "--server", c.url, "--token", "bad-token"); r.code == 0 {
		t.Fatalf("login with a bad token succeeded")
	}
	if _, err := os.Stat(cfg); err == nil {
		t.Fatalf("profile saved after a failed login")
	}
	runCLI(t, env, "login", "--server", c.url, "--token", c.token).ok(t)
	st, err := os.Stat(cfg)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("profile %s: %v mode %v", cfg, err, st.Mode())
	}
	runCLI(t, env, "hosts", "ls").ok(t)
}

// Schedules run jobs that show up in `jobs ls`.
func TestSchedule(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"s1": "role=x"})
	r := c.gantry("schedule", "create", "--cron", "@every 1s", "--selector", "role=x", "-o", "json", "--", "echo tick")
	r.ok(t)
	var s api.Schedule
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.ID == "" {
		t.Fatalf("schedule create: %v %s", err, r.stdout)
	}
	var found api.Job
	eventually(t, 15*time.Second, "a scheduled job that finished", func() (bool, string) {
		var jobs []api.Job
		_ = json.Unmarshal([]byte(c.gantry("jobs", "ls", "-o", "json").stdout), &jobs)
		for _, j := range jobs {
			if j.ScheduleID == s.ID && j.State == api.JobFinished {
				found = j
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d jobs", len(jobs))
	})
	if x := byHost(c.job(found.ID))["s1"]; x.State != api.ExecSucceeded || x.Stdout != "tick\n" {
		t.Errorf("scheduled execution: %+v", x)
	}
	ls := c.gantry("schedule", "ls")
	if !strings.Contains(ls.stdout, s.ID) {
		t.Errorf("schedule ls lacks %s:\n%s", s.ID, ls.stdout)
	}
	c.gantry("schedule", "rm", s.ID).ok(t)
	if ls := c.gantry("schedule", "ls", "-o", "json"); strings.Contains(ls.stdout, s.ID) {
		t.Errorf("schedule still listed after rm")
	}
}
