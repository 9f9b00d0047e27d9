package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/agent/executor"
	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/bundle"
)

// DefaultKeep is the number of revision directories kept per application
// when Runner.Keep is not positive.
const DefaultKeep = 5

// LogTailSize is the number of bytes of an event's combined script output
// kept in EventReport.LogTail.
const LogTailSize = 4 << 10

// Event states reported in EventReport.State.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateSkipped   = "skipped"
)

// appspecNames are the names the appspec file may have at a bundle's root,
// in the order they are looked for.
var appspecNames = []string{"appspec.yml", "appspec.yaml"}

// Installed is a revision successfully deployed to the host: what the agent
// records as the host's last successful revision and passes back as
// Step.Previous on the next deployment.
type Installed struct {
	// Revision is the revision's id.
	Revision string
	// Dir is the directory the bundle was unpacked into.
	Dir string
	// AppSpec is the raw content of the revision's appspec.yml.
	AppSpec []byte
	// InstalledFiles are the absolute paths (as named by the appspec's
	// destinations, without Runner.DestRoot) of the files, symbolic links
	// included, that Install wrote, sorted. Files kept because of RETAIN
	// are not in it.
	InstalledFiles []string
}

// Step is one host's step of an in-place deployment.
type Step struct {
	// DeploymentID, Application, GroupName and GroupID identify the
	// deployment; they are given to hook scripts as DEPLOYMENT_ID,
	// APPLICATION_NAME, DEPLOYMENT_GROUP_NAME and DEPLOYMENT_GROUP_ID.
	DeploymentID, Application, GroupName, GroupID string
	// Revision is the id of the revision deployed. It names the revision's
	// directory, so it must be a single path component.
	Revision string
	// BundlePath is the revision's bundle (.tar.gz or .zip), already
	// verified against its digest.
	BundlePath string
	// Previous is the host's previous successful revision of the
	// application, nil on the first deployment to this host.
	Previous *Installed
	// TrafficControl adds the six traffic events (the group is behind a
	// load balancer).
	TrafficControl bool
	// Traffic, if set (with TrafficControl), is called at the system
	// events BlockTraffic and AllowTraffic (event is the event's name): it
	// takes the host out of its load balancer, or lets it in again. Its
	// log becomes the event's LogTail; its error fails the event (and the
	// step).
	Traffic func(ctx context.Context, event string) (log string, err error)
	// MaxEventTimeout caps the run time of all the scripts of one event;
	// appspec.MaxEventTimeout when not positive.
	MaxEventTimeout time.Duration
	// Env are extra KEY=VALUE variables (GANTRY_*) given to hook scripts.
	// They cannot override the appspec variables.
	Env []string
	// HealthCheck, if set, is the group's health gate: it runs as the
	// event EventHealthCheck right after ValidateService, and its error
	// fails the step.
	HealthCheck func(ctx context.Context) error
	// Events, if set, are the events run instead of the in-place ones,
	// with no new revision (BundlePath unused, nothing installed): the
	// original host of a blue/green deployment runs
	// appspec.BlueGreenOriginalEvents, its hooks from Previous.
	Events []appspec.Event
}

// EventHealthCheck is the name under which Step.HealthCheck is reported.
const EventHealthCheck = "HealthCheck"

// EventReport is the state of one lifecycle event, passed to the report
// callback of Run when an event starts ("running") and when it ends
// ("succeeded", "failed" or "skipped"; a skipped event is reported once).
type EventReport struct {
	// Event is the event's name, e.g. "BeforeInstall".
	Event string
	// State is StateRunning, StateSucceeded, StateFailed or StateSkipped.
	State string
	// Started and Finished bracket the event; Finished is zero while it
	// runs, and both are zero for a skipped event.
	Started, Finished time.Time
	// ExitCode is the exit code of the last script run for the event, 0
	// when none ran, -1 when it was killed or could not start.
	ExitCode int
	// LogTail is the last LogTailSize bytes of the combined output of the
	// event's scripts.
	LogTail string
	// Error says why the event failed (or, for a skipped event, why it was
	// skipped); empty on success.
	Error string
}

