package infra

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// fleetState is an environment "s" with machines web[0..webN-1] and
// db[0], and rp (if not nil) as group web's replacement record.
func fleetState(webN int, rp *Replacement) *State {
	st := newState("s")
	add := func(group string, i int) {
		addr := machineAddress(group, i, false)
		st.Resources[addr] = &Resource{Address: addr, Kind: KindMachine, Group: group, Index: i, Name: machineName("s", group, i, false)}
	}
	for i := 0; i < webN; i++ {
		add("web", i)
	}
	add("db", 0)
	st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web"}
	if rp != nil {
		st.Replacing = map[string]*Replacement{"web": rp}
	}
	return st
}

func webAddrs(idx ...int) []string {
	out := make([]string, 0, len(idx))
	for _, i := range idx {
		out = append(out, machineAddress("web", i, false))
	}
	return out
}

func indexSet(idx ...int) map[int]bool {
	out := map[int]bool{}
	for _, i := range idx {
		out[i] = true
	}
	return out
}

func fmtSet[K comparable](m map[K]bool) string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprint(k))
	}
	slices.Sort(out)
	return "{" + strings.Join(out, " ") + "}"
}

// fleetPlan counts both fleets while they run side by side (keeping both
// first), and keeps only the winning one once decided.
func TestFleetPlanPhases(t *testing.T) {
	rec := func(phase string, machines []string) *Replacement {
		return &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1), Originals: webAddrs(0, 1), Machines: machines, Phase: phase}
	}
	cases := []struct {
		name      string
		st        *State
		group     string
		count     int
		wantCount int
		want      map[int]bool // nil: no preference
	}{
		{"no record", fleetState(2, nil), "web", 2, 2, nil},
		{"other group's record", fleetState(2, rec(FleetProvisioning, nil)), "db", 1, 1, nil},
		{"provisioning, nothing made yet", fleetState(2, rec(FleetProvisioning, nil)), "web", 2, 4, indexSet(0, 1)},
		{"provisioning, machines recorded", fleetState(4, rec(FleetProvisioning, webAddrs(2, 3))), "web", 2, 4, indexSet(0, 1, 2, 3)},
		{"ready", fleetState(4, rec(FleetReady, webAddrs(2, 3))), "web", 2, 4, indexSet(0, 1, 2, 3)},
		{"retire: the replacements stay", fleetState(4, rec(FleetRetire, webAddrs(2, 3))), "web", 2, 2, indexSet(2, 3)},
		{"discard: the originals stay", fleetState(4, rec(FleetDiscard, webAddrs(2, 3))), "web", 2, 2, indexSet(0, 1)},
		// A machine of the record no longer in the state is no preference.
		{"retire, one replacement gone", fleetState(3, rec(FleetRetire, webAddrs(2, 3))), "web", 2, 2, indexSet(2)},
		// The count is the definition's (or scale's) as it is now.
		{"ready, count changed meanwhile", fleetState(4, rec(FleetReady, webAddrs(2, 3))), "web", 3, 5, indexSet(0, 1, 2, 3)},
	}
	for _, c := range cases {
		count, prefer := fleetPlan(c.st, c.group, c.count)
		if count != c.wantCount {
			t.Errorf("%s: count %d, want %d", c.name, count, c.wantCount)
		}
		if c.want == nil {
			if prefer != nil {
				t.Errorf("%s: prefer %s, want nil", c.name, fmtSet(prefer))
			}
			continue
		}
		if !maps.Equal(prefer, c.want) {
			t.Errorf("%s: prefer %s, want %s", c.name, fmtSet(prefer), fmtSet(c.want))
		}
	}
}

// replacing has both fleets of every record, and while the replacement
// machines are made every machine of the group that was not there before.
func TestReplacingMachines(t *testing.T) {
	addrs := func(a ...[]string) map[string]bool {
		out := map[string]bool{}
		for _, l := range a {
			for _, x := range l {
				out[x] = true
			}
		}
		return out
	}
	cases := []struct {
		name string
		st   *State
		want map[string]bool
	}{
		{"no record", fleetState(2, nil), map[string]bool{}},
		// web[2] was there before but is no original (say, never set
		// up): it is not the deployment's. web[3] and web[4] are being
		// made.
		{"provisioning", fleetState(5, &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1, 2), Originals: webAddrs(0, 1), Phase: FleetProvisioning}),
			addrs(webAddrs(0, 1, 3, 4))},
		{"ready", fleetState(5, &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1, 2), Originals: webAddrs(0, 1), Machines: webAddrs(3, 4), Phase: FleetReady}),
			addrs(webAddrs(0, 1, 3, 4))},
		// Once made, only the record's machines: a machine added later
		// (web[5]) is the group's.
		{"retire", fleetState(6, &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1), Originals: webAddrs(0, 1), Machines: webAddrs(2, 3), Phase: FleetRetire}),
			addrs(webAddrs(0, 1, 2, 3))},
		{"discard", fleetState(6, &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1), Originals: webAddrs(0, 1), Machines: webAddrs(2, 3), Phase: FleetDiscard}),
			addrs(webAddrs(0, 1, 2, 3))},
	}
	for _, c := range cases {
		if got := replacing(c.st); !maps.Equal(got, c.want) {
			t.Errorf("%s: %s, want %s", c.name, fmtSet(got), fmtSet(c.want))
		}
	}
	// Two groups' records: each one's machines, no other.
	st := fleetState(4, &Replacement{Deployment: "d-1", Size: 1, Before: webAddrs(0), Originals: webAddrs(0), Machines: webAddrs(1), Phase: FleetReady})
	for i := 1; i < 3; i++ {
		addr := machineAddress("db", i, false)
		st.Resources[addr] = &Resource{Address: addr, Kind: KindMachine, Group: "db", Index: i, Name: machineName("s", "db", i, false)}
	}
	st.changed()
	st.Replacing["db"] = &Replacement{Deployment: "d-2", Size: 1, Before: []string{"group.db[0]"}, Originals: []string{"group.db[0]"}, Phase: FleetProvisioning}
	want := addrs(webAddrs(0, 1), []string{"group.db[0]", "group.db[1]", "group.db[2]"})
	if got := replacing(st); !maps.Equal(got, want) {
		t.Errorf("two records: %s, want %s", fmtSet(got), fmtSet(want))
	}
}

