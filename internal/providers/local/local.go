// Package local is the provider whose machines are gantry agent processes
// on the server's own machine: dev mode, tests, and trying an environment
// definition without any infrastructure. Each machine is an agent with its
// own data directory and install root under the provider's directory
// (--data-dir/infra/providers/local/<machine>), started in its own session
// so that it outlives a server restart (the agents reconnect by
// themselves), and found again by its pid file.
//
// Machines have no image, no size limits and no networks: every machine's
// address is 127.0.0.1, so two machines cannot serve the same port. An
// agent starts with a minimal environment (agentenv.Minimal: PATH, HOME,
// locale, time zone and its join token), not the server's. Machines are
// not isolated from the server: their agents run as the server's user on
// its machine, so a job running as that user can still read the server's
// own /proc/<pid>/environ and files. Use them for development and tests.
// Deleting a machine stops its agent (SIGTERM, then SIGKILL after 5 s) and
// removes its directory.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/internal/agent/agentenv"
	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/provider"
)

func init() {
	provider.Register(provider.Factory{
		Info: provider.Info{
			Type:   "local",
			Doc:    "machines are agent processes on the server's machine (dev mode, tests)",
			Config: map[string]string{},
		},
		New: func(_ map[string]string, env provider.Env) (provider.Provider, error) { return New(env.DataDir), nil },
	})
}

// absPath returns p made absolute against the working directory. The
// server hands the provider absolute paths; this guards against a caller
// that did not, since an agent runs in its machine's directory and would
// resolve a relative path (its data dir, its install root, the context
// file of every job) against that instead.
func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// Local is the local provider.
type Local struct {
	dir string
}

var _ provider.Provider = (*Local)(nil)

// New returns a provider keeping its machines under dir (made absolute:
// the agents it starts run in directories of their own).
func New(dir string) *Local { return &Local{dir: absPath(dir)} }

// meta is what a machine's directory records about it.
type meta struct {
	Env      string `json:"env"`
	Resource string `json:"resource"`
	Name     string `json:"name"`
	PID      int    `json:"pid"`
}

func (l *Local) machineDir(name string) string { return filepath.Join(l.dir, name) }

// CreateNetwork refuses: the local provider has no networks.
func (l *Local) CreateNetwork(context.Context, provider.Network) (provider.NetworkState, error) {
	return provider.NetworkState{}, fmt.Errorf("local: networks are %w (all local machines share 127.0.0.1)", provider.ErrNotSupported)
}

// ReadNetwork finds nothing.
func (l *Local) ReadNetwork(context.Context, string) (provider.NetworkState, bool, error) {
	return provider.NetworkState{}, false, nil
}

// DeleteNetwork has nothing to delete.
func (l *Local) DeleteNetwork(context.Context, string) error { return nil }

// CreateMachine starts an agent process that enrolls with the join token.
func (l *Local) CreateMachine(ctx context.Context, m provider.Machine) (provider.MachineState, error) {
	if m.Name == "" || strings.ContainsAny(m.Name, "/\x00") || m.Name == "." || m.Name == ".." {
		return provider.MachineState{}, fmt.Errorf("local: bad machine name %q", m.Name)
	}
	dir := l.machineDir(m.Name)
	if err := os.RemoveAll(dir); err != nil {
		return provider.MachineState{}, fmt.Errorf("local: clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "root"), 0o700); err != nil {
		return provider.MachineState{}, fmt.Errorf("local: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return provider.MachineState{}, fmt.Errorf("local: %w", err)
	}
	defer logf.Close()
	args := []string{"agent", "--server", m.Agent.ServerURL, "--name", m.Name, "--data-dir", filepath.Join(dir, "agent"), "--install-root", filepath.Join(dir, "root")}
	if m.Agent.BusURL != "" {
		args = append(args, "--bus-url", m.Agent.BusURL)
	}
	if m.Agent.Insecure {
		args = append(args, "--insecure")
	}
	bin := m.Agent.Binary
	if strings.ContainsRune(bin, filepath.Separator) {
		bin = absPath(bin) // a bare name is looked up in PATH; a relative path would be taken from the machine's directory
	}
	c := exec.Command(bin, args...)
	// A minimal environment: the server's (its admin token included) would
	// be readable by every job through /proc/$PPID/environ. The join token
	// goes through the environment, never the command line.
	c.Env = agentenv.Minimal(os.Environ(), "GANTRY_JOIN_TOKEN="+m.Agent.JoinToken)
	c.Stdout, c.Stderr = logf, logf
	c.Dir = dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return provider.MachineState{}, fmt.Errorf("local: start agent %s: %w", bin, err)
	}
	pid := c.Process.Pid
	go func() { _ = c.Wait() }() // reap it if it ends while the server runs
	b, _ := json.Marshal(meta{Env: m.Env, Resource: m.Resource, Name: m.Name, PID: pid})
	if err := atomicfile.Write(filepath.Join(dir, "machine.json"), b, 0o600); err != nil {
		_ = c.Process.Kill()
		return provider.MachineState{}, fmt.Errorf("local: %w", err)
	}
	return provider.MachineState{ID: m.Name, Address: "127.0.0.1", Running: true}, nil
}

func (l *Local) meta(id string) (meta, bool, error) {
	b, err := os.ReadFile(filepath.Join(l.machineDir(id), "machine.json"))
	if errors.Is(err, os.ErrNotExist) {
		return meta{}, false, nil
	}
	if err != nil {
		return meta{}, false, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, false, fmt.Errorf("local: %s/machine.json: %w", id, err)
	}
	return m, true, nil
}

// alive reports whether pid is this machine's agent (not a reused pid).
func (l *Local) alive(m meta) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(m.PID) + "/cmdline")
	if err != nil {
		return false
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(m.PID) + "/stat"); err == nil {
		// A zombie (state Z) is not running.
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return strings.Contains(string(b), l.machineDir(m.Name))
}

// ReadMachine reports a machine: gone when its directory is gone, stopped
// when its agent process is not running.
func (l *Local) ReadMachine(_ context.Context, id string) (provider.MachineState, bool, error) {
	m, ok, err := l.meta(id)
	if err != nil || !ok {
		return provider.MachineState{}, ok, err
	}
	return provider.MachineState{ID: id, Address: "127.0.0.1", Running: l.alive(m)}, true, nil
}

// UpdateMachine has nothing to change in place.
func (l *Local) UpdateMachine(context.Context, string, provider.Machine) error { return nil }

// DeleteMachine stops the agent and removes the machine's directory.
func (l *Local) DeleteMachine(ctx context.Context, id string) error {
	m, ok, err := l.meta(id)
	if err != nil {
		return err
	}
	if ok && l.alive(m) {
		_ = syscall.Kill(-m.PID, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for l.alive(m) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if l.alive(m) {
			_ = syscall.Kill(-m.PID, syscall.SIGKILL)
		}
	}
	return os.RemoveAll(l.machineDir(id))
}

// List returns the machines of an environment.
func (l *Local) List(_ context.Context, env string) ([]provider.Found, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []provider.Found
	for _, e := range ents {
		m, ok, err := l.meta(e.Name())
		if err != nil || !ok || m.Env != env {
			continue
		}
		out = append(out, provider.Found{Kind: "machine", ID: m.Name, Resource: m.Resource})
	}
	return out, nil
}
