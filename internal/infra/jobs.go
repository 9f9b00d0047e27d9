// Lifecycle jobs: setup, configure and shutdown as internal fleet jobs with
// deterministic ids, and how their outcome is read.

package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
)

// target is one host of a lifecycle job with its environment and context.
type target struct {
	host    store.HostRecord
	env     map[string]string
	context json.RawMessage
}

// runJob creates (at most once, by id) a lifecycle job.
func (e *Engine) runJob(ctx context.Context, id, script string, timeout int, ts []target) (api.Job, error) {
	job := api.Job{ID: id, Kind: api.JobKindLifecycle, Selector: "gantry lifecycle", Script: script, TimeoutSeconds: timeout}
	var execs []api.Execution
	for _, t := range ts {
		payload, _ := json.Marshal(protocol.ExecCommand{Env: t.env, Context: t.context})
		execs = append(execs, api.Execution{ID: id + "-" + t.host.ID, HostID: t.host.ID, HostName: t.host.Name, Payload: payload})
	}
	j, err := e.fl.CreateInternalJob(ctx, job, execs)
	if err != nil {
		return j, fmt.Errorf("lifecycle job %s: %w", id, err)
	}
	return j, nil
}

// waitJob polls a job until it is finished or the deadline passes.
func (e *Engine) waitJob(ctx context.Context, id string, d time.Duration) (api.Job, error) {
	deadline := time.Now().Add(d)
	for {
		j, err := e.st.GetJob(ctx, id)
		if err == nil && j.State == api.JobFinished {
			return j, nil
		}
		if time.Now().After(deadline) {
			return j, fmt.Errorf("job %s did not finish within %s", id, d)
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func setupJobID(hostID string) string { return "su-" + hostID }

func jobSucceeded(j api.Job) bool {
	if len(j.Executions) == 0 {
		return j.Counts[api.ExecSucceeded] > 0 && len(j.Counts) == 1
	}
	for _, x := range j.Executions {
		if x.State != api.ExecSucceeded {
			return false
		}
	}
	return true
}

// jobFailure says why a job's executions did not all succeed.
func jobFailure(j api.Job) string {
	var parts []string
	for _, x := range j.Executions {
		if x.State == api.ExecSucceeded {
			continue
		}
		s := x.HostName + ": " + x.State
		if x.ExitCode != nil {
			s += " (exit " + strconv.Itoa(*x.ExitCode) + ")"
		}
		if x.Error != "" {
			s += ": " + x.Error
		}
		if tail := lastLine(x.Stderr); tail != "" {
			s += ": " + tail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[len(s)-200:]
	}
	return s
}

func ptrTime(t time.Time) *time.Time { return &t }
