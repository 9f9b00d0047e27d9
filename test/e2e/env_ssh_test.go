package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/testenv/sshhost"
)

// TestEnvSSHHostOnboardDeployRemove onboards an existing host (a real sshd
// in a network namespace) with the ssh provider through the CLI: up
// installs the agent under agent_dir and starts it under its supervisor (no
// systemd here), the host joins with its labels, setup runs and the
// application's newest revision is deployed to it. A definition that pins
// the wrong host key fails naming both fingerprints and leaves nothing in
// its environment. destroy removes the agent, its directory and the host,
// and leaves the host's own application (a file, a running process) as it
// was.
func TestEnvSSHHostOnboardDeployRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real sshd in a network namespace (root, ip, openssh-server)")
	}
	h := sshhost.Start(t)
	c := newClusterOn(t, h.HostSideIP)
	const wait = 3 * time.Minute // CLI commands that wait for the machine
	env := sshEnvName()
	work := t.TempDir()
	hostName := env + "-legacy"

	// The host's own application, there before gantry: a file and a
	// process in the namespace.
	appDir := filepath.Join(work, "legacy-app")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	appFile := filepath.Join(appDir, "legacy.conf")
	appContent := "listen = 8080\nowner = someone else\n"
	if err := os.WriteFile(appFile, []byte(appContent), 0o644); err != nil {
		t.Fatal(err)
	}
	appFileInfo, err := os.Stat(appFile)
	if err != nil {
		t.Fatal(err)
	}
	legacy := startNamespaceProcess(t, h, appDir)

	// The application gantry deploys: one file to an absolute destination
	// and an ApplicationStart hook that leaves a marker.
	deployDir := filepath.Join(work, "deployed")
	startMarker := filepath.Join(work, "application-start-ran")
	c.gantry("app", "create", "legacy").ok(t)
	content := "legacy release 1 " + env + "\n"
	rev := c.push("legacy", bundle(deployDir, map[string]string{"release.txt": content},
		hook{event: "ApplicationStart", script: fmt.Sprintf(`echo "$LIFECYCLE_EVENT on $GANTRY_HOST_NAME" > '%s'`, startMarker)}))

	// up: the agent is installed, joins, is set up and gets the revision.
	agentDir := filepath.Join(work, "gantry-agent")
	setupMarker := filepath.Join(work, "setup-ran")
	defDir := writeSSHDefinition(t, h, h.HostKeyFingerprint, agentDir,
		fmt.Sprintf(`echo set up on $GANTRY_HOST_NAME > %s`, setupMarker))
	up := c.gantryWithin(wait, "up", defDir, "--env", env, "--timeout", "2m")
	if up.code != 0 {
		t.Fatalf("gantry up: exit %d\nstdout:\n%s\nstderr:\n%s\nagent.log:\n%s", up.code, up.stdout, up.stderr, readOr(filepath.Join(agentDir, "agent.log")))
	}
	e := c.env(env)
	if len(e.Machines) != 1 || e.Machines[0].Address != "host.legacy[0]" || e.Machines[0].Name != hostName || e.Machines[0].Phase != api.PhaseOnline {
		t.Fatalf("machines after up: %s, want host.legacy[0] (%s) online", phases(e), hostName)
	}
	if got := e.Machines[0].Revision; got != rev {
		t.Errorf("revision of host.legacy[0] after up: %q, want %q", got, rev)
	}
	if got, _ := e.Outputs["addr"].(string); got != h.Address {
		t.Errorf("output addr = %v, want %s", e.Outputs["addr"], h.Address)
	}
	hostEntry, ok := hostsByNameCLI(c)[hostName]
	if !ok {
		t.Fatalf("gantry hosts ls has no %s after up", hostName)
	}
	if hostEntry.Status != api.HostOnline || hostEntry.Labels["role"] != "legacy" {
		t.Errorf("host %s after up: status %q labels %v, want online with role=legacy", hostName, hostEntry.Status, hostEntry.Labels)
	}
	if got := readOr(setupMarker); got != "set up on "+hostName+"\n" {
		t.Errorf("setup marker %s: %q, want %q", setupMarker, got, "set up on "+hostName+"\n")
	}
	if got := readOr(filepath.Join(deployDir, "release.txt")); got != content {
		t.Errorf("deployed file %s: %q, want %q", filepath.Join(deployDir, "release.txt"), got, content)
	}
	if got := readOr(startMarker); got != "ApplicationStart on "+hostName+"\n" {
		t.Errorf("ApplicationStart marker: %q, want %q", got, "ApplicationStart on "+hostName+"\n")
	}
	checkSupervised(t, h, agentDir)

	// A definition that pins another key: the apply fails before anything
	// is made, naming both fingerprints, and its environment stays empty.
	env2 := sshEnvName()
	agentDir2 := filepath.Join(work, "gantry-agent-2")
	wrongKey := otherFingerprint(t)
	defDir2 := writeSSHDefinition(t, h, wrongKey, agentDir2, "true")
	bad := c.gantryWithin(wait, "apply", defDir2, "--env", env2, "--auto-approve")
	msg := bad.stdout + bad.stderr
	if bad.code == 0 || !strings.Contains(msg, "host key mismatch") || !strings.Contains(msg, h.HostKeyFingerprint) || !strings.Contains(msg, wrongKey) {
		t.Errorf("apply with host_key %s: exit %d, want non-zero with \"host key mismatch\", the host's %s and the pinned %s\nstdout:\n%s\nstderr:\n%s",
			wrongKey, bad.code, h.HostKeyFingerprint, wrongKey, bad.stdout, bad.stderr)
	}
	if e2, ok := envIfAny(c, env2); ok && (len(e2.Resources) != 0 || len(e2.Machines) != 0) {
		b, _ := json.Marshal(e2)
		t.Errorf("environment %s after the failed apply has resources or machines, want none: %s", env2, b)
	}
	if _, err := os.Stat(agentDir2); !os.IsNotExist(err) {
		t.Errorf("agent_dir %s of the failed apply: %v, want it absent", agentDir2, err)
	}
	if _, ok := hostsByNameCLI(c)[env2+"-legacy"]; ok {
		t.Errorf("gantry hosts ls has %s after the failed apply", env2+"-legacy")
	}

	// destroy: the agent, its directory and the host are gone; the host's
	// own application is untouched.
	c.gantryWithin(wait, "destroy", "--env", env, "--auto-approve").ok(t)
	if _, err := os.Stat(agentDir); !os.IsNotExist(err) {
		t.Errorf("agent_dir %s after destroy: %v, want it removed", agentDir, err)
	}
	if left := procsNaming(agentDir); len(left) > 0 {
		t.Errorf("processes naming %s after destroy: %v", agentDir, left)
	}
	eventually(t, 15*time.Second, hostName+" gone from gantry hosts ls", func() (bool, string) {
		hs := hostsByNameCLI(c)
		hh, ok := hs[hostName]
		return !ok, fmt.Sprintf("%s listed, status %q", hostName, hh.Status)
	})
	if got := readOr(appFile); got != appContent {
		t.Errorf("the host's own file %s after destroy: %q, want %q", appFile, got, appContent)
	}
	if fi, err := os.Stat(appFile); err != nil || !fi.ModTime().Equal(appFileInfo.ModTime()) || fi.Mode() != appFileInfo.Mode() {
		t.Errorf("the host's own file %s changed: %v", appFile, err)
	}
	if !legacy.alive() {
		t.Errorf("the host's own process %d is gone after destroy: %v", legacy.pid(), legacy.err)
	}
	// The environment of the failed apply destroys cleanly too.
	c.gantryWithin(wait, "destroy", "--env", env2, "--auto-approve").ok(t)
	for _, name := range []string{env, env2} {
		if e, ok := envIfAny(c, name); ok && (len(e.Machines) != 0 || len(e.Resources) != 0) {
			b, _ := json.Marshal(e)
			t.Errorf("environment %s after destroy is not empty: %s", name, b)
		}
	}
}

