// Package shop checks the shop example without a gantry server: the
// definition files parse, build.sh builds the app and the images, and the
// scripts do their job in containers of those images on a Docker network
// (db setup, the app with its bundle's hooks, web setup and shutdown), and
// gantry's haproxy driver with the definition's load_balancer block in
// front of the web containers. test/e2e runs the whole example through
// gantry.
package shop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/providers/docker/dockertest"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
	"github.com/gantry-dev/gantry/internal/lb"
	"github.com/gantry-dev/gantry/internal/lb/haproxy"
	_ "github.com/gantry-dev/gantry/internal/providers/docker" // the provider type the definition uses
)

const (
	baseImage = "gantry-shop-base:dev"
	lbImage   = "gantry-shop-lb:dev"
)

// TestDefinitionFiles checks what needs no Docker: every .hcl file
// parses, every file the definition reads exists, and web/setup.sh is a
// valid template that renders the db address.
func TestDefinitionFiles(t *testing.T) {
	p := hclparse.NewParser()
	files, _ := filepath.Glob("*.hcl")
	envs, _ := filepath.Glob("envs/*.hcl")
	if len(files) == 0 || !slices.Contains(envs, "envs/dev.hcl") {
		t.Fatalf("definition files: %v, envs: %v", files, envs)
	}
	for _, f := range append(files, envs...) {
		if _, diags := p.ParseHCLFile(f); diags.HasErrors() {
			t.Errorf("%s: %s", f, diags.Error())
		}
	}
	reads := regexp.MustCompile(`\b(?:file|templatefile)\("([^"]+)"`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range reads.FindAllStringSubmatch(string(b), -1) {
			if _, err := os.Stat(m[1]); err != nil {
				t.Errorf("%s reads %s: %v", f, m[1], err)
			}
		}
	}
	got := renderWebSetup(t, "10.1.2.3")
	if !strings.Contains(got, "echo '10.1.2.3' >/etc/shop/db-address.new") {
		t.Errorf("web/setup.sh rendered:\n%s", got)
	}
}

// TestDefinitionLoads loads the definition as the server does, for the
// instances dev (envs/dev.hcl) and bench with a --var.
func TestDefinitionLoads(t *testing.T) {
	d, err := config.Load(".", "dev", nil)
	if err != nil {
		t.Fatalf("load for dev: %v", err)
	}
	web, err := d.EvalGroup("web", config.World{})
	if err != nil {
		t.Fatal(err)
	}
	if web.Count != 2 || web.Image != baseImage || web.Deploy == nil || web.Deploy.App != "shop" ||
		web.Deploy.Config != "HalfAtATime" || web.HealthCheck == nil || web.Shutdown != readFile(t, "web/shutdown.sh") ||
		!web.Unknown["setup"] || !slices.Equal(web.Networks, []string{"app"}) {
		t.Errorf("group web for dev: %+v", web)
	}
	// With the db machine known, setup is the rendered template.
	dbHost := cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("dev-db-0"), "index": cty.NumberIntVal(0),
		"address": cty.StringVal("10.9.8.7"), "id": cty.StringVal("h-db")})
	world := config.World{Groups: map[string]cty.Value{"db": cty.ObjectVal(map[string]cty.Value{
		"name": cty.StringVal("db"), "count": cty.NumberIntVal(1),
		"labels": cty.MapVal(map[string]cty.Value{"role": cty.StringVal("db")}),
		"hosts":  cty.ListVal([]cty.Value{dbHost}),
	})}}
	if web, err := d.EvalGroup("web", world); err != nil || web.Setup != renderWebSetup(t, "10.9.8.7") {
		t.Errorf("group web's setup with the db at 10.9.8.7 (%v):\n%s", err, web.Setup)
	}
	lb, err := d.EvalGroup("lb", config.World{})
	if err != nil {
		t.Fatal(err)
	}
	wantLB := &config.LBSpec{Target: "web", Listen: 80, Port: 8080, Balance: "roundrobin", DrainTimeout: 30, Header: "X-Backend", Driver: "haproxy",
		Check: api.LBCheck{Path: "/healthz", IntervalMillis: 500, Rise: 2, Fall: 2}}
	if lb.Count != 1 || lb.Image != lbImage || lb.Configure != "" || !reflect.DeepEqual(lb.LoadBalancer, wantLB) {
		t.Errorf("group lb: count %d image %q configure %d bytes, load_balancer %+v (want %+v)", lb.Count, lb.Image, len(lb.Configure), lb.LoadBalancer, wantLB)
	}
	if d.LoadBalancerOf("web") != "lb" {
		t.Errorf("web's load balancer: %q, want lb", d.LoadBalancerOf("web"))
	}
	db, err := d.EvalGroup("db", config.World{})
	if err != nil {
		t.Fatal(err)
	}
	if db.Count != 1 || db.Setup != readFile(t, "db/setup.sh") {
		t.Errorf("group db: count %d setup %d bytes", db.Count, len(db.Setup))
	}
	if !slices.Equal(sortedKeys(d.Outputs), []string{"db", "url", "web"}) {
		t.Errorf("outputs: %v", sortedKeys(d.Outputs))
	}

	d, err = config.Load(".", "bench", []string{"web_count=7"})
	if err != nil {
		t.Fatalf("load for bench: %v", err)
	}
	if web, err := d.EvalGroup("web", config.World{}); err != nil || web.Count != 7 {
		t.Errorf("group web for bench with --var web_count=7: count %d, %v", web.Count, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// renderWebSetup renders web/setup.sh as templatefile does (an HCL
// template with the variable db).
func renderWebSetup(t *testing.T, db string) string {
	t.Helper()
	src, err := os.ReadFile("web/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	expr, diags := hclsyntax.ParseTemplate(src, "web/setup.sh", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("web/setup.sh is not a valid template: %s", diags.Error())
	}
	v, diags := expr.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"db": cty.StringVal(db)}})
	if diags.HasErrors() {
		t.Fatalf("web/setup.sh does not render with only db: %s", diags.Error())
	}
	return v.AsString()
}

