package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/agent/agentenv"
	"github.com/gantry-dev/gantry/internal/server"
)

// devAgent is one dev-mode agent: a child process of the server.
type devAgent struct {
	name, labels string
}

// devAgents are named so that no environment's machine can ever take
// their names: machine names are "<env>-<group>-<index>" or "<env>-<host>"
// (config.MachineName), always with a '-', and these have none.
var devAgents = []devAgent{
	{"web1", "role=web"},
	{"web2", "role=web"},
	{"db1", "role=db"},
}

// oldDevAgents are the dev agents' names before issue 10: an environment
// named "dev" made machines of the same names. A data directory from then
// has them enrolled; startDevAgents retires them.
var oldDevAgents = []string{"dev-web-1", "dev-web-2", "dev-db-1"}

// devFleet is the running dev agents.
type devFleet struct {
	names []string
	procs []*exec.Cmd
	log   *slog.Logger
}

// startDevAgents starts the dev agents (enrolling them on first use) and
// waits until all are online. Like every client, it reaches the server
// through its HTTP API only (with the admin token): the join token of each
// new agent pins its labels.
func startDevAgents(ctx context.Context, srv *server.Server, token, dataDir string, log *slog.Logger) (*devFleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	c := api.New(srv.URL(), token)
	if fp := srv.CAFingerprint(); fp != "" {
		if err := c.PinCA(fp); err != nil {
			return nil, err
		}
	}
	if err := retireOldDevAgents(ctx, c, dataDir, log); err != nil {
		return nil, err
	}
	joinTokens, err := devJoinTokens(ctx, c)
	if err != nil {
		return nil, err
	}
	d := &devFleet{log: log}
	for _, a := range devAgents {
		dir, err := filepath.Abs(filepath.Join(dataDir, "dev-agents", a.name))
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		// Dev agents share this machine: each installs under its own root.
		cmd := exec.Command(self, "agent", "--server", srv.URL(), "--name", a.name, "--data-dir", dir,
			"--install-root", filepath.Join(dir, "root"))
		// A minimal environment: the server's (its admin token included)
		// would be readable by every job through /proc/$PPID/environ. The
		// join token goes through the environment, never the command line.
		var extra []string
		if tok := joinTokens[a.name]; tok != "" {
			extra = append(extra, "GANTRY_JOIN_TOKEN="+tok)
		}
		cmd.Env = agentenv.Minimal(os.Environ(), extra...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			logf.Close()
			d.stop()
			return nil, fmt.Errorf("start dev agent %s: %w", a.name, err)
		}
		logf.Close()
		d.procs = append(d.procs, cmd)
		d.names = append(d.names, a.name+" ("+a.labels+")")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		online, err := devAgentsOnline(ctx, c)
		if err != nil {
			d.stop()
			return nil, err
		}
		if online == len(devAgents) {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, errors.New("dev agents did not come online within 15s: see " + filepath.Join(dataDir, "dev-agents", "*", "agent.log"))
		}
		select {
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retireOldDevAgents revokes the dev agents of a data directory made
// before they were renamed (oldDevAgents), so that they do not stay in the
// inventory as offline role=web and role=db hosts that jobs and
// deployments would wait for. A host is one of them only if this data
// directory has its agent's directory and it is no environment's machine.
func retireOldDevAgents(ctx context.Context, c *api.Client, dataDir string, log *slog.Logger) error {
	var old []string
	for _, name := range oldDevAgents {
		if _, err := os.Stat(filepath.Join(dataDir, "dev-agents", name)); err == nil {
			old = append(old, name)
		}
	}
	if len(old) == 0 {
		return nil
	}
	hosts, err := c.ListHosts(ctx, "", false)
	if err != nil {
		return fmt.Errorf("list dev agents: %w", err)
	}
	for _, name := range old {
		for _, h := range hosts {
			if h.Name != name || h.Labels["gantry.env"] != "" {
				continue
			}
			if err := c.RemoveHost(ctx, h.ID); err != nil {
				return fmt.Errorf("retire old dev agent %s: %w", name, err)
			}
			log.Info("retired an old dev agent (dev agents are now "+devAgentNames()+")", "host", name)
		}
		_ = os.RemoveAll(filepath.Join(dataDir, "dev-agents", name))
	}
	return nil
}

// devAgentNames lists the dev agents' names.
func devAgentNames() string {
	names := make([]string, len(devAgents))
	for i, a := range devAgents {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

// devJoinTokens creates, through the API, a join token for each dev agent
// the server does not know yet (one use, valid 10 minutes, the agent's
// labels pinned), and returns the secrets by agent name. Agents already
// enrolled get none: no unused token is left in an agent's environment.
func devJoinTokens(ctx context.Context, c *api.Client) (map[string]string, error) {
	hosts, err := c.ListHosts(ctx, "", true)
	if err != nil {
		return nil, fmt.Errorf("list dev agents: %w", err)
	}
	known := map[string]bool{}
	for _, h := range hosts {
		known[h.Name] = true
	}
	out := map[string]string{}
	for _, a := range devAgents {
		if known[a.name] {
			continue
		}
		labels, err := parseLabelList("dev agent labels", a.labels)
		if err != nil {
			return nil, err
		}
		jt, err := c.CreateJoinToken(ctx, api.CreateJoinTokenRequest{TTLSeconds: 600, MaxUses: 1, Labels: labels, Internal: true, Owner: "dev:" + a.name})
		if err != nil {
			return nil, fmt.Errorf("join token for dev agent %s: %w", a.name, err)
		}
		out[a.name] = jt.Token
	}
	return out, nil
}

// devAgentsOnline counts the dev agents the API reports online.
func devAgentsOnline(ctx context.Context, c *api.Client) (int, error) {
	hosts, err := c.ListHosts(ctx, "", false)
	if err != nil {
		return 0, fmt.Errorf("list dev agents: %w", err)
	}
	online := 0
	for _, a := range devAgents {
		for _, h := range hosts {
			if h.Name == a.name && h.Status == api.HostOnline {
				online++
			}
		}
	}
	return online, nil
}

// stop ends the dev agents: SIGTERM, then SIGKILL after 5 s.
func (d *devFleet) stop() {
	for _, c := range d.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range d.procs {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}