// Result is the outcome of a step.
type Result struct {
	// Succeeded is true when every event succeeded (or was skipped because
	// there was no previous revision).
	Succeeded bool
	// FailedEvent is the event that failed; empty on success.
	FailedEvent string
	// Error is the failed event's error; empty on success.
	Error string
	// Installed is the revision now installed, valid when Succeeded.
	Installed Installed
}

// Runner runs deployment steps on this host.
type Runner struct {
	// Root is the directory revisions are unpacked under, as
	// Root/<application>/<revision>-<random>, e.g.
	// <agent data>/deployments. It is created if missing.
	Root string
	// Keep is the number of revision directories kept per application
	// after a successful step; DefaultKeep when not positive. The current
	// and previous revisions are always kept.
	Keep int
	// OutputCap is the executor's per-stream output cap for one script
	// (executor.DefaultOutputCap when not positive).
	OutputCap int
	// DestRoot is prefixed to every absolute path of the appspec (files
	// destinations and permissions objects); "" or "/" installs into the
	// host's file system. Tests set it to a temporary directory.
	DestRoot string
	// Limits bound the extraction of bundles; zero fields are
	// bundle.DefaultLimits.
	Limits bundle.Limits
	// Traverse are directories above Root (e.g. the agent's data
	// directory) that the runas users of hooks must be able to search to
	// reach the revision: they get a search-only ACL entry there (see
	// acl.go). Empty: none.
	Traverse []string
}

// run is the state of one step.
type run struct {
	r      *Runner
	step   Step
	report func(EventReport)

	prevSpec *appspec.AppSpec // parsed lazily, nil without Previous
	prevErr  error
	prevDone bool

	dir       string // new revision's directory, after DownloadBundle
	specRaw   []byte
	spec      *appspec.AppSpec
	installed []string

	granted map[string]bool // "uid dir" given access for runas hooks
}

// Run performs step, calling report (if not nil) as events start and end.
// A failing event does not make Run return an error: it is in the Result.
// The error is for a step that cannot be attempted at all (an invalid
// application or revision name, an unusable Root).
func (r *Runner) Run(ctx context.Context, step Step, report func(EventReport)) (Result, error) {
	if report == nil {
		report = func(EventReport) {}
	}
	if err := checkComponent("application", step.Application); err != nil {
		return Result{}, err
	}
	if err := checkComponent("revision", step.Revision); err != nil {
		return Result{}, err
	}
	if r.Root == "" {
		return Result{}, errors.New("lifecycle: Runner.Root is not set")
	}
	if !filepath.IsAbs(r.Root) {
		// Hooks are executed by their absolute path.
		abs, err := filepath.Abs(r.Root)
		if err != nil {
			return Result{}, fmt.Errorf("lifecycle: %w", err)
		}
		rc := *r
		rc.Root = abs
		r = &rc
	}
	appDir := filepath.Join(r.Root, step.Application)
	if err := privateDirs(r.Root, appDir); err != nil {
		return Result{}, fmt.Errorf("lifecycle: %w", err)
	}
	// The runas users of the application's earlier steps lose their
	// access to its revisions (see acl.go).
	if err := clearACL(appDir); err != nil {
		return Result{}, fmt.Errorf("lifecycle: %w", err)
	}
	x := &run{r: r, step: step, report: report}
	var res Result
	events := step.Events
	if events == nil {
		events = appspec.InPlaceEvents(step.TrafficControl)
	}
	for _, ev := range events {
		if res.FailedEvent != "" {
			report(EventReport{Event: ev.Name, State: StateSkipped,
				Error: fmt.Sprintf("not run: %s failed", res.FailedEvent)})
			continue
		}
		if ev.FromPreviousRevision && step.Previous == nil {
			why := "first deployment of the application to this host: no previous revision"
			if step.Events != nil {
				why = "no revision of the application is installed on this host"
			}
			report(EventReport{Event: ev.Name, State: StateSkipped, Error: why})
			continue
		}
		if err := x.event(ctx, ev); err != nil {
			res.FailedEvent, res.Error = ev.Name, err.Error()
			continue
		}
		if ev.Name == appspec.EventValidateService && step.HealthCheck != nil {
			if err := x.event(ctx, appspec.Event{Name: EventHealthCheck}); err != nil {
				res.FailedEvent, res.Error = EventHealthCheck, err.Error()
			}
		}
	}
	if res.FailedEvent != "" {
		return res, nil
	}
	res.Succeeded = true
	if step.Events != nil {
		return res, nil // nothing installed: no record, no pruning
	}
	res.Installed = Installed{Revision: step.Revision, Dir: x.dir, AppSpec: x.specRaw, InstalledFiles: x.installed}
	prev := ""
	if step.Previous != nil {
		prev = step.Previous.Dir
	}
	// Pruning is housekeeping: the step succeeded whatever happens here.
	_ = r.prune(filepath.Join(r.Root, step.Application), x.dir, prev)
	return res, nil
}

