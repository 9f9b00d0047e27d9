package api

import (
	"testing"
	"time"
)

func TestFailuresSince(t *testing.T) {
	now := time.Now()
	code := 3
	e := Environment{
		Machines: []EnvMachine{
			{Name: "dev-web-0", Group: "web", Phase: PhaseOnline},
			{Name: "dev-web-1", Group: "web", Phase: PhaseFailed, Error: "setup failed: x",
				Failure: &EnvFailure{Event: "setup", Group: "web", Machine: "dev-web-1", RunID: "su-h1", Error: "failed (exit 1)"}},
		},
		Events: []LifecycleRun{
			// Before the change: not reported.
			{ID: "cf-old", Event: "configure", Group: "lb", State: "failed", Hosts: []string{"dev-lb-0"}, Serial: 4, EndedAt: &now},
			// The setup run of the failed machine: the same failure once.
			{ID: "su-h1", Event: "setup", Group: "web", State: "failed", Hosts: []string{"dev-web-1"}, Serial: 6, EndedAt: &now,
				Failures: []EnvFailure{{Event: "setup", Group: "web", Machine: "dev-web-1", RunID: "su-h1", Error: "failed (exit 1)"}}},
			// A failed configure a later one fixed: not reported.
			{ID: "cf-1", Event: "configure", Group: "lb", State: "failed", Hosts: []string{"dev-lb-0"}, Serial: 6, EndedAt: &now},
			{ID: "cf-2", Event: "configure", Group: "lb", State: "succeeded", Hosts: []string{"dev-lb-0"}, Serial: 6, EndedAt: &now},
			// The last configure of group app failed: reported, with its cause.
			{ID: "cf-3", Event: "configure", Group: "app", State: "failed", Hosts: []string{"dev-app-0"}, Serial: 7, EndedAt: &now,
				Failures: []EnvFailure{{Event: "configure", Group: "app", Machine: "dev-app-0", RunID: "cf-3", ExitCode: &code, Error: "failed (exit 3): boom", LogTail: "boom"}}},
			// A superseded run is not a failure.
			{ID: "cf-4", Event: "configure", Group: "db", State: "superseded", Hosts: []string{"dev-db-0"}, Serial: 7},
			// A shutdown that failed, without details: its reason.
			{ID: "sd-h9", Event: "shutdown", Group: "web", State: "failed", Hosts: []string{"dev-web-9"}, Serial: 8, Reason: "dev-web-9: failed (exit 1)", EndedAt: &now},
		},
	}
	got := e.FailuresSince(5)
	want := []string{"setup dev-web-1 su-h1", "configure dev-app-0 cf-3", "shutdown dev-web-9 sd-h9"}
	if len(got) != len(want) {
		t.Fatalf("FailuresSince(5) = %+v, want %v", got, want)
	}
	for i, f := range got {
		if s := f.Event + " " + f.Machine + " " + f.RunID; s != want[i] {
			t.Errorf("failure %d = %q, want %q", i, s, want[i])
		}
	}
	if got[2].Error != "dev-web-9: failed (exit 1)" || got[1].LogTail != "boom" {
		t.Errorf("causes: %+v", got)
	}
	if n := len(e.FailuresSince(8)); n != 1 {
		t.Errorf("FailuresSince(8) has %d failures, want only the failed machine", n)
	}
}
