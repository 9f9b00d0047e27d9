package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/agent/lifecycle"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// deploy runs one host's step of a deployment and records its result.
func (a *Agent) deploy(cmd protocol.Command) {
	started := time.Now().UTC()
	a.confirmStart(cmd, started)
	ctx, cancel := context.WithCancel(context.Background())
	a.running.Store(cmd.ID, cancel)
	defer func() {
		a.running.Delete(cmd.ID)
		cancel()
	}()
	d := cmd.Deploy
	var seq uint64
	progress := func(ev api.LifecycleEvent) {
		seq++
		data, _ := json.Marshal(ev)
		b, _ := json.Marshal(protocol.Output{ExecID: cmd.ID, JobID: d.JobID, Stream: protocol.StreamLifecycle, Seq: seq, Data: data})
		_ = a.nc.Publish(bus.AgentSubject(a.id.HostID, bus.KindOutput), b)
	}
	res := a.deployStep(ctx, cmd.ID, d, progress)
	finished := time.Now().UTC()
	st := protocol.Status{ExecID: cmd.ID, JobID: d.JobID, State: api.ExecSucceeded, StartedAt: &started, FinishedAt: &finished}
	if !res.Succeeded {
		st.State, st.Error = api.ExecFailed, res.Error
		if res.FailedEvent != "" {
			st.Error = res.FailedEvent + ": " + res.Error
		}
	}
	st.Result, _ = json.Marshal(res)
	a.log.Info("deployment step finished", "id", cmd.ID, "deployment", d.DeploymentID, "revision", d.Revision, "state", st.State, "error", st.Error)
	a.finish(cmd, st)
}

// deployStep fetches the bundle, runs the lifecycle and the health check,
// and records the revision as the host's last successful one; for an
// original host of a blue/green deployment, it runs the block-traffic
// events only.
func (a *Agent) deployStep(ctx context.Context, execID string, d *protocol.DeployCommand, progress func(api.LifecycleEvent)) protocol.DeployResult {
	var res protocol.DeployResult
	record := func(ev api.LifecycleEvent) {
		// An event is reported when it starts and again when it ends:
		// keep one entry per event.
		if n := len(res.Events); n > 0 && res.Events[n-1].Name == ev.Name {
			res.Events[n-1] = ev
		} else {
			res.Events = append(res.Events, ev)
		}
		progress(ev)
	}
	fail := func(event string, err error) protocol.DeployResult {
		res.FailedEvent, res.Error = event, err.Error()
		return res
	}
	appDir := filepath.Join(a.deployRoot(), d.Application)
	lastPath := filepath.Join(appDir, ".last-successful-"+d.GroupID+".json")
	prev, err := readInstalled(lastPath)
	if err != nil {
		a.log.Warn("ignoring the record of the previous revision", "err", err)
	}
	if prev != nil {
		res.Previous = prev.Revision
	}
	// The original host of a blue/green deployment runs its block-traffic
	// events with the hooks of the revision it has: nothing is fetched or
	// installed (protocol.RoleOriginal).
	original := d.Role == protocol.RoleOriginal
	events, firstEvent := appspec.InPlaceEvents(false), appspec.EventDownloadBundle
	var bundlePath string
	if original {
		events, firstEvent = appspec.BlueGreenOriginalEvents(), appspec.EventStart
	} else {
		bundlePath, err = a.fetchBundle(ctx, d)
		if bundlePath != "" {
			defer os.Remove(bundlePath)
		}
		if err != nil {
			now := time.Now().UTC()
			record(api.LifecycleEvent{Name: appspec.EventDownloadBundle, State: lifecycle.StateFailed, StartedAt: &now, FinishedAt: &now, Error: err.Error()})
			return fail(appspec.EventDownloadBundle, err)
		}
	}
	if a.cfg.NoExec {
		now := time.Now().UTC()
		for _, ev := range events {
			record(api.LifecycleEvent{Name: ev.Name, State: lifecycle.StateSucceeded, StartedAt: &now, FinishedAt: &now})
		}
		res.Succeeded = true
		return res
	}
	r := lifecycle.Runner{Root: a.deployRoot(), Keep: a.cfg.KeepRevisions, OutputCap: d.OutputCap, DestRoot: a.cfg.DestRoot,
		Traverse: []string{a.cfg.DataDir}}
	step := lifecycle.Step{
		DeploymentID: d.DeploymentID, Application: d.Application, GroupName: d.GroupName, GroupID: d.GroupID,
		Revision: d.Revision, BundlePath: bundlePath, Previous: prev,
		Env: []string{"GANTRY_HOST_ID=" + a.id.HostID, "GANTRY_HOST_NAME=" + a.id.Name, "GANTRY_EXECUTION_ID=" + execID,
			"GANTRY_REVISION=" + d.Revision},
	}
	if original {
		step.Events = events
	} else {
		step.Env = append(step.Env, "GANTRY_BUNDLE_DIGEST="+d.Digest)
	}
	if hc := d.HealthCheck; hc != nil {
		step.HealthCheck = func(ctx context.Context) error { return runHealthCheck(ctx, *hc) }
	}
	if d.Traffic {
		step.TrafficControl = true
		step.Traffic = func(ctx context.Context, event string) (string, error) {
			return a.trafficRequest(ctx, execID, d, event)
		}
	}
	out, err := r.Run(ctx, step, func(ev lifecycle.EventReport) { record(eventOf(ev)) })
	if err != nil {
		return fail(firstEvent, err)
	}
	if !out.Succeeded {
		return fail(out.FailedEvent, errors.New(out.Error))
	}
	if !original {
		if err := writeInstalled(lastPath, out.Installed); err != nil {
			// The revision is in place but the next deployment would not
			// know it: fail the host rather than lie.
			return fail(appspec.EventInstall, fmt.Errorf("record the installed revision: %w", err))
		}
	}
	res.Succeeded = true
	return res
}

