package lifecycle

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/gantry-dev/gantry/internal/appspec"
)

// trafficStep runs a step of bundle with Traffic and HealthCheck that
// append to the trace, in the same file as the hooks, so that the order
// of all three is seen.
func (e *env) trafficStep(bundlePath string, control bool, fail string) (Result, []EventReport) {
	e.t.Helper()
	e.n++
	mark := func(s string) {
		f, err := os.OpenFile(e.trace, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			e.t.Fatal(err)
		}
		f.WriteString(s + "\n")
		f.Close()
	}
	var reports []EventReport
	res, err := e.runner.Run(context.Background(), Step{
		DeploymentID: "d-t", Application: "web", GroupName: "prod", GroupID: "g-1",
		Revision: "r" + string(rune('0'+e.n)), BundlePath: bundlePath, Previous: e.prev,
		TrafficControl: control, Env: []string{"GANTRY_TRACE=" + e.trace},
		HealthCheck: func(context.Context) error { mark("HEALTH"); return nil },
		Traffic: func(_ context.Context, event string) (string, error) {
			mark("LB " + event)
			if event == fail {
				return "web-1 is the last ready server", errors.New("refused: web-1 is the last ready server of web")
			}
			return "done " + event, nil
		},
	}, func(r EventReport) { reports = append(reports, r) })
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	if res.Succeeded {
		inst := res.Installed
		e.prev = &inst
	}
	return res, reports
}

// TestTrafficAtSystemEvents: Step.Traffic is called at BlockTraffic (after
// BeforeBlockTraffic, before AfterBlockTraffic and ApplicationStop) and at
// AllowTraffic (after ValidateService, the health gate and
// BeforeAllowTraffic, before AfterAllowTraffic); its log is the event's
// log; without TrafficControl it is never called.
func TestTrafficAtSystemEvents(t *testing.T) {
	e := newEnv(t)
	if res, _ := e.trafficStep(traceBundle(t, "rev1"), true, ""); !res.Succeeded {
		t.Fatalf("first step failed: %+v", res)
	}
	os.Remove(e.trace)
	res, reps := e.trafficStep(traceBundle(t, "rev2"), true, "")
	if !res.Succeeded {
		t.Fatalf("second step failed: %+v", res)
	}
	want := []string{
		"rev1 BeforeBlockTraffic d-t", "LB BlockTraffic", "rev1 AfterBlockTraffic d-t", "rev1-stop-marker ApplicationStop d-t",
		"rev2 BeforeInstall d-t", "rev2 AfterInstall d-t", "rev2 ApplicationStart d-t", "rev2 ValidateService d-t", "HEALTH",
		"rev2 BeforeAllowTraffic d-t", "LB AllowTraffic", "rev2 AfterAllowTraffic d-t",
	}
	if got := e.readTrace(); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	logs := map[string]string{}
	for _, r := range reps {
		if r.State == StateSucceeded {
			logs[r.Event] = r.LogTail
		}
	}
	if logs[appspec.EventBlockTraffic] != "done BlockTraffic" || logs[appspec.EventAllowTraffic] != "done AllowTraffic" {
		t.Fatalf("traffic events' logs: %q", logs)
	}

	// Without traffic control the events are not there and Traffic is
	// never called.
	os.Remove(e.trace)
	if res, _ := e.trafficStep(traceBundle(t, "rev3"), false, ""); !res.Succeeded {
		t.Fatalf("step without traffic control failed: %+v", res)
	}
	for _, l := range e.readTrace() {
		if l == "LB BlockTraffic" || l == "LB AllowTraffic" {
			t.Fatalf("Traffic called without TrafficControl: %q", e.readTrace())
		}
	}
}

