package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Tests that up, scale, apply and destroy tell the truth: they wait for
// the lifecycle work their change triggered (setup, deployment, configure
// on the machines that stay, the load balancer's included), report each
// failure with its cause, exit 1 when one failed, and print one JSON
// document with -o json.

// truthDefinition writes an environment of local agent processes: web
// machines that log their shutdown, and an "lb" whose configure logs the
// web machines of its context and fails (exit 3, "boom-cause" on stderr)
// while trace/fail exists.
func truthDefinition(t *testing.T, trace string) string {
	t.Helper()
	dir := t.TempDir()
	main := `
variable "trace" { type = string }
variable "web_count" {
  type    = number
  default = 1
}
provider "local" "here" {}
group "web" {
  provider = provider.local.here
  count    = var.web_count
  shutdown = "echo \"shutdown $GANTRY_HOST_NAME\" >> ${var.trace}/order.log"
}
group "lb" {
  provider  = provider.local.here
  configure = file("lb-configure.sh")
}
`
	configure := `web=$(tr ',{}' '\n\n\n' < "$GANTRY_CONTEXT" | grep -o '"name":"[^"]*-web-[0-9]*"' | sort | tr -d '"' | sed 's/name://' | tr '\n' ' ')
echo "configure $GANTRY_HOST_NAME web: $web" >> ` + trace + `/order.log
echo "configuring with web: $web"
if [ -e ` + trace + `/fail ]; then
  echo boom-cause >&2
  exit 3
fi
`
	files := map[string]string{
		"main.hcl":        main,
		"lb-configure.sh": configure,
		"envs/truth.hcl":  "trace = \"" + trace + "\"\n",
		"envs/truth2.hcl": "trace = \"" + trace + "\"\n",
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

// oneOutcome parses a command's stdout as exactly one JSON value (an
// api.EnvOutcome), failing on anything after it.
func oneOutcome(t *testing.T, r result) api.EnvOutcome {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var out api.EnvOutcome
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("gantry %s -o json: stdout is not JSON: %v\n%s", strings.Join(r.args, " "), err, r.stdout)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("gantry %s -o json printed more than one JSON document (%v): %s\nstdout:\n%s", strings.Join(r.args, " "), err, extra, r.stdout)
	}
	return out
}

// hasFailure reports whether an outcome lists a failure of event on
// machine whose error or log mentions text.
func hasFailure(out api.EnvOutcome, event, machine, text string) bool {
	for _, f := range out.Failures {
		if f.Event == event && f.Machine == machine && strings.Contains(f.Error+f.LogTail, text) {
			return true
		}
	}
	return false
}

// TestEnvTruthConfigureFailure: up and scale exit 1 naming the failed
// configure, its machine and group and its stderr; -o json prints one
// document for up, scale, apply and destroy; a scale-in reconfigures the
// load balancer without the leaving machines before their shutdown runs.
func TestEnvTruthConfigureFailure(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	trace := t.TempDir()
	dir := truthDefinition(t, trace)
	env := "truth"
	destroyLater(c, env)
	lb := env + "-lb-0"
	failFile := filepath.Join(trace, "fail")
	if err := os.WriteFile(failFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// up: the lb's configure fails: exit 1 with the script's error, the
	// machine and the group; every machine is online all the same.
	r := c.gantryWithin(90*time.Second, "up", dir, "--env", env, "--timeout", "60s")
	if r.code != 1 {
		t.Fatalf("up with a failing configure: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	all := r.stdout + r.stderr
	t.Logf("up with a failing configure:\n%s%s", r.stdout, r.stderr)
	for _, want := range []string{"boom-cause", "FAILED configure on " + lb + " (group lb)", "exit 3", "gantry jobs show cf-"} {
		if !strings.Contains(all, want) {
			t.Errorf("up output lacks %q:\nstdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
	if strings.Contains(all, "is up:") {
		t.Errorf("up says the environment is up although its configure failed:\n%s", r.stdout)
	}

	// scale out: configure runs again (the new machine) and fails again.
	r = c.gantryWithin(90*time.Second, "scale", "--env", env, "web=2", "--timeout", "60s")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "boom-cause") || !strings.Contains(r.stdout+r.stderr, lb) {
		t.Fatalf("scale with a failing configure: exit %d, want 1 naming %s and boom-cause\nstdout:\n%s\nstderr:\n%s", r.code, lb, r.stdout, r.stderr)
	}
	// scale -o json: one document, with the failure and its log.
	r = c.gantryWithin(90*time.Second, "scale", "--env", env, "web=3", "--timeout", "60s", "-o", "json")
	out := oneOutcome(t, r)
	if r.code != 1 || !hasFailure(out, "configure", lb, "boom-cause") {
		t.Fatalf("scale -o json with a failing configure: exit %d, failures %+v\nstderr:\n%s", r.code, out.Failures, r.stderr)
	}
	if got := len(machines(out.Environment, "web")); got != 3 {
		t.Fatalf("scale -o json: %d web machines in the outcome, want 3", got)
	}
	// up of what is already there: nothing triggered, nothing failed.
	r = c.gantryWithin(90*time.Second, "up", dir, "--env", env, "--var", "web_count=3", "--timeout", "60s", "-o", "json")
	out = oneOutcome(t, r)
	if r.code != 0 || len(out.Failures) != 0 || out.Progress == nil || !out.Progress.Settled {
		t.Fatalf("up -o json of an unchanged environment: exit %d, failures %+v, progress %+v\nstderr:\n%s", r.code, out.Failures, out.Progress, r.stderr)
	}

	// scale in, configure fixed: the lb's configure without the leaving
	// machines ends before their shutdown starts.
	if err := os.Remove(failFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(trace, "order.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.gantryWithin(90*time.Second, "scale", "--env", env, "web=1", "--timeout", "60s", "-o", "json")
	out = oneOutcome(t, r)
	if r.code != 0 || len(out.Failures) != 0 {
		t.Fatalf("scale in: exit %d, failures %+v\nstderr:\n%s", r.code, out.Failures, r.stderr)
	}
	log := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(trace, "order.log"))), "\n")
	first := slices.IndexFunc(log, func(l string) bool { return strings.HasPrefix(l, "shutdown ") })
	if first < 1 || !strings.HasPrefix(log[0], "configure "+lb+" web: "+env+"-web-0 ") || strings.Contains(log[0], "web-1") || strings.Contains(log[0], "web-2") {
		t.Fatalf("order.log of the scale-in: want the lb's configure with web-0 only, then the shutdowns of web-1 and web-2:\n%s", strings.Join(log, "\n"))
	}
	if got := slices.Sorted(slices.Values(log[first:])); !slices.Equal(got, []string{"shutdown " + env + "-web-1", "shutdown " + env + "-web-2"}) {
		t.Fatalf("order.log after the configure: %v, want the two shutdowns and nothing else", got)
	}

	// apply and destroy -o json: one document each.
	r = c.gantryWithin(90*time.Second, "apply", dir, "--env", env, "--auto-approve", "--timeout", "60s", "-o", "json")
	out = oneOutcome(t, r)
	if r.code != 0 || out.Name != env || len(out.Failures) != 0 {
		t.Fatalf("apply -o json: exit %d, env %q, failures %+v\nstderr:\n%s", r.code, out.Name, out.Failures, r.stderr)
	}
	r = c.gantryWithin(90*time.Second, "destroy", "--env", env, "--auto-approve", "-o", "json")
	out = oneOutcome(t, r)
	if r.code != 0 || len(out.Machines) != 0 || len(out.Failures) != 0 {
		t.Fatalf("destroy -o json: exit %d, machines %v, failures %+v\nstderr:\n%s", r.code, machineNames(out.Environment), out.Failures, r.stderr)
	}
}

// TestEnvTruthUpJSONFailure: up -o json with a failing configure prints
// one document that carries the failure, and exits 1.
func TestEnvTruthUpJSONFailure(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	trace := t.TempDir()
	dir := truthDefinition(t, trace)
	destroyLater(c, "truth2")
	if err := os.WriteFile(filepath.Join(trace, "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.gantryWithin(90*time.Second, "up", dir, "--env", "truth2", "--timeout", "60s", "-o", "json")
	out := oneOutcome(t, r)
	if r.code != 1 || !hasFailure(out, "configure", "truth2-lb-0", "boom-cause") {
		t.Fatalf("up -o json with a failing configure: exit %d, failures %+v\nstderr:\n%s", r.code, out.Failures, r.stderr)
	}
	for _, f := range out.Failures {
		if f.Event == "configure" && (f.Group != "lb" || f.ExitCode == nil || *f.ExitCode != 3 || !strings.Contains(f.LogTail, "configuring with web: truth2-web-0")) {
			t.Errorf("failure %+v: want group lb, exit code 3 and the script's output in its log tail", f)
		}
	}
	if !strings.Contains(r.stderr, "boom-cause") && !strings.Contains(r.stderr, "configure on truth2-lb-0") {
		t.Errorf("up -o json: stderr does not say what failed: %s", r.stderr)
	}
}

// destroyLater destroys env at the end of the test, before the server
// stops, so that its local agent processes end even when the test failed.
func destroyLater(c *cluster, env string) {
	c.t.Cleanup(func() {
		_ = c.gantry("destroy", "--env", env, "--auto-approve")
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEnvShopTruthOnDocker: after scale (out or in) returns, the load
// balancer already serves exactly the web machines (sampled at once, no
// waiting loop); a web
// container removed with docker rm -f is re-created by apply and online in
// under 10 s (the shutdown of the gone machine is not waited for).
func TestEnvShopTruthOnDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine (containers, images built by examples/shop/build.sh); skipped with -short")
	}
	requireDocker(t)
	buildShop(t)
	env := randomEnv()
	removeEnvLater(t, env)
	c := newCluster(t, clusterOpts{})
	dir := shopDir(t)
	const wait = 4 * time.Minute
	c.gantry("app", "create", "shop").ok(t)
	c.gantry("push", "shop", filepath.Join(dir, "app", "bundle")).ok(t)
	c.gantryWithin(wait, "up", dir, "--env", env, "--var", "web_count=2", "--timeout", "3m").ok(t)
	url := c.envURL(env)

	// scale out: when scale returns, the lb serves the 3 web machines.
	c.gantryWithin(wait, "scale", "--env", env, "web=3", "--timeout", "3m").ok(t)
	want := machineIPs(machines(c.env(env), "web"))
	seen, why := sampleBackends(url, 12)
	if got := sortedKeys(seen); why != "" || !slices.Equal(got, want) {
		e := c.env(env)
		b, _ := json.MarshalIndent(e.Events, "", " ")
		t.Fatalf("right after scale web=3 returned, the lb serves %v (%s), want the 3 web machines %v\nphases: %s\nruns: %s", got, why, want, phases(e), b)
	}

	// docker rm -f: apply re-creates the machine, online, in under 10 s.
	gone := env + "-web-1"
	dockerCLI(t, "rm", "-f", gone)
	t0 := time.Now()
	r := c.gantryWithin(wait, "apply", dir, "--env", env, "--var", "web_count=3", "--auto-approve", "--timeout", "3m")
	took := time.Since(t0)
	r.ok(t)
	if !strings.Contains(r.stdout, "shutdown skipped: the machine was deleted outside gantry") {
		t.Errorf("apply does not say the gone machine's shutdown was skipped:\n%s", r.stdout)
	}
	e := c.env(env)
	var m *api.EnvMachine
	for i := range e.Machines {
		if e.Machines[i].Name == gone {
			m = &e.Machines[i]
		}
	}
	if m == nil || m.Phase != api.PhaseOnline {
		t.Fatalf("after apply returned, %s is %+v, want online\n%s", gone, m, r.stdout)
	}
	if took >= 10*time.Second {
		t.Fatalf("re-creating %s took %s, want under 10 s\n%s", gone, took.Round(100*time.Millisecond), r.stdout)
	}
	t.Logf("re-created %s and online in %s", gone, took.Round(100*time.Millisecond))
	if !containerExists(gone) {
		t.Fatalf("no container %s after apply", gone)
	}
	want = machineIPs(machines(e, "web"))
	seen, why = sampleBackends(url, 12)
	if got := sortedKeys(seen); why != "" || !slices.Equal(got, want) {
		t.Fatalf("right after apply returned, the lb serves %v (%s), want %v", got, why, want)
	}

	// scale in: when scale returns, the lb serves exactly the 2 that stay.
	c.gantryWithin(wait, "scale", "--env", env, "web=2", "--timeout", "3m").ok(t)
	want = machineIPs(machines(c.env(env), "web"))
	seen, why = sampleBackends(url, 12)
	if got := sortedKeys(seen); why != "" || len(want) != 2 || !slices.Equal(got, want) {
		t.Fatalf("right after scale web=2 returned, the lb serves %v (%s), want the 2 web machines %v", got, why, want)
	}
	c.gantryWithin(wait, "destroy", "--env", env, "--auto-approve").ok(t)
}
