package appspec

import (
	"slices"
	"testing"
)

func names(events []Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Name)
	}
	return out
}

func TestEventOrders(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   []string
	}{
		{
			name:   "in-place with traffic control",
			events: InPlaceEvents(true),
			want: []string{"Start", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic",
				"ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "AfterInstall",
				"ApplicationStart", "ValidateService", "BeforeAllowTraffic", "AllowTraffic",
				"AfterAllowTraffic", "End"},
		},
		{
			name:   "in-place without traffic control",
			events: InPlaceEvents(false),
			want: []string{"Start", "ApplicationStop", "DownloadBundle", "BeforeInstall", "Install",
				"AfterInstall", "ApplicationStart", "ValidateService", "End"},
		},
		{
			name:   "blue/green replacement hosts",
			events: BlueGreenReplacementEvents(),
			want: []string{"Start", "ApplicationStop", "DownloadBundle", "BeforeInstall", "Install",
				"AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic",
				"AllowTraffic", "AfterAllowTraffic", "End"},
		},
		{
			name:   "blue/green original hosts",
			events: BlueGreenOriginalEvents(),
			want:   []string{"Start", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic", "End"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.events); !slices.Equal(got, tt.want) {
				t.Errorf("events = %v\nwant       %v", got, tt.want)
			}
		})
	}
}

func TestEventFlags(t *testing.T) {
	system := []string{"Start", "DownloadBundle", "Install", "BlockTraffic", "AllowTraffic", "End"}
	previous := []string{"ApplicationStop", "BeforeBlockTraffic", "AfterBlockTraffic"}
	lists := [][]Event{InPlaceEvents(true), InPlaceEvents(false), BlueGreenReplacementEvents(), BlueGreenOriginalEvents()}
	for _, list := range lists {
		for _, e := range list {
			if got, want := e.System, slices.Contains(system, e.Name); got != want {
				t.Errorf("%s: System = %v, want %v", e.Name, got, want)
			}
			if got, want := e.FromPreviousRevision, slices.Contains(previous, e.Name); got != want {
				t.Errorf("%s: FromPreviousRevision = %v, want %v", e.Name, got, want)
			}
			if got := IsSystemEvent(e.Name); got != e.System {
				t.Errorf("IsSystemEvent(%s) = %v", e.Name, got)
			}
			if got := IsScriptEvent(e.Name); got == e.System {
				t.Errorf("IsScriptEvent(%s) = %v", e.Name, got)
			}
		}
	}
	for _, name := range []string{"", "Foo", "beforeinstall", "BeforeELBRemove"} {
		if IsScriptEvent(name) || IsSystemEvent(name) {
			t.Errorf("%q is taken for an event", name)
		}
	}
}

func TestEventListsAreCopies(t *testing.T) {
	a := InPlaceEvents(true)
	a[0].Name = "changed"
	if InPlaceEvents(true)[0].Name != "Start" {
		t.Errorf("InPlaceEvents returns shared storage")
	}
}

func TestScriptEvents(t *testing.T) {
	want := []string{"BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop", "BeforeInstall",
		"AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic", "AfterAllowTraffic"}
	if got := ScriptEvents(); !slices.Equal(got, want) {
		t.Errorf("ScriptEvents() = %v, want %v", got, want)
	}
}

func TestEnv(t *testing.T) {
	got := Env("AfterInstall", "d-123", "shop", "production", "g-456")
	want := []string{
		"LIFECYCLE_EVENT=AfterInstall",
		"DEPLOYMENT_ID=d-123",
		"APPLICATION_NAME=shop",
		"DEPLOYMENT_GROUP_NAME=production",
		"DEPLOYMENT_GROUP_ID=g-456",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Env() = %v, want %v", got, want)
	}
}

func TestHookScripts(t *testing.T) {
	spec, err := Parse("appspec.yml", []byte("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n    - location: b.sh\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		event string
		want  []string
	}{
		{"AfterInstall", []string{"a.sh", "b.sh"}},
		{"BeforeInstall", nil},
		{"Install", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, h := range spec.HookScripts(tt.event) {
			got = append(got, h.Location)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("HookScripts(%s) = %v, want %v", tt.event, got, tt.want)
		}
	}
	var none *AppSpec
	if none.HookScripts("AfterInstall") != nil {
		t.Errorf("nil AppSpec has scripts")
	}
}
