package agent

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/agent/executor"
	"github.com/gantry-dev/gantry/internal/agent/journal"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/protocol"
)

func helloMsg(f api.Facts, now time.Time) protocol.Hello {
	return protocol.Hello{Facts: f, StartedAt: now.UTC()}
}

func (a *Agent) heartbeatMsg(seq uint64) protocol.Heartbeat {
	return protocol.Heartbeat{Seq: seq, Time: a.clk.now().UTC(), Clock: a.clk.report()}
}

// onCommand verifies a command and starts it at most once.
//
// A command refused as expired, once its signature and addressee hold, is
// answered with a final failed status naming the host's clock skew (see
// clock.go), so that its job ends at once with the reason; other refusals
// (a forgery, another host's command) get no answer.
func (a *Agent) onCommand(m *nats.Msg) {
	cmd, err := a.ver.Verify(m)
	if errors.Is(err, bus.ErrExpired) && a.clk.stale() && a.nc != nil && a.hello(a.nc, 2*time.Second) {
		// The skew may be unknown or stale (the clock was stepped): check
		// again against a fresh measurement.
		cmd, err = a.ver.Verify(m)
	}
	refusal := ""
	if errors.Is(err, bus.ErrExpired) && cmd.Kind != protocol.CmdCancel {
		refusal, err = "refused: "+err.Error(), nil
		a.log.Warn("refused command", "id", cmd.ID, "err", refusal)
	}
	if err != nil {
		a.log.Warn("refused command", "id", cmd.ID, "err", err)
		return
	}
	switch {
	case cmd.Kind == protocol.CmdLB && cmd.LB != nil:
		// Idempotent, answered on the reply subject, not journaled (lb.go).
		a.onLB(m, cmd, refusal)
		return
	case cmd.Kind == protocol.CmdCancel && cmd.Cancel != nil:
		if cancel, ok := a.running.Load(cmd.Cancel.ExecID); ok {
			a.log.Warn("canceling command on the server's order", "id", cmd.Cancel.ExecID)
			cancel.(context.CancelFunc)()
		}
		return
	case cmd.Kind == protocol.CmdExec && cmd.Exec != nil, cmd.Kind == protocol.CmdDeploy && cmd.Deploy != nil:
	default:
		a.log.Warn("refused command of unknown kind", "id", cmd.ID, "kind", cmd.Kind)
		return
	}
	state, rec, err := a.jnl.Begin(cmd.ID)
	if err != nil {
		a.log.Error("journal: cannot record command; not running it", "id", cmd.ID, "err", err)
		return
	}
	switch state {
	case journal.New:
		switch {
		case refusal != "":
			go a.finish(cmd, refusedStatus(cmd, refusal, a.clk.now()))
		case cmd.Kind == protocol.CmdDeploy:
			a.log.Info("running command", "id", cmd.ID, "kind", cmd.Kind)
			go a.deploy(cmd)
		default:
			a.log.Info("running command", "id", cmd.ID, "kind", cmd.Kind)
			go a.execute(cmd)
		}
	case journal.Running:
		if rec, ok := a.finishing.Load(cmd.ID); ok {
			// Finished, its record still being written: answer with it.
			go a.send(rec.(journal.Record))
			return
		}
		if again, rec, err := a.jnl.Begin(cmd.ID); err == nil && again == journal.Done {
			go a.deliver(*rec) // finished in between
			return
		}
		// Repeat while it runs: confirm again that it started.
		a.sendRunning(cmd, time.Now().UTC())
	case journal.Done:
		a.log.Info("repeat of a finished command: resending its result", "id", cmd.ID)
		go a.deliver(*rec)
	case journal.Interrupted:
		// Reported as unknown at start-up; never run again.
	}
}

// refusedStatus is the final status of a command the agent refused (for
// expiry) without running it.
func refusedStatus(cmd protocol.Command, reason string, now time.Time) protocol.Status {
	now = now.UTC()
	st := protocol.Status{ExecID: cmd.ID, JobID: jobID(cmd), State: api.ExecFailed, Error: reason, FinishedAt: &now}
	if cmd.Kind == protocol.CmdDeploy {
		st.Result, _ = json.Marshal(protocol.DeployResult{Error: reason, Events: []api.LifecycleEvent{}})
	}
	return st
}

// jobID is the job a command belongs to.
func jobID(cmd protocol.Command) string {
	switch {
	case cmd.Exec != nil:
		return cmd.Exec.JobID
	case cmd.Deploy != nil:
		return cmd.Deploy.JobID
	}
	return ""
}

func (a *Agent) sendRunning(cmd protocol.Command, started time.Time) {
	b, _ := json.Marshal(protocol.Status{ExecID: cmd.ID, JobID: jobID(cmd), State: api.ExecRunning, StartedAt: &started})
	// Fire and forget: the final status is the one that must arrive, and
	// a resent command gets this confirmation again.
	_ = a.nc.Publish(bus.AgentSubject(a.id.HostID, bus.KindStatus), b)
}

// confirmStart makes a command's start durable against a machine crash
// while it starts, and confirms it to the server only then: a start the
// server has seen is never sent again, so it must survive a reboot here.
func (a *Agent) confirmStart(cmd protocol.Command, started time.Time) {
	go func() {
		if err := a.jnl.Sync(); err != nil {
			a.log.Warn("journal: sync", "err", err)
		}
		a.sendRunning(cmd, started)
	}()
}

