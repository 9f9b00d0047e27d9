package deploy

import (
	"fmt"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/selector"
)

// ChangeGroup applies an update to a deployment group's settings and
// validates the result by the rules of CreateGroup: a selector that is
// not empty and parses, a known configuration, a valid health check. Nil
// fields of req leave g's as they are. The caller stores the result
// (store.UpdateGroupSettings); deployments in progress keep the settings
// they started with.
func ChangeGroup(g api.DeploymentGroup, req api.UpdateGroupRequest) (api.DeploymentGroup, error) {
	if req.HealthCheck != nil && req.NoHealthCheck {
		return g, fmt.Errorf("%w: health_check and no_health_check exclude each other: give a new health check, or remove it", ErrInvalid)
	}
	if req.Selector != nil {
		if strings.TrimSpace(*req.Selector) == "" {
			return g, fmt.Errorf("%w: selector is empty: a group is the hosts it selects (e.g. --selector role=web)", ErrInvalid)
		}
		if _, err := selector.Parse(*req.Selector); err != nil {
			return g, fmt.Errorf("%w: selector: %v", ErrInvalid, err)
		}
		g.Selector = *req.Selector
	}
	if req.Config != nil {
		cfg, err := ParseConfig(*req.Config)
		if err != nil {
			return g, err
		}
		g.Config = cfg.String()
	}
	switch {
	case req.NoHealthCheck:
		g.HealthCheck = nil
	case req.HealthCheck != nil:
		if err := checkHealth(req.HealthCheck); err != nil {
			return g, err
		}
		g.HealthCheck = req.HealthCheck
	}
	if req.AutoRollback != nil {
		g.AutoRollback = *req.AutoRollback
	}
	switch {
	case req.LoadBalancer != nil && req.NoLoadBalancer:
		return g, fmt.Errorf("%w: load_balancer and no_load_balancer exclude each other: give a new load balancer, or remove it", ErrInvalid)
	case req.NoLoadBalancer:
		g.LoadBalancer = nil
	case req.LoadBalancer != nil:
		if err := CheckLB(req.LoadBalancer); err != nil {
			return g, err
		}
		g.LoadBalancer = req.LoadBalancer
	}
	return g, nil
}
