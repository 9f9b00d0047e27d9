// Lifecycle runs: the recent setup, configure and shutdown runs of each
// environment, kept in memory and in the store (SetEnvironmentEvents).

package infra

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// supersede marks the configure runs still going as superseded.
func (l *lifecycle) supersede(ctx context.Context, env string) {
	l.mu.Lock()
	changed := false
	for i := range l.runs[env] {
		r := &l.runs[env][i]
		if r.Event == "configure" && r.State == "running" {
			r.State, changed = "superseded", true
		}
	}
	l.mu.Unlock()
	if changed {
		l.saveRuns(ctx, env)
	}
}

// configureBusyLocked reports whether a configure run of env has not
// ended (running, or superseded while its job still runs) and started
// less than limit ago (its timeout and a grace period: a run whose job
// hangs does not hold every later configure back).
func (l *lifecycle) configureBusyLocked(env string, limit time.Duration) bool {
	now := l.e.now()
	for _, r := range l.runs[env] {
		if r.Event == "configure" && r.EndedAt == nil && (r.State == "running" || r.State == "superseded") && now.Sub(r.CreatedAt) < limit {
			return true
		}
	}
	return false
}

// configureLimit is how long a configure of st may take: the longest
// configure timeout of its groups plus a grace period.
func configureLimit(st *State) time.Duration {
	timeout := 0
	for _, r := range st.Resources {
		if r.Kind == KindGroup && r.Spec != nil {
			timeout = max(timeout, r.Spec.ConfigureTimeout)
		}
	}
	return time.Duration(timeout)*time.Second + 30*time.Second
}

// lastConfiguredLocked is the membership of the last configure recorded.
func (l *lifecycle) lastConfiguredLocked(env string) string {
	return lastConfigured(l.runs[env])
}

// lastConfigured is the membership signature of the last configure run
// (by names alone for a run recorded before signatures were).
func lastConfigured(runs []api.LifecycleRun) string {
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].Event == "configure" {
			if runs[i].Signature != "" {
				return runs[i].Signature
			}
			names := append([]string(nil), runs[i].Online...)
			sort.Strings(names)
			return strings.Join(names, ",")
		}
	}
	return ""
}

// loadRuns reads an environment's recorded runs once.
func (l *lifecycle) loadRuns(rec store.Environment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded[rec.Name] {
		return
	}
	var runs []api.LifecycleRun
	_ = json.Unmarshal(rec.Events, &runs)
	l.runs[rec.Name] = runs
	l.loaded[rec.Name] = true
}

func (l *lifecycle) addRun(ctx context.Context, env string, r api.LifecycleRun) {
	l.mu.Lock()
	l.runs[env] = append(l.runs[env], r)
	if n := len(l.runs[env]); n > maxRuns {
		l.runs[env] = l.runs[env][n-maxRuns:]
	}
	l.mu.Unlock()
	l.saveRuns(ctx, env)
}

func (l *lifecycle) saveRuns(ctx context.Context, env string) {
	l.mu.Lock()
	b, _ := json.Marshal(l.runs[env])
	l.mu.Unlock()
	if err := l.e.st.SetEnvironmentEvents(ctx, env, b); err != nil && !errors.Is(err, store.ErrNotFound) {
		l.e.log.Error("record lifecycle runs", "env", env, "err", err)
	}
}

// finishRun records the end of a run from its job.
func (l *lifecycle) finishRun(ctx context.Context, env, id string, j api.Job) {
	l.mu.Lock()
	changed := false
	for i := range l.runs[env] {
		r := &l.runs[env][i]
		if r.ID != id || r.EndedAt != nil || j.State != api.JobFinished {
			continue
		}
		if r.State == "running" {
			r.State = "failed"
			if jobSucceeded(j) {
				r.State = "succeeded"
			} else {
				r.Reason = jobFailure(j)
				r.Failures = jobFailures(j, r.Event, r.Group)
			}
		}
		r.EndedAt, changed = ptrTime(l.e.now().UTC()), true
	}
	l.mu.Unlock()
	if changed {
		l.saveRuns(ctx, env)
	}
}

// endRun records a run that will not finish (its job could not be
// waited for) as failed, so that the environment settles.
func (l *lifecycle) endRun(ctx context.Context, env, id, why string) {
	l.mu.Lock()
	changed := false
	for i := range l.runs[env] {
		r := &l.runs[env][i]
		if r.ID != id || r.EndedAt != nil {
			continue
		}
		r.State, r.Reason, r.EndedAt, changed = "failed", why, ptrTime(l.e.now().UTC()), true
		for _, h := range r.Hosts {
			r.Failures = append(r.Failures, api.EnvFailure{Event: r.Event, Group: r.Group, Machine: h, RunID: id, Error: why})
		}
	}
	l.mu.Unlock()
	if changed {
		l.saveRuns(ctx, env)
	}
}

// updateRuns ends the runs whose jobs finished.
func (l *lifecycle) updateRuns(ctx context.Context, env string) error {
	l.mu.Lock()
	var open []string
	for _, r := range l.runs[env] {
		if r.EndedAt == nil && (r.State == "running" || r.State == "superseded") {
			open = append(open, r.ID)
		}
	}
	l.mu.Unlock()
	for _, id := range open {
		j, err := l.e.st.GetJob(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			l.endRun(ctx, env, id, "its job "+id+" no longer exists")
			continue
		}
		if err != nil {
			return err
		}
		if j.State == api.JobFinished {
			l.finishRun(ctx, env, id, j)
		}
	}
	return nil
}

// runsOf returns an environment's recorded runs.
func (l *lifecycle) runsOf(env string) []api.LifecycleRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]api.LifecycleRun(nil), l.runs[env]...)
}

func (l *lifecycle) isLoaded(env string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loaded[env]
}

// jobFailures details a lifecycle job's failed executions, one per host.
func jobFailures(j api.Job, event, group string) []api.EnvFailure {
	var out []api.EnvFailure
	for _, x := range j.Executions {
		if x.State == api.ExecSucceeded {
			continue
		}
		msg := x.State
		if x.ExitCode != nil {
			msg += " (exit " + strconv.Itoa(*x.ExitCode) + ")"
		}
		if x.Error != "" {
			msg += ": " + x.Error
		}
		if last := lastLine(x.Stderr); last != "" {
			msg += ": " + last
		}
		out = append(out, api.EnvFailure{Event: event, Group: group, Machine: x.HostName, RunID: j.ID, ExitCode: x.ExitCode,
			Error: msg, LogTail: logTail(x.Stdout, x.Stderr)})
	}
	return out
}

// logTailLines is how many lines of each stream a failure keeps.
const logTailLines = 10

// logTail is the end of a script's output: the last lines of stdout, then
// of stderr, at most 2 KiB.
func logTail(stdout, stderr string) string {
	var parts []string
	for _, s := range []string{stdout, stderr} {
		s = strings.TrimRight(s, "\n")
		if s == "" {
			continue
		}
		ls := strings.Split(s, "\n")
		if len(ls) > logTailLines {
			ls = ls[len(ls)-logTailLines:]
		}
		parts = append(parts, strings.Join(ls, "\n"))
	}
	out := strings.Join(parts, "\n")
	if len(out) > 2048 {
		out = "…" + out[len(out)-2048:]
	}
	return out
}
