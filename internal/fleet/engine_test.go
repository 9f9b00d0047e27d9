package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

// rig is an engine on a real SQLite store with a controlled clock and a
// sender that records commands instead of publishing them.
type rig struct {
	t     *testing.T
	e     *Engine
	st    store.Store
	clock time.Time
	mu    sync.Mutex
	sent  []protocol.Command
	hosts map[string]string // name -> id
	ctx   context.Context
}

func newRig(t *testing.T, hosts ...string) *rig {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "gantry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &rig{t: t, st: st, clock: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), hosts: map[string]string{}, ctx: ctx}
	r.e = New(st, func(c protocol.Command) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sent = append(r.sent, c)
		return nil
	}, Config{}, slog.New(slog.DiscardHandler))
	r.e.now = func() time.Time { return r.clock }
	if err := st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: "tok", JoinToken: api.JoinToken{ID: "jt", ExpiresAt: r.clock.Add(time.Hour), CreatedAt: r.clock}}); err != nil {
		t.Fatal(err)
	}
	for i, name := range hosts {
		id := fmt.Sprintf("h-%d", i)
		h := store.HostRecord{NKey: "U" + id, Host: api.Host{ID: id, Name: name, Labels: map[string]string{"role": "x"}, Status: api.HostOffline}}
		if err := st.EnrollHost(ctx, "tok", r.clock, h); err != nil {
			t.Fatal(err)
		}
		r.hosts[name] = id
		r.e.HandleHeartbeat(ctx, id)
	}
	go r.e.resultLoop(ctx)
	return r
}

func (r *rig) advance(d time.Duration) { r.clock = r.clock.Add(d) }

