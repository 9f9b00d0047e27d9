// Package e2e runs the built gantry binary as real server and agent
// processes on loopback and drives it through its command line, the way a
// user would. The binary is built once per test run.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

var gantryBin string

// agentBin is the static gantry binary servers install on the machines
// they create (containers need a static one; in race mode gantryBin is
// not).
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gantry-e2e-")
	if err != nil {
		panic(err)
	}
	e2eDir = dir
	gantryBin = filepath.Join(dir, "gantry")
	build := exec.Command("go", "build", "-o", gantryBin, "../../cmd/gantry")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("GANTRY_E2E_RACE") != "" {
		// By hand: the server and agents built with the race detector.
		build = exec.Command("go", "build", "-race", "-o", gantryBin, "../../cmd/gantry")
		build.Env = append(os.Environ(), "CGO_ENABLED=1", "GORACE=halt_on_error=1")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gantry: %v\n%s", err, out)
		os.Exit(1)
	}
	agentBin = gantryBin
	if os.Getenv("GANTRY_E2E_RACE") != "" {
		agentBin = filepath.Join(dir, "gantry-static")
		static := exec.Command("go", "build", "-o", agentBin, "../../cmd/gantry")
		static.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := static.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build static gantry: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	if leaked := leakedProcesses(dir); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes of this e2e run still running after the tests (killed now):\n")
		for _, l := range leaked {
			fmt.Fprintf(os.Stderr, "  %s\n", l)
		}
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// killProcsNaming kills every process whose command line names dir (the
// agents a test's server started in its data directory), or whose
// executable lies in dir, and waits until
// they are gone (at most 5 s).
func killProcsNaming(dir string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
			if !strings.Contains(string(cmdline), dir+"/") && !strings.HasPrefix(exe, dir+"/") {
				continue
			}
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				if i := bytes.LastIndexByte(st, ')'); i > 0 && bytes.HasPrefix(bytes.TrimSpace(st[i+1:]), []byte("Z")) {
					continue
				}
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			left++
		}
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leakedProcesses finds the processes still running whose executable lies
// in dir (the run's gantry binaries, the README runner's copy) or whose
// command line names dir, waits up to 5 s for them to end (agents stop on
// SIGTERM when their server dies), then kills the rest and describes them.
func leakedProcesses(dir string) []string {
	find := func() map[int]string {
		found := map[int]string{}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				if i := bytes.LastIndexByte(st, ')'); i > 0 && bytes.HasPrefix(bytes.TrimSpace(st[i+1:]), []byte("Z")) {
					continue // a zombie: already dead
				}
			}
			exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			cl := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
			if strings.HasPrefix(exe, dir+"/") || strings.Contains(cl, dir+"/") {
				found[pid] = fmt.Sprintf("pid %d: %s", pid, cl)
			}
		}
		return found
	}
	deadline := time.Now().Add(5 * time.Second)
	found := find()
	for len(found) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		found = find()
	}
	var out []string
	for pid, desc := range found {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		out = append(out, desc)
	}
	return out
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a gantry process started by a test.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(gantryBin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start gantry %v: %v", args, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL to the process group and waits.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to 15 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("process did not stop on SIGTERM within 15s; output:\n%s", p.out)
		p.kill()
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode waits up to d for the process to exit and returns its code.
func (p *proc) exitCode(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("process still running after %s; output:\n%s", d, p.out)
	}
	return p.cmd.ProcessState.ExitCode()
}

// cluster is a server and its agents.
type cluster struct {
	t        *testing.T
	dir      string
	httpAddr string
	natsAddr string
	url      string
	token    string
	// caFP is the server CA's fingerprint (read from its data directory
	// once it is ready); every client of the harness pins it.
	caFP      string
	heartbeat time.Duration
	database  string
	plain     bool
	server    *proc
	agents    map[string]*proc
}

type clusterOpts struct {
	heartbeat time.Duration
	database  string
	// plain runs the server with --tls=false (http://; clients need
	// --insecure).
	plain bool
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	if o.heartbeat == 0 {
		o.heartbeat = 500 * time.Millisecond
	}
	c := &cluster{t: t, dir: t.TempDir(), httpAddr: freeAddr(t), natsAddr: freeAddr(t),
		token: "e2e-admin-token-0123456789", heartbeat: o.heartbeat, database: o.database, plain: o.plain, agents: map[string]*proc{}}
	c.url = "https://" + c.httpAddr
	if o.plain {
		c.url = "http://" + c.httpAddr
	}
	// Registered before the server's cleanup, so it runs after it: agents
	// the local provider started (their own sessions: they outlive a
	// killed server, as real machines would) are killed too.
	t.Cleanup(func() { killProcsNaming(c.dir) })
	c.startServer()
	return c
}

func (c *cluster) startServer() {
	c.t.Helper()
	args := []string{"server", "--data-dir", filepath.Join(c.dir, "server"), "--listen", c.httpAddr,
		"--nats-listen", c.natsAddr, "--heartbeat", c.heartbeat.String(), "--log-level", "debug", "--agent-binary", agentBin,
		"--min-schedule-interval", "1s"} // TestSchedule's @every 1s
	if c.database != "" {
		args = append(args, "--database", c.database)
	}
	if c.plain {
		args = append(args, "--tls=false")
	}
	c.server = start(c.t, []string{"GANTRY_ADMIN_TOKEN=" + c.token}, args...)
	c.waitReady()
}

