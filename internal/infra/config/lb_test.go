package config

import (
	"reflect"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

// TestLoadBalancerAndCanary loads a definition with load_balancer blocks
// and a canary deploy block and checks every value and default.
func TestLoadBalancerAndCanary(t *testing.T) {
	d := mustLoad(t, "testdata/good/lb", "dev")
	lb, err := d.EvalGroup("lb", World{})
	if err != nil {
		t.Fatal(err)
	}
	want := &LBSpec{Target: "web", Listen: 8000, Port: 8080, Balance: "leastconn", DrainTimeout: 45, Header: "X-Backend", Driver: "haproxy",
		Check: api.LBCheck{Path: "/healthz", IntervalMillis: 500, Rise: 3, Fall: 4}}
	if !reflect.DeepEqual(lb.LoadBalancer, want) {
		t.Errorf("lb.LoadBalancer = %+v, want %+v", lb.LoadBalancer, want)
	}
	plain, err := d.EvalGroup("plain", World{})
	if err != nil {
		t.Fatal(err)
	}
	want = &LBSpec{Target: "other", Listen: 80, Port: 80, Balance: "roundrobin", DrainTimeout: 30, Driver: "haproxy",
		Check: api.LBCheck{IntervalMillis: 1000, Rise: 2, Fall: 2}}
	if !reflect.DeepEqual(plain.LoadBalancer, want) {
		t.Errorf("plain.LoadBalancer = %+v, want %+v (the defaults)", plain.LoadBalancer, want)
	}
	if got := d.LoadBalancerOf("web"); got != "lb" {
		t.Errorf("LoadBalancerOf(web) = %q, want lb", got)
	}
	if got := d.LBTargetOf("lb"); got != "web" {
		t.Errorf("LBTargetOf(lb) = %q, want web", got)
	}
	// A load balancer does not wait for its target: no dependency.
	if deps := d.Groups["lb"].DependsOn; len(deps) != 0 {
		t.Errorf("group.lb DependsOn = %v, want none", deps)
	}
	web, err := d.EvalGroup("web", World{})
	if err != nil {
		t.Fatal(err)
	}
	if web.LoadBalancer != nil {
		t.Errorf("web.LoadBalancer = %+v", web.LoadBalancer)
	}
	wantDeploy := &DeploySpec{App: "shop", Strategy: api.StrategyCanary, Canary: &api.CanarySpec{
		Hosts: 1, Steps: []api.CanaryStep{{Weight: 10, PauseMillis: 30000}, {Weight: 50, PauseMillis: 60000}, {Weight: 100}},
		IntervalMillis: 10000, MaxErrorRate: 0.02, MaxLatencyRatio: 2, FailureLimit: 1, MinRequests: 50, OnNoData: "fail"}}
	if !reflect.DeepEqual(web.Deploy, wantDeploy) {
		t.Errorf("web.Deploy = %+v (canary %+v), want %+v", web.Deploy, web.Deploy.Canary, wantDeploy)
	}
}

// TestBlueGreenBlock: strategy "blue_green" (or "blue-green") and its
// blue_green block decode to api.StrategyBlueGreen and the values as
// written; keep_original = "0s" is NoKeep; no block is no spec (the
// deployment's defaults).
func TestBlueGreenBlock(t *testing.T) {
	d := mustLoad(t, "testdata/good/lb", "dev")
	for _, tc := range []struct {
		group string
		want  *DeploySpec
	}{
		{"blue", &DeploySpec{App: "shop", Strategy: api.StrategyBlueGreen,
			BlueGreen: &api.BlueGreenSpec{StepPercent: 25, StepIntervalMillis: 10000, KeepOriginalMillis: 90 * 60000}}},
		{"blue0", &DeploySpec{App: "shop", Strategy: api.StrategyBlueGreen, BlueGreen: &api.BlueGreenSpec{NoKeep: true}}},
		{"blue1", &DeploySpec{App: "shop", Strategy: api.StrategyBlueGreen}},
	} {
		g, err := d.EvalGroup(tc.group, World{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g.Deploy, tc.want) {
			t.Errorf("%s.Deploy = %+v (blue_green %+v), want %+v (blue_green %+v)", tc.group, g.Deploy, g.Deploy.BlueGreen, tc.want, tc.want.BlueGreen)
		}
	}
	if got := d.LoadBalancerOf("blue"); got != "bluefront" {
		t.Errorf("LoadBalancerOf(blue) = %q, want bluefront", got)
	}
}
