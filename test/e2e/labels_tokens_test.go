package e2e

import (
	"database/sql"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// expectRefused waits for an agent to exit non-zero and checks its output.
func expectRefused(t *testing.T, p *proc, want ...string) {
	t.Helper()
	if code := p.exitCode(30 * time.Second); code == 0 {
		t.Fatalf("agent exited 0; want a refused enrollment\n%s", p.out)
	}
	for _, w := range want {
		if !strings.Contains(p.out.String(), w) {
			t.Errorf("agent output lacks %q:\n%s", w, p.out)
		}
	}
}

// An agent cannot give itself an environment's reserved labels nor keys
// its join token does not allow: enrollment is refused (nothing consumed),
// it never joins the environment's deployment group, and an enrolled
// agent cannot change its labels by restarting with others.
func TestAgentLabelsLimitedByJoinToken(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.gantry("app", "create", "shop").ok(t)
	c.createGroup("shop", "web", "--selector", "gantry.env=X,gantry.group=web")
	rev := c.push("shop", bundle("/srv/shop", map[string]string{"v.txt": "v1\n"}, hook{event: "ApplicationStart", script: "echo start"}))
	// A member of X's group whose labels an admin pinned in its join token.
	c.startDeployAgent("legit", "", c.joinToken("--labels", "gantry.env=X,gantry.group=web"))
	c.waitHost("legit", api.HostOnline, 15*time.Second)
	c.deployWait(0, "deploy", "shop", "web", "--revision", rev)

	// The rogue asks for X's labels with a token that allows no keys.
	tok := c.joinToken("--uses", "1")
	rogue := c.startDeployAgent("rogue", "gantry.env=X,gantry.group=web", tok)
	expectRefused(t, rogue, "enrollment refused", "gantry.env", "gantry.group", "set only by the server")
	if _, ok := c.host("rogue"); ok {
		t.Fatalf("the rogue agent was enrolled")
	}
	// The refusal consumed nothing: the single-use token still enrolls a
	// clean agent, which is not a member of the group.
	c.startDeployAgent("clean", "", tok)
	c.waitHost("clean", api.HostOnline, 15*time.Second)
	d2 := c.deployWait(0, "deploy", "shop", "web", "--revision", rev)
	if len(d2.Hosts) != 1 || d2.Hosts[0].HostName != "legit" {
		t.Fatalf("deployment to X's group reached %v; want legit only", states(d2))
	}
	for _, d := range c.deploymentsOf("shop") {
		for _, h := range c.deployment(d.ID).Hosts {
			if h.HostName != "legit" {
				t.Errorf("deployment %s (%s) reached %s", d.ID, d.Kind, h.HostName)
			}
		}
	}

	// --agent-labels zone: the agent may set zone, but not role.
	zt := c.joinToken("--uses", "1", "--agent-labels", "zone")
	expectRefused(t, c.startAgent("zoned-bad", "zone=a,role=web", zt), "enrollment refused", "role", "lets the agent set only: zone", "--agent-labels role")
	c.startAgent("zoned", "zone=a", zt)
	if h := c.waitHost("zoned", api.HostOnline, 15*time.Second); len(h.Labels) != 1 || h.Labels["zone"] != "a" {
		t.Fatalf("labels of zoned: %v; want zone=a", h.Labels)
	}
	// Labels are fixed at enrollment: a restart asking for others changes nothing.
	c.agents["zoned"].stop()
	c.waitHost("zoned", api.HostOffline, 15*time.Second)
	c.startAgent("zoned", "zone=b,role=web,gantry.env=X", "")
	if h := c.waitHost("zoned", api.HostOnline, 15*time.Second); len(h.Labels) != 1 || h.Labels["zone"] != "a" {
		t.Fatalf("labels of zoned after a restart with other --labels: %v; want zone=a", h.Labels)
	}
}

// API tokens through the CLI: created with a name, an owner and a ttl,
// listed without secrets, refused with "token expired" once expired,
// revoked at once by `gantry token rm`; the caller's own token needs
// --force; join tokens are listed and removed by the same commands.
func TestAPITokensCLI(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	as := func(token string, args ...string) result {
		return runCLI(t, append(c.cliEnv(), "GANTRY_TOKEN="+token), args...)
	}
	create := func(args ...string) api.APIToken {
		r := c.gantry(append([]string{"token", "create", "--api", "-o", "json"}, args...)...)
		r.ok(t)
		var tok api.APIToken
		if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil || tok.Token == "" {
			t.Fatalf("token create --api: %v\n%s", err, r.stdout)
		}
		return tok
	}
	ci := create("--name", "ci", "--ttl", "4s")
	as(ci.Token, "hosts", "ls").ok(t)
	r := c.gantry("token", "ls", "--api")
	r.ok(t)
	for _, w := range []string{"KIND", "OWNER", "api", "ci", "admin (GANTRY_ADMIN_TOKEN)", "never"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("token ls --api lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, ci.Token) {
		t.Fatalf("token ls shows a secret")
	}
	if r := as(ci.Token, "token", "create", "--api", "--name", "forever", "--ttl", "0"); r.code == 0 || !strings.Contains(r.stderr, "outlive") {
		t.Errorf("an expiring token made a permanent one: exit %d\n%s", r.code, r.stderr)
	}
	eventually(t, 15*time.Second, "ci's token expires", func() (bool, string) {
		r := as(ci.Token, "hosts", "ls")
		return r.code != 0 && strings.Contains(r.stderr, "token expired"), r.stderr
	})

	ops := create("--name", "ops")
	as(ops.Token, "hosts", "ls").ok(t)
	r = c.gantry("token", "rm", "ops")
	r.ok(t)
	if !strings.Contains(r.stdout, "Removed API token ops") {
		t.Errorf("token rm output: %s", r.stdout)
	}
	if r := as(ops.Token, "hosts", "ls"); r.code == 0 || !strings.Contains(r.stderr, "invalid token") {
		t.Errorf("a removed token still works or says the wrong thing: exit %d\n%s", r.code, r.stderr)
	}
	if r := c.gantry("token", "rm", "admin (GANTRY_ADMIN_TOKEN)"); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("removing the own token without --force: exit %d\n%s", r.code, r.stderr)
	}
	c.gantry("hosts", "ls").ok(t)

	r = c.gantry("token", "create", "-o", "json", "--agent-labels", "zone")
	r.ok(t)
	var jt api.JoinToken
	if err := json.Unmarshal([]byte(r.stdout), &jt); err != nil || jt.ID == "" || len(jt.AgentLabels) != 1 {
		t.Fatalf("join token: %v\n%s", err, r.stdout)
	}
	if r := c.gantry("token", "ls", "--join"); !strings.Contains(r.stdout, jt.ID) || !strings.Contains(r.stdout, "agent:zone") {
		t.Errorf("token ls --join:\n%s", r.stdout)
	}
	c.gantry("token", "rm", jt.ID).ok(t)
	if r := c.gantry("token", "ls", "--join"); r.code != 0 || !strings.Contains(r.stderr, "No tokens.") {
		t.Errorf("token ls --join after rm: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// bundleLinkRE finds a deploy command's bundle link in its stored payload.
var bundleLinkRE = regexp.MustCompile(`"bundle_path":\s*("(?:[^"\\]|\\.)*")`)

// bundleLink returns the bundle link the server sent to host, read from
// the commands it stored (SQLite, read-only).
func (c *cluster) bundleLink(host string) string {
	c.t.Helper()
	d, err := sql.Open("sqlite", "file:"+filepath.Join(c.dir, "server", "gantry.db")+"?mode=ro")
	if err != nil {
		c.t.Fatal(err)
	}
	defer d.Close()
	var payload string
	if err := d.QueryRow("SELECT payload FROM executions WHERE host_name = ? AND payload LIKE '%bundle_path%' LIMIT 1", host).Scan(&payload); err != nil {
		c.t.Fatalf("no deploy command stored for %s: %v", host, err)
	}
	m := bundleLinkRE.FindStringSubmatch(payload)
	var link string
	if m == nil || json.Unmarshal([]byte(m[1]), &link) != nil || !strings.Contains(link, "sig=") {
		c.t.Fatalf("no bundle link in %s", payload)
	}
	return link
}

// `gantry hosts rm` voids the host's bundle links at once.
func TestBundleLinkVoidedOnHostRemoval(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"b1": "role=b"})
	c.gantry("app", "create", "bun").ok(t)
	c.createGroup("bun", "g", "--selector", "role=b")
	rev := c.push("bun", bundle("/srv/bun", map[string]string{"v.txt": "v1\n"}, hook{event: "ApplicationStart", script: "echo start"}))
	c.deployWait(0, "deploy", "bun", "g", "--revision", rev)
	link := c.url + c.bundleLink("b1")
	get := func() (int, string) {
		resp, err := c.httpClient().Get(link)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("the link of an enrolled host: %d", code)
	}
	c.gantry("hosts", "rm", "b1").ok(t)
	if code, body := get(); code != 403 || !strings.Contains(body, "no longer enrolled") {
		t.Fatalf("the link of a removed host right after hosts rm: %d %s; want 403", code, body)
	}
}

// The same Idempotency-Key twice makes one job: `gantry run` with one
// --idempotency-key prints the first job's id again; another script with
// the key is refused; without a key every run is a new job.
func TestIdempotencyKeyOneJob(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"i1": "role=i"})
	run := func(args ...string) result {
		return c.gantry(append([]string{"run", "--selector", "role=i", "--no-wait"}, args...)...)
	}
	r1 := run("--idempotency-key", "deploy-42", "--", "echo once")
	r1.ok(t)
	r2 := run("--idempotency-key", "deploy-42", "--", "echo once")
	r2.ok(t)
	if id := strings.TrimSpace(r1.stdout); !strings.HasPrefix(id, "j-") || id != strings.TrimSpace(r2.stdout) {
		t.Fatalf("two runs with one key printed %q and %q; want one job id", r1.stdout, r2.stdout)
	}
	if r := run("--idempotency-key", "deploy-42", "--", "echo other"); r.code == 0 || !strings.Contains(r.stderr, "different request") {
		t.Errorf("same key, other script: exit %d\n%s", r.code, r.stderr)
	}
	run("--", "echo twice").ok(t)
	run("--", "echo twice").ok(t)
	r := c.gantry("jobs", "ls", "-o", "json")
	r.ok(t)
	var jobs []api.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 3 {
		t.Fatalf("jobs after 1 keyed job run twice and 2 unkeyed runs: %d (%v); want 3\n%s", len(jobs), err, r.stdout)
	}
}
