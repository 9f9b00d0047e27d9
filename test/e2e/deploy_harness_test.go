package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Helpers for the deployment tests: agents with their own install root,
// bundles with traced hooks, and the deployment as the CLI shows it.

// hookEvents are the lifecycle events that take scripts in an in-place
// deployment without a load balancer, in the order they run.
var hookEvents = []string{"ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"}

// withT returns the cluster driven from a subtest: failures are reported
// on t. The server and agents are shared.
func (c *cluster) withT(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	return &cc
}

// installRoot is the directory an agent installs appspec destinations
// under (--install-root), so that agents can share this machine.
func (c *cluster) installRoot(name string) string { return filepath.Join(c.agentDir(name), "root") }

// startDeployAgent starts an agent with its own install root.
func (c *cluster) startDeployAgent(name, labels, joinToken string) *proc {
	c.t.Helper()
	return c.startAgent(name, labels, joinToken, "--install-root", c.installRoot(name))
}

// deployAgentsOnline starts agents (name -> labels), each with its own
// install root, and waits until all are online.
func (c *cluster) deployAgentsOnline(agents map[string]string) {
	c.t.Helper()
	for name, labels := range agents {
		// Agents may not choose their labels: each one's join token pins them.
		c.startDeployAgent(name, labels, c.joinToken("--labels", labels))
	}
	for name := range agents {
		c.waitHost(name, api.HostOnline, 15*time.Second)
	}
}

// installedFile reads a file an agent installed: path is the appspec
// destination path (absolute, without the install root).
func (c *cluster) installedFile(host, path string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(c.installRoot(host), path))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// hook is one hook script of a test bundle.
type hook struct {
	event   string
	script  string // shell text
	timeout int    // seconds; 0 = not given
	runas   string
}

// bundle returns the files of a bundle whose appspec installs app/ to dest
// and runs hooks (scripts/<event>.sh).
func bundle(dest string, content map[string]string, hooks ...hook) map[string]string {
	files := map[string]string{}
	for name, body := range content {
		files["app/"+name] = body
	}
	var spec strings.Builder
	fmt.Fprintf(&spec, "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: %s\nhooks:\n", dest)
	for _, h := range hooks {
		script := "scripts/" + h.event + ".sh"
		files[script] = "#!/bin/sh\n" + h.script + "\n"
		fmt.Fprintf(&spec, "  %s:\n    - location: %s\n", h.event, script)
		if h.timeout > 0 {
			fmt.Fprintf(&spec, "      timeout: %d\n", h.timeout)
		}
		if h.runas != "" {
			fmt.Fprintf(&spec, "      runas: %s\n", h.runas)
		}
	}
	files["appspec.yml"] = spec.String()
	return files
}

// tracedHooks returns one hook per script event, each appending
// "$LIFECYCLE_EVENT <tag>" to traceDir/$GANTRY_HOST_NAME, then running
// extra[event] if any.
func tracedHooks(traceDir, tag string, extra map[string]string) []hook {
	var out []hook
	for _, ev := range hookEvents {
		s := fmt.Sprintf(`echo "$LIFECYCLE_EVENT %s" >> '%s'/"$GANTRY_HOST_NAME"`, tag, traceDir)
		if x := extra[ev]; x != "" {
			s += "\n" + x
		}
		out = append(out, hook{event: ev, script: s})
	}
	return out
}

// push pushes a bundle and returns the revision id.
func (c *cluster) push(app string, files map[string]string) string {
	c.t.Helper()
	r := c.gantry("push", app, writeBundle(c.t, files), "-o", "json")
	r.ok(c.t)
	var rev api.Revision
	if err := json.Unmarshal([]byte(r.stdout), &rev); err != nil || rev.ID == "" {
		c.t.Fatalf("push: %v\n%s", err, r.stdout)
	}
	return rev.ID
}

// createGroup creates a deployment group and returns it.
func (c *cluster) createGroup(app, name string, flags ...string) api.DeploymentGroup {
	c.t.Helper()
	c.gantry(append([]string{"group", "create", app, name}, flags...)...).ok(c.t)
	return c.group(app, name)
}

func (c *cluster) group(app, name string) api.DeploymentGroup {
	c.t.Helper()
	r := c.gantry("group", "show", app, name, "-o", "json")
	r.ok(c.t)
	var g api.DeploymentGroup
	if err := json.Unmarshal([]byte(r.stdout), &g); err != nil || g.ID == "" {
		c.t.Fatalf("group show: %v\n%s", err, r.stdout)
	}
	return g
}