func (r *rig) takeSent() []protocol.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func (r *rig) finish(c protocol.Command, state string) {
	r.t.Helper()
	code := 0
	if state != api.ExecSucceeded {
		code = 1
	}
	if err := r.e.HandleStatus(r.ctx, c.HostID, protocol.Status{ExecID: c.ID, State: state, ExitCode: &code}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) job(id string) api.Job {
	r.t.Helper()
	j, err := r.st.GetJob(r.ctx, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return j
}

func TestConcurrencyLimitsInflight(t *testing.T) {
	r := newRig(t, "a", "b", "c", "d", "e")
	job, err := r.e.CreateJob(r.ctx, api.JobSpec{Selector: "role=x", Script: "true", Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.e.dispatchOnce(r.ctx)
	first := r.takeSent()
	if len(first) != 2 {
		t.Fatalf("concurrency 2: %d commands sent", len(first))
	}
	r.e.dispatchOnce(r.ctx)
	if n := len(r.takeSent()); n != 0 {
		t.Fatalf("sent %d more while 2 are in flight", n)
	}
	r.finish(first[0], api.ExecSucceeded)
	r.e.dispatchOnce(r.ctx)
	if n := len(r.takeSent()); n != 1 {
		t.Fatalf("after one finished: %d sent, want 1", n)
	}
	if c := r.job(job.ID).Counts; c[api.ExecSucceeded] != 1 || c[api.ExecDispatched] != 2 || c[api.ExecPending] != 2 {
		t.Errorf("counts: %v", c)
	}
}

func TestOfflineHostsAreAccountedAndJobFinishes(t *testing.T) {
	r := newRig(t, "up", "down")
	r.advance(4 * r.e.cfg.Heartbeat) // both silent for > 3 heartbeats …
	r.e.HandleHeartbeat(r.ctx, r.hosts["up"])
	r.e.mu.Lock()
	r.e.hosts[r.hosts["down"]].online = false // … as the presence loop would decide
	r.e.mu.Unlock()
	job, err := r.e.CreateJob(r.ctx, api.JobSpec{Selector: "", Script: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if x := byName(job)["down"]; x.State != api.ExecOffline || x.Error == "" {
		t.Fatalf("offline host: %+v", x)
	}
	r.e.dispatchOnce(r.ctx)
	sent := r.takeSent()
	if len(sent) != 1 || sent[0].HostID != r.hosts["up"] {
		t.Fatalf("sent %+v", sent)
	}
	r.finish(sent[0], api.ExecSucceeded)
	j := r.job(job.ID)
	if j.State != api.JobFinished || j.FinishedAt == nil {
		t.Errorf("job not finished: %+v", j)
	}
}

func byName(j api.Job) map[string]api.Execution {
	m := map[string]api.Execution{}
	for _, x := range j.Executions {
		m[x.HostName] = x
	}
	return m
}

func TestResendThenGiveUp(t *testing.T) {
	r := newRig(t, "quiet", "gone")
	job, _ := r.e.CreateJob(r.ctx, api.JobSpec{Script: "true"})
	r.e.dispatchOnce(r.ctx)
	first := r.takeSent()
	if len(first) != 2 {
		t.Fatalf("sent %d", len(first))
	}
	r.advance(r.e.cfg.Resend + time.Millisecond)
	r.e.HandleHeartbeat(r.ctx, r.hosts["quiet"])
	r.e.HandleHeartbeat(r.ctx, r.hosts["gone"])
	r.e.dispatchOnce(r.ctx)
	again := r.takeSent()
	if len(again) != 2 || again[0].ID != first[0].ID && again[0].ID != first[1].ID {
		t.Fatalf("resend: %+v", again)
	}
	for _, c := range again {
		if !c.ExpiresAt.After(r.clock) {
			t.Errorf("resent command already expired")
		}
	}
	// Past the command's validity: unknown if the host is still there,
	// offline if it went away.
	r.advance(r.e.cfg.CommandTTL)
	r.e.HandleHeartbeat(r.ctx, r.hosts["quiet"])
	r.e.mu.Lock()
	r.e.hosts[r.hosts["gone"]].online = false
	r.e.mu.Unlock()
	r.e.dispatchOnce(r.ctx)
	x := byName(r.job(job.ID))
	if x["quiet"].State != api.ExecUnknown || x["gone"].State != api.ExecOffline {
		t.Fatalf("after TTL: quiet=%s gone=%s", x["quiet"].State, x["gone"].State)
	}
	if r.job(job.ID).State != api.JobFinished {
		t.Errorf("job not finished")
	}
}

func TestRunningLeaseExpires(t *testing.T) {
	r := newRig(t, "h")
	job, _ := r.e.CreateJob(r.ctx, api.JobSpec{Script: "sleep 100", TimeoutSeconds: 10})
	r.e.dispatchOnce(r.ctx)
	c := r.takeSent()[0]
	started := r.clock
	if err := r.e.HandleStatus(r.ctx, c.HostID, protocol.Status{ExecID: c.ID, State: api.ExecRunning, StartedAt: &started}); err != nil {
		t.Fatal(err)
	}
	r.advance(10*time.Second + r.e.cfg.ResultGrace - time.Second)
	r.e.dispatchOnce(r.ctx)
	if s := r.job(job.ID).Executions[0].State; s != api.ExecRunning {
		t.Fatalf("before the lease ends: %s", s)
	}
	if n := len(r.takeSent()); n != 0 {
		t.Errorf("a running execution was resent %d times", n)
	}
	r.advance(2 * time.Second)
	r.e.dispatchOnce(r.ctx)
	if x := r.job(job.ID).Executions[0]; x.State != api.ExecUnknown || x.Error == "" {
		t.Fatalf("after the lease: %+v", x)
	}
	// A late result does not change a final state.
	code := 0
	_ = r.e.HandleStatus(r.ctx, c.HostID, protocol.Status{ExecID: c.ID, State: api.ExecSucceeded, ExitCode: &code})
	if s := r.job(job.ID).Executions[0].State; s != api.ExecUnknown {
		t.Errorf("late result changed the state to %s", s)
	}
}

func TestStatusOfAnotherHostIsRefused(t *testing.T) {
	r := newRig(t, "a", "b")
	job, _ := r.e.CreateJob(r.ctx, api.JobSpec{Script: "true"})
	r.e.dispatchOnce(r.ctx)
	var forA protocol.Command
	for _, c := range r.takeSent() {
		if c.HostID == r.hosts["a"] {
			forA = c
		}
	}
	code := 0
	err := r.e.HandleStatus(r.ctx, r.hosts["b"], protocol.Status{ExecID: forA.ID, State: api.ExecSucceeded, ExitCode: &code})
	if err == nil {
		t.Fatal("host b reported a's execution and it was accepted")
	}
	if s := byName(r.job(job.ID))["a"].State; s != api.ExecDispatched {
		t.Errorf("a's execution is %s", s)
	}
}

func TestValidateSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec api.JobSpec
		ok   bool
	}{
		{"minimal", api.JobSpec{Script: "true"}, true},
		{"empty script", api.JobSpec{}, false},
		{"huge script", api.JobSpec{Script: string(make([]byte, MaxScriptBytes+1))}, false},
		{"at limit", api.JobSpec{Script: string(make([]byte, MaxScriptBytes))}, true},
		{"negative timeout", api.JobSpec{Script: "x", TimeoutSeconds: -1}, false},
		{"too long", api.JobSpec{Script: "x", TimeoutSeconds: 100000}, false},
		{"negative concurrency", api.JobSpec{Script: "x", Concurrency: -1}, false},
		{"bad selector", api.JobSpec{Script: "x", Selector: "a in (b"}, false},
	} {
		spec := tc.spec
		err := ValidateSpec(&spec)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v", tc.name, err)
		}
		if err == nil && spec.TimeoutSeconds == 0 {
			t.Errorf("%s: no default timeout", tc.name)
		}
	}
}

func TestLastSlot(t *testing.T) {
	c, _ := cron.ParseStandard("*/5 * * * *")
	since := time.Date(2030, 1, 1, 0, 1, 0, 0, time.UTC)
	if _, due := lastSlot(c, since, since.Add(3*time.Minute)); due {
		t.Error("due before the first slot")
	}
	slot, due := lastSlot(c, since, since.Add(17*time.Minute))
	if !due || !slot.Equal(time.Date(2030, 1, 1, 0, 15, 0, 0, time.UTC)) {
		t.Errorf("latest missed slot: %v %v", slot, due)
	}
}

func TestScheduleFiresOncePerSlot(t *testing.T) {
	r := newRig(t, "h")
	s, err := r.e.NewSchedule(api.Schedule{Cron: "* * * * *", Selector: "role=x", Script: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.CreateSchedule(r.ctx, s); err != nil {
		t.Fatal(err)
	}
	r.advance(61 * time.Second)
	r.e.runDueSchedules(r.ctx)
	r.e.runDueSchedules(r.ctx) // same slot again: nothing new
	jobs, _ := r.st.ListJobs(r.ctx, 10)
	if len(jobs) != 1 || jobs[0].ScheduleID != s.ID {
		t.Fatalf("jobs after one slot: %+v", jobs)
	}
	if _, err := r.e.NewSchedule(api.Schedule{Cron: "every day", Script: "x"}); err == nil {
		t.Error("bad cron accepted")
	}
}

// A burst of events larger than any fixed buffer (one per host of a
// 10,000-host job, twice) reaches a watcher that reads afterwards, in order.
func TestWatcherKeepsBursts(t *testing.T) {
	r := newRig(t, "h")
	job, _ := r.e.CreateJob(r.ctx, api.JobSpec{Script: "true"})
	_, w, cancel, err := r.e.Watch(r.ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	const n = 20000
	for i := 0; i < n; i++ {
		r.e.publish(job.ID, api.JobEvent{Type: "output", Data: fmt.Sprint(i)})
	}
	got := 0
	for got < n {
		evs, ok := w.Next(r.ctx)
		if !ok {
			t.Fatalf("watcher closed after %d of %d events", got, n)
		}
		for _, ev := range evs {
			if ev.Data != fmt.Sprint(got) {
				t.Fatalf("event %d is %q", got, ev.Data)
			}
			got++
		}
	}
}