// TestExampleOnDocker runs build.sh, then the example's scripts in
// containers of its images, as the environment's lifecycle would.
func TestExampleOnDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine (build.sh, containers); skipped with -short")
	}
	requireDocker(t)
	build(t)
	ids := map[string]string{baseImage: imageID(t, baseImage), lbImage: imageID(t, lbImage)}
	build(t)
	for img, id := range ids {
		if now := imageID(t, img); now != id {
			t.Errorf("a second build.sh changed %s: %s -> %s", img, id, now)
		}
	}

	suffix := make([]byte, 4)
	rand.Read(suffix)
	id := "shop-test-" + hex.EncodeToString(suffix)
	label := "gantry.example-test=" + id
	t.Cleanup(func() { removeLabelled(t, label) })
	network := id
	docker(t, "network", "create", "--label", label, network)
	bundle, err := filepath.Abs("app/bundle")
	if err != nil {
		t.Fatal(err)
	}
	run := func(name, image string, args ...string) string {
		t.Helper()
		a := []string{"run", "-d", "--name", name, "--hostname", name, "--label", label, "--network", network}
		a = append(a, args...)
		docker(t, append(a, image, "sleep", "900")...)
		return strings.TrimSpace(docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, name))
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	// db: setup twice (idempotent), greeting served on :5432.
	dbName := id + "-db-0"
	dbIP := run(dbName, baseImage)
	for range 2 {
		if out := script(t, dbName, "db/setup.sh", nil); !strings.Contains(out, "db serves: hello from "+dbName) {
			t.Fatalf("db/setup.sh printed:\n%s", out)
		}
	}
	if code, body, _ := get(client, "http://"+dbIP+":5432/greeting"); code != 200 || body != "hello from "+dbName+"\n" {
		t.Fatalf("db greeting: %d %q", code, body)
	}

	// web: setup (the rendered template), then the bundle's hooks as a
	// first deployment runs them, with the bundle where appspec.yml puts
	// its files (/opt/shop).
	setup := renderWebSetup(t, dbIP)
	var webNames, webIPs []string
	for i := range 3 {
		name := fmt.Sprintf("%s-web-%d", id, i)
		ip := run(name, baseImage, "-v", bundle+":/opt/shop:ro")
		webNames, webIPs = append(webNames, name), append(webIPs, ip)
		execIn(t, name, setup, nil, "sh", "-s")
		hooks(t, name, "start.sh", "validate.sh")
		want := fmt.Sprintf("shop v1 served by %s (db %s: hello from %s)\n", name, dbIP, dbName)
		if code, body, _ := get(client, "http://"+ip+":8080/"); code != 200 || body != want {
			t.Fatalf("GET / on %s: %d %q, want %q", name, code, body, want)
		}
		if code, body, _ := get(client, "http://"+ip+":8080/healthz"); code != 200 || body != "ok\n" {
			t.Fatalf("GET /healthz on %s: %d %q", name, code, body)
		}
	}
	// A second deployment: ApplicationStop stops it, a second stop finds
	// nothing, start and validate bring it back.
	if out := hooks(t, webNames[0], "stop.sh"); !strings.Contains(out, "shop stopped") {
		t.Errorf("stop.sh printed %q", out)
	}
	if code, _, _ := get(client, "http://"+webIPs[0]+":8080/healthz"); code != 0 {
		t.Errorf("web-0 still answers (%d) after stop.sh", code)
	}
	if out := hooks(t, webNames[0], "stop.sh"); !strings.Contains(out, "not running") {
		t.Errorf("stop.sh without a running shop printed %q", out)
	}
	hooks(t, webNames[0], "start.sh", "validate.sh")

	// web-2's shutdown stops its app.
	out := script(t, webNames[2], "web/shutdown.sh", []string{"GANTRY_HOST_NAME=" + webNames[2]})
	if !strings.Contains(out, "shutdown "+webNames[2]+"\n") || !strings.Contains(out, "shop stopped") {
		t.Errorf("web/shutdown.sh printed %q", out)
	}
	if code, _, _ := get(client, "http://"+webIPs[2]+":8080/healthz"); code != 0 {
		t.Errorf("web-2 still answers (%d) after its shutdown", code)
	}
	hooks(t, webNames[2], "start.sh", "validate.sh")

	// lb: the lb image runs haproxy; gantry's haproxy driver (what the
	// agent on the lb machine runs) serves the definition's load_balancer
	// block in front of the 3 web containers, here on this machine: each
	// added in maint, let in once haproxy's own checks of /healthz pass,
	// then served in turn with X-Backend naming the machine's address; a
	// removed one is drained and gets no request.
	if out, err := dockerTry("run", "--rm", "--network", "none", lbImage, "haproxy", "-v"); err != nil || !strings.Contains(out, "HAProxy version") {
		t.Fatalf("haproxy in %s: %v %s", lbImage, err, out)
	}
	d, err := config.Load(".", "dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	lbGroup, err := d.EvalGroup("lb", config.World{})
	if err != nil || lbGroup.LoadBalancer == nil {
		t.Fatalf("group lb: %v %+v", err, lbGroup.LoadBalancer)
	}
	spec := lbGroup.LoadBalancer
	bal, err := haproxy.Open(lb.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bal.Stop() })
	port := freePort(t)
	be := api.LBBackend{Name: spec.Target, Listen: port, Balance: spec.Balance, Check: spec.Check, Header: spec.Header}
	for i, ip := range webIPs {
		be.Servers = append(be.Servers, api.LBServer{Name: webNames[i], Addr: ip, Port: spec.Port, Weight: 100, State: api.LBMaint})
	}
	ctx := context.Background()
	if err := bal.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{be}}); err != nil {
		t.Fatalf("configure haproxy with the shop's load balancer: %v", err)
	}
	lbURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if code, _, _ := get(client, lbURL); code != 503 {
		t.Errorf("every server in maint: status %d, want haproxy's 503", code)
	}
	for _, n := range webNames {
		if _, err := lb.Allow(ctx, bal, spec.Target, n, -1, 20*time.Second); err != nil {
			t.Fatalf("allow %s: %v", n, err)
		}
	}
	backendOf := map[string]string{}
	for i, ip := range webIPs {
		backendOf[ip+":8080"] = webNames[i]
	}
	// sample makes n requests and returns the X-Backend of each; a body
	// that does not name that backend's host fails the test.
	sample := func(n int) ([]string, string) {
		var seq []string
		for range n {
			code, body, h := get(client, lbURL)
			if code != 200 {
				return nil, fmt.Sprintf("status %d %q", code, body)
			}
			b := h.Get("X-Backend")
			if name := backendOf[b]; name == "" || !strings.Contains(body, "served by "+name+" ") {
				t.Fatalf("lb answered X-Backend %q with body %q", b, body)
			}
			seq = append(seq, b)
		}
		return seq, ""
	}
	eventually(t, 15*time.Second, "lb serves the 3 backends in turn", func() (bool, string) {
		seq, why := sample(6)
		if why != "" {
			return false, why
		}
		seen := map[string]int{}
		for _, b := range seq {
			seen[b]++
		}
		return len(seen) == 3 && seen[webIPs[2]+":8080"] == 2, fmt.Sprint(seq)
	})
	if _, err := lb.Remove(ctx, bal, spec.Target, webNames[2], time.Duration(spec.DrainTimeout)*time.Second); err != nil {
		t.Fatalf("remove %s: %v", webNames[2], err)
	}
	seq, why := sample(6)
	if why != "" || slices.Contains(seq, webIPs[2]+":8080") {
		t.Fatalf("after removing web-2: %v %s, want only web-0 and web-1", seq, why)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// requireDocker fails the test unless the docker CLI reaches an engine.
func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("this test needs the docker CLI and a Docker engine (apt-get install docker.io); go test -short skips it")
	}
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		t.Fatalf("this test needs a reachable Docker engine: docker version: %v\n%s\n(go test -short skips it)", err, out)
	}
}

