package fleet

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
)

// flakyStore fails UpdateExecutions while fail is set.
type flakyStore struct {
	store.Store
	fail atomic.Bool
}

func (f *flakyStore) UpdateExecutions(ctx context.Context, ups []store.ExecUpdate) error {
	if f.fail.Load() {
		return errors.New("disk I/O error")
	}
	return f.Store.UpdateExecutions(ctx, ups)
}

// dispatched creates a job on every host of r and dispatches it, as when
// a server was killed mid-job: the execution of host "a" is "dispatched" in
// the store. It returns that execution's command.
func dispatched(t *testing.T, r *rig) protocol.Command {
	t.Helper()
	if _, err := r.e.CreateJob(r.ctx, api.JobSpec{Selector: "role=x", Script: "true"}); err != nil {
		t.Fatal(err)
	}
	r.e.dispatchOnce(r.ctx)
	for _, c := range r.takeSent() {
		if c.HostID == r.hosts["a"] {
			return c
		}
	}
	t.Fatal("no command for host a")
	return protocol.Command{}
}

// submit sends a final status and returns the channel its answer comes on.
func submit(e *Engine, ctx context.Context, host string, s protocol.Status) chan error {
	done := make(chan error, 1)
	e.SubmitStatus(ctx, host, s, func(err error) { done <- err })
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("status never answered")
		return nil
	}
}

func succeeded(c protocol.Command, out string) protocol.Status {
	code := 0
	return protocol.Status{ExecID: c.ID, State: api.ExecSucceeded, ExitCode: &code, Stdout: []byte(out)}
}

// A restarted engine gets a result before it has loaded its jobs: it is
// acknowledged only after it is stored, and the job then finishes
// succeeded (the kill -9 defect: it was acked as "a repeat" and lost).
func TestResultDuringStartUpIsStoredBeforeAck(t *testing.T) {
	r := newRig(t, "a")
	c := dispatched(t, r)

	// The restarted server: a new engine on the same store, not started.
	e2 := New(r.st, func(protocol.Command) error { return nil }, Config{}, slog.New(slog.DiscardHandler))
	done := submit(e2, r.ctx, c.HostID, succeeded(c, "ok\n"))
	select {
	case err := <-done:
		t.Fatalf("answered (%v) before the engine loaded its jobs and stored the result", err)
	default:
	}
	if x, _ := r.st.GetExecution(r.ctx, c.ID); x.State != api.ExecDispatched {
		t.Fatalf("state before Start: %s", x.State)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, done); err != nil {
		t.Fatalf("ack: %v", err)
	}
	// Acknowledged means stored: no waiting here.
	x, err := r.st.GetExecution(r.ctx, c.ID)
	if err != nil || x.State != api.ExecSucceeded || x.Stdout != "ok\n" {
		t.Fatalf("after the ack: %+v %v", x, err)
	}
	if j := r.job(x.JobID); j.State != api.JobFinished {
		t.Errorf("job %s, want finished", j.State)
	}
}

