package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/providers/docker/dockertest"

	"github.com/gantry-dev/gantry/api"
)

// Helpers for the environment tests on Docker: the shop example built
// once, the docker CLI, environments as the CLI shows them, and the load
// balancer's backends as a client sees them.

// requireDocker fails the test unless the docker CLI reaches an engine
// (these tests are skipped only with -short).
func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("this test needs the docker CLI and a Docker engine (apt-get install docker.io); go test -short skips it")
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("this test needs a reachable Docker engine: docker version: %v\n%s\n(go test -short skips it)", err, out)
	}
}

// shopDir is the absolute path of examples/shop.
func shopDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../../examples/shop")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var shopBuild struct {
	once sync.Once
	out  []byte
	err  error
}

// buildShop runs examples/shop/build.sh (the app binary into its bundle,
// the images gantry-shop-base:dev and gantry-shop-lb:dev) once per run.
func buildShop(t *testing.T) {
	t.Helper()
	shopBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		shopBuild.out, shopBuild.err = exec.CommandContext(ctx, filepath.Join(shopDir(t), "build.sh")).CombinedOutput()
	})
	if shopBuild.err != nil {
		t.Fatalf("examples/shop/build.sh: %v\n%s", shopBuild.err, shopBuild.out)
	}
}

// dockerTry runs the docker CLI (see dockertest.CLI).
func dockerTry(args ...string) (string, error) { return dockertest.CLI(args...) }

func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerTry(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// envContainers lists the names of the containers (running or not)
// labelled gantry.env=env, sorted.
func envContainers(t *testing.T, env string) []string {
	t.Helper()
	names := strings.Fields(dockerCLI(t, "ps", "-a", "--filter", "label=gantry.env="+env, "--format", "{{.Names}}"))
	sort.Strings(names)
	return names
}

// envNetworks lists the names of the networks labelled gantry.env=env.
func envNetworks(t *testing.T, env string) []string {
	t.Helper()
	names := strings.Fields(dockerCLI(t, "network", "ls", "--filter", "label=gantry.env="+env, "--format", "{{.Name}}"))
	sort.Strings(names)
	return names
}

// containerExists reports whether a container of that name exists.
func containerExists(name string) bool {
	_, err := dockerTry("container", "inspect", "--format", "{{.Id}}", name)
	return err == nil
}

// removeEnvLater force-removes, at the end of the test, every container and
// network labelled gantry.env=env. Register it before the cluster, so
// that it runs after the server is gone.
func removeEnvLater(t *testing.T, env string) {
	t.Cleanup(func() {
		filter := "label=gantry.env=" + env
		if out, err := dockerTry("ps", "-aq", "--filter", filter); err == nil && strings.TrimSpace(out) != "" {
			if _, err := dockerTry(append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if out, err := dockerTry("network", "ls", "-q", "--filter", filter); err == nil && strings.TrimSpace(out) != "" {
			if _, err := dockerTry(append([]string{"network", "rm"}, strings.Fields(out)...)...); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// randomEnv returns an environment name of its own ("e2e" + 8 hex digits),
// so that runs sharing a Docker engine do not meet.
func randomEnv() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "e2e" + hex.EncodeToString(b)
}

// gantryWithin runs the CLI like gantry, killed after d instead of two
// minutes (up and scale wait for machines).
func (c *cluster) gantryWithin(d time.Duration, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	cmd.Env = append(os.Environ(), c.cliEnv()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("gantry %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		c.t.Fatalf("gantry %s still running after %s (killed)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), d, out.String(), errb.String())
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code, args: args}
}

// env runs `gantry env show NAME -o json`.
func (c *cluster) env(name string) api.Environment {
	c.t.Helper()
	r := c.gantry("env", "show", name, "-o", "json")
	r.ok(c.t)
	var e api.Environment
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Name != name {
		c.t.Fatalf("env show %s: %v\n%s", name, err, r.stdout)
	}
	return e
}

// envURL returns the output "url" (`gantry env outputs NAME -o json`).
func (c *cluster) envURL(name string) string {
	c.t.Helper()
	r := c.gantry("env", "outputs", name, "-o", "json")
	r.ok(c.t)
	var outs map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil {
		c.t.Fatalf("env outputs %s: %v\n%s", name, err, r.stdout)
	}
	url, _ := outs["url"].(string)
	if !strings.HasPrefix(url, "http://") || strings.Contains(url, "known after apply") {
		c.t.Fatalf("env outputs %s: url = %v\n%s", name, outs["url"], r.stdout)
	}
	return url
}

// machines returns an environment's machines of a group, by index.
func machines(e api.Environment, group string) []api.EnvMachine {
	var out []api.EnvMachine
	for _, m := range e.Machines {
		if m.Group == group {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// phases lists "address phase" of every machine, for messages.
func phases(e api.Environment) string {
	var s []string
	for _, m := range e.Machines {
		p := m.Address + " " + m.Phase
		if m.Error != "" {
			p += " (" + m.Error + ")"
		}
		s = append(s, p)
	}
	return strings.Join(s, ", ")
}

// machineIPs returns the IPs of machines, sorted.
func machineIPs(ms []api.EnvMachine) []string {
	var ips []string
	for _, m := range ms {
		ips = append(ips, m.IP)
	}
	sort.Strings(ips)
	return ips
}

// lbClient makes a new connection per request, so that every request is a
// fresh pick of haproxy's round robin.
var lbClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// sampleBackends makes n requests to the shop's url and counts the
// backends that answered (the X-Backend header the load balancer sets:
// the web machine's address, without the port). An answer that is not a 200 from the shop
// app ends the sample with a description of it.
func sampleBackends(url string, n int) (map[string]int, string) {
	seen := map[string]int{}
	for range n {
		resp, err := lbClient.Get(url)
		if err != nil {
			return seen, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b := resp.Header.Get("X-Backend")
		// gantry's haproxy names the server as address:port; the address
		// is the web machine's.
		if host, _, ok := strings.Cut(b, ":"); ok {
			b = host
		}
		if resp.StatusCode != 200 || b == "" || !strings.HasPrefix(string(body), "shop ") {
			return seen, fmt.Sprintf("%s X-Backend=%q %q", resp.Status, b, body)
		}
		seen[b]++
	}
	return seen, ""
}

// waitBackends samples the url until the set of backends that answer is
// exactly want() (re-evaluated at each try), or d passes.
func waitBackends(t *testing.T, d time.Duration, url, what string, want func() []string) {
	t.Helper()
	eventually(t, d, what, func() (bool, string) {
		w := want()
		seen, why := sampleBackends(url, 3*max(len(w), 1))
		got := sortedKeys(seen)
		return why == "" && slices.Equal(got, w), fmt.Sprintf("backends %v, want %v %s", got, w, why)
	})
}

// fetch returns the body of a GET, "" on error.
func fetch(url string) string {
	resp, err := lbClient.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