// checkComponent refuses names that are not a single, ordinary path
// component.
func checkComponent(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") {
		return fmt.Errorf("lifecycle: invalid %s name %q: must be a single path component", what, s)
	}
	return nil
}

// event runs one event and reports it; the error fails the step.
func (x *run) event(ctx context.Context, ev appspec.Event) error {
	rep := EventReport{Event: ev.Name, State: StateRunning, Started: time.Now()}
	x.report(rep)
	tail := &tailBuffer{}
	var err error
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("the step was canceled: %w", context.Cause(ctx))
	case ev.Name == appspec.EventDownloadBundle:
		err = x.download()
	case ev.Name == appspec.EventInstall:
		err = x.install()
	case ev.Name == EventHealthCheck:
		err = x.step.HealthCheck(ctx)
	case (ev.Name == appspec.EventBlockTraffic || ev.Name == appspec.EventAllowTraffic) && x.step.Traffic != nil:
		var log string
		log, err = x.step.Traffic(ctx, ev.Name)
		tail.Write([]byte(log))
	case ev.System:
		// Start, End and the traffic events gantry's server handles: nothing
		// to do on the host.
	case ev.FromPreviousRevision:
		var spec *appspec.AppSpec
		spec, err = x.previousSpec()
		if err == nil {
			rep.ExitCode, err = x.hooks(ctx, ev.Name, spec, x.step.Previous.Dir, tail)
		}
	default:
		if x.spec == nil {
			err = errors.New("the revision has not been downloaded")
		} else {
			rep.ExitCode, err = x.hooks(ctx, ev.Name, x.spec, x.dir, tail)
		}
	}
	rep.Finished = time.Now()
	rep.LogTail = tail.String()
	rep.State = StateSucceeded
	if err != nil {
		rep.State, rep.Error = StateFailed, err.Error()
	}
	x.report(rep)
	return err
}

// previousSpec parses the previous revision's appspec once.
func (x *run) previousSpec() (*appspec.AppSpec, error) {
	if !x.prevDone {
		x.prevDone = true
		p := x.step.Previous
		if fi, err := os.Stat(p.Dir); err != nil || !fi.IsDir() {
			x.prevErr = fmt.Errorf("previous revision %s: its directory %s is gone", p.Revision, p.Dir)
		} else {
			x.prevSpec, x.prevErr = appspec.Parse("appspec.yml", p.AppSpec)
			if x.prevErr != nil {
				x.prevErr = fmt.Errorf("previous revision %s: %w", p.Revision, x.prevErr)
			}
		}
	}
	return x.prevSpec, x.prevErr
}

