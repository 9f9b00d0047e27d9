package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// execAgents makes the emulated agents run commands for real (-exec).
var execAgents bool

// hookEvents are the lifecycle events that run the bundle's scripts: their
// time is the hooks' own; the rest of a deployment is gantry's.
var hookEvents = map[string]bool{"ApplicationStop": true, "BeforeInstall": true, "AfterInstall": true,
	"ApplicationStart": true, "ValidateService": true}

// deployStats are one timed deployment's figures.
type deployStats struct {
	took, hooks time.Duration // wall time; hooks' critical path (sum over batches of the slowest host's hook time)
	batches     int
}

// setupDeploy pushes a bundle of -bundle-mb random MiB with trivial hooks
// and creates the group of all agents with the -deploy config.
func (b *bench) setupDeploy(ctx context.Context) error {
	dir := filepath.Join(b.dir, "bundle")
	if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
		return err
	}
	spec := `version: 0.0
os: linux
files:
  - source: /data.bin
    destination: /srv/bench
hooks:
  ApplicationStop:
    - location: scripts/ok.sh
  BeforeInstall:
    - location: scripts/ok.sh
  AfterInstall:
    - location: scripts/ok.sh
  ApplicationStart:
    - location: scripts/ok.sh
  ValidateService:
    - location: scripts/ok.sh
`
	data := make([]byte, b.o.bundleMB<<20)
	_, _ = rand.Read(data)
	for name, body := range map[string][]byte{"appspec.yml": []byte(spec), "scripts/ok.sh": []byte("exit 0\n"), "data.bin": data} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"app", "create", "bench"},
		{"push", "bench", dir},
		{"group", "create", "bench", "bench", "--selector", "role=emu", "--config", b.o.deploy},
	}
	for _, args := range steps {
		if _, errb, err := b.cli(ctx, args...); err != nil {
			return fmt.Errorf("gantry %v: %v: %s", args, err, tail(errb, 2000))
		}
	}
	mode := "NoExec: download and verify only"
	if execAgents {
		mode = "full lifecycle: download, verify, unpack, install, 5 hook scripts"
	}
	logf("deployment: %d MiB bundle, config %s, agents in %s", b.o.bundleMB, b.o.deploy, mode)
	return nil
}

// timedDeploy times one deployment to every agent, through the CLI.
func (b *bench) timedDeploy(ctx context.Context, r int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.runTimeout)
	defer cancel()
	srvCPU0 := procCPU(b.server.Process.Pid)
	t0 := time.Now()
	out, errb, err := b.cli(ctx, "deploy", "bench", "bench", "--wait", "-o", "json")
	took := time.Since(t0)
	srvCPU := procCPU(b.server.Process.Pid) - srvCPU0
	if err != nil {
		return 0, fmt.Errorf("gantry deploy: %v after %s\nstderr: %s", err, round(took), tail(errb, 2000))
	}
	var d api.Deployment
	if err := json.Unmarshal(out, &d); err != nil {
		return 0, fmt.Errorf("gantry deploy -o json: %v", err)
	}
	if d.State != api.DeploySucceeded || d.Counts[api.HostDeploySucceeded] != b.o.agents {
		return 0, fmt.Errorf("deployment %s: %s %v, want %d succeeded: %s", d.ID, d.State, d.Counts, b.o.agents, d.Error)
	}
	st := deployStats{took: took, batches: d.Batch, hooks: hookPath(d)}
	b.deploys = append(b.deploys, st)
	over := took - st.hooks
	logf("deploy %d/%d: %.3fs in %d batch(es); hooks' critical path %s; gantry overhead %s = %.1f ms per host per batch; server CPU %.2fs",
		r, b.o.runs, took.Seconds(), d.Batch, round(st.hooks), round(over), perHost(over, b.o.agents), srvCPU.Seconds())
	fmt.Printf("run %d: %.3fs\n", r, took.Seconds())
	return took, nil
}

// hookPath is the time the hooks alone would take: for each batch, the
// slowest host's total hook time.
func hookPath(d api.Deployment) time.Duration {
	slowest := map[int]time.Duration{}
	for _, h := range d.Hosts {
		var t time.Duration
		for _, ev := range h.Events {
			if hookEvents[ev.Name] && ev.StartedAt != nil && ev.FinishedAt != nil {
				t += ev.FinishedAt.Sub(*ev.StartedAt)
			}
		}
		slowest[h.Batch] = max(slowest[h.Batch], t)
	}
	var sum time.Duration
	for _, t := range slowest {
		sum += t
	}
	return sum
}

// perHost is the overhead per host per batch in ms: every host is in one
// batch, so the sum over batches of (batch overhead / batch hosts) is the
// overhead divided by the hosts when batches are equal.
func perHost(over time.Duration, hosts int) float64 {
	return float64(over.Microseconds()) / 1000 / float64(hosts)
}

// deploySummary is the last line in -deploy mode.
func (b *bench) deploySummary(best, med time.Duration, rssMiB uint64) string {
	var bestOver time.Duration = -1
	for _, s := range b.deploys {
		if o := s.took - s.hooks; bestOver < 0 || o < bestOver {
			bestOver = o
		}
	}
	batches := 0
	if len(b.deploys) > 0 {
		batches = b.deploys[0].batches
	}
	return fmt.Sprintf("deploy: %d MiB bundle to %d agents, %s (%d batches): %.2fs (median %.2fs), overhead %.1f ms per host per batch, server RSS peak %d MiB (goals: < 20 ms per host per batch; 1,000 agents AllAtOnce < 10 s)",
		b.o.bundleMB, b.o.agents, b.o.deploy, batches, best.Seconds(), med.Seconds(), perHost(bestOver, b.o.agents), rssMiB)
}
