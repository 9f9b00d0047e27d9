package fleet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// Limits on a job request (the ranges are validate.JobTimeout,
// validate.JobConcurrency and validate.ScriptSize).
const (
	// MaxScriptBytes is the largest script a job may carry.
	MaxScriptBytes = 256 << 10
	// DefaultTimeout applies when a job names none.
	DefaultTimeout = 10 * time.Minute
	// MaxTimeout is the longest timeout a job may ask for.
	MaxTimeout = 24 * time.Hour
)

// ValidateSpec checks a job request and fills defaults. Every number is
// compared with its range as sent, before it becomes a duration.
func ValidateSpec(spec *api.JobSpec) error {
	if spec.Script == "" {
		return fmt.Errorf("%w: script is empty", ErrInvalid)
	}
	if len(spec.Script) > MaxScriptBytes {
		return fmt.Errorf("%w: script is %d bytes; the limit is %d bytes (256 KiB): copy large files with a bundle instead", ErrInvalid, len(spec.Script), MaxScriptBytes)
	}
	for _, err := range []error{
		validate.JobTimeout.Check(int64(spec.TimeoutSeconds)),
		validate.JobConcurrency.Check(int64(spec.Concurrency)),
		validate.UserName("user", spec.User),
	} {
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if spec.TimeoutSeconds == 0 {
		spec.TimeoutSeconds = int(DefaultTimeout / time.Second)
	}
	if _, err := selector.Parse(spec.Selector); err != nil {
		return fmt.Errorf("%w: selector: %v", ErrInvalid, err)
	}
	return nil
}

// CreateJob persists a job with one execution per matching host, then
// dispatches it. Hosts that are offline now are accounted as offline at once.
func (e *Engine) CreateJob(ctx context.Context, spec api.JobSpec) (api.Job, error) {
	return e.createJob(ctx, spec, "", "", false)
}

// createJob makes a job; jobID may be preset (schedules record it first).
func (e *Engine) createJob(ctx context.Context, spec api.JobSpec, scheduleID, jobID string, allowEmpty bool) (api.Job, error) {
	if jobID == "" {
		jobID = ids.New("j")
	}
	if err := ValidateSpec(&spec); err != nil {
		return api.Job{}, err
	}
	sel, _ := selector.Parse(spec.Selector)
	hosts, err := e.st.ListHosts(ctx, false)
	if err != nil {
		return api.Job{}, fmt.Errorf("list hosts: %w", err)
	}
	now := e.now().UTC()
	job := api.Job{
		ID: jobID, Selector: spec.Selector, Script: spec.Script, Concurrency: spec.Concurrency,
		TimeoutSeconds: spec.TimeoutSeconds, User: spec.User, ScheduleID: scheduleID,
		State: api.JobRunning, CreatedAt: now,
	}
	var execs []api.Execution
	for _, h := range hosts {
		if !sel.Matches(h.Labels) {
			continue
		}
		x := api.Execution{ID: ids.New("x"), JobID: job.ID, HostID: h.ID, HostName: h.Name, State: api.ExecPending}
		if !e.HostOnline(h.ID) {
			x.State, x.Error, x.FinishedAt = api.ExecOffline, "host was offline when the job started", &now
		}
		execs = append(execs, x)
	}
	if len(execs) == 0 && !allowEmpty {
		return api.Job{}, fmt.Errorf("%w %q (hosts enrolled: %d). List them with their labels: gantry hosts ls", ErrNoHosts, spec.Selector, len(hosts))
	}
	sortExecs(execs)
	if err := e.st.CreateJob(ctx, job, execs); err != nil {
		return api.Job{}, fmt.Errorf("store job: %w", err)
	}
	e.track(job, execs)
	e.log.Info("job created", "job", job.ID, "hosts", len(execs), "selector", spec.Selector, "schedule", scheduleID)
	e.poke()
	job.Executions = execs
	job.Counts = countStates(execs)
	if e.maybeFinish(ctx, job.ID) {
		job.State = api.JobFinished
	}
	return job, nil
}

// CreateInternalJob stores and dispatches a job made by another engine (a
// deployment's batch, Kind deploy): its id and its executions' ids and
// payloads are chosen by the caller, so that calling it again after a crash
// is harmless. If a job with that id exists, it is returned as stored (and
// resumed if it was not tracked). Executions of hosts offline now are
// accounted as offline at once.
func (e *Engine) CreateInternalJob(ctx context.Context, job api.Job, execs []api.Execution) (api.Job, error) {
	if job.Kind == "" || job.Kind == api.JobKindExec {
		return api.Job{}, fmt.Errorf("%w: internal jobs need a kind other than exec", ErrInvalid)
	}
	now := e.now().UTC()
	job.State, job.CreatedAt = api.JobRunning, now
	if job.TimeoutSeconds <= 0 {
		job.TimeoutSeconds = int(MaxTimeout / time.Second)
	}
	for i := range execs {
		x := &execs[i]
		x.JobID, x.State = job.ID, api.ExecPending
		if !e.HostOnline(x.HostID) {
			x.State, x.Error, x.FinishedAt = api.ExecOffline, "host was offline when its batch started", &now
		}
	}
	sortExecs(execs)
	err := e.st.CreateJob(ctx, job, execs)
	if errors.Is(err, store.ErrConflict) {
		stored, gerr := e.st.GetJob(ctx, job.ID)
		if gerr != nil {
			return api.Job{}, gerr
		}
		if stored.State == api.JobRunning && e.trackNew(stored, stored.Executions) {
			e.poke()
		}
		return stored, nil
	}
	if err != nil {
		return api.Job{}, fmt.Errorf("store job: %w", err)
	}
	e.track(job, execs)
	e.poke()
	job.Executions = execs
	if e.maybeFinish(ctx, job.ID) {
		job.State = api.JobFinished
	}
	for _, x := range execs {
		if api.ExecDone(x.State) && e.cfg.OnExecDone != nil {
			e.cfg.OnExecDone(job.ID, x.ID)
		}
	}
	return job, nil
}

func countStates(xs []api.Execution) map[string]int {
	c := map[string]int{}
	for _, x := range xs {
		c[x.State]++
	}
	return c
}

// dispatchLoop sends pending executions (within each job's concurrency),
// resends unconfirmed ones and gives up on silent ones.
func (e *Engine) dispatchLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
		e.dispatchOnce(ctx)
	}
}

