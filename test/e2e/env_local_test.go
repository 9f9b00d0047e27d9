package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// localDefinition writes an environment of agent processes on this
// machine whose lifecycle scripts leave traces in trace/.
func localDefinition(t *testing.T, trace string) string {
	t.Helper()
	dir := t.TempDir()
	main := `
variable "trace" { type = string }
variable "web_count" {
  type    = number
  default = 2
}
provider "local" "here" {}
group "db" {
  provider = provider.local.here
  labels   = { role = "db" }
  setup    = "echo \"$GANTRY_HOST_NAME $GANTRY_EVENT\" >> ${var.trace}/setup.log"
}
group "web" {
  provider  = provider.local.here
  count     = var.web_count
  labels    = { role = "web" }
  setup     = templatefile("web-setup.sh", { trace = var.trace, db = group.db.hosts[0].name })
  # Written to a temporary name, then renamed: the test polls these files
  # and must never read one half-written. addrs first: a new ctx file
  # means its addrs file is there.
  configure = "echo \"$GANTRY_GROUP_WEB_ADDRESSES\" > ${var.trace}/.addrs-$GANTRY_HOST_NAME && mv ${var.trace}/.addrs-$GANTRY_HOST_NAME ${var.trace}/addrs-$GANTRY_HOST_NAME && cp \"$GANTRY_CONTEXT\" ${var.trace}/.ctx-$GANTRY_HOST_NAME.json && mv ${var.trace}/.ctx-$GANTRY_HOST_NAME.json ${var.trace}/ctx-$GANTRY_HOST_NAME.json"
  shutdown  = "sleep $(cat ${var.trace}/shutdown-delay 2>/dev/null || echo 0); echo \"$GANTRY_HOST_NAME\" >> ${var.trace}/shutdown.log"
  depends_on = [group.db]
}
output "web" { value = group.web.hosts[*].name }
`
	files := map[string]string{
		"main.hcl":      main,
		"web-setup.sh":  "echo \"$GANTRY_HOST_NAME setup, db is ${db}\" >> ${trace}/setup.log\n",
		"envs/test.hcl": "trace = \"" + trace + "\"\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// webHostsIn returns the web hosts a configure context lists.
func webHostsIn(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var ctx struct {
		Env    string `json:"env"`
		Event  string `json:"event"`
		Groups map[string]struct {
			Hosts []struct {
				Name    string `json:"name"`
				Address string `json:"address"`
			} `json:"hosts"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &ctx); err != nil || ctx.Event != "configure" {
		t.Fatalf("context %s: %v (event %q)\n%s", path, err, ctx.Event, b)
	}
	var out []string
	for _, h := range ctx.Groups["web"].Hosts {
		out = append(out, h.Name)
	}
	if len(ctx.Groups["db"].Hosts) != 1 {
		t.Fatalf("context %s lists db hosts %v, want the one db", path, ctx.Groups["db"].Hosts)
	}
	return out
}

func lines(path string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func configureRuns(e api.Environment) int {
	n := 0
	for _, r := range e.Events {
		if r.Event == "configure" {
			n++
		}
	}
	return n
}

// TestEnvLocalLifecycle drives an environment of local agent processes
// through up, configure, scale out and in (with shutdown), a server killed
// with -9 in the middle of an apply, and destroy.
func TestEnvLocalLifecycle(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	trace := t.TempDir()
	dir := localDefinition(t, trace)
	env := "test"
	name := func(s string) string { return env + "-" + s }

	r := c.gantryWithin(90*time.Second, "up", dir, "--env", env, "--timeout", "60s")
	r.ok(t)
	if !strings.Contains(r.stdout, `Environment "test" is up: 3 machines online.`) || !strings.Contains(r.stdout, `web = ["test-web-0","test-web-1"]`) {
		t.Fatalf("up output:\n%s", r.stdout)
	}
	// setup ran once on each machine, web's after db existed (its name in the template).
	if got := strings.Join(lines(filepath.Join(trace, "setup.log")), "|"); got != "test-db-0 setup|test-web-0 setup, db is test-db-0|test-web-1 setup, db is test-db-0" {
		t.Fatalf("setup.log = %s", got)
	}
	eventually(t, 20*time.Second, "configure with both web hosts on web-0 and web-1", func() (bool, string) {
		a, b := webHostsIn(t, filepath.Join(trace, "ctx-"+name("web-0")+".json")), webHostsIn(t, filepath.Join(trace, "ctx-"+name("web-1")+".json"))
		return strings.Join(a, ",") == "test-web-0,test-web-1" && strings.Join(b, ",") == "test-web-0,test-web-1", strings.Join(a, ",") + " / " + strings.Join(b, ",")
	})
	if b, _ := os.ReadFile(filepath.Join(trace, "addrs-"+name("web-0"))); strings.TrimSpace(string(b)) != "127.0.0.1 127.0.0.1" {
		t.Fatalf("GANTRY_GROUP_WEB_ADDRESSES = %q", b)
	}
	hosts := c.hostsByLabel(t, "role=web")
	if strings.Join(hosts, ",") != "test-web-0,test-web-1" {
		t.Fatalf("web hosts in the inventory = %v", hosts)
	}
	before := configureRuns(c.env(env))

	// Scale out: the new machines are set up once, and configure (coalesced)
	// tells every web machine about all four.
	c.gantryWithin(90*time.Second, "scale", "--env", env, "web=4", "--timeout", "60s").ok(t)
	eventually(t, 20*time.Second, "configure with four web hosts on web-0", func() (bool, string) {
		got := strings.Join(webHostsIn(t, filepath.Join(trace, "ctx-"+name("web-0")+".json")), ",")
		return got == "test-web-0,test-web-1,test-web-2,test-web-3", got
	})
	if got := strings.Count(strings.Join(lines(filepath.Join(trace, "setup.log")), "\n"), "test-web-2 setup"); got != 1 {
		t.Fatalf("web-2 set up %d times, want once", got)
	}
	if runs := configureRuns(c.env(env)) - before; runs < 1 || runs > 2 {
		t.Fatalf("%d configure runs for one scale-out of two machines, want 1 or 2 (a burst is coalesced)", runs)
	}

	// Scale in with a slow shutdown, and kill the server in the middle.
	if err := os.WriteFile(filepath.Join(trace, "shutdown-delay"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	scale := start(t, c.cliEnv(), "scale", "--env", env, "web=1", "--no-wait")
	eventually(t, 20*time.Second, "the scale-in's shutdown started", func() (bool, string) {
		e := c.env(env)
		for _, r := range e.Events {
			if r.Event == "shutdown" && r.State == "running" {
				return true, ""
			}
		}
		return false, phases(e)
	})
	c.server.kill()
	scale.exitCode(20 * time.Second) // the CLI's stream broke; it must not hang
	c.startServer()
	// The lock of the killed apply expires by itself; the next apply goes on.
	r = c.gantryWithin(120*time.Second, "scale", "--env", env, "web=1", "--lock-timeout", "60s", "--timeout", "60s")
	r.ok(t)
	e := c.env(env)
	if got := machineNames(e); got != "test-db-0,test-web-0" {
		t.Fatalf("machines after scale-in = %s\n%s", got, r.stdout)
	}
	if got := strings.Join(lines(filepath.Join(trace, "shutdown.log")), ","); got != "test-web-1,test-web-2,test-web-3" {
		t.Fatalf("shutdown.log = %s, want each removed machine's shutdown exactly once", got)
	}
	if hosts := c.hostsByLabel(t, "role=web"); strings.Join(hosts, ",") != "test-web-0" {
		t.Fatalf("web hosts in the inventory after scale-in = %v", hosts)
	}
	eventually(t, 20*time.Second, "configure with one web host", func() (bool, string) {
		got := strings.Join(webHostsIn(t, filepath.Join(trace, "ctx-"+name("web-0")+".json")), ",")
		return got == "test-web-0", got
	})

	// destroy: shutdown everywhere, nothing left.
	_ = os.Remove(filepath.Join(trace, "shutdown-delay"))
	c.gantryWithin(60*time.Second, "destroy", "--env", env, "--auto-approve").ok(t)
	e = c.env(env)
	if len(e.Machines) != 0 || len(e.Resources) != 0 {
		t.Fatalf("after destroy: %+v", e)
	}
	if hosts := c.hostsByLabel(t, "gantry.env=test"); len(hosts) != 0 {
		t.Fatalf("hosts left after destroy: %v", hosts)
	}
	left, _ := os.ReadDir(filepath.Join(c.dir, "server", "infra", "providers", "local"))
	if len(left) != 0 {
		t.Fatalf("local machine directories left after destroy: %v", left)
	}
}

func machineNames(e api.Environment) string {
	var names []string
	for _, m := range e.Machines {
		names = append(names, m.Name)
	}
	return strings.Join(names, ",")
}

// hostsByLabel lists the names of the live hosts matching a selector.
func (c *cluster) hostsByLabel(t *testing.T, sel string) []string {
	t.Helper()
	r := c.gantry("hosts", "ls", "--selector", sel, "-o", "json")
	r.ok(t)
	var hs []api.Host
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil {
		t.Fatalf("hosts ls: %v\n%s", err, r.stdout)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	sort.Strings(out)
	return out
}

// TestEnvBadDefinitionCLI shows a definition's errors with file, line,
// column and the source line, exits 2, and changes nothing.
func TestEnvBadDefinitionCLI(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	src := "provider \"local\" \"here\" {}\ngroup \"web\" {\n  provider = provider.local.here\n  count    = \"two\"\n  labels   = { role = var.rolee }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.gantry("plan", dir, "--env", "bad")
	if r.code != 2 {
		t.Fatalf("plan of a bad definition exited %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"main.hcl:4:", `count    = "two"`, "main.hcl:5:", "var.rolee", "^"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = c.gantry("apply", dir, "--env", "bad", "--auto-approve")
	if r.code != 2 {
		t.Fatalf("apply of a bad definition exited %d, want 2\n%s", r.code, r.stderr)
	}
	if r := c.gantry("env", "show", "bad"); r.code == 0 {
		t.Fatalf("a refused apply created environment bad:\n%s", r.stdout)
	}
	r = c.gantry("plan", filepath.Join(dir, "nope"), "--env", "bad")
	if r.code != 2 || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("plan of a missing directory: exit %d\n%s", r.code, r.stderr)
	}
	r = c.gantry("plan", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "--env is required") {
		t.Fatalf("plan without --env: exit %d\n%s", r.code, r.stderr)
	}
	// A provider that cannot be reached is the provider's error, named.
	down := "provider \"docker\" \"gone\" { host = \"unix:///nonexistent/docker.sock\" }\ngroup \"web\" {\n  provider = provider.docker.gone\n  image    = \"x:1\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(down), 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.gantry("plan", dir, "--env", "down")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the daemon at unix:///nonexistent/docker.sock") {
		t.Fatalf("plan with an unreachable Docker: exit %d\n%s", r.code, r.stderr)
	}
}

// TestEnvSavedPlan applies a plan saved with --out exactly, and refuses a
// saved plan once another apply has moved the state.
func TestEnvSavedPlan(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	def := "provider \"local\" \"here\" {}\ngroup \"web\" {\n  provider = provider.local.here\n  count    = var.n\n}\nvariable \"n\" {\n  type    = number\n  default = 1\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	plan1, plan2 := filepath.Join(t.TempDir(), "one.plan"), filepath.Join(t.TempDir(), "two.plan")
	r := c.gantry("plan", dir, "--env", "saved", "--out", plan1)
	r.ok(t)
	if !strings.Contains(r.stdout, "+   group.web[0]") || !strings.Contains(r.stdout, "Saved the plan to "+plan1) {
		t.Fatalf("plan --out:\n%s", r.stdout)
	}
	if fi, err := os.Stat(plan1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved plan %s: %v (mode %v), want mode 0600", plan1, err, fi.Mode())
	}
	// A second saved plan against the same state, with 2 machines.
	c.gantry("plan", dir, "--env", "saved", "--var", "n=2", "--out", plan2).ok(t)
	r = c.gantryWithin(60*time.Second, "apply", plan1, "--auto-approve")
	r.ok(t)
	if e := c.env("saved"); machineNames(e) != "saved-web-0" {
		t.Fatalf("after applying the saved plan: %s", machineNames(e))
	}
	r = c.gantryWithin(60*time.Second, "apply", plan2, "--auto-approve")
	if r.code != 1 || !strings.Contains(r.stderr, "the plan is stale") || !strings.Contains(r.stderr, "run plan again") {
		t.Fatalf("applying a plan made before another apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if e := c.env("saved"); machineNames(e) != "saved-web-0" {
		t.Fatalf("a refused plan changed the environment: %s", machineNames(e))
	}
	r = c.gantry("apply", plan1, "--env", "other", "--auto-approve")
	if r.code != 2 || !strings.Contains(r.stderr, "is for environment saved") {
		t.Fatalf("a plan applied to another --env: exit %d\n%s", r.code, r.stderr)
	}
	c.gantryWithin(60*time.Second, "destroy", "--env", "saved", "--auto-approve").ok(t)
}

// TestEnvSetupFailure: a machine whose setup fails makes up exit 1 with the
// reason, shows as failed, and the next apply replaces it.
func TestEnvSetupFailure(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	flag := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	def := "provider \"local\" \"here\" {}\ngroup \"web\" {\n  provider = provider.local.here\n  setup    = \"if [ -e " + flag + " ]; then echo 'no disk' >&2; exit 3; fi\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.gantryWithin(90*time.Second, "up", dir, "--env", "sf", "--timeout", "60s")
	if r.code != 1 || !strings.Contains(r.stdout, "setup failed") || !strings.Contains(r.stdout, "exit 3") || !strings.Contains(r.stdout, "no disk") {
		t.Fatalf("up with a failing setup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e := c.env("sf")
	if len(e.Machines) != 1 || e.Machines[0].Phase != api.PhaseFailed {
		t.Fatalf("machine after a failed setup: %+v", e.Machines)
	}
	old := e.Machines[0].HostID
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	r = c.gantry("plan", dir, "--env", "sf")
	r.ok(t)
	if !strings.Contains(r.stdout, "-/+ group.web[0]  (setup failed") {
		t.Fatalf("plan after a failed setup must replace the machine:\n%s", r.stdout)
	}
	c.gantryWithin(90*time.Second, "up", dir, "--env", "sf", "--timeout", "60s").ok(t)
	e = c.env("sf")
	if len(e.Machines) != 1 || e.Machines[0].Phase != api.PhaseOnline || e.Machines[0].HostID == old {
		t.Fatalf("after the second up: %+v (old host %s)", e.Machines, old)
	}
	c.gantryWithin(60*time.Second, "destroy", "--env", "sf", "--auto-approve").ok(t)
}

// TestEnvExampleLocal: examples/local, as the README tells it, comes up,
// scales and goes.
func TestEnvExampleLocal(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	dir, err := filepath.Abs("../../examples/local")
	if err != nil {
		t.Fatal(err)
	}
	r := c.gantryWithin(90*time.Second, "up", dir, "--env", "dev", "--timeout", "60s")
	r.ok(t)
	if !strings.Contains(r.stdout, `web = ["dev-web-0","dev-web-1"]`) || !strings.Contains(r.stdout, "3 machines online") {
		t.Fatalf("up examples/local:\n%s", r.stdout)
	}
	// Applying the same definition again changes nothing and says so.
	r = c.gantryWithin(60*time.Second, "apply", dir, "--env", "dev", "--auto-approve")
	r.ok(t)
	if !strings.Contains(r.stdout, `No changes: environment "dev" matches its definition.`) || strings.Contains(r.stdout, "complete in") {
		t.Fatalf("a no-op apply must say No changes and nothing else:\n%s", r.stdout)
	}
	// -o json: one JSON document per invocation, the environment once its
	// machines are online (not the apply's result and then the wait's).
	r = c.gantryWithin(90*time.Second, "scale", "--env", "dev", "web=3", "--timeout", "60s", "-o", "json", "--auto-approve")
	r.ok(t)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var scaled api.Environment
	if err := dec.Decode(&scaled); err != nil {
		t.Fatalf("scale -o json: %v\n%s", err, r.stdout)
	}
	if dec.More() || len(scaled.Machines) != 4 {
		t.Fatalf("scale -o json must print one document with the 4 machines:\n%s", r.stdout)
	}
	for _, m := range scaled.Machines {
		if m.Phase != api.PhaseOnline {
			t.Errorf("scale -o json printed %s in phase %s: want the environment once online", m.Address, m.Phase)
		}
	}
	eventually(t, 20*time.Second, "a configure that saw 3 web machines", func() (bool, string) {
		for _, run := range c.env("dev").Events {
			if run.Event == "configure" && run.State == "succeeded" && len(run.Hosts) == 3 {
				return true, ""
			}
		}
		return false, phases(c.env("dev"))
	})
	c.gantryWithin(60*time.Second, "destroy", "--env", "dev", "--auto-approve").ok(t)
}

// TestEnvDeployOnMachines: a group's deploy block puts the application's
// revision on its machines after setup (through the deployments engine);
// a revision whose ValidateService fails leaves the machines failed with
// the reason, and up exits 1.
func TestEnvDeployOnMachines(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.gantry("app", "create", "tiny").ok(t)
	good := c.push("tiny", bundle("/srv/tiny", map[string]string{"index.html": "v1\n"}, hook{event: "ValidateService", script: "exit 0"}))
	dir := t.TempDir()
	def := func(rev string) {
		src := "provider \"local\" \"here\" {}\ngroup \"web\" {\n  provider = provider.local.here\n  count    = 2\n  setup    = \"true\"\n  deploy {\n    app      = \"tiny\"\n    revision = \"" + rev + "\"\n    config   = \"AllAtOnce\"\n  }\n}\n"
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	def(good)
	c.gantryWithin(90*time.Second, "up", dir, "--env", "dp", "--timeout", "60s").ok(t)
	e := c.env("dp")
	for _, m := range e.Machines {
		if m.Phase != api.PhaseOnline || m.Revision != good {
			t.Fatalf("after up: %s is %s with revision %q, want online with %s", m.Name, m.Phase, m.Revision, good)
		}
		b, err := os.ReadFile(filepath.Join(c.dir, "server", "infra", "providers", "local", m.Name, "root", "srv", "tiny", "index.html"))
		if err != nil || string(b) != "v1\n" {
			t.Fatalf("%s's installed file: %q %v", m.Name, b, err)
		}
	}
	bad := c.push("tiny", bundle("/srv/tiny", map[string]string{"index.html": "v2\n"}, hook{event: "ValidateService", script: "echo broken >&2; exit 4"}))
	def(bad)
	r := c.gantryWithin(120*time.Second, "up", dir, "--env", "dp", "--timeout", "90s")
	if r.code != 1 || !strings.Contains(r.stdout, "deployment of "+bad+" failed") {
		t.Fatalf("up with a failing revision: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, m := range c.env("dp").Machines {
		if m.Phase != api.PhaseFailed {
			t.Errorf("%s is %s after its deployment failed, want failed", m.Name, m.Phase)
		}
	}
	c.gantryWithin(60*time.Second, "destroy", "--env", "dp", "--auto-approve").ok(t)
}