// chooseKept keeps the preferred machines (a blue/green deployment's
// winning fleet) first, before the machines in a deployment.
func TestChooseKeptPrefers(t *testing.T) {
	h, existing := webMachines(t, 4, "h-web-0", "h-web-1")
	cases := []struct {
		name     string
		existing []*Resource
		count    int
		prefer   map[int]bool
		want     []int
	}{
		{"no preference: the busy ones", existing, 2, nil, []int{0, 1}},
		{"retire: the replacements, though the originals are busy", existing, 2, indexSet(2, 3), []int{2, 3}},
		{"preferred, then busy", existing, 3, indexSet(3), []int{0, 1, 3}},
		{"preferred, then busy, then lowest", existing, 4, indexSet(3), []int{0, 1, 2, 3}},
		{"discard: the originals", existing, 2, indexSet(0, 1), []int{0, 1}},
		// While the replacements are made: both fleets, new ones at the
		// lowest free indexes.
		{"provisioning: scale out", existing[:2], 4, indexSet(0, 1), []int{0, 1, 2, 3}},
		{"preferred index not in the state", existing, 1, indexSet(3, 5), []int{3}},
	}
	for _, c := range cases {
		if got := h.e.chooseKept(c.existing, c.count, false, c.prefer); !slices.Equal(got, c.want) {
			t.Errorf("%s: kept %v, want %v", c.name, got, c.want)
		}
	}
	// fleetPlan and chooseKept together, as a plan of the group does: at
	// retire the originals (busy) go, at discard the replacements go.
	st := fleetState(4, &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1), Originals: webAddrs(0, 1), Machines: webAddrs(2, 3), Phase: FleetRetire})
	count, prefer := fleetPlan(st, "web", 2)
	if got := h.e.chooseKept(st.machines("web"), count, false, prefer); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("retire: kept %v, want [2 3]", got)
	}
	st.Replacing["web"].Phase = FleetDiscard
	h.e.dep.(*busyDeployer).busy = map[string]bool{"h-web-2": true, "h-web-3": true}
	count, prefer = fleetPlan(st, "web", 2)
	if got := h.e.chooseKept(st.machines("web"), count, false, prefer); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("discard: kept %v, want [0 1]", got)
	}
	st.Replacing["web"].Phase = FleetReady
	count, prefer = fleetPlan(st, "web", 2)
	if got := h.e.chooseKept(st.machines("web"), count, false, prefer); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("ready: kept %v, want [0 1 2 3]", got)
	}
}

// Release before the replacement fleet is recorded: while the make that
// records it still runs (waiting for the environment's lock), the
// deployment must wait, or the machines made afterwards would stay; with
// no make running there is nothing to remove.
func TestReleaseWaitsForMake(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	st := fleetState(2, nil)
	st.Resources["group.web"] = &Resource{Address: "group.web", Kind: KindGroup, Group: "web", Spec: &GroupRecord{App: "shop", DeployGroup: "s-web"}}
	if err := h.st.SaveEnvironment(ctx, store.Environment{Name: "s", Serial: 1, State: stateJSON(st), Definition: []byte{}, Vars: []byte("[]")}, 0); err != nil {
		t.Fatal(err)
	}
	d := api.Deployment{ID: "d-1", App: "shop", Group: "s-web"}
	h.e.fops.running = map[string]string{"s/web": "make"}
	if done, status, err := h.e.Release(ctx, d, false); err != nil || done || !strings.Contains(status, "made") {
		t.Fatalf("Release while the make runs: done %v, status %q, err %v; want not done, waiting for the make", done, status, err)
	}
	delete(h.e.fops.running, "s/web")
	if done, _, err := h.e.Release(ctx, d, false); err != nil || !done {
		t.Fatalf("Release with no record and no make: done %v, err %v; want done", done, err)
	}
}

// fleetRole says which fleet of a blue/green deployment a machine is in
// (env show): originals, replacements (also the ones still being made),
// and nothing outside one or for another group.
func TestFleetRole(t *testing.T) {
	rp := &Replacement{Deployment: "d-1", Size: 2, Before: webAddrs(0, 1), Originals: webAddrs(0, 1), Phase: FleetProvisioning}
	st := fleetState(4, rp)
	role := func(addr string) string {
		r, d := fleetRole(st, st.Resources[addr])
		return r + "/" + d
	}
	for addr, want := range map[string]string{"group.web[0]": "original/d-1", "group.web[3]": "replacement/d-1", "group.db[0]": "/"} {
		if got := role(addr); got != want {
			t.Errorf("provisioning: %s is %q, want %q", addr, got, want)
		}
	}
	rp.Phase, rp.Machines = FleetReady, webAddrs(2)
	if got := role("group.web[3]"); got != "/" {
		t.Errorf("ready: web[3], not one of the replacement machines, is %q, want none", got)
	}
	if got := role("group.web[2]"); got != "replacement/d-1" {
		t.Errorf("ready: web[2] is %q, want replacement/d-1", got)
	}
	delete(st.Replacing, "web")
	if got := role("group.web[0]"); got != "/" {
		t.Errorf("no deployment: web[0] is %q, want none", got)
	}
}