// dispatchOnce is one pass of the dispatcher.
func (e *Engine) dispatchOnce(ctx context.Context) {
	now := e.now().UTC()
	var sends []protocol.Command
	var ups []store.ExecUpdate
	e.mu.Lock()
	for _, js := range e.jobs {
		inflight := 0
		for _, id := range js.order {
			if s := e.execs[id].state; s == api.ExecDispatched || s == api.ExecRunning {
				inflight++
			}
		}
		for _, id := range js.order {
			x := e.execs[id]
			online := e.hosts[x.hostID] != nil && e.hosts[x.hostID].online
			switch x.state {
			case api.ExecPending:
				if !online {
					ups = append(ups, final(x.id, api.ExecOffline, "host was offline when its turn came", now))
					continue
				}
				if js.job.Concurrency > 0 && inflight >= js.job.Concurrency {
					continue
				}
				inflight++
				x.state, x.dispatchedAt, x.lastSent = api.ExecDispatched, now, now
				ups = append(ups, store.ExecUpdate{ID: x.id, State: api.ExecDispatched, DispatchedAt: &now})
				sends = append(sends, e.command(x, now))
			case api.ExecDispatched:
				switch {
				case now.Sub(x.dispatchedAt) > e.cfg.CommandTTL:
					state, msg := api.ExecUnknown, "the agent never confirmed the command"
					if !online {
						state, msg = api.ExecOffline, "host went offline before starting the command"
					}
					ups = append(ups, final(x.id, state, msg, now))
				case online && now.Sub(x.lastSent) >= e.cfg.Resend:
					x.lastSent = now
					sends = append(sends, e.command(x, now))
				}
			case api.ExecRunning:
				switch p := e.hosts[x.hostID]; {
				case now.Sub(x.startedAt) > x.timeout+e.cfg.ResultGrace:
					ups = append(ups, final(x.id, api.ExecUnknown, fmt.Sprintf("no result from the host within its timeout (%s) plus %s", x.timeout, e.cfg.ResultGrace), now))
				case p != nil && !p.online && now.Sub(p.lastSeen) > e.cfg.ResultGrace:
					ups = append(ups, final(x.id, api.ExecUnknown, fmt.Sprintf("the host went offline while running the command and was not back within %s", e.cfg.ResultGrace), now))
				}
			}
		}
	}
	e.mu.Unlock()
	if len(ups) > 0 {
		// Persist "dispatched" before sending: after a crash the command is
		// sent again under the same id rather than lost.
		if err := e.apply(ctx, ups); err != nil {
			e.log.Error("dispatch: store executions", "err", err)
			return
		}
	}
	e.sendAll(sends)
}

