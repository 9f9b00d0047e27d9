package fleet

import (
	"context"
	"fmt"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/watch"
)

// Watcher is one live subscriber to a job's events.
type Watcher = watch.Watcher[api.JobEvent]

// Watch subscribes to a job's events and returns the job as stored at
// subscription time. Later events arrive through the watcher until the job
// finishes (a "done" event, then Next reports !ok). cancel releases it.
func (e *Engine) Watch(ctx context.Context, jobID string) (api.Job, *Watcher, func(), error) {
	w, cancel := e.watchers.Add(jobID)
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
func (e *Engine) publish(jobID string, evs ...api.JobEvent) { e.watchers.Publish(jobID, evs...) }

func (e *Engine) closeWatchers(jobID string) { e.watchers.Close(jobID) }