func build(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "./build.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
}

func imageID(t *testing.T, image string) string {
	return strings.TrimSpace(docker(t, "image", "inspect", "--format", "{{.Id}}", image))
}

// docker runs the docker CLI and returns its stdout; a failure fails the
// test.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerTry(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// dockerTry runs the docker CLI (see dockertest.CLI).
func dockerTry(args ...string) (string, error) { return dockertest.CLI(args...) }

// execIn runs argv in a container with stdin and extra environment, and
// returns stdout and stderr together. It must end within 30 s: a script
// that leaves a daemon holding its output would hang here.
func execIn(t *testing.T, container, stdin string, env []string, argv ...string) (string, error) {
	t.Helper()
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(append(args, container), argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("docker %s did not end within 30 s (does a script keep its output open?)\n%s", strings.Join(args, " "), out)
	}
	return string(out), err
}

// script runs one of the example's scripts (path relative to
// examples/shop) in a container, as /bin/sh reading it on stdin, with
// GANTRY_HOST_NAME set to the container's name unless env sets it.
func script(t *testing.T, container, path string, env []string) string {
	t.Helper()
	env = append([]string{"GANTRY_HOST_NAME=" + container}, env...)
	out, err := execIn(t, container, readFile(t, path), env, "sh", "-s")
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", path, container, err, out)
	}
	return out
}

// hooks runs bundle hook scripts (scripts/NAME under /opt/shop) in order,
// the way the agent does (/bin/sh PATH), and returns their output.
func hooks(t *testing.T, container string, names ...string) string {
	t.Helper()
	var all string
	for _, n := range names {
		out, err := execIn(t, container, "", []string{"GANTRY_HOST_NAME=" + container}, "sh", "/opt/shop/scripts/"+n)
		if err != nil {
			t.Fatalf("hook %s in %s: %v\n%s", n, container, err, out)
		}
		all += out
	}
	return all
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// get returns the status (0 when there is no answer, with the error as
// the body), the body and the headers.
func get(c *http.Client, url string) (int, string, http.Header) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// removeLabelled force-removes the containers and networks carrying label.
func removeLabelled(t *testing.T, label string) {
	if out, err := dockerTry("ps", "-aq", "--filter", "label="+label); err == nil && strings.TrimSpace(out) != "" {
		if _, err := dockerTry(append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if out, err := dockerTry("network", "ls", "-q", "--filter", "label="+label); err == nil && strings.TrimSpace(out) != "" {
		if _, err := dockerTry(append([]string{"network", "rm"}, strings.Fields(out)...)...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last: %s)", d, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