// defaultTrafficWait is the wait for the server's answer to a traffic
// request when the command does not say.
const defaultTrafficWait = 10 * time.Minute

// trafficAttempt is how long one traffic request waits for its answer
// before it is sent again: a server restarted meanwhile never answers the
// first one, and a server still handling it makes the repeat wait for the
// same answer (a drain is done once).
const trafficAttempt = 5 * time.Second

// trafficRequest asks the server to take this host out of its load
// balancer (BlockTraffic) or to let it in again (AllowTraffic), and
// returns the server's log of what it did. The request is sent again every
// trafficAttempt, and while it cannot be delivered (no server on the bus,
// the connection being re-established), until the wait is over.
func (a *Agent) trafficRequest(ctx context.Context, execID string, d *protocol.DeployCommand, event string) (string, error) {
	wait := defaultTrafficWait
	if d.TrafficTimeoutMillis > 0 {
		wait = time.Duration(d.TrafficTimeoutMillis) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	body, _ := json.Marshal(protocol.TrafficRequest{ExecID: execID, DeploymentID: d.DeploymentID, Event: event})
	subject := bus.AgentSubject(a.id.HostID, bus.KindTraffic)
	for pause := 250 * time.Millisecond; ; {
		actx, acancel := context.WithTimeout(ctx, trafficAttempt)
		m, err := a.nc.RequestWithContext(actx, subject, body)
		acancel()
		switch {
		case err == nil:
			var rep protocol.TrafficReply
			if err := json.Unmarshal(m.Data, &rep); err != nil {
				return "", fmt.Errorf("unreadable answer of the server to %s: %w", event, err)
			}
			if rep.Error != "" {
				return rep.Log, errors.New(rep.Error)
			}
			return rep.Log, nil
		case ctx.Err() != nil:
			return "", fmt.Errorf("no answer of the server to %s within %s", event, wait)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// Not answered yet: ask again (a repeat joins the request the
			// server is handling, or reaches a restarted server).
		default:
			// No server on the bus (ErrNoResponders), or the connection
			// is being re-established: ask again shortly.
			a.log.Warn("traffic request not delivered; asking again", "event", event, "err", err, "in", pause)
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("no server answered %s within %s (last: %v)", event, wait, err)
			case <-time.After(pause):
			}
			pause = min(2*pause, 4*time.Second)
		}
	}
}

