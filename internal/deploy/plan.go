package deploy

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/gantry-dev/gantry/internal/validate"
)

// Config is a deployment configuration: how many hosts must stay healthy
// while a revision rolls out (CodeDeploy's "minimum healthy hosts").
type Config struct {
	// Name is OneAtATime, HalfAtATime, AllAtOnce, or "" for a custom minimum.
	Name string
	// Count is a custom minimum as a number of hosts (Percent = false), or
	// as a percentage of the group's hosts (Percent = true), rounded up.
	Count   int
	Percent bool
}

// The built-in configurations.
var (
	OneAtATime  = Config{Name: "OneAtATime"}
	HalfAtATime = Config{Name: "HalfAtATime"}
	AllAtOnce   = Config{Name: "AllAtOnce"}
)

// ParseConfig reads a configuration name (OneAtATime, HalfAtATime,
// AllAtOnce; the CodeDeployDefault. prefix is accepted) or a custom minimum
// of healthy hosts: a count ("4") or a percentage ("75%").
func ParseConfig(s string) (Config, error) {
	c, err := validate.ParseDeployConfig("config", s)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return Config(c), nil
}

// String is the configuration as ParseConfig reads it.
func (c Config) String() string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Percent:
		return strconv.Itoa(c.Count) + "%"
	}
	return strconv.Itoa(c.Count)
}

// MinHealthy is the minimum of healthy hosts for a group of n hosts:
// OneAtATime n-1, HalfAtATime half rounded up (so at most half of the
// hosts, rounded down, are deployed at once), AllAtOnce 0, and a custom
// percentage rounded up. It is fixed at the start of a deployment.
func (c Config) MinHealthy(n int) int {
	switch c.Name {
	case OneAtATime.Name:
		return max(n-1, 0)
	case HalfAtATime.Name:
		return (n + 1) / 2
	case AllAtOnce.Name:
		return 0
	}
	if c.Percent {
		return (n*c.Count + 99) / 100
	}
	return c.Count
}

// Check refuses a configuration that could never deploy to a group of n
// hosts: a minimum that leaves no host to deploy to (e.g. HalfAtATime on
// one host).
func (c Config) Check(n int) error {
	if n == 0 {
		return fmt.Errorf("%w: the group has no hosts", ErrUnfit)
	}
	// CodeDeploy refuses these at creation too (HEALTH_CONSTRAINTS_INVALID).
	if m := c.MinHealthy(n); m >= n {
		return fmt.Errorf("%w: %s keeps %d of the group's %d hosts healthy: no host could ever be deployed to (use OneAtATime or AllAtOnce, or a lower minimum)", ErrUnfit, c, m, n)
	}
	return nil
}

// HostStatus is a host's state within one deployment.
type HostStatus int

// Host states in a deployment.
const (
	Pending HostStatus = iota
	InProgress
	Succeeded
	Failed
	Skipped // never started: the deployment stopped first
)

// PlanHost is one host of a deployment as the planner sees it.
type PlanHost struct {
	ID     string
	Name   string
	Status HostStatus
	// Healthy is the host's health before it is deployed to (its last
	// deployment succeeded and its health check passes).
	Healthy bool
	// Revision is the host's current revision; "" if unknown.
	Revision string
}

// Order sorts hosts the way CodeDeploy deploys to them: unhealthy hosts
// first, then hosts with an unknown revision, then the rest; by name within
// each.
func Order(hosts []PlanHost) {
	rank := func(h PlanHost) int {
		switch {
		case !h.Healthy:
			return 0
		case h.Revision == "":
			return 1
		}
		return 2
	}
	sort.SliceStable(hosts, func(i, j int) bool {
		if ri, rj := rank(hosts[i]), rank(hosts[j]); ri != rj {
			return ri < rj
		}
		return hosts[i].Name < hosts[j].Name
	})
}

// healthyNow counts hosts that serve now: succeeded ones, and pending ones
// that were healthy. Hosts being deployed to, failed or skipped do not.
func healthyNow(hosts []PlanHost) int {
	n := 0
	for _, h := range hosts {
		if h.Status == Succeeded || h.Status == Pending && h.Healthy {
			n++
		}
	}
	return n
}

// Verdict is where a deployment stands after a planning step.
type Verdict int

// Verdicts.
const (
	Continue Verdict = iota // hosts are in progress or were just started
	Succeed                 // every host is done and the rules are met
	Fail                    // stopped: the minimum would be broken, or the rules are not met
)

// Next is one step of a deployment: given the hosts (in Order) and the
// minimum of healthy hosts, it returns the indexes of the next batch to
// start and the verdict. While hosts are in progress it starts nothing
// (batches are discrete, as in CodeDeploy). A batch is as large as possible without the healthy
// count falling below the minimum: starting a healthy host costs one,
// an unhealthy one costs nothing. When no host is in progress and pending
// hosts remain that cannot start, the deployment stops and fails (those
// hosts are skipped). When all are done it succeeds if at least one host
// succeeded and the healthy count is at least the minimum.
func Next(hosts []PlanHost, minHealthy int) (start []int, v Verdict) {
	for _, h := range hosts {
		if h.Status == InProgress {
			return nil, Continue // batches are discrete, as in CodeDeploy
		}
	}
	budget := healthyNow(hosts) - minHealthy
	pending := 0
	for i, h := range hosts {
		switch h.Status {
		case Pending:
			pending++
			cost := 0
			if h.Healthy {
				cost = 1
			}
			// An unhealthy host costs nothing, so it can always start, even
			// when the healthy count is already below the minimum (a
			// rollback to the hosts that failed: all unhealthy).
			if cost == 0 || budget-cost >= 0 {
				budget -= cost
				start = append(start, i)
			}
		}
	}
	if len(start) > 0 {
		return start, Continue
	}
	if pending > 0 {
		return nil, Fail
	}
	succeeded := 0
	for _, h := range hosts {
		if h.Status == Succeeded {
			succeeded++
		}
	}
	if succeeded > 0 && healthyNow(hosts) >= minHealthy {
		return nil, Succeed
	}
	return nil, Fail
}
