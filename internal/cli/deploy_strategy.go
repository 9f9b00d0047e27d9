package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// strategyFlags are the strategy flags of 'gantry deploy'.
type strategyFlags struct {
	Strategy         string
	CanarySteps      string
	CanaryHosts      int
	AnalysisInterval time.Duration
	MaxErrorRate     string
	MaxLatencyRatio  float64
	FailureLimit     int
	MinRequests      int64
	OnNoData         string
	Replacement      string
	KeepOriginal     time.Duration
	ShiftStep        int
	ShiftInterval    time.Duration

	set map[string]bool // flags given
}

var canaryFlagNames = []string{"canary-steps", "canary-hosts", "analysis-interval", "max-error-rate", "max-latency-ratio", "failure-limit", "min-requests", "on-no-data"}
var blueGreenFlagNames = []string{"replacement-selector", "keep-original", "shift-step", "shift-interval"}

func (o *strategyFlags) define(f *pflag.FlagSet) {
	f.StringVar(&o.Strategy, "strategy", "", "deployment `STRATEGY`: in-place (the default), canary or blue-green (canary and blue-green need a group with a load balancer)")
	f.StringVar(&o.CanarySteps, "canary-steps", "", "canary weight steps `W:PAUSE,...` in percent, e.g. 10:30s,50:30s,100:0 (a pause of 0 waits for 'gantry deployments promote'; default 10:1m,50:1m,100:1m)")
	f.IntVar(&o.CanaryHosts, "canary-hosts", 0, "number of canary hosts `N` (default 1; the group needs at least N+1)")
	f.DurationVar(&o.AnalysisInterval, "analysis-interval", 0, "canary analysis `interval`, 1s to 1h (default 10s)")
	f.StringVar(&o.MaxErrorRate, "max-error-rate", "", "highest canary 5xx/error `RATE` that passes: 0.01 or 1% (default 1%)")
	f.Float64Var(&o.MaxLatencyRatio, "max-latency-ratio", 0, "highest canary/stable response time `RATIO` that passes (default 2; -1 turns the check off)")
	f.IntVar(&o.FailureLimit, "failure-limit", 0, "failed analyses tolerated before the canary is rolled back (`N`, default 0)")
	f.Int64Var(&o.MinRequests, "min-requests", 0, "canary requests `N` an analysis interval needs to count as data (default 20)")
	f.StringVar(&o.OnNoData, "on-no-data", "", "what an interval without canary traffic means: `wait` (default: a step that ends without data fails), fail or pass")
	f.StringVar(&o.Replacement, "replacement-selector", "", "blue-green of hand-onboarded hosts: the `SELECTOR` of the replacement hosts (online, not in the group, servers of its load balancer backend); an environment's group makes its own")
	f.DurationVar(&o.KeepOriginal, "keep-original", 0, "blue-green: keep the original hosts ready to take traffic back for this `long` (default 5m; 0s lets them go at once)")
	f.IntVar(&o.ShiftStep, "shift-step", 0, "blue-green: move traffic in steps of `PERCENT` (default: all at once)")
	f.DurationVar(&o.ShiftInterval, "shift-interval", 0, "blue-green: wait this `long` between traffic steps (default 30s with --shift-step)")
}

// changed records which flags were given.
func (o *strategyFlags) changed(f *pflag.FlagSet) {
	o.set = map[string]bool{}
	f.Visit(func(fl *pflag.Flag) { o.set[fl.Name] = true })
}

// apply validates the flags and sets the request's strategy fields.
func (o *strategyFlags) apply(req *api.DeployRequest) error {
	strategy := strings.ToLower(strings.TrimSpace(o.Strategy))
	switch strategy {
	case "", api.StrategyInPlace, "in_place", "inplace":
		strategy = ""
		if o.Strategy != "" {
			strategy = api.StrategyInPlace
		}
	case api.StrategyCanary:
	case api.StrategyBlueGreen, "blue_green", "bluegreen":
		strategy = api.StrategyBlueGreen
	default:
		return usageErrorf("invalid --strategy %q: want in-place, canary or blue-green", o.Strategy)
	}
	for _, n := range canaryFlagNames {
		if o.set[n] && strategy != api.StrategyCanary {
			return usageErrorf("--%s needs --strategy canary", n)
		}
	}
	for _, n := range blueGreenFlagNames {
		if o.set[n] && strategy != api.StrategyBlueGreen {
			return usageErrorf("--%s needs --strategy blue-green", n)
		}
	}
	req.Strategy = strategy
	switch strategy {
	case api.StrategyCanary:
		spec, err := o.canary()
		if err != nil {
			return err
		}
		req.Canary = spec
	case api.StrategyBlueGreen:
		spec, err := o.blueGreen()
		if err != nil {
			return err
		}
		req.BlueGreen = spec
	}
	return nil
}

