package deploy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
		err  bool
	}{
		{"", OneAtATime, false},
		{"OneAtATime", OneAtATime, false},
		{"CodeDeployDefault.HalfAtATime", HalfAtATime, false},
		{"AllAtOnce", AllAtOnce, false},
		{"75%", Config{Count: 75, Percent: true}, false},
		{"4", Config{Count: 4}, false},
		{"101%", Config{}, true},
		{"-1", Config{}, true},
		{"half", Config{}, true},
	} {
		got, err := ParseConfig(tc.in)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("ParseConfig(%q) = %+v, %v", tc.in, got, err)
		}
		if !tc.err && tc.in != "" && !strings.HasPrefix(tc.in, "CodeDeployDefault.") && got.String() != tc.in {
			t.Errorf("%q.String() = %q", tc.in, got.String())
		}
	}
}

func TestMinHealthy(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		n    int
		want int
	}{
		{OneAtATime, 6, 5}, {OneAtATime, 1, 0},
		{HalfAtATime, 6, 3}, {HalfAtATime, 5, 3}, {HalfAtATime, 1, 1},
		{AllAtOnce, 6, 0},
		{Config{Count: 66, Percent: true}, 6, 4}, // 3.96 rounded up
		{Config{Count: 75, Percent: true}, 4, 3},
		{Config{Count: 2}, 6, 2},
	} {
		if got := tc.c.MinHealthy(tc.n); got != tc.want {
			t.Errorf("%s of %d: %d, want %d", tc.c, tc.n, got, tc.want)
		}
	}
	if err := (Config{Count: 6}).Check(6); err == nil {
		t.Error("a minimum of all hosts was accepted")
	}
	if err := HalfAtATime.Check(1); err == nil {
		t.Error("HalfAtATime on one host was accepted: its minimum (1) leaves no host to deploy to")
	}
	for _, c := range []Config{OneAtATime, AllAtOnce, HalfAtATime} {
		if err := c.Check(2); err != nil {
			t.Errorf("%s on two hosts: %v", c, err)
		}
	}
	if err := OneAtATime.Check(1); err != nil {
		t.Errorf("OneAtATime on one host: %v", err)
	}
}

func TestOrder(t *testing.T) {
	hosts := []PlanHost{
		{Name: "d", Healthy: true, Revision: "r1"},
		{Name: "b", Healthy: true},
		{Name: "c", Healthy: false, Revision: "r1"},
		{Name: "a", Healthy: true, Revision: "r1"},
	}
	Order(hosts)
	var got []string
	for _, h := range hosts {
		got = append(got, h.Name)
	}
	if want := []string{"c", "b", "a", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want unhealthy, unknown revision, then old: %v", got, want)
	}
}

// simulate runs a deployment to completion: every batch finishes at once,
// hosts in fail fail. It returns the batches (host names) and the verdict.
func simulate(t *testing.T, c Config, hosts []PlanHost, fail map[string]bool) ([][]string, Verdict) {
	t.Helper()
	Order(hosts)
	min := c.MinHealthy(len(hosts))
	var batches [][]string
	for step := 0; step < 100; step++ {
		start, v := Next(hosts, min)
		if v != Continue {
			return batches, v
		}
		var names []string
		for _, i := range start {
			hosts[i].Status = InProgress
			names = append(names, hosts[i].Name)
		}
		batches = append(batches, names)
		// Healthy hosts never drop below the minimum while a batch runs.
		if h := healthyNow(hosts); h < min && hasHealthyIn(hosts) {
			t.Fatalf("%s: %d healthy while a batch runs, minimum %d", c, h, min)
		}
		for _, i := range start {
			hosts[i].Status = Succeeded
			if fail[hosts[i].Name] {
				hosts[i].Status = Failed
			}
		}
	}
	t.Fatal("no verdict after 100 steps")
	return nil, 0
}

func hasHealthyIn(hosts []PlanHost) bool {
	for _, h := range hosts {
		if h.Status == InProgress && h.Healthy {
			return true
		}
	}
	return false
}

func six() []PlanHost {
	var hs []PlanHost
	for i := 1; i <= 6; i++ {
		hs = append(hs, PlanHost{ID: fmt.Sprint(i), Name: fmt.Sprintf("h%d", i), Healthy: true, Revision: "old"})
	}
	return hs
}