// TestTrafficRefused: a refused BlockTraffic fails the step there: the
// application is not stopped and nothing after it runs.
func TestTrafficRefused(t *testing.T) {
	e := newEnv(t)
	if res, _ := e.trafficStep(traceBundle(t, "rev1"), true, ""); !res.Succeeded {
		t.Fatalf("first step failed: %+v", res)
	}
	os.Remove(e.trace)
	res, reps := e.trafficStep(traceBundle(t, "rev2"), true, appspec.EventBlockTraffic)
	if res.Succeeded || res.FailedEvent != appspec.EventBlockTraffic || res.Error != "refused: web-1 is the last ready server of web" {
		t.Fatalf("result %+v", res)
	}
	want := []string{"rev1 BeforeBlockTraffic d-t", "LB BlockTraffic"}
	if got := e.readTrace(); !slices.Equal(got, want) {
		t.Fatalf("ran:\n got %q\nwant %q", got, want)
	}
	for _, r := range reps {
		if r.Event == appspec.EventBlockTraffic && r.State == StateFailed && r.LogTail != "web-1 is the last ready server" {
			t.Fatalf("failed event's log %q", r.LogTail)
		}
		if r.Event == appspec.EventApplicationStop && r.State != StateSkipped {
			t.Fatalf("ApplicationStop %s after a refused BlockTraffic", r.State)
		}
	}
}

// TestOriginalHostEvents: Step.Events = BlueGreenOriginalEvents runs the
// block-traffic events only, their hooks from the installed revision, the
// server asked at BlockTraffic; nothing is installed (the record of the
// installed revision stays), and without an installed revision the hooks
// are skipped, not failed.
func TestOriginalHostEvents(t *testing.T) {
	e := newEnv(t)
	if res, _ := e.trafficStep(traceBundle(t, "rev1"), true, ""); !res.Succeeded {
		t.Fatalf("first step failed: %+v", res)
	}
	os.Remove(e.trace)
	run := func(prev *Installed) (Result, []EventReport) {
		var reps []EventReport
		res, err := e.runner.Run(context.Background(), Step{
			DeploymentID: "d-t", Application: "web", GroupName: "prod", GroupID: "g-1", Revision: "r9", Previous: prev,
			TrafficControl: true, Env: []string{"GANTRY_TRACE=" + e.trace}, Events: appspec.BlueGreenOriginalEvents(),
			Traffic: func(_ context.Context, event string) (string, error) {
				f, _ := os.OpenFile(e.trace, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				f.WriteString("LB " + event + "\n")
				f.Close()
				return "kept in drain", nil
			},
		}, func(r EventReport) { reps = append(reps, r) })
		if err != nil {
			t.Fatal(err)
		}
		return res, reps
	}
	res, reps := run(e.prev)
	if !res.Succeeded || res.Installed.Revision != "" {
		t.Fatalf("original step: %+v, want succeeded with nothing installed", res)
	}
	want := []string{"rev1 BeforeBlockTraffic d-t", "LB BlockTraffic", "rev1 AfterBlockTraffic d-t"}
	if got := e.readTrace(); !slices.Equal(got, want) {
		t.Fatalf("ran:\n got %q\nwant %q", got, want)
	}
	var names []string
	for _, r := range reps {
		if r.State != StateRunning {
			names = append(names, r.Event)
		}
	}
	if wantEv := []string{"Start", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic", "End"}; !slices.Equal(names, wantEv) {
		t.Fatalf("events %q, want %q", names, wantEv)
	}
	if _, err := os.Stat(e.prev.Dir); err != nil {
		t.Fatalf("the installed revision's directory is gone after an original step: %v", err)
	}

	os.Remove(e.trace)
	res, reps = run(nil)
	if !res.Succeeded {
		t.Fatalf("original step without an installed revision: %+v", res)
	}
	for _, r := range reps {
		if (r.Event == appspec.EventBeforeBlockTraffic || r.Event == appspec.EventAfterBlockTraffic) && r.State != StateSkipped {
			t.Fatalf("%s %s without an installed revision, want skipped", r.Event, r.State)
		}
	}
	if got := e.readTrace(); !slices.Equal(got, []string{"LB BlockTraffic"}) {
		t.Fatalf("without an installed revision ran %q, want only the server's BlockTraffic", got)
	}
}
