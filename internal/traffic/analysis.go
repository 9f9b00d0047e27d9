package traffic

import (
	"fmt"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Canary analysis defaults (api.CanarySpec).
const (
	DefaultMaxErrorRate    = 0.01
	DefaultMaxLatencyRatio = 2.0
	DefaultMinRequests     = 20
	DefaultInterval        = 10 * time.Second
	// LatencySlackMillis is the least difference, in milliseconds, between
	// the canary's and the stable servers' average response times that can
	// fail an analysis: haproxy reports whole milliseconds, so on a fast
	// service 0 against 2 ms is a ratio of noise, not a regression.
	LatencySlackMillis = 10
)

// Verdicts of an analysis (api.CanaryAnalysis.Verdict).
const (
	VerdictPass   = "pass"
	VerdictFail   = "fail"
	VerdictNoData = "no_data"
)

// On-no-data policies (api.CanarySpec.OnNoData).
const (
	NoDataWait = "wait"
	NoDataFail = "fail"
	NoDataPass = "pass"
)

// WithDefaults returns spec with its zero fields set to the defaults.
func WithDefaults(spec api.CanarySpec) api.CanarySpec {
	if spec.Hosts <= 0 {
		spec.Hosts = 1
	}
	if spec.IntervalMillis <= 0 {
		spec.IntervalMillis = DefaultInterval.Milliseconds()
	}
	if spec.MaxErrorRate <= 0 {
		spec.MaxErrorRate = DefaultMaxErrorRate
	}
	if spec.MaxLatencyRatio == 0 {
		spec.MaxLatencyRatio = DefaultMaxLatencyRatio
	}
	if spec.MinRequests <= 0 {
		spec.MinRequests = DefaultMinRequests
	}
	if spec.OnNoData == "" {
		spec.OnNoData = NoDataWait
	}
	return spec
}

// CheckSpec validates a canary spec (after WithDefaults); its errors name
// the field and what is valid.
func CheckSpec(spec api.CanarySpec) error {
	if len(spec.Steps) == 0 {
		return fmt.Errorf("canary.steps: at least one step is needed (e.g. 10:30s,50:30s,100:0)")
	}
	if len(spec.Steps) > 20 {
		return fmt.Errorf("canary.steps: %d steps; at most 20", len(spec.Steps))
	}
	prev := 0
	for i, s := range spec.Steps {
		if s.Weight < 1 || s.Weight > 100 {
			return fmt.Errorf("canary.steps[%d].weight: %d; a percentage from 1 to 100", i, s.Weight)
		}
		if s.Weight < prev {
			return fmt.Errorf("canary.steps[%d].weight: %d is below the previous step's %d; weights only grow", i, s.Weight, prev)
		}
		prev = s.Weight
		if s.PauseMillis < 0 || s.PauseMillis > (24*time.Hour).Milliseconds() {
			return fmt.Errorf("canary.steps[%d].pause: %dms; 0 (wait for `gantry deployments promote`) to 24h", i, s.PauseMillis)
		}
	}
	if spec.Hosts < 1 || spec.Hosts > 1000 {
		return fmt.Errorf("canary.hosts: %d; 1 to 1000", spec.Hosts)
	}
	if spec.IntervalMillis < 1000 || spec.IntervalMillis > (time.Hour).Milliseconds() {
		return fmt.Errorf("canary.interval: %dms; 1s to 1h", spec.IntervalMillis)
	}
	if spec.MaxErrorRate < 0 || spec.MaxErrorRate > 1 {
		return fmt.Errorf("canary.max_error_rate: %g; 0 to 1 (0.01 = 1%%)", spec.MaxErrorRate)
	}
	if spec.FailureLimit < 0 || spec.FailureLimit > 100 {
		return fmt.Errorf("canary.failure_limit: %d; 0 to 100", spec.FailureLimit)
	}
	if spec.MinRequests < 1 || spec.MinRequests > 1_000_000 {
		return fmt.Errorf("canary.min_requests: %d; 1 to 1000000", spec.MinRequests)
	}
	switch spec.OnNoData {
	case NoDataWait, NoDataFail, NoDataPass:
	default:
		return fmt.Errorf("canary.on_no_data: %q; one of wait, fail, pass", spec.OnNoData)
	}
	return nil
}

// side sums one side's (canary or stable) counters over an interval.
type side struct {
	requests, errors int64
	// latency weighted by requests: Σ rtime×requests.
	latencyWeighted float64
	latencyRequests int64
}

func (s side) latency() float64 {
	if s.latencyRequests == 0 {
		return 0
	}
	return s.latencyWeighted / float64(s.latencyRequests)
}

// Analyze compares the canary servers with the stable ones over one
// interval, from two samples of the load balancer's per-server counters
// (before and after: LBStatus of the backend). canary names the canary
// servers; every other server of before/after is stable.
//
// Requests are the servers' sessions (haproxy's stot) or responses,
// whichever grew more; errors are 5xx responses plus connection and
// response errors (econ + eresp). The error rate is the canary's
// errors / requests, failed above MaxErrorRate.
//
// Latency: haproxy's rtime is the average response time of a server's
// last 1024 requests, in whole milliseconds, not of the interval. Each
// side's latency is the rtime of its servers weighted by their requests
// in the interval. So at a low rate it still remembers requests from
// before the interval (and a new canary's first requests weigh fully),
// and it is 0 for servers that served nothing, which are left out. The
// latency fails only when the canary's is above MaxLatencyRatio × the
// stable servers' and at least LatencySlackMillis above it; it is not
// judged when the stable servers served nothing (the canary at 100 %),
// or when MaxLatencyRatio is negative.
//
// The verdict is no_data, never pass, when the canary served fewer than
// MinRequests requests, when a canary server is missing from a sample, or
// when a counter went down (the load balancer was reloaded or restarted
// and counts from zero again).
func Analyze(spec api.CanarySpec, before, after []api.LBServerStatus, canary map[string]bool) api.CanaryAnalysis {
	spec = WithDefaults(spec)
	a := api.CanaryAnalysis{}
	prev := make(map[string]api.LBServerStatus, len(before))
	for _, s := range before {
		prev[s.Name] = s
	}
	seen := map[string]bool{}
	var c, st side
	for _, s := range after {
		p, ok := prev[s.Name]
		if !ok {
			if canary[s.Name] {
				a.Verdict, a.Reason = VerdictNoData, fmt.Sprintf("canary server %s is not in the previous sample", s.Name)
				return a
			}
			continue // a stable server that appeared: counted from the next interval
		}
		seen[s.Name] = true
		if s.Total < p.Total || s.Responses < p.Responses || s.HTTP5xx < p.HTTP5xx || s.Errors < p.Errors {
			a.Verdict, a.Reason = VerdictNoData, fmt.Sprintf("the counters of server %s went down (total %d → %d): the load balancer was reloaded or restarted; the next interval counts again", s.Name, p.Total, s.Total)
			return a
		}
		req := max(s.Total-p.Total, s.Responses-p.Responses)
		errs := (s.HTTP5xx - p.HTTP5xx) + (s.Errors - p.Errors)
		x := &st
		if canary[s.Name] {
			x = &c
		}
		x.requests += req
		x.errors += errs
		if req > 0 && s.RespTimeMillis > 0 {
			x.latencyWeighted += float64(s.RespTimeMillis) * float64(req)
			x.latencyRequests += req
		}
	}
	for name := range canary {
		if !seen[name] {
			a.Verdict, a.Reason = VerdictNoData, fmt.Sprintf("canary server %s is not in the load balancer's report", name)
			return a
		}
	}
	a.CanaryRequests, a.CanaryErrors = c.requests, c.errors
	a.StableRequests, a.StableErrors = st.requests, st.errors
	a.CanaryLatency, a.StableLatency = c.latency(), st.latency()
	if c.requests > 0 {
		a.ErrorRate = min(1, float64(c.errors)/float64(c.requests))
	}
	if c.requests < spec.MinRequests {
		a.Verdict, a.Reason = VerdictNoData, fmt.Sprintf("the canary served %d requests, fewer than the %d an analysis needs", c.requests, spec.MinRequests)
		return a
	}
	if a.ErrorRate > spec.MaxErrorRate {
		a.Verdict, a.Reason = VerdictFail, fmt.Sprintf("canary error rate %.1f%% (%d of %d requests) is above %.1f%% (stable: %d of %d)",
			100*a.ErrorRate, c.errors, c.requests, 100*spec.MaxErrorRate, st.errors, st.requests)
		return a
	}
	if spec.MaxLatencyRatio > 0 && st.requests > 0 && a.StableLatency >= 0 && a.CanaryLatency > 0 {
		limit := spec.MaxLatencyRatio * a.StableLatency
		if a.CanaryLatency > limit && a.CanaryLatency-a.StableLatency >= LatencySlackMillis {
			a.Verdict, a.Reason = VerdictFail, fmt.Sprintf("canary response time %.0f ms is above %.1f × the stable servers' %.0f ms",
				a.CanaryLatency, spec.MaxLatencyRatio, a.StableLatency)
			return a
		}
	}
	a.Verdict = VerdictPass
	a.Reason = fmt.Sprintf("canary error rate %.1f%% (%d of %d requests), response time %.0f ms (stable %.0f ms)",
		100*a.ErrorRate, c.errors, c.requests, a.CanaryLatency, a.StableLatency)
	return a
}

// Decision is what a canary step does next.
type Decision int

// Decisions.
const (
	// Hold: the step goes on (analyse again after the next interval).
	Hold Decision = iota
	// NextStep: the step is over and passed.
	NextStep
	// Abort: the canary failed; roll it back.
	Abort
)

func (d Decision) String() string {
	switch d {
	case NextStep:
		return "next step"
	case Abort:
		return "abort"
	}
	return "hold"
}

// Failures counts the failed analyses: fail verdicts, and no_data ones when
// OnNoData is fail.
func Failures(spec api.CanarySpec, analyses []api.CanaryAnalysis) int {
	spec = WithDefaults(spec)
	n := 0
	for _, a := range analyses {
		if a.Verdict == VerdictFail || a.Verdict == VerdictNoData && spec.OnNoData == NoDataFail {
			n++
		}
	}
	return n
}

// Decide says what step does next, given every analysis of the canary so
// far (all steps) and whether the step's pause is over (stepEnded).
//
//   - More failed analyses than FailureLimit (over the whole canary, as
//     Argo's failureLimit) → Abort, at once, whether the step ended or not.
//     A no_data analysis is a failure with OnNoData fail.
//   - The step is not over → Hold.
//   - The step is over → NextStep, except with OnNoData wait (the default)
//     when none of the step's analyses had data: a step that ends without
//     data fails (Abort), it never passes silently. With OnNoData pass a
//     no_data analysis counts as a pass.
func Decide(spec api.CanarySpec, step int, analyses []api.CanaryAnalysis, stepEnded bool) (Decision, string) {
	spec = WithDefaults(spec)
	if n := Failures(spec, analyses); n > spec.FailureLimit {
		last := ""
		for i := len(analyses) - 1; i >= 0; i-- {
			if v := analyses[i].Verdict; v == VerdictFail || v == VerdictNoData && spec.OnNoData == NoDataFail {
				last = analyses[i].Reason
				break
			}
		}
		return Abort, fmt.Sprintf("canary analysis failed %d time(s), above the failure limit of %d: %s", n, spec.FailureLimit, last)
	}
	if !stepEnded {
		return Hold, ""
	}
	data, total := 0, 0
	lastNoData := ""
	for _, a := range analyses {
		if a.Step != step {
			continue
		}
		total++
		if a.Verdict == VerdictNoData {
			lastNoData = a.Reason
			continue
		}
		data++
	}
	if data == 0 && spec.OnNoData == NoDataWait {
		if total == 0 {
			return Abort, fmt.Sprintf("canary step %d ended with no data: no analysis ran", step+1)
		}
		return Abort, fmt.Sprintf("canary step %d ended with no data in %d analyses (on_no_data wait): %s", step+1, total, lastNoData)
	}
	return NextStep, fmt.Sprintf("canary step %d passed", step+1)
}