func (o *strategyFlags) canary() (*api.CanarySpec, error) {
	spec := &api.CanarySpec{Hosts: o.CanaryHosts, FailureLimit: o.FailureLimit, MinRequests: o.MinRequests, OnNoData: o.OnNoData, MaxLatencyRatio: o.MaxLatencyRatio}
	if o.set["canary-steps"] {
		steps, err := parseCanarySteps(o.CanarySteps)
		if err != nil {
			return nil, err
		}
		spec.Steps = steps
	}
	if o.set["canary-hosts"] && (o.CanaryHosts < 1 || o.CanaryHosts > 1000) {
		return nil, usageErrorf("invalid --canary-hosts %d: want 1 to 1000", o.CanaryHosts)
	}
	if o.set["analysis-interval"] {
		if o.AnalysisInterval < time.Second || o.AnalysisInterval > time.Hour {
			return nil, usageErrorf("invalid --analysis-interval %s: want 1s to 1h", o.AnalysisInterval)
		}
		spec.IntervalMillis = o.AnalysisInterval.Milliseconds()
	}
	if o.set["max-error-rate"] {
		r, err := parseRate(o.MaxErrorRate)
		if err != nil {
			return nil, usageErrorf("invalid --max-error-rate %q: %v", o.MaxErrorRate, err)
		}
		spec.MaxErrorRate = r
	}
	if o.set["max-latency-ratio"] && (o.MaxLatencyRatio == 0 || o.MaxLatencyRatio > 1000 || math.IsNaN(o.MaxLatencyRatio)) {
		return nil, usageErrorf("invalid --max-latency-ratio %g: want a ratio above 0 (e.g. 1.5), up to 1000, or -1 to turn the check off", o.MaxLatencyRatio)
	}
	if o.set["failure-limit"] && (o.FailureLimit < 0 || o.FailureLimit > 100) {
		return nil, usageErrorf("invalid --failure-limit %d: want 0 to 100", o.FailureLimit)
	}
	if o.set["min-requests"] && (o.MinRequests < 1 || o.MinRequests > 1_000_000) {
		return nil, usageErrorf("invalid --min-requests %d: want 1 to 1000000", o.MinRequests)
	}
	if o.set["on-no-data"] {
		switch o.OnNoData {
		case "wait", "fail", "pass":
		default:
			return nil, usageErrorf("invalid --on-no-data %q: want wait, fail or pass", o.OnNoData)
		}
	}
	return spec, nil
}

// parseRate reads 0.01 or 1%.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("want a rate from 0 to 1 (0.01) or a percentage (1%%)")
	}
	if pct {
		v /= 100
	}
	if v < 0 || v > 1 {
		return 0, fmt.Errorf("want a rate from 0 to 1 (0.01) or a percentage from 0%% to 100%%")
	}
	return v, nil
}

// parseCanarySteps reads "10:30s,50:30s,100:0".
func parseCanarySteps(s string) ([]api.CanaryStep, error) {
	if strings.TrimSpace(s) == "" {
		return nil, usageErrorf("invalid --canary-steps: empty; want WEIGHT:PAUSE,... such as 10:30s,50:30s,100:0")
	}
	var out []api.CanaryStep
	prev := 0
	for i, part := range strings.Split(s, ",") {
		w, p, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, usageErrorf("invalid --canary-steps step %d %q: want WEIGHT:PAUSE such as 10:30s (a pause of 0 waits for 'gantry deployments promote')", i+1, part)
		}
		weight, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(w), "%"))
		if err != nil || weight < 1 || weight > 100 {
			return nil, usageErrorf("invalid --canary-steps step %d %q: the weight must be a percentage from 1 to 100", i+1, part)
		}
		if weight < prev {
			return nil, usageErrorf("invalid --canary-steps step %d %q: weights only grow (%d after %d)", i+1, part, weight, prev)
		}
		prev = weight
		var pause time.Duration
		if p = strings.TrimSpace(p); p != "0" {
			pause, err = time.ParseDuration(p)
			if err != nil || pause < 0 || pause > 24*time.Hour {
				return nil, usageErrorf("invalid --canary-steps step %d %q: the pause must be a duration from 1s to 24h (30s, 5m) or 0 to wait for 'gantry deployments promote'", i+1, part)
			}
		}
		out = append(out, api.CanaryStep{Weight: weight, PauseMillis: pause.Milliseconds()})
	}
	if len(out) > 20 {
		return nil, usageErrorf("invalid --canary-steps: %d steps; at most 20", len(out))
	}
	return out, nil
}