// execute runs an exec command and records its result.
func (a *Agent) execute(cmd protocol.Command) {
	started := time.Now().UTC()
	a.confirmStart(cmd, started)
	x := cmd.Exec
	var seq uint64
	offsets := map[string]int64{} // onOutput calls are serialised
	onOut := func(stream string, p []byte) {
		seq++
		b, _ := json.Marshal(protocol.Output{ExecID: cmd.ID, JobID: x.JobID, Stream: stream, Seq: seq, Offset: offsets[stream], Data: p})
		offsets[stream] += int64(len(p))
		_ = a.nc.Publish(bus.AgentSubject(a.id.HostID, bus.KindOutput), b)
	}
	var res executor.Result
	env, cleanup, err := a.scriptEnv(cmd)
	switch {
	case a.cfg.NoExec:
		res = executor.Result{Started: started, Finished: time.Now()}
	case err != nil:
		res = executor.Result{ExitCode: -1, Err: err.Error(), Started: started, Finished: time.Now()}
	default:
		res = executor.Run(context.Background(), executor.Spec{
			Script:    x.Script,
			Timeout:   time.Duration(x.TimeoutSeconds) * time.Second,
			User:      x.User,
			OutputCap: x.OutputCap,
			Env:       env,
		}, onOut)
	}
	cleanup()
	a.finish(cmd, statusOf(cmd, res))
}

// finish records a command's final status in the journal and sends it.
func (a *Agent) finish(cmd protocol.Command, st protocol.Status) {
	payload, _ := json.Marshal(st)
	rec := journal.Record{ID: cmd.ID, Payload: payload, FinishedAt: time.Now().UTC()}
	a.log.Info("command finished", "id", cmd.ID, "state", st.State)
	// Record the result and send it at the same time; it counts as
	// delivered only once both are done. A crash in between is harmless: a
	// stored result is final on the server, and an unrecorded one turns
	// into "unknown" here, which the server then ignores.
	recorded := make(chan error, 1)
	a.finishing.Store(cmd.ID, rec)
	go func() {
		err := a.jnl.Finish(cmd.ID, rec)
		a.finishing.Delete(cmd.ID)
		recorded <- err
	}()
	stored := a.send(rec)
	if err := <-recorded; err != nil {
		a.log.Error("journal: cannot record result", "id", cmd.ID, "err", err)
		return
	}
	if stored {
		a.ack(rec.ID)
	}
}

// statusOf turns an executor result into the final status.
func statusOf(cmd protocol.Command, r executor.Result) protocol.Status {
	started, finished := r.Started.UTC(), r.Finished.UTC()
	st := protocol.Status{ExecID: cmd.ID, JobID: cmd.Exec.JobID, Stdout: r.Stdout, Stderr: r.Stderr,
		StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated, Error: r.Err}
	if !r.Started.IsZero() {
		st.StartedAt = &started
	}
	if r.Finished.IsZero() {
		finished = time.Now().UTC()
	}
	st.FinishedAt = &finished
	code := r.ExitCode
	switch {
	case r.Err != "":
		st.State = api.ExecFailed
	case r.TimedOut:
		st.State = api.ExecTimedOut
		st.Error = "killed at its timeout of " + (time.Duration(cmd.Exec.TimeoutSeconds) * time.Second).String()
		st.ExitCode = &code
	case code == 0:
		st.State = api.ExecSucceeded
		st.ExitCode = &code
	default:
		st.State = api.ExecFailed
		st.ExitCode = &code
	}
	return st
}

// reportInterrupted turns commands a previous process died running into
// "unknown" results in the outbox.
func (a *Agent) reportInterrupted() {
	ids := a.jnl.Interrupted()
	if n := killLeftovers(ids); n > 0 {
		a.log.Warn("killed processes left by commands interrupted when the agent stopped", "processes", n)
	}
	for _, id := range ids {
		now := time.Now().UTC()
		b, _ := json.Marshal(protocol.Status{ExecID: id, State: api.ExecUnknown, Error: "the agent stopped while this command ran; it was not run again", FinishedAt: &now})
		if err := a.jnl.Finish(id, journal.Record{ID: id, Payload: b, FinishedAt: now}); err != nil {
			a.log.Error("journal: record interrupted command", "id", id, "err", err)
		}
	}
}

// deliver sends one recorded final status and marks it acknowledged once
// the server has stored it. On failure it stays in the outbox.
func (a *Agent) deliver(rec journal.Record) bool {
	if !a.send(rec) {
		return false
	}
	a.ack(rec.ID)
	return true
}

// send sends a final status and reports whether the server is done with it
// (stored it, or refused it for good).
func (a *Agent) send(rec journal.Record) bool {
	reply, err := a.nc.Request(bus.AgentSubject(a.id.HostID, bus.KindStatus), rec.Payload, 5*time.Second)
	if err != nil {
		return false
	}
	var ack protocol.Ack
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return false
	}
	if !ack.OK {
		// The server will never take it (e.g. unknown execution): drop it
		// rather than retry forever.
		a.log.Warn("server refused result", "id", rec.ID, "err", ack.Error)
	}
	return true
}

func (a *Agent) ack(id string) {
	if err := a.jnl.Ack(id); err != nil {
		a.log.Warn("journal: ack", "id", id, "err", err)
	}
}

// outboxLoop resends unacknowledged results every 2 s and on reconnect, and
// prunes the journal hourly.
func (a *Agent) outboxLoop(ctx context.Context) {
	defer a.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	lastGC := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.wake:
		}
		if a.nc.IsClosed() {
			return
		}
		if !a.nc.IsConnected() {
			continue
		}
		recs, err := a.jnl.Unacked()
		if err != nil {
			a.log.Warn("journal: outbox", "err", err)
		}
		for _, r := range recs {
			if !a.deliver(r) {
				break // server unreachable: try later
			}
		}
		if time.Since(lastGC) > time.Hour {
			lastGC = time.Now()
			if err := a.jnl.GC(7 * 24 * time.Hour); err != nil {
				a.log.Warn("journal: gc", "err", err)
			}
		}
	}
}