// deployRoot is where revisions are unpacked.
func (a *Agent) deployRoot() string { return filepath.Join(a.cfg.DataDir, "deployments") }

// eventOf converts a lifecycle report to its wire form.
func eventOf(r lifecycle.EventReport) api.LifecycleEvent {
	ev := api.LifecycleEvent{Name: r.Event, State: r.State, ExitCode: r.ExitCode, LogTail: r.LogTail, Error: r.Error}
	if !r.Started.IsZero() {
		t := r.Started.UTC()
		ev.StartedAt = &t
	}
	if !r.Finished.IsZero() {
		t := r.Finished.UTC()
		ev.FinishedAt = &t
	}
	return ev
}

// fetchBundle downloads the bundle to a temporary file, refusing more bytes
// than announced and any digest but the expected one. It returns the
// file's path (to remove) even on error.
func (a *Agent) fetchBundle(ctx context.Context, d *protocol.DeployCommand) (string, error) {
	want, ok := strings.CutPrefix(d.Digest, "sha256:")
	if !ok || len(want) != 64 {
		return "", fmt.Errorf("bundle digest %q: want sha256:<64 hex digits>", d.Digest)
	}
	dir := filepath.Join(a.cfg.DataDir, "bundles")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "bundle-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	url := strings.TrimSuffix(a.id.Server, "/") + d.BundlePath
	h := sha256.New()
	var n int64
	// A connection lost mid-download (the server restarting) is retried
	// with backoff for up to a minute; an answer (403 expired, 404) is not.
	for wait, deadline := 250*time.Millisecond, time.Now().Add(time.Minute); ; wait = min(2*wait, 4*time.Second) {
		h.Reset()
		var retry bool
		n, retry, err = a.downloadBundle(ctx, url, f, h, d.Size)
		if err == nil || !retry || time.Now().Add(wait).After(deadline) {
			break
		}
		a.log.Warn("bundle download failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return f.Name(), fmt.Errorf("%w (then: %v)", err, ctx.Err())
		case <-time.After(wait):
		}
	}
	if err != nil {
		return f.Name(), err
	}
	if n != d.Size {
		return f.Name(), fmt.Errorf("bundle is %d bytes; the server announced %d", n, d.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return f.Name(), fmt.Errorf("bundle digest mismatch: got sha256:%s, want %s", got, d.Digest)
	}
	return f.Name(), f.Close()
}

// downloadBundle makes one attempt to fetch url into f (rewound first),
// hashing into h, reading at most size+1 bytes. retry says whether the
// failure was the connection's (worth another attempt) rather than the
// server's answer or the pin.
func (a *Agent) downloadBundle(ctx context.Context, url string, f *os.File, h io.Writer, size int64) (n int64, retry bool, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, false, err
	}
	if err := f.Truncate(0); err != nil {
		return 0, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := a.bundles.Do(req)
	if err != nil {
		var pm *api.PinMismatchError
		return 0, ctx.Err() == nil && !errors.As(err, &pm), fmt.Errorf("fetch bundle from the server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		retry = resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout
		return 0, retry, fmt.Errorf("fetch bundle from the server: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	n, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, size+1))
	if err != nil {
		return n, ctx.Err() == nil, fmt.Errorf("fetch bundle from the server: %w", err)
	}
	return n, false, nil
}

// readInstalled reads the record of the last successful revision; nil when
// there is none.
func readInstalled(path string) (*lifecycle.Installed, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var in lifecycle.Installed
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &in, nil
}

// writeInstalled replaces the record atomically.
func writeInstalled(path string, in lifecycle.Installed) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}
