package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/pflag"
)

// strategyReq parses args as 'gantry deploy' strategy flags.
func strategyReq(t *testing.T, args ...string) (api.DeployRequest, error) {
	t.Helper()
	var o strategyFlags
	f := pflag.NewFlagSet("deploy", pflag.ContinueOnError)
	o.define(f)
	if err := f.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	o.changed(f)
	var req api.DeployRequest
	err := o.apply(&req)
	return req, err
}

func TestDeployStrategyFlags(t *testing.T) {
	req, err := strategyReq(t, "--strategy", "canary", "--canary-steps", "10:30s,50:1m,100:0", "--canary-hosts", "2",
		"--analysis-interval", "5s", "--max-error-rate", "2%", "--max-latency-ratio", "1.5", "--failure-limit", "1", "--on-no-data", "fail")
	if err != nil {
		t.Fatal(err)
	}
	want := &api.CanarySpec{Hosts: 2, Steps: []api.CanaryStep{{Weight: 10, PauseMillis: 30000}, {Weight: 50, PauseMillis: 60000}, {Weight: 100}},
		IntervalMillis: 5000, MaxErrorRate: 0.02, MaxLatencyRatio: 1.5, FailureLimit: 1, OnNoData: "fail"}
	if req.Strategy != api.StrategyCanary || !reflect.DeepEqual(req.Canary, want) || req.BlueGreen != nil {
		t.Errorf("canary request %+v %+v, want %+v", req, req.Canary, want)
	}
	req, err = strategyReq(t, "--strategy", "blue_green", "--replacement-selector", "color=green", "--keep-original", "0s", "--shift-step", "25", "--shift-interval", "30s")
	if err != nil {
		t.Fatal(err)
	}
	wantBG := &api.BlueGreenSpec{ReplacementSelector: "color=green", NoKeep: true, StepPercent: 25, StepIntervalMillis: 30000}
	if req.Strategy != api.StrategyBlueGreen || !reflect.DeepEqual(req.BlueGreen, wantBG) {
		t.Errorf("blue-green request %+v %+v, want %+v", req, req.BlueGreen, wantBG)
	}
	if req, err := strategyReq(t); err != nil || req.Strategy != "" || req.Canary != nil {
		t.Errorf("no flags: %+v %v", req, err)
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--strategy", "rainbow"}, "invalid --strategy \"rainbow\": want in-place, canary or blue-green"},
		{[]string{"--canary-steps", "10:30s"}, "--canary-steps needs --strategy canary"},
		{[]string{"--strategy", "canary", "--keep-original", "5m"}, "--keep-original needs --strategy blue-green"},
		{[]string{"--strategy", "canary", "--canary-steps", "10"}, "want WEIGHT:PAUSE"},
		{[]string{"--strategy", "canary", "--canary-steps", "0:30s"}, "percentage from 1 to 100"},
		{[]string{"--strategy", "canary", "--canary-steps", "150:30s"}, "percentage from 1 to 100"},
		{[]string{"--strategy", "canary", "--canary-steps", "50:30s,10:30s"}, "weights only grow"},
		{[]string{"--strategy", "canary", "--canary-steps", "10:soon"}, "the pause must be a duration"},
		{[]string{"--strategy", "canary", "--canary-hosts", "0"}, "invalid --canary-hosts 0"},
		{[]string{"--strategy", "canary", "--analysis-interval", "10ms"}, "invalid --analysis-interval"},
		{[]string{"--strategy", "canary", "--max-error-rate", "200%"}, "invalid --max-error-rate"},
		{[]string{"--strategy", "canary", "--max-error-rate", "lots"}, "invalid --max-error-rate"},
		{[]string{"--strategy", "canary", "--max-latency-ratio", "0"}, "invalid --max-latency-ratio"},
		{[]string{"--strategy", "canary", "--failure-limit", "-1"}, "invalid --failure-limit"},
		{[]string{"--strategy", "canary", "--on-no-data", "maybe"}, "want wait, fail or pass"},
		{[]string{"--strategy", "blue-green", "--shift-step", "0"}, "invalid --shift-step"},
		{[]string{"--strategy", "blue-green", "--shift-interval", "30s"}, "--shift-interval needs --shift-step"},
		{[]string{"--strategy", "blue-green", "--keep-original", "-1s"}, "invalid --keep-original"},
	}
	for _, b := range bad {
		_, err := strategyReq(t, b.args...)
		var ue *usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: %v, want a usage error saying %q", b.args, err, b.want)
		}
	}
}

// Live progress shows each canary analysis as a line of its own, and the
// summary says where the canary ended.
func TestCanaryProgressLines(t *testing.T) {
	var b strings.Builder
	v := newDeployView(&b, false)
	v.note(analysisLine(api.CanaryAnalysis{Step: 0, Weight: 10, Verdict: "no_data", Reason: "the canary served 3 requests, fewer than the 20 an analysis needs"}))
	v.traffic(api.TrafficChange{Server: "web1", Action: "weight", Weight: 11, Detail: "canary step 1: 10% to the canary"})
	want := "canary analysis (step 1, 10%): no data: the canary served 3 requests, fewer than the 20 an analysis needs\nweb1: canary step 1: 10% to the canary (weight 11)\n"
	if b.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printStrategy(&b, api.Deployment{Strategy: api.StrategyCanary, Traffic: &api.DeployTraffic{Phase: "aborted", Step: 0, Weight: 20, CanaryHosts: []string{"web1"},
		Reason:   "canary analysis failed 1 time(s)",
		Analyses: []api.CanaryAnalysis{{Verdict: "fail", Weight: 20, Reason: "canary error rate 20.0%"}}}})
	for _, s := range []string{"Canary: aborted, step 1, 20% of the traffic, hosts web1: canary analysis failed", "Analyses: 1 (0 passed, 1 failed, 0 without data)"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("summary %q does not say %q", b.String(), s)
		}
	}
}
