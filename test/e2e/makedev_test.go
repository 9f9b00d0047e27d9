package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// devAgentNames are the agents `gantry server --dev` starts: names that no
// environment's machine (ENV-GROUP-N) can take.
var devAgentNames = []string{"web1", "web2", "db1"}

// startDevServerIn runs `gantry server --dev` the way `make dev` does:
// from dir as the working directory and with the default, relative
// --data-dir (./gantry-data). Only the ports are the test's own. It
// returns a cluster that drives that server through the CLI (with the
// token and CA fingerprint of the banner's export line).
func startDevServerIn(t *testing.T, dir string) *cluster {
	t.Helper()
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	p := &proc{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(gantryBin, "server", "--dev", "--listen", httpAddr, "--nats-listen", natsAddr)
	p.cmd.Dir = dir
	p.cmd.Env = os.Environ()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start gantry server --dev: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	// The machines of the local provider run in sessions of their own
	// (they outlive a server restart): end them even if the test fails
	// before its destroy. Their command lines hold the absolute data dir.
	killLater(t, filepath.Join(dir, "gantry-data"))
	var export []string
	eventually(t, 30*time.Second, "dev banner", func() (bool, string) {
		if p.exited() {
			t.Fatalf("dev server exited: %v\n%s", p.err, p.out)
		}
		export = regexp.MustCompile(`export GANTRY_SERVER=(\S+) GANTRY_TOKEN=(\S+) GANTRY_CA_FINGERPRINT=(sha256:[0-9a-f]{64})\n`).FindStringSubmatch(p.out.String())
		return export != nil, ""
	})
	if _, err := os.Stat(filepath.Join(dir, "gantry-data", "gantry.db")); err != nil {
		t.Fatalf("the dev server did not use ./gantry-data of its working directory: %v", err)
	}
	return &cluster{t: t, dir: dir, httpAddr: httpAddr, natsAddr: natsAddr, url: export[1], token: export[2], caFP: export[3],
		heartbeat: 5 * time.Second, server: p, agents: map[string]*proc{}}
}

// devAgentIDs returns the dev agents' host ids, failing unless each is
// online (a revoked host is not found by name).
func (c *cluster) devAgentIDs(when string) map[string]string {
	c.t.Helper()
	ids := map[string]string{}
	for _, name := range devAgentNames {
		h, ok := c.host(name)
		if !ok || h.Status != api.HostOnline {
			c.t.Fatalf("%s: dev agent %s is not online (found=%v status=%q): an environment took it over\nserver output:\n%s", when, name, ok, h.Status, c.server.out)
		}
		ids[name] = h.ID
	}
	return ids
}

// requireDevAgents checks that the dev agents are still the same online
// hosts as at the start.
func (c *cluster) requireDevAgents(when string, want map[string]string) {
	c.t.Helper()
	got := c.devAgentIDs(when)
	for name, id := range want {
		if got[name] != id {
			c.t.Fatalf("%s: dev agent %s is host %s, was %s (revoked and enrolled again?)", when, name, got[name], id)
		}
	}
}

// lifecycleRuns returns "event state" of an environment's runs, and
// whether any failed (with the failed ones described).
func lifecycleRuns(e api.Environment) (succeeded map[string]int, failed []string) {
	succeeded = map[string]int{}
	for _, r := range e.Events {
		switch r.State {
		case "succeeded":
			succeeded[r.Event]++
		case "failed":
			failed = append(failed, fmt.Sprintf("%s %s on %v: %+v", r.Event, r.ID, r.Hosts, r.Failures))
		}
	}
	return succeeded, failed
}

// `make dev` exactly (relative --data-dir in its working directory), then
// the examples/local tour with --env dev (whose machine names used to
// collide with the dev agents'): setup and configure succeed on the local
// machines, a deployment to them succeeds, scale and destroy work, and the
// dev agents stay online and unrevoked throughout.
func TestMakeDevWithExampleLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev server and local machines")
	}
	example, err := filepath.Abs("../../examples/local")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	c := startDevServerIn(t, work)
	devIDs := c.devAgentIDs("after start")

	c.gantryWithin(120*time.Second, "up", example, "--env", "dev", "--timeout", "90s", "--auto-approve").ok(t)
	c.requireDevAgents("after up", devIDs)
	// Setup ran on the 3 machines and configure on the web ones: both read
	// files of the agent's data dir (the script, $GANTRY_CONTEXT), which a
	// relative path handed to the agents put elsewhere.
	eventually(t, 30*time.Second, "setup on 3 machines and a configure, all succeeded", func() (bool, string) {
		e := c.env("dev")
		ok, failed := lifecycleRuns(e)
		if len(failed) > 0 {
			t.Fatalf("lifecycle runs failed: %s\n%s", strings.Join(failed, "; "), phases(e))
		}
		return ok["setup"] == 3 && ok["configure"] >= 1, fmt.Sprintf("%v; %s", ok, phases(e))
	})
	machineDir := filepath.Join(work, "gantry-data", "infra", "providers", "local")
	for _, m := range c.env("dev").Machines {
		if m.Phase != api.PhaseOnline {
			t.Fatalf("machine %s is %s after up, want online", m.Name, m.Phase)
		}
		// The agent keeps its data where the server put it (not under a
		// gantry-data of its own working directory).
		if _, err := os.Stat(filepath.Join(machineDir, m.Name, "agent")); err != nil {
			t.Errorf("machine %s's agent data dir: %v", m.Name, err)
		}
		if _, err := os.Stat(filepath.Join(machineDir, m.Name, "gantry-data")); err == nil {
			t.Errorf("machine %s's agent resolved a relative path in its own directory", m.Name)
		}
	}

	// A deployment to the environment's web machines.
	c.gantry("app", "create", "devtour").ok(t)
	rev := c.push("devtour", bundle("/srv/devtour", map[string]string{"index.html": "devtour v1\n"},
		hook{event: "ValidateService", script: `echo "devtour on $GANTRY_HOST_NAME"`}))
	c.createGroup("devtour", "web", "--selector", "gantry.env=dev,gantry.group=web")
	d := c.deployWait(0, "deploy", "devtour", "web", "--revision", rev)
	if d.State != api.DeploySucceeded || len(d.Hosts) != 2 {
		t.Fatalf("deployment to the dev environment's web machines: %s on %d hosts, want succeeded on 2\n%+v", d.State, len(d.Hosts), states(d))
	}
	for _, h := range d.Hosts {
		if !strings.HasPrefix(h.HostName, "dev-web-") {
			t.Errorf("the deployment reached %s, not only the environment's web machines", h.HostName)
		}
		b, err := os.ReadFile(filepath.Join(machineDir, h.HostName, "root", "srv", "devtour", "index.html"))
		if err != nil || string(b) != "devtour v1\n" {
			t.Errorf("%s's installed file: %q %v", h.HostName, b, err)
		}
	}
	c.requireDevAgents("after deploy", devIDs)

	c.gantryWithin(120*time.Second, "scale", "--env", "dev", "web=3", "--timeout", "90s", "--auto-approve").ok(t)
	eventually(t, 30*time.Second, "3 web machines online", func() (bool, string) {
		e := c.env("dev")
		n := 0
		for _, m := range machines(e, "web") {
			if m.Phase == api.PhaseOnline {
				n++
			}
		}
		return n == 3, phases(e)
	})
	c.requireDevAgents("after scale", devIDs)

	c.gantryWithin(120*time.Second, "destroy", example, "--env", "dev", "--auto-approve").ok(t)
	c.requireDevAgents("after destroy", devIDs)
	if e := c.env("dev"); len(e.Machines) != 0 {
		t.Fatalf("machines left after destroy: %s", phases(e))
	}
	if ents, _ := os.ReadDir(machineDir); len(ents) != 0 {
		t.Fatalf("local machine directories left after destroy: %v", ents)
	}
}