func (o *strategyFlags) blueGreen() (*api.BlueGreenSpec, error) {
	spec := &api.BlueGreenSpec{ReplacementSelector: o.Replacement}
	if o.set["keep-original"] {
		if o.KeepOriginal < 0 || o.KeepOriginal > 48*time.Hour {
			return nil, usageErrorf("invalid --keep-original %s: want 0s (let the originals go at once) to 48h", o.KeepOriginal)
		}
		spec.KeepOriginalMillis = o.KeepOriginal.Milliseconds()
		spec.NoKeep = o.KeepOriginal == 0
	}
	if o.set["shift-step"] {
		if o.ShiftStep < 1 || o.ShiftStep > 100 {
			return nil, usageErrorf("invalid --shift-step %d: want a percentage from 1 to 100", o.ShiftStep)
		}
		spec.StepPercent = o.ShiftStep
	}
	if o.set["shift-interval"] {
		if !o.set["shift-step"] {
			return nil, usageErrorf("--shift-interval needs --shift-step")
		}
		if o.ShiftInterval < time.Second || o.ShiftInterval > time.Hour {
			return nil, usageErrorf("invalid --shift-interval %s: want 1s to 1h", o.ShiftInterval)
		}
		spec.StepIntervalMillis = o.ShiftInterval.Milliseconds()
	}
	return spec, nil
}

// analysisLine renders a canary analysis for live progress.
func analysisLine(a api.CanaryAnalysis) string {
	return fmt.Sprintf("canary analysis (step %d, %d%%): %s: %s", a.Step+1, a.Weight, strings.ReplaceAll(a.Verdict, "_", " "), a.Reason)
}

// note shows a line of its own (an analysis) as traffic() does.
func (v *deployView) note(line string) {
	if v == nil {
		return
	}
	if !v.tty {
		fmt.Fprintln(v.w, line)
		return
	}
	if v.drawn > 0 {
		fmt.Fprintf(v.w, "\x1b[%dA\x1b[J", v.drawn)
	}
	fmt.Fprintln(v.w, line)
	v.drawn = 0
	v.redraw()
}

// printStrategy prints a canary's or blue/green deployment's progress (a
// summary, or 'deployments show').
func printStrategy(w io.Writer, d api.Deployment) {
	t := d.Traffic
	if t == nil || d.Strategy == "" || d.Strategy == api.StrategyInPlace {
		return
	}
	switch d.Strategy {
	case api.StrategyCanary:
		fmt.Fprintf(w, "Canary: %s, step %d, %d%% of the traffic, hosts %s", orDash(t.Phase), t.Step+1, t.Weight, orDash(strings.Join(t.CanaryHosts, ", ")))
	case api.StrategyBlueGreen:
		fmt.Fprintf(w, "Blue/green: %s, %d%% of the traffic to the replacement %s (originals %s)", orDash(t.Phase), t.Weight,
			orDash(strings.Join(t.Replacement, ", ")), orDash(strings.Join(t.Original, ", ")))
	}
	if t.Reason != "" {
		fmt.Fprintf(w, ": %s", t.Reason)
	}
	if t.Status != "" {
		fmt.Fprintf(w, " (%s)", t.Status)
	}
	fmt.Fprintln(w)
	if len(t.OriginalHosts) > 0 {
		var parts []string
		for _, h := range t.OriginalHosts {
			p := h.HostName + " " + h.State
			if h.Event != "" {
				p += " (" + h.Event + ")"
			}
			if h.Error != "" {
				p += ": " + h.Error
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "Original hosts' block-traffic events: %s\n", strings.Join(parts, "; "))
	}
	if n := len(t.Analyses); n > 0 {
		pass, fail, nodata := 0, 0, 0
		for _, a := range t.Analyses {
			switch a.Verdict {
			case "pass":
				pass++
			case "fail":
				fail++
			default:
				nodata++
			}
		}
		fmt.Fprintf(w, "Analyses: %d (%d passed, %d failed, %d without data); last: %s\n", n, pass, fail, nodata, analysisLine(t.Analyses[n-1]))
	}
}

func (a *app) newDeploymentsPromoteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "promote DEPLOYMENT_ID",
		Short: "Promote a canary now (skip its remaining steps), or end a blue/green keep period",
		Long: `Promote a canary deployment: its remaining steps are skipped, every weight
returns to 100 and the rest of the group's hosts are deployed in place. A
step with a pause of 0 (--canary-steps 50:0) waits for this. On a
blue/green deployment keeping its original hosts, promote lets them go now.`,
		Example: `  gantry deployments promote DEPLOYMENT_ID`,
		Args:    exactArgs("DEPLOYMENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.PromoteDeployment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(d, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Promote requested for deployment %s.\nFollow it with: gantry deployments show %s\n", d.ID, d.ID)
				return err
			})
		},
	}
}

func (a *app) newDeploymentsAbortCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "abort DEPLOYMENT_ID",
		Short: "Abort a canary or blue/green deployment: traffic back to the stable hosts at once",
		Long: `Abort a canary or blue/green deployment. A canary's hosts are drained at
once (no new request reaches them) and the deployment fails; if the group
rolls back automatically, a rollback deployment redeploys the previous
revision to them. A blue/green deployment keeping its originals moves the
traffic back to them in one load balancer change.`,
		Example: `  gantry deployments abort DEPLOYMENT_ID`,
		Args:    exactArgs("DEPLOYMENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.AbortDeployment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(d, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Abort requested for deployment %s: traffic goes back to the stable hosts.\nFollow it with: gantry deployments show %s\n", d.ID, d.ID)
				return err
			})
		},
	}
}
