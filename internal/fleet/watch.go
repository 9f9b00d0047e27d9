package fleet

import (
	"context"
	"fmt"

	"github.com/gantry-dev/gantry/api"
)

// watcher is one live subscriber to a job's events. Its channel is closed
// when the job finishes or when it falls too far behind; a closed channel
// without a "done" event tells the reader to reload the job.
type watcher struct {
	ch     chan api.JobEvent
	closed bool
}

// Watch subscribes to a job's events and returns the job as stored at
// subscription time. Events after that arrive on the channel until the job
// finishes (a "done" event, then the channel closes). cancel releases it.
func (e *Engine) Watch(ctx context.Context, jobID string) (api.Job, <-chan api.JobEvent, func(), error) {
	w := &watcher{ch: make(chan api.JobEvent, 4096)}
	e.mu.Lock()
	if e.watchers[jobID] == nil {
		e.watchers[jobID] = map[*watcher]struct{}{}
	}
	e.watchers[jobID][w] = struct{}{}
	e.mu.Unlock()
	cancel := func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.watchers[jobID][w]; ok {
			delete(e.watchers[jobID], w)
			if len(e.watchers[jobID]) == 0 {
				delete(e.watchers, jobID)
			}
			w.close()
		}
	}
	job, err := e.st.GetJob(ctx, jobID)
	if err != nil {
		cancel()
		return api.Job{}, nil, nil, fmt.Errorf("job %s: %w", jobID, err)
	}
	job.Counts = countStates(job.Executions)
	return job, w.ch, cancel, nil
}

func (w *watcher) close() {
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
}

// publish delivers an event to a job's watchers without ever blocking the
// engine: a watcher whose buffer is full is dropped.
func (e *Engine) publish(jobID string, ev api.JobEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for w := range e.watchers[jobID] {
		select {
		case w.ch <- ev:
		default:
			delete(e.watchers[jobID], w)
			w.close()
		}
	}
}

func (e *Engine) closeWatchers(jobID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for w := range e.watchers[jobID] {
		w.close()
	}
	delete(e.watchers, jobID)
}