func (c *cluster) waitReady() {
	c.t.Helper()
	eventually(c.t, 15*time.Second, "server ready", func() (bool, string) {
		if c.server.exited() {
			c.t.Fatalf("server exited: %v\n%s", c.server.err, c.server.out)
		}
		if strings.HasPrefix(c.url, "https://") {
			fp, err := caFingerprintIn(filepath.Join(c.dir, "server"))
			if err != nil {
				return false, err.Error()
			}
			c.caFP = fp
		}
		resp, err := c.httpClient().Get(c.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// caFingerprintIn is the fingerprint of the CA a server keeps in dataDir.
func caFingerprintIn(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "ca.crt"))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s/ca.crt: no PEM block", dataDir)
	}
	return api.Fingerprint(blk.Bytes), nil
}

// httpClient is an HTTP client that trusts only the cluster's server (its
// CA pinned), or a plain one for a server without TLS.
func (c *cluster) httpClient() *http.Client {
	if c.caFP == "" {
		return &http.Client{Timeout: 30 * time.Second}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: api.PinnedTransport(api.Pin{Fingerprint: c.caFP, PinnedBy: "the e2e harness"}, c.url)}
}

// apiClient is an API client for the cluster, authenticated as admin and with
// the server's CA pinned.
func (c *cluster) apiClient() *api.Client {
	cl := api.New(c.url, c.token)
	cl.HTTP = c.httpClient()
	cl.HTTP.Timeout = 0 // streams
	return cl
}

// cliEnv is the environment that points the CLI at the cluster.
func (c *cluster) cliEnv() []string {
	env := []string{"GANTRY_SERVER=" + c.url, "GANTRY_TOKEN=" + c.token, "GANTRY_CONFIG=" + filepath.Join(c.dir, "cli.json")}
	if c.caFP != "" {
		env = append(env, "GANTRY_CA_FINGERPRINT="+c.caFP)
	}
	return env
}

// joinToken creates a join token with the CLI.
func (c *cluster) joinToken(args ...string) string {
	c.t.Helper()
	r := c.gantry(append([]string{"token", "create", "-o", "json"}, args...)...)
	r.ok(c.t)
	var jt api.JoinToken
	if err := json.Unmarshal([]byte(r.stdout), &jt); err != nil || jt.Token == "" {
		c.t.Fatalf("token create output: %v\n%s", err, r.stdout)
	}
	return jt.Token
}

// startAgent starts (and on first use enrolls) an agent named name; extra
// flags (e.g. --install-root DIR) are appended to its command line.
func (c *cluster) startAgent(name, labels, joinToken string, extra ...string) *proc {
	c.t.Helper()
	args := []string{"agent", "--server", c.url, "--name", name, "--data-dir", c.agentDir(name), "--log-level", "debug"}
	if labels != "" {
		args = append(args, "--labels", labels)
	}
	if c.plain {
		args = append(args, "--insecure")
	}
	args = append(args, extra...)
	p := start(c.t, []string{"GANTRY_JOIN_TOKEN=" + joinToken}, args...)
	c.agents[name] = p
	return p
}

func (c *cluster) agentDir(name string) string { return filepath.Join(c.dir, "agents", name) }

// agentsOnline starts agents with the given name→labels and waits until all
// are online.
func (c *cluster) agentsOnline(agents map[string]string) {
	c.t.Helper()
	for name, labels := range agents {
		// Agents may not choose their labels: each one's join token pins them.
		c.startAgent(name, labels, c.joinToken("--labels", labels))
	}
	for name := range agents {
		c.waitHost(name, api.HostOnline, 15*time.Second)
	}
}

// host returns a host as the API shows it.
func (c *cluster) host(name string) (api.Host, bool) {
	c.t.Helper()
	r := c.gantry("hosts", "show", name, "-o", "json")
	if r.code != 0 {
		return api.Host{}, false
	}
	var h api.Host
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		c.t.Fatalf("hosts show %s: %v\n%s", name, err, r.stdout)
	}
	return h, true
}

func (c *cluster) waitHost(name, status string, d time.Duration) api.Host {
	c.t.Helper()
	var h api.Host
	eventually(c.t, d, "host "+name+" "+status, func() (bool, string) {
		var ok bool
		h, ok = c.host(name)
		if p := c.agents[name]; p != nil && p.exited() && status == api.HostOnline {
			c.t.Fatalf("agent %s exited: %v\n%s", name, p.err, p.out)
		}
		return ok && h.Status == status, fmt.Sprintf("found=%v status=%q", ok, h.Status)
	})
	return h
}

// result is a finished CLI invocation.
type result struct {
	stdout, stderr string
	code           int
	args           []string
}

func (r result) ok(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("gantry %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
}

// gantry runs the CLI against the cluster.
func (c *cluster) gantry(args ...string) result {
	c.t.Helper()
	if c.plain {
		args = append([]string{"--insecure"}, args...)
	}
	return runCLI(c.t, c.cliEnv(), args...)
}

func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("gantry %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code, args: args}
}

// job runs `gantry jobs show ID -o json`.
func (c *cluster) job(id string) api.Job {
	c.t.Helper()
	r := c.gantry("jobs", "show", id, "-o", "json")
	r.ok(c.t)
	var j api.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		c.t.Fatalf("jobs show: %v\n%s", err, r.stdout)
	}
	return j
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last: %s)", d, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func byHost(j api.Job) map[string]api.Execution {
	m := map[string]api.Execution{}
	for _, x := range j.Executions {
		m[x.HostName] = x
	}
	return m
}