// newClusterOn starts a server whose HTTP API and bus listen on ip (free
// ports), for agents that reach the machine there (a network namespace's
// veth peer).
func newClusterOn(t *testing.T, ip string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), httpAddr: freeAddrOn(t, ip), natsAddr: freeAddrOn(t, ip),
		token: "e2e-admin-token-0123456789", heartbeat: 500 * time.Millisecond, agents: map[string]*proc{}}
	c.url = "https://" + c.httpAddr
	c.startServer()
	return c
}

// freeAddrOn returns ip with a port that was free just now.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sshEnvName is an environment name of its own ("ssh" + 8 hex digits).
func sshEnvName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "ssh" + hex.EncodeToString(b)
}

// writeSSHDefinition writes a definition with one host block for h, with
// hostKey pinned, and returns its directory.
func writeSSHDefinition(t *testing.T, h *sshhost.Host, hostKey, agentDir, setup string) string {
	t.Helper()
	dir := t.TempDir()
	def := fmt.Sprintf(`provider "ssh" "lab" {
  private_key_file = %q
  host_key         = %q
  agent_dir        = %q
}

host "legacy" {
  provider = provider.ssh.lab
  address  = %q
  labels   = { role = "legacy" }
  setup    = %q
  deploy { app = "legacy" }
}

output "addr" { value = host.legacy.address }
`, h.KeyFile, hostKey, agentDir, h.Address, setup)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// otherFingerprint is the SHA256 fingerprint of a fresh ed25519 key.
func otherFingerprint(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

// nsProc is a process the test started in the namespace.
type nsProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *nsProc) pid() int { return p.cmd.Process.Pid }

func (p *nsProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startNamespaceProcess starts a long-running shell loop in h's namespace
// (the host's own application), killed at the end of the test.
func startNamespaceProcess(t *testing.T, h *sshhost.Host, dir string) *nsProc {
	t.Helper()
	script := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nwhile :; do sleep 1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &nsProc{cmd: h.Command("/bin/sh", script), done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", script, h.Namespace, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	})
	// ip netns exec execs the command: the pid is the shell's, once it runs.
	eventually(t, 10*time.Second, "the host's own process runs in "+h.Namespace, func() (bool, string) {
		if !p.alive() {
			t.Fatalf("%s in %s exited: %v", script, h.Namespace, p.err)
		}
		cl := cmdline(p.pid())
		return strings.Contains(cl, script), fmt.Sprintf("cmdline %q", cl)
	})
	return p
}

// checkSupervised checks that the agent runs under the ssh provider's
// supervisor in the namespace: supervisor.pid and agent.pid name live
// processes running agentDir/supervise.sh and agentDir/gantry.
func checkSupervised(t *testing.T, h *sshhost.Host, agentDir string) {
	t.Helper()
	if m := readOr(filepath.Join(agentDir, ".gantry-agent")); !strings.Contains(m, "mode=supervisor") {
		t.Errorf("%s/.gantry-agent: %q, want mode=supervisor", agentDir, m)
	}
	for _, x := range []struct{ pidFile, arg string }{
		{"supervisor.pid", filepath.Join(agentDir, "supervise.sh")},
		{"agent.pid", filepath.Join(agentDir, "gantry")},
	} {
		s := strings.TrimSpace(readOr(filepath.Join(agentDir, x.pidFile)))
		pid, err := strconv.Atoi(s)
		if err != nil {
			t.Errorf("%s/%s: %q, want a pid", agentDir, x.pidFile, s)
			continue
		}
		args := strings.Split(strings.TrimSuffix(cmdline(pid), "\x00"), "\x00")
		found := false
		for _, a := range args {
			found = found || a == x.arg
		}
		if !found {
			t.Errorf("process %d (%s): command line %q, want one with %s", pid, x.pidFile, args, x.arg)
			continue
		}
		if ns, err := exec.Command("ip", "netns", "identify", strconv.Itoa(pid)).Output(); err != nil || strings.TrimSpace(string(ns)) != h.Namespace {
			t.Errorf("process %d (%s) is in namespace %q (%v), want %s", pid, x.pidFile, bytes.TrimSpace(ns), err, h.Namespace)
		}
	}
}

// cmdline is /proc/PID/cmdline ("" if the process is gone).
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

// procsNaming lists "pid: cmdline" of every process whose command line
// contains s (this test's own process excepted).
func procsNaming(s string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cl := cmdline(pid); strings.Contains(cl, s) {
			out = append(out, fmt.Sprintf("%d: %s", pid, strings.ReplaceAll(cl, "\x00", " ")))
		}
	}
	return out
}

// hostsByNameCLI runs `gantry hosts ls -o json`, by host name.
func hostsByNameCLI(c *cluster) map[string]api.Host {
	c.t.Helper()
	r := c.gantry("hosts", "ls", "-o", "json")
	r.ok(c.t)
	var hs []api.Host
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil {
		c.t.Fatalf("hosts ls -o json: %v\n%s", err, r.stdout)
	}
	m := map[string]api.Host{}
	for _, h := range hs {
		m[h.Name] = h
	}
	return m
}

// envIfAny is `gantry env show NAME -o json`, ok=false when the
// environment does not exist.
func envIfAny(c *cluster, name string) (api.Environment, bool) {
	c.t.Helper()
	r := c.gantry("env", "show", name, "-o", "json")
	if r.code != 0 {
		if strings.Contains(r.stderr, `environment "`+name+`" not found; environments:`) {
			return api.Environment{}, false
		}
		c.t.Fatalf("env show %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
	}
	var e api.Environment
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || e.Name != name {
		c.t.Fatalf("env show %s: %v\n%s", name, err, r.stdout)
	}
	return e, true
}

// readOr returns a file's content, "" if it cannot be read.
func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
