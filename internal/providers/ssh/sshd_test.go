package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/testenv/sshhost"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func newProvider(t *testing.T, config map[string]string, dataDir string) *Provider {
	t.Helper()
	p, err := New(config, provider.Env{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func keygen(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return key
}

func randomFingerprint() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(b)
}

// readAbsent reads a machine whose agent directory does not exist: it
// proves the connection works (exists=false, no error).
func readAbsent(t *testing.T, p *Provider, h *sshhost.Host, port int) error {
	t.Helper()
	id := h.User + "@" + net.JoinHostPort(h.Address, strconv.Itoa(port)) + "|" + filepath.Join(t.TempDir(), "none")
	_, exists, err := p.ReadMachine(t.Context(), id)
	if err == nil && exists {
		t.Fatalf("ReadMachine(%s): exists", id)
	}
	return err
}

func TestConnect(t *testing.T) {
	h := sshhost.Start(t)
	target := h.User + "@" + h.Target()

	t.Run("pinned fingerprint", func(t *testing.T) {
		p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "host_key": h.HostKeyFingerprint, "use_agent": "false"}, "")
		if err := readAbsent(t, p, h, h.Port); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("known_hosts", func(t *testing.T) {
		p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "known_hosts": h.KnownHostsFile, "use_agent": "false"}, "")
		if err := readAbsent(t, p, h, h.Port); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong pinned fingerprint", func(t *testing.T) {
		wrong := randomFingerprint()
		p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "host_key": wrong, "use_agent": "false"}, "")
		err := readAbsent(t, p, h, h.Port)
		want := "ssh " + target + ": host key mismatch: got " + h.HostKeyFingerprint + ", want " + wrong
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one containing %q", err, want)
		}
	})
	t.Run("known_hosts mismatch", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "known_hosts")
		line := h.Address + " ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
		if err := os.WriteFile(other, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "known_hosts": other, "use_agent": "false"}, "")
		err := readAbsent(t, p, h, h.Port)
		if err == nil || !strings.Contains(err.Error(), "host key mismatch: got "+h.HostKeyFingerprint+", want SHA256:") || !strings.Contains(err.Error(), other+":1") {
			t.Fatalf("err = %v", err)
		}
	})
	for name, kh := range map[string]string{"unknown host": "empty", "no known_hosts file": "missing"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			if kh == "empty" {
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "known_hosts": file, "use_agent": "false"}, "")
			err := readAbsent(t, p, h, h.Port)
			for _, want := range []string{"ssh " + target + ": unknown host", `host_key = "` + h.HostKeyFingerprint + `"`, "ssh-keyscan -p 22 -t ed25519 " + h.Address + " >> " + file} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want one containing %q", err, want)
				}
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		key := keygen(t)
		p := newProvider(t, map[string]string{"private_key_file": key, "host_key": h.HostKeyFingerprint, "use_agent": "false"}, "")
		err := readAbsent(t, p, h, h.Port)
		want := "ssh " + target + ": authentication failed (tried: key " + key + ")"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "host_key": h.HostKeyFingerprint, "use_agent": "false"}, "")
		err := readAbsent(t, p, h, 2222)
		want := "ssh " + h.User + "@" + h.Address + ":2222: connection refused"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one containing %q", err, want)
		}
	})
	t.Run("ssh-agent", func(t *testing.T) {
		sock := startSSHAgent(t, h.KeyFile)
		t.Setenv("SSH_AUTH_SOCK", sock)
		p := newProvider(t, map[string]string{"host_key": h.HostKeyFingerprint}, "") // default: the agent
		if err := readAbsent(t, p, h, h.Port); err != nil {
			t.Fatal(err)
		}
		// A wrong key file plus the agent: the agent's key gets in.
		p = newProvider(t, map[string]string{"private_key_file": keygen(t), "use_agent": "true", "host_key": h.HostKeyFingerprint}, "")
		if err := readAbsent(t, p, h, h.Port); err != nil {
			t.Fatal(err)
		}
		// use_agent = "false" and no key: nothing to try.
		p = newProvider(t, map[string]string{"use_agent": "false", "host_key": h.HostKeyFingerprint}, "")
		if err := readAbsent(t, p, h, h.Port); err == nil || !strings.Contains(err.Error(), "no credentials") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("auth failed with agent", func(t *testing.T) {
		sock := startSSHAgent(t, keygen(t))
		t.Setenv("SSH_AUTH_SOCK", sock)
		key := keygen(t)
		p := newProvider(t, map[string]string{"private_key_file": key, "use_agent": "true", "host_key": h.HostKeyFingerprint}, "")
		err := readAbsent(t, p, h, h.Port)
		want := "ssh " + target + ": authentication failed (tried: key " + key + ", agent)"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
}

// startSSHAgent runs ssh-agent with key loaded and returns its socket.
func startSSHAgent(t *testing.T, key string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("ssh-agent: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, 10*time.Second, "ssh-agent's socket", func() bool { _, err := os.Stat(sock); return err == nil })
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if o, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, o)
	}
	return sock
}

var (
	fakeAgentOnce sync.Once
	fakeAgentBin  string
	fakeAgentErr  error
)

// fakeAgent builds testdata/fakeagent (static) once per test binary.
func fakeAgent(t *testing.T) string {
	t.Helper()
	fakeAgentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gantry-fakeagent-")
		if err != nil {
			fakeAgentErr = err
			return
		}
		fakeAgentBin = filepath.Join(dir, "fakeagent")
		cmd := exec.Command("go", "build", "-o", fakeAgentBin, "./testdata/fakeagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fakeAgentErr = &buildError{err, out}
		}
	})
	if fakeAgentErr != nil {
		t.Fatalf("build fakeagent: %v", fakeAgentErr)
	}
	return fakeAgentBin
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(e.out) }

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeAgentBin != "" {
		os.RemoveAll(filepath.Dir(fakeAgentBin))
	}
	os.Exit(code)
}