// deployWait runs `gantry ARGS --wait -o json` (deploy or rollback),
// checks its exit code, and returns the final deployment.
func (c *cluster) deployWait(wantCode int, args ...string) api.Deployment {
	c.t.Helper()
	r := c.gantry(append(args, "--wait", "-o", "json")...)
	if r.code != wantCode {
		c.t.Fatalf("gantry %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, wantCode, r.stdout, r.stderr)
	}
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID == "" {
		c.t.Fatalf("gantry %s: %v\n%s", strings.Join(r.args, " "), err, r.stdout)
	}
	// The deployment as stored, with every host and event.
	return c.deployment(d.ID)
}

// deployNoWait starts a deployment and returns its id (printed on stdout).
func (c *cluster) deployNoWait(args ...string) string {
	c.t.Helper()
	r := c.gantry(args...)
	r.ok(c.t)
	id := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(id, "d-") || strings.ContainsAny(id, " \n") {
		c.t.Fatalf("gantry %s printed %q, want a deployment id", strings.Join(args, " "), r.stdout)
	}
	return id
}

// deployment runs `gantry deployments show ID -o json`.
func (c *cluster) deployment(id string) api.Deployment {
	c.t.Helper()
	r := c.gantry("deployments", "show", id, "-o", "json")
	r.ok(c.t)
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		c.t.Fatalf("deployments show: %v\n%s", err, r.stdout)
	}
	return d
}

// deploymentHost runs `gantry deployments show ID --host H -o json`.
func (c *cluster) deploymentHost(id, host string) api.DeploymentHost {
	c.t.Helper()
	r := c.gantry("deployments", "show", id, "--host", host, "-o", "json")
	r.ok(c.t)
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Hosts) != 1 || d.Hosts[0].HostName != host {
		c.t.Fatalf("deployments show --host %s: %v\n%s", host, err, r.stdout)
	}
	return d.Hosts[0]
}

// waitDeployment waits until a deployment ends.
func (c *cluster) waitDeployment(id string, d time.Duration) api.Deployment {
	c.t.Helper()
	var dep api.Deployment
	eventually(c.t, d, "deployment "+id+" ends", func() (bool, string) {
		dep = c.deployment(id)
		return api.DeployDone(dep.State), fmt.Sprintf("%s %v", dep.State, dep.Counts)
	})
	return dep
}

// deploymentsOf lists an application's deployments, newest first.
func (c *cluster) deploymentsOf(app string) []api.Deployment {
	c.t.Helper()
	r := c.gantry("deployments", "ls", app, "-o", "json")
	r.ok(c.t)
	var ds []api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &ds); err != nil {
		c.t.Fatalf("deployments ls: %v\n%s", err, r.stdout)
	}
	return ds
}

func hostsByName(d api.Deployment) map[string]api.DeploymentHost {
	m := map[string]api.DeploymentHost{}
	for _, h := range d.Hosts {
		m[h.HostName] = h
	}
	return m
}

// eventStates lists a host's events as "Name state".
func eventStates(h api.DeploymentHost) []string {
	var out []string
	for _, e := range h.Events {
		out = append(out, e.Name+" "+e.State)
	}
	return out
}

// event returns a host's event by name.
func event(h api.DeploymentHost, name string) (api.LifecycleEvent, bool) {
	for _, e := range h.Events {
		if e.Name == name {
			return e, true
		}
	}
	return api.LifecycleEvent{}, false
}

// readLines returns a file's lines (nil if it does not exist).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// marker returns a unique argument for sleep ("0.000NNNNNNNNNs": a few
// nanoseconds more) by which `pgrep -f` finds the sleep and nothing else.
func marker() string {
	return fmt.Sprintf("0.000%09ds", time.Now().UnixNano()%1_000_000_000)
}

// pgrep returns the pids of processes whose command line contains s.
func pgrep(t *testing.T, s string) []int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", s).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil
	}
	if err != nil {
		t.Fatalf("pgrep -f %s: %v", s, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(f); err == nil && n != os.Getpid() {
			pids = append(pids, n)
		}
	}
	return pids
}

// killLater kills, at the end of the test, the processes found by marker m
// (daemons that hook scripts left behind on purpose).
func killLater(t *testing.T, m string) {
	t.Cleanup(func() {
		for _, pid := range pgrep(t, m) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// states maps host name -> state.
func states(d api.Deployment) map[string]string {
	m := map[string]string{}
	for _, h := range d.Hosts {
		m[h.HostName] = h.State
	}
	return m
}

// batches maps host name -> batch.
func batches(d api.Deployment) map[string]int {
	m := map[string]int{}
	for _, h := range d.Hosts {
		m[h.HostName] = h.Batch
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