// download unpacks the bundle into a fresh directory and parses its
// appspec.
func (x *run) download() error {
	a, err := bundle.Open(x.step.BundlePath)
	if err != nil {
		return err
	}
	defer a.Close()
	dir, err := os.MkdirTemp(filepath.Join(x.r.Root, x.step.Application), x.step.Revision+"-*")
	if err != nil {
		return err
	}
	if _, err := bundle.Extract(a, dir, x.r.Limits); err != nil {
		os.RemoveAll(dir)
		return err
	}
	// The revision stays private (MkdirTemp made it 0700): its files may
	// be secrets that the appspec's permissions make 0600 once installed.
	x.dir = dir
	var name string
	for _, n := range appspecNames {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err == nil {
			name, x.specRaw = n, b
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if name == "" {
		return errors.New("the bundle has no appspec.yml at its root")
	}
	spec, err := appspec.Parse(name, x.specRaw)
	if err != nil {
		return err
	}
	x.spec = spec
	return nil
}

// hooks runs the scripts of event from spec, found in dir, in order. It
// returns the exit code of the last script run.
func (x *run) hooks(ctx context.Context, event string, spec *appspec.AppSpec, dir string, tail *tailBuffer) (int, error) {
	scripts := spec.HookScripts(event)
	if len(scripts) == 0 {
		return 0, nil
	}
	max := x.step.MaxEventTimeout
	if max <= 0 {
		max = appspec.MaxEventTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	deadline, _ := ctx.Deadline()
	env := slices.Concat(x.step.Env, appspec.Env(event, x.step.DeploymentID, x.step.Application, x.step.GroupName, x.step.GroupID))
	code := 0
	for _, h := range scripts {
		path, err := bundle.SafeJoin(dir, h.Location)
		if err != nil {
			return code, fmt.Errorf("script %s: %w", h.Location, err)
		}
		if err := makeExecutable(dir, h.Location); err != nil {
			return code, fmt.Errorf("script %s: %w", h.Location, err)
		}
		if err := x.grant(h.RunAs, dir); err != nil {
			return code, fmt.Errorf("script %s: runas %s: %w", h.Location, h.RunAs, err)
		}
		timeout := h.Timeout
		if timeout <= 0 {
			timeout = appspec.DefaultTimeout
		}
		if left := time.Until(deadline); left < timeout {
			timeout = left
		}
		res := executor.Run(ctx, executor.Spec{
			Program:   path,
			Timeout:   timeout,
			User:      h.RunAs,
			Env:       env,
			Dir:       dir,
			OutputCap: x.r.OutputCap,
		}, func(_ string, p []byte) { tail.Write(p) })
		code = res.ExitCode
		switch {
		case res.Err != "":
			return code, fmt.Errorf("script %s: %s", h.Location, res.Err)
		case res.TimedOut && time.Until(deadline) <= 0 && timeout < h.Timeout:
			return code, fmt.Errorf("script %s: killed: the scripts of %s ran longer than %s together", h.Location, event, max)
		case res.TimedOut:
			return code, fmt.Errorf("script %s: killed after its timeout of %s", h.Location, timeout.Round(time.Millisecond))
		case res.Canceled:
			return code, fmt.Errorf("script %s: killed: the step was canceled", h.Location)
		case res.ExitCode != 0:
			return code, fmt.Errorf("script %s: exited with status %d", h.Location, res.ExitCode)
		}
	}
	return code, nil
}

// tailBuffer keeps the last LogTailSize bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

// Write appends p, dropping what falls out of the tail.
func (t *tailBuffer) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if n := len(t.buf); n > LogTailSize {
		t.buf = append(t.buf[:0], t.buf[n-LogTailSize:]...)
	}
}

// String returns the tail.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// prune removes the oldest revision directories of appDir beyond Keep,
// never current nor previous.
func (r *Runner) prune(appDir, current, previous string) error {
	keep := r.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	entries, err := os.ReadDir(appDir)
	if err != nil {
		return err
	}
	type rev struct {
		path string
		mod  time.Time
	}
	var revs []rev
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		revs = append(revs, rev{filepath.Join(appDir, e.Name()), fi.ModTime()})
	}
	// Newest first; the current and previous revisions count first.
	rank := func(v rev) int {
		switch v.path {
		case filepath.Clean(current):
			return 0
		case filepath.Clean(previous):
			return 1
		}
		return 2
	}
	slices.SortFunc(revs, func(a, b rev) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		if c := b.mod.Compare(a.mod); c != 0 {
			return c
		}
		return strings.Compare(b.path, a.path)
	})
	var errs []error
	for i, v := range revs {
		if i < keep || rank(v) < 2 {
			continue
		}
		errs = append(errs, os.RemoveAll(v.path))
	}
	return errors.Join(errs...)
}
