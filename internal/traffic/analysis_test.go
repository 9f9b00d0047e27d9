package traffic

import (
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

// srv is a server's counters: total requests, 5xx, errors, rtime.
func srv(name string, total, h5xx, errs int64, rtime int) api.LBServerStatus {
	return api.LBServerStatus{Backend: "web", Name: name, Total: total, Responses: total - errs, HTTP5xx: h5xx, Errors: errs, RespTimeMillis: rtime}
}

func TestAnalyze(t *testing.T) {
	canary := map[string]bool{"c1": true}
	base := []api.LBServerStatus{srv("c1", 1000, 5, 0, 10), srv("s1", 5000, 10, 0, 10), srv("s2", 5000, 10, 0, 10)}
	cases := []struct {
		name    string
		spec    api.CanarySpec
		before  []api.LBServerStatus
		after   []api.LBServerStatus
		canary  map[string]bool
		verdict string
		reason  string // substring
		check   func(t *testing.T, a api.CanaryAnalysis)
	}{
		{name: "healthy canary passes", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 12), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 11, 0, 10)},
			verdict: VerdictPass,
			check: func(t *testing.T, a api.CanaryAnalysis) {
				if a.CanaryRequests != 100 || a.CanaryErrors != 0 || a.StableRequests != 900 || a.StableErrors != 1 {
					t.Errorf("counts %+v", a)
				}
				if a.CanaryLatency != 12 || a.StableLatency != 10 {
					t.Errorf("latency %v / %v", a.CanaryLatency, a.StableLatency)
				}
			}},
		{name: "20% 5xx fails", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 25, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictFail, reason: "error rate 20.0%",
			check: func(t *testing.T, a api.CanaryAnalysis) {
				if a.ErrorRate != 0.2 {
					t.Errorf("error rate %v, want 0.2", a.ErrorRate)
				}
			}},
		{name: "connection errors count as errors", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 10, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictFail, reason: "10 of 100"},
		{name: "error rate exactly at the limit passes", spec: api.CanarySpec{MaxErrorRate: 0.05}, before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 10, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictPass},
		{name: "just above a custom limit fails", spec: api.CanarySpec{MaxErrorRate: 0.05}, before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 11, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictFail},
		{name: "no canary traffic is no data", before: base,
			after:   []api.LBServerStatus{srv("c1", 1000, 5, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "served 0 requests"},
		{name: "below min requests is no data even if all failed", before: base,
			after:   []api.LBServerStatus{srv("c1", 1019, 24, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "fewer than the 20"},
		{name: "custom min requests", spec: api.CanarySpec{MinRequests: 5}, before: base,
			after:   []api.LBServerStatus{srv("c1", 1005, 5, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictPass},
		{name: "counter reset is no data, never pass", before: base,
			after:   []api.LBServerStatus{srv("c1", 100, 0, 0, 10), srv("s1", 450, 0, 0, 10), srv("s2", 450, 0, 0, 10)},
			verdict: VerdictNoData, reason: "reloaded"},
		{name: "stable counter reset is no data too", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 10), srv("s1", 450, 0, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "server s1"},
		{name: "5xx counter going down alone is a reset", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 0, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "went down"},
		{name: "canary missing before is no data", before: base[1:],
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "previous sample"},
		{name: "canary missing after is no data", before: base,
			after:   []api.LBServerStatus{srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictNoData, reason: "not in the load balancer's report"},
		{name: "slow canary fails on latency", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 50), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictFail, reason: "response time 50 ms"},
		{name: "latency ratio within the limit passes", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 19), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictPass},
		{name: "sub-10ms difference is noise", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 3), srv("s1", 5450, 10, 0, 0), srv("s2", 5450, 10, 0, 1)},
			verdict: VerdictPass},
		{name: "latency check off", spec: api.CanarySpec{MaxLatencyRatio: -1}, before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 500), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10)},
			verdict: VerdictPass},
		{name: "no stable traffic skips latency", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 500), srv("s1", 5000, 10, 0, 10), srv("s2", 5000, 10, 0, 10)},
			verdict: VerdictPass},
		{name: "latency weighted by requests", before: base,
			after: []api.LBServerStatus{srv("c1", 1100, 5, 0, 10), srv("s1", 5900, 10, 0, 10), srv("s2", 5100, 10, 0, 100)},
			// stable: (900×10 + 100×100) / 1000 = 19
			verdict: VerdictPass,
			check: func(t *testing.T, a api.CanaryAnalysis) {
				if a.StableLatency != 19 {
					t.Errorf("stable latency %v, want 19", a.StableLatency)
				}
			}},
		{name: "two canaries summed", canary: map[string]bool{"c1": true, "s2": true}, before: base,
			after:   []api.LBServerStatus{srv("c1", 1010, 5, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5015, 10, 0, 10)},
			verdict: VerdictPass,
			check: func(t *testing.T, a api.CanaryAnalysis) {
				if a.CanaryRequests != 25 || a.CanaryErrors != 0 || a.StableRequests != 450 {
					t.Errorf("counts %+v", a)
				}
			}},
		{name: "new stable server is ignored", before: base,
			after:   []api.LBServerStatus{srv("c1", 1100, 5, 0, 10), srv("s1", 5450, 10, 0, 10), srv("s2", 5450, 10, 0, 10), srv("s3", 9, 9, 0, 10)},
			verdict: VerdictPass},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cn := c.canary
			if cn == nil {
				cn = canary
			}
			a := Analyze(c.spec, c.before, c.after, cn)
			if a.Verdict != c.verdict {
				t.Fatalf("verdict %q (%s), want %q", a.Verdict, a.Reason, c.verdict)
			}
			if !strings.Contains(a.Reason, c.reason) {
				t.Errorf("reason %q does not say %q", a.Reason, c.reason)
			}
			if a.Reason == "" {
				t.Error("no reason")
			}
			if c.check != nil {
				c.check(t, a)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	an := func(step int, v string) api.CanaryAnalysis {
		return api.CanaryAnalysis{Step: step, Verdict: v, Reason: "r-" + v}
	}
	P, F, N := VerdictPass, VerdictFail, VerdictNoData
	cases := []struct {
		name     string
		spec     api.CanarySpec
		step     int
		analyses []api.CanaryAnalysis
		ended    bool
		want     Decision
		reason   string
	}{
		{name: "nothing yet, step running", want: Hold},
		{name: "pass, step running", analyses: []api.CanaryAnalysis{an(0, P)}, want: Hold},
		{name: "pass, step ended", analyses: []api.CanaryAnalysis{an(0, P)}, ended: true, want: NextStep},
		{name: "first failure aborts at once (limit 0)", analyses: []api.CanaryAnalysis{an(0, F)}, want: Abort, reason: "r-fail"},
		{name: "failure within the limit holds", spec: api.CanarySpec{FailureLimit: 1}, analyses: []api.CanaryAnalysis{an(0, F)}, want: Hold},
		{name: "failure within the limit passes the step", spec: api.CanarySpec{FailureLimit: 1}, analyses: []api.CanaryAnalysis{an(0, F), an(0, P)}, ended: true, want: NextStep},
		{name: "failures over the limit abort", spec: api.CanarySpec{FailureLimit: 1}, analyses: []api.CanaryAnalysis{an(0, F), an(0, P), an(0, F)}, want: Abort, reason: "2 time(s)"},
		{name: "failures count across steps", spec: api.CanarySpec{FailureLimit: 1}, step: 1, analyses: []api.CanaryAnalysis{an(0, F), an(1, F)}, want: Abort},
		{name: "wait: no data does not count while running", analyses: []api.CanaryAnalysis{an(0, N), an(0, N), an(0, N)}, want: Hold},
		{name: "wait: step ending with only no data fails", analyses: []api.CanaryAnalysis{an(0, N), an(0, N)}, ended: true, want: Abort, reason: "no data"},
		{name: "wait: step ending with no analysis fails", ended: true, want: Abort, reason: "no analysis"},
		{name: "wait: one data point in the step is enough", analyses: []api.CanaryAnalysis{an(0, N), an(0, P), an(0, N)}, ended: true, want: NextStep},
		{name: "wait: data in an earlier step does not count", step: 1, analyses: []api.CanaryAnalysis{an(0, P), an(1, N)}, ended: true, want: Abort, reason: "step 2"},
		{name: "explicit wait is the default", spec: api.CanarySpec{OnNoData: NoDataWait}, analyses: []api.CanaryAnalysis{an(0, N)}, ended: true, want: Abort},
		{name: "fail: no data counts as a failure", spec: api.CanarySpec{OnNoData: NoDataFail}, analyses: []api.CanaryAnalysis{an(0, N)}, want: Abort, reason: "r-no_data"},
		{name: "fail: no data within the limit", spec: api.CanarySpec{OnNoData: NoDataFail, FailureLimit: 2}, analyses: []api.CanaryAnalysis{an(0, N), an(0, N)}, ended: true, want: NextStep},
		{name: "fail: no data plus a failure over the limit", spec: api.CanarySpec{OnNoData: NoDataFail, FailureLimit: 1}, analyses: []api.CanaryAnalysis{an(0, N), an(0, F)}, want: Abort},
		{name: "pass: no data counts as a pass", spec: api.CanarySpec{OnNoData: NoDataPass}, analyses: []api.CanaryAnalysis{an(0, N)}, ended: true, want: NextStep},
		{name: "pass: no data does not hide a failure", spec: api.CanarySpec{OnNoData: NoDataPass}, analyses: []api.CanaryAnalysis{an(0, N), an(0, F)}, want: Abort},
		{name: "pass: step with no analysis passes", spec: api.CanarySpec{OnNoData: NoDataPass}, ended: true, want: NextStep},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, reason := Decide(c.spec, c.step, c.analyses, c.ended)
			if d != c.want {
				t.Fatalf("Decide = %v (%s), want %v", d, reason, c.want)
			}
			if !strings.Contains(reason, c.reason) {
				t.Errorf("reason %q does not say %q", reason, c.reason)
			}
			if d == Abort && reason == "" {
				t.Error("abort without a reason")
			}
		})
	}
}