// procs lists the live processes whose argument list contains s (as part
// of an argument), by pid.
func procs(s string) map[int]string {
	out := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		if bytes.Contains(b, []byte(s)) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			out[pid] = strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

func lines(file string) []string {
	b, _ := os.ReadFile(file)
	return strings.Fields(string(b))
}

func mode(t *testing.T, file string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestMachineLifecycle(t *testing.T) {
	t.Parallel()
	h := sshhost.Start(t)
	bin := fakeAgent(t)
	root := t.TempDir()
	agentDir := filepath.Join(root, "gantry-agent")
	dataDir := t.TempDir()
	ctx := t.Context()

	// An "application" already on the host: a file next to the agent
	// directory and a process in the namespace.
	appFile := filepath.Join(root, "app-data.txt")
	if err := os.WriteFile(appFile, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := h.Command("sleep", "3600")
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	appExited := make(chan struct{})
	go func() { app.Wait(); close(appExited) }()
	t.Cleanup(func() { app.Process.Kill() })

	busURL := "nats://" + h.HostSideIP + ":4222"
	// The provider knows no host key: the machine pins its own, and its key
	// file, which must be remembered for Read and Delete.
	config := map[string]string{"known_hosts": filepath.Join(t.TempDir(), "none"), "use_agent": "false", "bus_url": busURL}
	p := newProvider(t, config, dataDir)
	var cmds []string
	var cmdsMu sync.Mutex
	p.onCommand = func(c string) { cmdsMu.Lock(); cmds = append(cmds, c); cmdsMu.Unlock() }

	token := "gjt_" + randomHex(16)
	serverURL := "http://" + h.HostSideIP + ":7070"
	m := provider.Machine{
		Env: "test", Group: "web", Resource: "group.web[0]", Name: "test-web-0",
		Attrs: map[string]string{"address": h.Address, "private_key_file": h.KeyFile, "host_key": h.HostKeyFingerprint, "agent_dir": agentDir},
		Agent: provider.Agent{Binary: bin, ServerURL: serverURL, JoinToken: token, Name: "test-web-0"},
	}
	st, err := p.CreateMachine(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	wantID := "root@" + h.Address + ":22|" + agentDir
	if st.ID != wantID || st.Address != h.Address || !st.Running {
		t.Fatalf("state = %+v, want id %s", st, wantID)
	}

	starts := filepath.Join(agentDir, "data", "starts")
	waitFor(t, 10*time.Second, "the agent to start", func() bool { return len(lines(starts)) == 1 })

	// Arguments and token.
	argv, err := os.ReadFile(filepath.Join(agentDir, "data", "argv"))
	if err != nil {
		t.Fatal(err)
	}
	wantArgv := strings.Join([]string{agentDir + "/gantry", "agent", "--server", serverURL, "--bus-url", busURL, "--name", "test-web-0", "--data-dir", agentDir + "/data"}, "\n")
	if string(argv) != wantArgv {
		t.Errorf("argv:\n%s\nwant:\n%s", argv, wantArgv)
	}
	if got, _ := os.ReadFile(filepath.Join(agentDir, "data", "token")); string(got) != token {
		t.Errorf("agent's GANTRY_JOIN_TOKEN = %q, want %q", got, token)
	}
	if m := mode(t, filepath.Join(agentDir, "agent.env")); m != 0o600 {
		t.Errorf("agent.env mode %o, want 600", m)
	}
	if m := mode(t, agentDir); m != 0o700 {
		t.Errorf("agent_dir mode %o, want 700", m)
	}
	if m := mode(t, filepath.Join(agentDir, "gantry")); m != 0o755 {
		t.Errorf("gantry mode %o, want 755", m)
	}
	if b, _ := os.ReadFile(bin); !bytes.Equal(b, mustRead(t, filepath.Join(agentDir, "gantry"))) {
		t.Error("uploaded binary differs")
	}
	if got := string(mustRead(t, filepath.Join(agentDir, "supervise.sh"))); got != superviseScript {
		t.Errorf("supervise.sh:\n%s\nwant:\n%s", got, superviseScript)
	}
	if got := string(mustRead(t, filepath.Join(agentDir, markerFile))); got != "mode=supervisor\nname=test-web-0\n" {
		t.Errorf("marker: %q", got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(agentDir, ".gantry-upload-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// The token is on no command line: not in any process's, not in any
	// command sent.
	if ps := procs(token); len(ps) != 0 {
		t.Errorf("token visible in the process list: %v", ps)
	}
	cmdsMu.Lock()
	for _, c := range cmds {
		if strings.Contains(c, token) {
			t.Errorf("token in a remote command line: %s", c)
		}
	}
	cmdsMu.Unlock()

	// The agent runs under the supervisor, in the host's namespace.
	sup := readPid(t, filepath.Join(agentDir, "supervisor.pid"))
	agentPid, _ := strconv.Atoi(lines(starts)[0])
	if !alive(sup) || !alive(agentPid) {
		t.Fatalf("supervisor %d alive %v, agent %d alive %v", sup, alive(sup), agentPid, alive(agentPid))
	}
	if !strings.Contains(procs(agentDir + "/supervise.sh")[sup], agentDir+"/supervise.sh") {
		t.Errorf("pid %d is not the supervisor: %v", sup, procs(agentDir))
	}
	if pp := ppid(t, agentPid); pp != sup {
		t.Errorf("agent's parent is %d, want the supervisor %d", pp, sup)
	}
	if ns, err := exec.Command("ip", "netns", "identify", strconv.Itoa(agentPid)).Output(); err != nil || strings.TrimSpace(string(ns)) != h.Namespace {
		t.Errorf("agent in namespace %q (%v), want %s", ns, err, h.Namespace)
	}

	got, exists, err := p.ReadMachine(ctx, st.ID)
	if err != nil || !exists || !got.Running || got.Address != h.Address {
		t.Fatalf("ReadMachine = %+v, %v, %v", got, exists, err)
	}

	// The supervisor restarts a killed agent.
	if err := syscall.Kill(agentPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the supervisor to restart the agent", func() bool { return len(lines(starts)) == 2 })
	restarted, _ := strconv.Atoi(lines(starts)[1])
	if restarted == agentPid || !alive(restarted) {
		t.Fatalf("restarted agent %d (old %d) alive %v", restarted, agentPid, alive(restarted))
	}

	// A new provider instance (a restarted server) finds the machine with
	// the settings it remembered.
	p2 := newProvider(t, config, dataDir)
	if _, exists, err := p2.ReadMachine(ctx, st.ID); err != nil || !exists {
		t.Fatalf("ReadMachine from a new provider: %v, %v", exists, err)
	}

	if err := p2.DeleteMachine(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(agentDir); !os.IsNotExist(err) {
		t.Errorf("agent_dir after delete: %v", err)
	}
	if ps := procs(agentDir); len(ps) != 0 {
		t.Errorf("processes of the agent left: %v", ps)
	}
	for _, pid := range []int{sup, restarted} {
		if alive(pid) {
			t.Errorf("pid %d still alive", pid)
		}
	}
	// The application is untouched.
	if b, err := os.ReadFile(appFile); err != nil || string(b) != "precious\n" {
		t.Errorf("application file: %q, %v", b, err)
	}
	select {
	case <-appExited:
		t.Error("the application's process was killed")
	default:
	}

	if _, exists, err := p2.ReadMachine(ctx, st.ID); err != nil || exists {
		t.Errorf("ReadMachine after delete: exists %v, err %v", exists, err)
	}
	if err := p2.DeleteMachine(ctx, st.ID); err != nil {
		t.Errorf("second delete: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dataDir, "machines", "*.json")); len(files) != 1 || mode(t, files[0]) != 0o600 {
		t.Errorf("records: %v", files)
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ppid(t *testing.T, pid int) int {
	t.Helper()
	b := mustRead(t, "/proc/"+strconv.Itoa(pid)+"/stat")
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, _ := strconv.Atoi(f[1])
	return n
}

// A directory gantry did not make is neither used nor removed.
func TestForeignAgentDir(t *testing.T) {
	t.Parallel()
	h := sshhost.Start(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "host_key": h.HostKeyFingerprint, "use_agent": "false"}, "")
	_, err := p.CreateMachine(t.Context(), provider.Machine{
		Name:  "test-db-0",
		Attrs: map[string]string{"address": h.Address, "agent_dir": dir},
		Agent: provider.Agent{Binary: fakeAgent(t), ServerURL: "http://" + h.HostSideIP + ":7070", JoinToken: "gjt_x", Name: "test-db-0"},
	})
	if err == nil || !strings.Contains(err.Error(), "was not made by gantry") {
		t.Fatalf("CreateMachine in a foreign directory: %v", err)
	}
	id := "root@" + h.Address + ":22|" + dir
	if _, exists, err := p.ReadMachine(t.Context(), id); err != nil || exists {
		t.Errorf("ReadMachine of a foreign directory: %v, %v", exists, err)
	}
	if err := p.DeleteMachine(t.Context(), id); err == nil || !strings.Contains(err.Error(), "refusing to remove") {
		t.Errorf("DeleteMachine of a foreign directory: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("foreign file: %v", err)
	}
}

// Create on a host where gantry's agent directory is left from an earlier
// install of the same machine (e.g. an apply interrupted after Create)
// reinstalls in place: one supervisor, one agent. Another machine's
// directory is refused.
func TestCreateTwice(t *testing.T) {
	t.Parallel()
	h := sshhost.Start(t)
	dir := filepath.Join(t.TempDir(), "agent")
	p := newProvider(t, map[string]string{"private_key_file": h.KeyFile, "host_key": h.HostKeyFingerprint, "use_agent": "false", "agent_dir": dir}, "")
	m := provider.Machine{
		Name:  "test-app-0",
		Attrs: map[string]string{"address": h.Address},
		Agent: provider.Agent{Binary: fakeAgent(t), ServerURL: "http://" + h.HostSideIP + ":7070", JoinToken: "gjt_y", Name: "test-app-0"},
	}
	ctx := t.Context()
	for range 2 {
		if _, err := p.CreateMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "one agent and one supervisor", func() bool {
		n := 0
		for _, cmd := range procs(dir) {
			if strings.Contains(cmd, dir+"/supervise.sh") || strings.HasPrefix(cmd, dir+"/gantry ") {
				n++
			}
		}
		return n == 2
	})
	// Another machine may not take the directory over.
	other := m
	other.Name, other.Agent.Name = "test-app-1", "test-app-1"
	if _, err := p.CreateMachine(ctx, other); err == nil || !strings.Contains(err.Error(), "is the agent directory of machine test-app-0") {
		t.Errorf("CreateMachine of another machine in the same agent_dir: %v", err)
	}
	if _, exists, err := p.ReadMachine(ctx, "root@"+h.Address+":22|"+dir); err != nil || !exists {
		t.Errorf("ReadMachine after the refused create: %v, %v", exists, err)
	}
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.DeleteMachine(ctx2, "root@"+h.Address+":22|"+dir); err != nil {
		t.Fatal(err)
	}
	if ps := procs(dir); len(ps) != 0 {
		t.Errorf("left: %v", ps)
	}
}
