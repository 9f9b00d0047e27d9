package fleet

import (
	"context"
	"fmt"
	"sync"

	"github.com/gantry-dev/gantry/api"
)

// maxQueued is how many events a watcher may have waiting before it is
// dropped as too slow (a dropped watcher's stream ends without "done" and
// the client reloads the job).
const maxQueued = 1 << 20

// Watcher is one live subscriber to a job's events. Events queue without
// bound up to maxQueued, so a burst of results (a 10,000-host job) never
// drops a reader that keeps up on average.
type Watcher struct {
	mu     sync.Mutex
	queue  []api.JobEvent
	closed bool
	ready  chan struct{} // has a value when the queue is non-empty or closed
}

func newWatcher() *Watcher { return &Watcher{ready: make(chan struct{}, 1)} }

func (w *Watcher) signal() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// push queues an event; false if the watcher is closed or overflows.
func (w *Watcher) push(ev api.JobEvent) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	if len(w.queue) >= maxQueued {
		w.closed = true
		w.queue = nil
		w.signal()
		return false
	}
	w.queue = append(w.queue, ev)
	w.signal()
	return true
}

func (w *Watcher) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.signal()
}

// Next waits for events and returns all that are queued. ok is false once
// the watcher is closed and drained (after "done", or when dropped).
func (w *Watcher) Next(ctx context.Context) (events []api.JobEvent, ok bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			events, w.queue = w.queue, nil
			w.mu.Unlock()
			return events, true
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-w.ready:
		}
	}
}

// Watch subscribes to a job's events and returns the job as stored at
// subscription time. Later events arrive through the watcher until the job
// finishes (a "done" event, then Next reports !ok). cancel releases it.
func (e *Engine) Watch(ctx context.Context, jobID string) (api.Job, *Watcher, func(), error) {
	w := newWatcher()
	e.mu.Lock()
	if e.watchers[jobID] == nil {
		e.watchers[jobID] = map[*Watcher]struct{}{}
	}
	e.watchers[jobID][w] = struct{}{}
	e.mu.Unlock()
	cancel := func() {
		e.mu.Lock()
		delete(e.watchers[jobID], w)
		if len(e.watchers[jobID]) == 0 {
			delete(e.watchers, jobID)
		}
		e.mu.Unlock()
		w.close()
	}
	job, err := e.st.GetJob(ctx, jobID)
	if err != nil {
		cancel()
		return api.Job{}, nil, nil, fmt.Errorf("job %s: %w", jobID, err)
	}
	job.Counts = countStates(job.Executions)
	return job, w, cancel, nil
}

// publish delivers events to a job's watchers without ever blocking the
// engine; a watcher that overflows is dropped.
func (e *Engine) publish(jobID string, evs ...api.JobEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for w := range e.watchers[jobID] {
		for _, ev := range evs {
			if !w.push(ev) {
				delete(e.watchers[jobID], w)
				break
			}
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