// A server killed after it stored a job's last result but before it marked
// the job finished: the next start finishes the job (it has nothing left
// to run, and no result will come to finish it).
func TestStartFinishesJobWhoseExecutionsAreFinal(t *testing.T) {
	r := newRig(t, "a")
	now := r.clock
	job := api.Job{ID: "j-done", Selector: "role=x", Script: "true", TimeoutSeconds: 60, State: api.JobRunning, CreatedAt: now}
	execs := []api.Execution{{ID: "x-a", JobID: job.ID, HostID: r.hosts["a"], HostName: "a", State: api.ExecSucceeded, StartedAt: &now, FinishedAt: &now}}
	if err := r.st.CreateJob(r.ctx, job, execs); err != nil {
		t.Fatal(err)
	}
	if j := r.job(job.ID); j.State != api.JobRunning {
		t.Fatalf("stored job %s, want running (as the killed server left it)", j.State)
	}
	e2 := New(r.st, func(protocol.Command) error { return nil }, Config{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if j := r.job(job.ID); j.State != api.JobFinished || j.FinishedAt == nil {
		t.Fatalf("after Start: job %s, want finished", j.State)
	}
}

// A result that could not be stored is never acknowledged as stored nor
// refused for good: the agent keeps it and sends it again.
func TestResultNotStoredIsNotAcked(t *testing.T) {
	r := newRig(t, "a")
	c := dispatched(t, r)
	fs := &flakyStore{Store: r.st}
	fs.fail.Store(true)
	e2 := New(fs, func(protocol.Command) error { return nil }, Config{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err := wait(t, submit(e2, r.ctx, c.HostID, succeeded(c, "ok\n")))
	if err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("store failure answered %v: want a retryable error", err)
	}
	if x, _ := r.st.GetExecution(r.ctx, c.ID); api.ExecDone(x.State) {
		t.Fatalf("state %s after a failed store", x.State)
	}
	fs.fail.Store(false)
	if err := wait(t, submit(e2, r.ctx, c.HostID, succeeded(c, "ok\n"))); err != nil {
		t.Fatalf("resend: %v", err)
	}
	if x, _ := r.st.GetExecution(r.ctx, c.ID); x.State != api.ExecSucceeded {
		t.Fatalf("after the resend: %s", x.State)
	}
}

// The result of an execution the engine does not track (its job was
// stored by another engine after this one loaded) is stored, and its job
// is tracked and finished.
func TestResultOfUntrackedExecutionIsStoredAndFinishesJob(t *testing.T) {
	r := newRig(t, "a", "b")
	now := r.clock
	job := api.Job{ID: "j-untracked", Selector: "role=x", Script: "true", TimeoutSeconds: 60, State: api.JobRunning, CreatedAt: now}
	execs := []api.Execution{
		{ID: "x-a", JobID: job.ID, HostID: r.hosts["a"], HostName: "a", State: api.ExecDispatched, DispatchedAt: &now},
		{ID: "x-b", JobID: job.ID, HostID: r.hosts["b"], HostName: "b", State: api.ExecDispatched, DispatchedAt: &now},
	}
	if err := r.st.CreateJob(r.ctx, job, execs); err != nil {
		t.Fatal(err)
	}
	ca := protocol.Command{ID: "x-a", HostID: r.hosts["a"]}
	cb := protocol.Command{ID: "x-b", HostID: r.hosts["b"]}
	if err := wait(t, submit(r.e, r.ctx, ca.HostID, succeeded(ca, "a\n"))); err != nil {
		t.Fatal(err)
	}
	if x, _ := r.st.GetExecution(r.ctx, "x-a"); x.State != api.ExecSucceeded || x.Stdout != "a\n" {
		t.Fatalf("x-a: %s %q", x.State, x.Stdout)
	}
	if j := r.job(job.ID); j.State != api.JobRunning {
		t.Fatalf("job %s with one host left", j.State)
	}
	if err := wait(t, submit(r.e, r.ctx, cb.HostID, succeeded(cb, "b\n"))); err != nil {
		t.Fatal(err)
	}
	if j := r.job(job.ID); j.State != api.JobFinished || j.Counts[api.ExecSucceeded] != 2 {
		t.Fatalf("job %s %v, want finished with 2 succeeded", j.State, j.Counts)
	}
}

// Repeats of a stored result are acknowledged; another host's report, an
// unknown execution and an invalid state are refused for good; nothing of
// them is stored.
func TestResultRefusalsAndRepeats(t *testing.T) {
	r := newRig(t, "a", "b")
	c := dispatched(t, r)
	if err := wait(t, submit(r.e, r.ctx, c.HostID, succeeded(c, "first\n"))); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		host    string
		status  protocol.Status
		refused bool
	}{
		{"repeat of the stored result", c.HostID, succeeded(c, "second\n"), false},
		{"another host's execution", r.hosts["b"], succeeded(c, "forged\n"), true},
		{"unknown execution", c.HostID, succeeded(protocol.Command{ID: "x-nope"}, ""), true},
		{"invalid state", c.HostID, protocol.Status{ExecID: c.ID, State: api.ExecPending}, true},
		{"result over its cap", c.HostID, protocol.Status{ExecID: c.ID, State: api.ExecFailed, Result: []byte(`"` + strings.Repeat("x", protocol.MaxResultBytes) + `"`)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := wait(t, submit(r.e, r.ctx, tc.host, tc.status))
			if tc.refused != errors.Is(err, ErrRefused) || (!tc.refused && err != nil) {
				t.Errorf("answer %v, want refused=%v", err, tc.refused)
			}
			if x, _ := r.st.GetExecution(r.ctx, c.ID); x.State != api.ExecSucceeded || x.Stdout != "first\n" {
				t.Errorf("stored: %s %q", x.State, x.Stdout)
			}
		})
	}
}

// Stored output is held to the output cap (plus the agent's marker), and
// marked truncated when the server cut it.
func TestResultOutputIsCapped(t *testing.T) {
	r := newRig(t, "a")
	c := dispatched(t, r)
	huge := strings.Repeat("y", r.e.cfg.OutputCap+protocol.OutputSlack+1)
	if err := wait(t, submit(r.e, r.ctx, c.HostID, succeeded(c, huge))); err != nil {
		t.Fatal(err)
	}
	x, _ := r.st.GetExecution(r.ctx, c.ID)
	if len(x.Stdout) != r.e.cfg.OutputCap || !x.StdoutTruncated {
		t.Errorf("stored %d bytes truncated=%v, want %d and truncated", len(x.Stdout), x.StdoutTruncated, r.e.cfg.OutputCap)
	}
}