// Six healthy hosts, h3 failing: where each configuration stops, per
// CodeDeploy's rules (REFERENCE.md).
func TestDeploymentRules(t *testing.T) {
	fail3 := map[string]bool{"h3": true}
	for _, tc := range []struct {
		config  Config
		fail    map[string]bool
		batches string
		verdict Verdict
	}{
		{OneAtATime, nil, "h1|h2|h3|h4|h5|h6", Succeed},
		// h3 fails: 5 healthy left with h4..h6 pending, minimum 5: stop.
		{OneAtATime, fail3, "h1|h2|h3", Fail},
		// The last host failing still leaves the minimum: success.
		{OneAtATime, map[string]bool{"h6": true}, "h1|h2|h3|h4|h5|h6", Succeed},
		{HalfAtATime, nil, "h1,h2,h3|h4,h5,h6", Succeed},
		// 2 + 3 pending healthy = 5, minimum 3: two more, then one.
		{HalfAtATime, fail3, "h1,h2,h3|h4,h5|h6", Succeed},
		{HalfAtATime, map[string]bool{"h1": true, "h2": true, "h3": true, "h4": true}, "h1,h2,h3", Fail},
		{AllAtOnce, fail3, "h1,h2,h3,h4,h5,h6", Succeed},
		{AllAtOnce, map[string]bool{"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true}, "h1,h2,h3,h4,h5,h6", Fail},
		// 66% of 6 = 4 (rounded up): batches of 2.
		{Config{Count: 66, Percent: true}, nil, "h1,h2|h3,h4|h5,h6", Succeed},
		{Config{Count: 66, Percent: true}, fail3, "h1,h2|h3,h4|h5|h6", Succeed},
		{Config{Count: 66, Percent: true}, map[string]bool{"h1": true, "h2": true}, "h1,h2", Fail},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.config, tc.fail), func(t *testing.T) {
			batches, v := simulate(t, tc.config, six(), tc.fail)
			var parts []string
			for _, b := range batches {
				parts = append(parts, strings.Join(b, ","))
			}
			if got := strings.Join(parts, "|"); got != tc.batches || v != tc.verdict {
				t.Errorf("batches %s verdict %d, want %s verdict %d", got, v, tc.batches, tc.verdict)
			}
		})
	}
}

// Unhealthy hosts go first and cost nothing against the minimum.
func TestUnhealthyHostsFirst(t *testing.T) {
	hosts := six()
	hosts[4].Healthy = false // h5
	hosts[5].Revision = ""   // h6: unknown revision
	batches, v := simulate(t, OneAtATime, hosts, nil)
	// 5 of 6 healthy, minimum 5: only the unhealthy h5 can start; then the
	// host with an unknown revision, then the rest by name.
	if got := fmt.Sprint(batches); v != Succeed || got != "[[h5] [h6] [h1] [h2] [h3] [h4]]" {
		t.Errorf("batches %s verdict %d", got, v)
	}
}

// Hosts that are all unhealthy (a rollback to the hosts a deployment
// failed on) are deployed although the healthy count starts below the
// minimum: starting them costs nothing.
func TestAllUnhealthyHostsStart(t *testing.T) {
	for _, tc := range []struct {
		config  Config
		n       int
		batches string
	}{
		{HalfAtATime, 3, "[[h1 h2 h3]]"}, // minimum 2, 0 healthy
		{OneAtATime, 2, "[[h1 h2]]"},     // minimum 1, 0 healthy
	} {
		hosts := six()[:tc.n]
		for i := range hosts {
			hosts[i].Healthy = false
		}
		batches, v := simulate(t, tc.config, hosts, nil)
		if got := fmt.Sprint(batches); v != Succeed || got != tc.batches {
			t.Errorf("%s of %d unhealthy hosts: batches %s verdict %d, want %s and success", tc.config, tc.n, got, v, tc.batches)
		}
	}
	// Some healthy, below the minimum: the unhealthy ones start first,
	// alone; once they succeed the healthy ones can follow.
	hosts := six()
	for i := range 4 {
		hosts[i].Healthy = false // h1..h4; 2 healthy, minimum 3
	}
	batches, v := simulate(t, HalfAtATime, hosts, nil)
	if got := fmt.Sprint(batches); v != Succeed || got != "[[h1 h2 h3 h4] [h5 h6]]" {
		t.Errorf("4 unhealthy of 6, HalfAtATime: batches %s verdict %d", got, v)
	}
}