// An environment whose machine name is an existing host's name (here an
// agent started by hand as col-web-0) is refused at plan and at up, naming
// the machine and the host; nothing is created and the host stays online.
// Following the message's hint (remove that host) lets up go through.
func TestEnvNameCollisionRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and local machines")
	}
	example, err := filepath.Abs("../../examples/local")
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{})
	killLater(t, filepath.Join(c.dir, "server", "infra"))
	c.agentsOnline(map[string]string{"col-web-0": "role=web"})
	host, _ := c.host("col-web-0")
	want := `group.web[0]: machine name "col-web-0" is already taken by host col-web-0 (` + host.ID + `, a host that is not an environment's machine), which environment "col" does not own`
	for _, args := range [][]string{
		{"plan", example, "--env", "col"},
		{"up", example, "--env", "col", "--auto-approve", "--timeout", "60s"},
	} {
		r := c.gantryWithin(60*time.Second, args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "'gantry hosts rm col-web-0'") {
			t.Fatalf("gantry %s: exit %d, want 1 with %q\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
		}
		if h := c.waitHost("col-web-0", api.HostOnline, 5*time.Second); h.ID != host.ID {
			t.Fatalf("after %s: col-web-0 is host %s, was %s", args[0], h.ID, host.ID)
		}
		if ents, _ := os.ReadDir(filepath.Join(c.dir, "server", "infra", "providers", "local")); len(ents) != 0 {
			t.Fatalf("after a refused %s, local machines exist: %v", args[0], ents)
		}
	}
	// The hint works: with that host removed, the environment comes up.
	c.gantry("hosts", "rm", "col-web-0").ok(t)
	c.gantryWithin(120*time.Second, "up", example, "--env", "col", "--auto-approve", "--timeout", "90s").ok(t)
	if h, ok := c.host("col-web-0"); !ok || h.ID == host.ID || h.Labels["gantry.env"] != "col" || h.Labels["gantry.resource"] != "group.web[0]" {
		t.Fatalf("col-web-0 after up: %+v (found %v), want the environment's own machine", h, ok)
	}
	c.gantryWithin(120*time.Second, "destroy", example, "--env", "col", "--auto-approve").ok(t)
}

