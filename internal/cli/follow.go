package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// followTuning paces reconnection to a job's event stream.
type followTuning struct {
	BackoffMin, BackoffMax time.Duration // reconnection delays, doubling
	Grace                  time.Duration // reconnect for the job timeout plus this, then poll
	PollInterval           time.Duration // between GET /jobs/{id} when polling
}

var defaultFollowTuning = followTuning{
	BackoffMin:   250 * time.Millisecond,
	BackoffMax:   5 * time.Second,
	Grace:        60 * time.Second,
	PollInterval: 2 * time.Second,
}

// defaultJobTimeout is the server's timeout when a job does not set one.
const defaultJobTimeout = 600 * time.Second

// follower consumes one job's events.
type follower struct {
	printer  *linePrinter       // nil when live output is not shown
	names    map[string]string  // host id -> display name
	received map[streamKey]int  // output bytes printed per host and stream
	gapped   map[streamKey]bool // streams with a missed chunk: the rest comes at the end
	final    *api.Job           // set by the "done" event
	progress bool               // an event arrived since the last connect
}

type streamKey struct{ host, stream string }

// followJob waits for a job to finish, printing live output when live is
// set, and returns the final job. A broken stream is reconnected with
// backoff for up to the job's timeout plus a grace period; after that the
// job is polled. Output missed while disconnected is printed at the end
// from the final job.
func (a *app) followJob(ctx context.Context, c *api.Client, job api.Job, live bool) (api.Job, error) {
	f := &follower{names: map[string]string{}, received: map[streamKey]int{}, gapped: map[streamKey]bool{}}
	for _, e := range job.Executions {
		f.names[e.HostID] = hostLabel(e)
	}
	if live {
		f.printer = newLinePrinter(a.stdout, job.Executions)
	}
	timeout := time.Duration(job.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = defaultJobTimeout
	}
	var (
		final    api.Job
		err      error
		deadline time.Time
		backoff  time.Duration
	)
	for {
		f.progress = false
		err = c.StreamJob(ctx, job.ID, f.handle)
		if err == nil {
			final, err = f.finalJob(ctx, c, job.ID)
			break
		}
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		if f.progress || deadline.IsZero() {
			deadline = a.now().Add(timeout + a.follow.Grace)
			backoff = a.follow.BackoffMin
			fmt.Fprintf(a.stderr, "gantry: lost the job's event stream (%v); reconnecting...\n", err)
		}
		if a.now().After(deadline) {
			final, err = a.pollJob(ctx, c, job.ID)
			break
		}
		if err = sleepCtx(ctx, backoff); err != nil {
			break
		}
		backoff = min(2*backoff, a.follow.BackoffMax)
	}
	if err != nil {
		f.printer.flush()
		return api.Job{}, err
	}
	// Output the stream did not deliver (sent before the stream was open,
	// or while disconnected) comes from the stored job.
	f.catchUp(final)
	if f.printer.flush() {
		fmt.Fprintln(a.stdout)
	}
	return final, nil
}

// handle is the StreamJob callback.
func (f *follower) handle(ev api.JobEvent) error {
	f.progress = true
	switch ev.Type {
	case "output":
		name := firstNonEmpty(ev.HostName, f.names[ev.HostID], ev.HostID)
		k := streamKey{name, ev.Stream}
		if f.gapped[k] || int(ev.Offset) != f.received[k] {
			// A chunk was missed (sent before we subscribed, or while
			// disconnected): print nothing more live for this stream; the
			// rest comes from the stored output at the end.
			f.gapped[k] = true
			return nil
		}
		f.received[k] += len(ev.Data)
		f.printer.write(name, ev.Stream, ev.Data)
	case "done":
		if ev.Job != nil {
			j := *ev.Job
			f.final = &j
		}
	}
	return nil
}

// finalJob returns the job carried by the "done" event, or fetches it.
func (f *follower) finalJob(ctx context.Context, c *api.Client, id string) (api.Job, error) {
	if f.final != nil && len(f.final.Executions) > 0 {
		return *f.final, nil
	}
	return c.GetJob(ctx, id)
}

