package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/httpapi"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/server"
	"github.com/gantry-dev/gantry/internal/store"
)

// devAgent is one dev-mode agent: a child process of the server.
type devAgent struct {
	name, labels string
}

var devAgents = []devAgent{
	{"dev-web-1", "role=web"},
	{"dev-web-2", "role=web"},
	{"dev-db-1", "role=db"},
}

// devFleet is the running dev agents.
type devFleet struct {
	names []string
	procs []*exec.Cmd
	log   *slog.Logger
}

// startDevAgents starts the dev agents (enrolling them on first use) and
// waits until all are online.
func startDevAgents(ctx context.Context, srv *server.Server, dataDir string, log *slog.Logger) (*devFleet, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	st := srv.Store()
	secret := ids.Secret("gjt")
	now := time.Now().UTC()
	if err := st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: httpapi.HashToken(secret), JoinToken: api.JoinToken{
		ID: ids.New("jt"), ExpiresAt: now.Add(10 * time.Minute), MaxUses: len(devAgents), CreatedAt: now}}); err != nil {
		return nil, fmt.Errorf("dev join token: %w", err)
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
		c := exec.Command(self, "agent", "--server", srv.URL(), "--name", a.name, "--labels", a.labels, "--data-dir", dir,
			"--install-root", filepath.Join(dir, "root"))
		// The join token goes through the environment, never the command line.
		c.Env = append(os.Environ(), "GANTRY_JOIN_TOKEN="+secret)
		c.Stdout, c.Stderr = logf, logf
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := c.Start(); err != nil {
			logf.Close()
			d.stop()
			return nil, fmt.Errorf("start dev agent %s: %w", a.name, err)
		}
		logf.Close()
		d.procs = append(d.procs, c)
		d.names = append(d.names, a.name+" ("+a.labels+")")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		online := 0
		for _, a := range devAgents {
			if h, err := st.GetHostByName(ctx, a.name); err == nil && srv.Fleet().HostOnline(h.ID) {
				online++
			}
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