func TestCheckSpec(t *testing.T) {
	ok := WithDefaults(api.CanarySpec{Steps: []api.CanaryStep{{Weight: 10, PauseMillis: 30000}, {Weight: 100}}})
	if err := CheckSpec(ok); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	bad := []struct {
		mut  func(s *api.CanarySpec)
		want string
	}{
		{func(s *api.CanarySpec) { s.Steps = nil }, "canary.steps"},
		{func(s *api.CanarySpec) { s.Steps[0].Weight = 0 }, "canary.steps[0].weight"},
		{func(s *api.CanarySpec) { s.Steps[1].Weight = 101 }, "canary.steps[1].weight"},
		{func(s *api.CanarySpec) { s.Steps[1].Weight = 5 }, "only grow"},
		{func(s *api.CanarySpec) { s.Steps[0].PauseMillis = -1 }, "pause"},
		{func(s *api.CanarySpec) { s.IntervalMillis = 10 }, "canary.interval"},
		{func(s *api.CanarySpec) { s.MaxErrorRate = 2 }, "canary.max_error_rate"},
		{func(s *api.CanarySpec) { s.FailureLimit = -1 }, "canary.failure_limit"},
		{func(s *api.CanarySpec) { s.OnNoData = "maybe" }, "wait, fail, pass"},
	}
	for _, b := range bad {
		s := ok
		s.Steps = append([]api.CanaryStep(nil), ok.Steps...)
		b.mut(&s)
		err := CheckSpec(s)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("CheckSpec = %v, want an error naming %q", err, b.want)
		}
	}
}