// sendAll signs and publishes commands, in parallel when there are many
// (signing is the costly part: ~60 µs each).
func (e *Engine) sendAll(cmds []protocol.Command) {
	workers := runtime.GOMAXPROCS(0)
	if len(cmds) < 64 || workers < 2 {
		workers = 1
	}
	var wg sync.WaitGroup
	next := make(chan protocol.Command)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if err := e.send(c); err != nil {
					e.log.Warn("dispatch: send command (will resend)", "exec", c.ID, "host", c.HostID, "err", err)
				}
			}
		}()
	}
	for _, c := range cmds {
		next <- c
	}
	close(next)
	wg.Wait()
}

// command builds the (unsigned) command for an execution; a resend gets a
// new expiry but the same id.
func (e *Engine) command(x *execState, now time.Time) protocol.Command {
	c := protocol.Command{ID: x.id, HostID: x.hostID, IssuedAt: now, ExpiresAt: now.Add(e.cfg.CommandTTL)}
	if x.kind == api.JobKindDeploy {
		c.Kind, c.Deploy = protocol.CmdDeploy, x.deploy
		return c
	}
	c.Kind = protocol.CmdExec
	c.Exec = &protocol.ExecCommand{JobID: x.jobID, Script: x.script, TimeoutSeconds: int(x.timeout / time.Second), User: x.user, OutputCap: e.cfg.OutputCap}
	if x.kind == api.JobKindLifecycle && x.exec != nil {
		// The job's script with this host's environment and context.
		c.Exec.Env, c.Exec.Context = x.exec.Env, x.exec.Context
	}
	return c
}

func final(id, state, msg string, now time.Time) store.ExecUpdate {
	return store.ExecUpdate{ID: id, State: state, Error: msg, FinishedAt: &now}
}