// A data directory from before the dev agents were renamed has dev-web-1
// (and its agent directory under gantry-data/dev-agents): the next
// `gantry server --dev` revokes it, so that it does not linger as an
// offline role=web host that jobs and deployments would wait for.
func TestDevRetiresOldDevAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev server twice")
	}
	work := t.TempDir()
	c := startDevServerIn(t, work)
	oldDir := filepath.Join(work, "gantry-data", "dev-agents", "dev-web-1")
	old := start(t, []string{"GANTRY_JOIN_TOKEN=" + c.joinToken("--labels", "role=web")},
		"agent", "--server", c.url, "--name", "dev-web-1", "--data-dir", oldDir, "--install-root", filepath.Join(oldDir, "root"))
	c.agents["dev-web-1"] = old
	oldHost := c.waitHost("dev-web-1", api.HostOnline, 15*time.Second)
	old.stop()
	c.server.stop()

	c = startDevServerIn(t, work)
	c.devAgentIDs("after the restart")
	r := c.gantry("hosts", "ls", "--all", "-o", "json")
	r.ok(t)
	var hosts []api.Host
	if err := json.Unmarshal([]byte(r.stdout), &hosts); err != nil {
		t.Fatalf("hosts ls: %v\n%s", err, r.stdout)
	}
	for _, h := range hosts {
		if h.ID == oldHost.ID && h.Status != api.HostRevoked {
			t.Fatalf("the old dev agent dev-web-1 is %s after the restart, want revoked", h.Status)
		}
	}
	if _, err := os.Stat(oldDir); err == nil {
		t.Errorf("the old dev agent's directory %s is still there", oldDir)
	}
}
