// Lifecycle runs: the recent setup, configure and shutdown runs of each
// environment, kept in memory and in the store (SetEnvironmentEvents).

package infra

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

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

// lastConfiguredLocked is the membership of the last configure recorded.
func (l *lifecycle) lastConfiguredLocked(env string) string {
	runs := l.runs[env]
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].Event == "configure" {
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
			}
		}
		r.EndedAt, changed = ptrTime(l.e.now().UTC()), true
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