// HandleStatus takes an agent's status report for one of its executions and
// returns once it is stored. Reports for executions of other hosts are
// refused (ErrRefused).
func (e *Engine) HandleStatus(ctx context.Context, hostID string, s protocol.Status) error {
	done := make(chan error, 1)
	e.SubmitStatus(ctx, hostID, s, func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SubmitStatus is HandleStatus without waiting: done is called exactly once,
// with nil once the report is stored or recognised as already stored (the
// caller acknowledges it to the agent then), with an error wrapping
// ErrRefused if it will never be taken (another host's or an unknown
// execution, an invalid state, an over-size result), or with another error
// if it could not be stored now (the agent must send it again; never
// acknowledge it). It never starts a goroutine per report.
//
// It may be called before Start: reports wait in a queue that the result
// loop takes only after the engine has loaded its unfinished jobs, and the
// ownership of an execution is decided there, from memory or from the
// store. A report is therefore never judged against a half-loaded engine.
func (e *Engine) SubmitStatus(ctx context.Context, hostID string, s protocol.Status, done func(error)) {
	if s.State != api.ExecRunning && !api.ExecDone(s.State) {
		done(fmt.Errorf("%w: invalid state %q", ErrRefused, protocol.Clip(s.State, 32)))
		return
	}
	if len(s.Result) > protocol.MaxResultBytes {
		done(fmt.Errorf("%w: result of %d bytes is over its cap of %d bytes", ErrRefused, len(s.Result), protocol.MaxResultBytes))
		return
	}
	up := store.ExecUpdate{ID: s.ExecID, State: s.State, ExitCode: s.ExitCode, Error: protocol.Clip(s.Error, protocol.MaxStatusError),
		StdoutTruncated: s.StdoutTruncated, StderrTruncated: s.StderrTruncated, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt,
		Result: s.Result}
	if api.ExecDone(s.State) {
		// The agent keeps OutputCap bytes (plus its truncation marker);
		// a host may send more, the store keeps no more than that.
		out, outCut := capOutput(s.Stdout, e.cfg.OutputCap)
		errs, errCut := capOutput(s.Stderr, e.cfg.OutputCap)
		up.Stdout, up.Stderr = &out, &errs
		up.StdoutTruncated, up.StderrTruncated = up.StdoutTruncated || outCut, up.StderrTruncated || errCut
	}
	select {
	case e.results <- result{host: hostID, up: up, done: done}:
	case <-ctx.Done():
		done(ctx.Err())
	}
}

// capOutput returns a stored output stream: at most limit bytes plus the
// agent's truncation marker, and whether it was cut here.
func capOutput(b []byte, limit int) (string, bool) {
	if len(b) <= limit+protocol.OutputSlack {
		return string(b), false
	}
	return protocol.Clip(string(b[:limit]), limit), true
}

// resultLoop stores status reports in batches. It runs only once Start has
// loaded the unfinished jobs.
func (e *Engine) resultLoop(ctx context.Context) {
	for {
		var batch []result
		select {
		case <-ctx.Done():
			return
		case r := <-e.results:
			batch = append(batch, r)
		}
	more:
		for len(batch) < 5000 {
			select {
			case r := <-e.results:
				batch = append(batch, r)
			default:
				break more
			}
		}
		e.storeResults(ctx, batch)
	}
}

// storeResults checks who owns each report's execution, stores the batch,
// and answers every report once.
func (e *Engine) storeResults(ctx context.Context, batch []result) {
	keep := batch[:0]
	adopt := map[string]bool{} // jobs of stored executions not tracked in memory
	for _, r := range batch {
		untracked, err := e.owns(ctx, r)
		switch {
		case errors.Is(err, errStored):
			r.done(nil) // a repeat of a result already stored
		case err != nil:
			r.done(err)
		default:
			keep = append(keep, r)
			if untracked != "" {
				adopt[untracked] = true
			}
		}
	}
	if len(keep) == 0 {
		return
	}
	ups := make([]store.ExecUpdate, len(keep))
	for i, r := range keep {
		ups[i] = r.up
	}
	err := e.apply(ctx, ups)
	if err == nil {
		for jobID := range adopt {
			e.adopt(ctx, jobID)
		}
	}
	for _, r := range keep {
		r.done(err)
	}
}

// errStored marks a report whose execution's final state is already stored.
var errStored = errors.New("already stored")

// owns checks that r's execution belongs to r's host. For an execution not
// tracked in memory it asks the store: errStored if its final state is
// stored already, else the id of its job, to be tracked once the report is
// stored (the update is stored either way: never acknowledged and dropped).
func (e *Engine) owns(ctx context.Context, r result) (untrackedJob string, err error) {
	e.mu.Lock()
	x := e.execs[r.up.ID]
	owner := ""
	if x != nil {
		owner = x.hostID
	}
	e.mu.Unlock()
	if x == nil {
		stored, err := e.st.GetExecution(ctx, r.up.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("%w: execution %s: %v", ErrRefused, r.up.ID, err)
		case err != nil:
			return "", fmt.Errorf("execution %s: %w", r.up.ID, err)
		}
		owner = stored.HostID
		if owner == r.host && api.ExecDone(stored.State) {
			return "", errStored
		}
		untrackedJob = stored.JobID
	}
	if owner != r.host {
		e.log.Warn("refused status for another host's execution", "host", r.host, "exec", r.up.ID)
		return "", fmt.Errorf("%w: execution %s does not belong to host %s", ErrRefused, r.up.ID, r.host)
	}
	return untrackedJob, nil
}

// adopt tracks a running job that the engine did not have in memory (one of
// its executions was just stored) and finishes it if it is complete.
func (e *Engine) adopt(ctx context.Context, jobID string) {
	j, err := e.st.GetJob(ctx, jobID)
	if err != nil {
		e.log.Error("load job of an untracked execution", "job", jobID, "err", err)
		return
	}
	if j.State != api.JobRunning || !e.trackNew(j, j.Executions) {
		return
	}
	e.log.Info("tracking a job that was not in memory", "job", jobID)
	e.maybeFinish(ctx, jobID)
	e.poke()
}

// apply stores execution updates, mirrors them in memory, tells watchers
// and finishes jobs whose hosts are all accounted for.
func (e *Engine) apply(ctx context.Context, ups []store.ExecUpdate) error {
	if err := e.st.UpdateExecutions(ctx, ups); err != nil {
		return err
	}
	touched := map[string]bool{}
	var events []api.JobEvent
	var internalDone [][2]string // job, exec
	e.mu.Lock()
	for _, u := range ups {
		x := e.execs[u.ID]
		if x == nil || api.ExecDone(x.state) {
			continue
		}
		x.state = u.State
		if api.ExecDone(u.State) {
			if js := e.jobs[x.jobID]; js != nil {
				js.remaining--
			}
			if x.kind != api.JobKindExec && x.kind != "" {
				internalDone = append(internalDone, [2]string{x.jobID, x.id})
			}
		}
		if u.StartedAt != nil {
			x.startedAt = *u.StartedAt
		} else if u.State == api.ExecRunning {
			x.startedAt = e.now()
		}
		touched[x.jobID] = true
		if u.State == api.ExecDispatched {
			continue // not worth an event
		}
		ev := api.Execution{ID: x.id, JobID: x.jobID, HostID: x.hostID, HostName: x.hostName, State: u.State,
			ExitCode: u.ExitCode, Error: u.Error, StartedAt: u.StartedAt, FinishedAt: u.FinishedAt}
		events = append(events, api.JobEvent{Type: "state", HostID: x.hostID, HostName: x.hostName, Execution: &ev})
	}
	e.mu.Unlock()
	byJob := map[string][]api.JobEvent{}
	for _, ev := range events {
		byJob[ev.Execution.JobID] = append(byJob[ev.Execution.JobID], ev)
	}
	for id, evs := range byJob {
		e.publish(id, evs...)
	}
	for id := range touched {
		e.maybeFinish(ctx, id)
	}
	if e.cfg.OnExecDone != nil {
		for _, d := range internalDone {
			e.cfg.OnExecDone(d[0], d[1])
		}
	}
	e.poke()
	return nil
}

// maybeFinish finishes a job when every execution is final.
func (e *Engine) maybeFinish(ctx context.Context, jobID string) bool {
	e.mu.Lock()
	js := e.jobs[jobID]
	if js == nil || js.remaining > 0 {
		e.mu.Unlock()
		return false
	}
	e.mu.Unlock()
	if err := e.st.FinishJob(ctx, jobID, e.now().UTC()); err != nil {
		e.log.Error("finish job", "job", jobID, "err", err)
		return false
	}
	e.mu.Lock()
	for _, id := range js.order {
		delete(e.execs, id)
	}
	delete(e.jobs, jobID)
	e.mu.Unlock()
	job, err := e.st.GetJob(ctx, jobID)
	if err != nil {
		e.log.Error("load finished job", "job", jobID, "err", err)
		return true
	}
	job.Counts = countStates(job.Executions)
	e.log.Info("job finished", "job", jobID, "counts", job.Counts)
	e.publish(jobID, api.JobEvent{Type: "done", Job: &job})
	e.closeWatchers(jobID)
	return true
}

// HandleOutput forwards a live output chunk to the job's watchers.
func (e *Engine) HandleOutput(hostID string, o protocol.Output) {
	e.mu.Lock()
	x := e.execs[o.ExecID]
	ok := x != nil && x.hostID == hostID
	var name, jobID string
	if ok {
		name, jobID = x.hostName, x.jobID
	}
	e.mu.Unlock()
	if !ok {
		return
	}
	e.publish(jobID, api.JobEvent{Type: "output", HostID: hostID, HostName: name, Stream: o.Stream, Offset: o.Offset, Data: string(o.Data)})
}
