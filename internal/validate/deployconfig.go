package validate

import (
	"strconv"
	"strings"
)

// DeployConfigs are the built-in deployment configurations.
var DeployConfigs = []string{"OneAtATime", "HalfAtATime", "AllAtOnce"}

// DeployConfig is a parsed deployment configuration.
type DeployConfig struct {
	// Name is one of DeployConfigs, or "" for a custom minimum.
	Name string
	// Count is a custom minimum of healthy hosts, a number of hosts or
	// (Percent) a percentage of the group's hosts.
	Count   int
	Percent bool
}

// ParseDeployConfig reads a deployment configuration: a built-in name
// (the CodeDeployDefault. prefix is accepted; "" is OneAtATime) or a
// minimum of healthy hosts, a count from 0 to 10000 ("4") or a percentage
// from 0 to 100 ("75%").
func ParseDeployConfig(field, s string) (DeployConfig, error) {
	name := strings.TrimPrefix(s, "CodeDeployDefault.")
	if name == "" {
		return DeployConfig{Name: DeployConfigs[0]}, nil
	}
	for _, n := range DeployConfigs {
		if name == n {
			return DeployConfig{Name: n}, nil
		}
	}
	num, pct := strings.CutSuffix(name, "%")
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return DeployConfig{}, errorf(field, "unknown deployment configuration %q: use OneAtATime, HalfAtATime, AllAtOnce, a minimum of healthy hosts (\"2\") or a percentage (\"75%%\")", s)
	}
	r := MinHealthyCount
	if pct {
		r = MinHealthyPercent
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > r.Max {
		return DeployConfig{}, errorf(field, "minimum of healthy hosts %q is out of range: want a count %s, or a percentage %s", s, MinHealthyCount.Want(), MinHealthyPercent.Want())
	}
	return DeployConfig{Count: int(n), Percent: pct}, nil
}