// catchUp prints output the stream did not deliver, taking it from the
// final job where the server kept all of it (up to its cap).
func (f *follower) catchUp(job api.Job) {
	for _, e := range job.Executions {
		name := hostLabel(e)
		for _, s := range []struct {
			stream, data string
			truncated    bool
		}{{"stdout", e.Stdout, e.StdoutTruncated}, {"stderr", e.Stderr, e.StderrTruncated}} {
			if n := f.received[streamKey{name, s.stream}]; !s.truncated && len(s.data) > n {
				f.printer.write(name, s.stream, s.data[n:])
			}
		}
	}
}

// pollJob fetches the job until it is finished. It gives up when the
// server has not answered for the grace period.
func (a *app) pollJob(ctx context.Context, c *api.Client, id string) (api.Job, error) {
	fmt.Fprintf(a.stderr, "gantry: the event stream is unavailable; polling the job every %s\n", a.follow.PollInterval)
	lastOK := a.now()
	for {
		job, err := c.GetJob(ctx, id)
		switch {
		case err == nil && jobFinished(job):
			return job, nil
		case err == nil:
			lastOK = a.now()
		case ctx.Err() != nil:
			return api.Job{}, ctx.Err()
		case !retryable(err):
			return api.Job{}, err
		case a.now().Sub(lastOK) > a.follow.Grace:
			return api.Job{}, fmt.Errorf("lost contact with the server: %w", err)
		}
		if err := sleepCtx(ctx, a.follow.PollInterval); err != nil {
			return api.Job{}, err
		}
	}
}

func jobFinished(job api.Job) bool {
	if job.State == api.JobFinished {
		return true
	}
	for _, e := range job.Executions {
		if !api.ExecDone(e.State) {
			return false
		}
	}
	return len(job.Executions) > 0
}

// retryable reports whether following a job may succeed on a new attempt:
// network failures and server errors may pass, client errors will not.
func retryable(err error) bool {
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == 429
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// linePrinter prints output chunks line by line as "HOST | line" (stdout)
// or "HOST ! line" (stderr), host names padded to the longest. Chunks may
// split lines: partial lines wait, per host and stream, for their end.
type linePrinter struct {
	w       io.Writer
	width   int
	pending map[streamKey]string
	order   []streamKey // first-seen order, so flush is deterministic
	wrote   bool
}

// newLinePrinter pads host names to the longest among execs.
func newLinePrinter(w io.Writer, execs []api.Execution) *linePrinter {
	p := &linePrinter{w: w, pending: map[streamKey]string{}}
	for _, e := range execs {
		p.width = max(p.width, len(hostLabel(e)))
	}
	return p
}

// write adds a chunk of a host's stream and prints its complete lines.
// A nil printer discards everything.
func (p *linePrinter) write(host, stream, data string) {
	if p == nil || data == "" {
		return
	}
	k := streamKey{host, stream}
	if _, ok := p.pending[k]; !ok {
		p.order = append(p.order, k)
	}
	buf := p.pending[k] + data
	for {
		line, rest, ok := strings.Cut(buf, "\n")
		if !ok {
			break
		}
		p.line(k, line)
		buf = rest
	}
	p.pending[k] = buf
}

// flush prints the partial lines left and reports whether anything was
// ever printed.
func (p *linePrinter) flush() bool {
	if p == nil {
		return false
	}
	for _, k := range p.order {
		if s := p.pending[k]; s != "" {
			p.line(k, s)
			p.pending[k] = ""
		}
	}
	return p.wrote
}

func (p *linePrinter) line(k streamKey, text string) {
	sep := "|"
	if k.stream == "stderr" {
		sep = "!"
	}
	text = strings.TrimSuffix(text, "\r")
	if text == "" {
		fmt.Fprintf(p.w, "%-*s %s\n", p.width, k.host, sep)
	} else {
		fmt.Fprintf(p.w, "%-*s %s %s\n", p.width, k.host, sep, text)
	}
	p.wrote = true
}
