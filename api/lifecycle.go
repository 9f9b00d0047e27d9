package api

import (
	"context"
	"net/http"
	"net/url"
)

// The end of objects' lifecycles: removing applications, deployment
// groups and destroyed environments, and changing groups and schedules.
// A removal of something still in use is refused with 409 and code
// "in_use", naming what uses it; force removes what depends on it too
// (never a deployment in progress).

// UpdateGroupRequest is the body of PATCH /api/v1/apps/{app}/groups/{group}:
// nil fields are left as they are.
type UpdateGroupRequest struct {
	// Selector replaces the label selector (never empty: "" is refused).
	Selector *string `json:"selector,omitempty"`
	// Config replaces the default deployment configuration (OneAtATime,
	// HalfAtATime, AllAtOnce, "4", "75%").
	Config *string `json:"config,omitempty"`
	// HealthCheck replaces the health check.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// NoHealthCheck removes the health check (not with HealthCheck).
	NoHealthCheck bool `json:"no_health_check,omitempty"`
	// AutoRollback turns automatic rollback on or off.
	AutoRollback *bool `json:"auto_rollback,omitempty"`
	// LoadBalancer replaces the group's load balancer; NoLoadBalancer
	// removes it (not with LoadBalancer).
	LoadBalancer   *LBTarget `json:"load_balancer,omitempty"`
	NoLoadBalancer bool      `json:"no_load_balancer,omitempty"`
}

// UpdateScheduleRequest is the body of PATCH /api/v1/schedules/{id}: nil
// fields are left as they are.
type UpdateScheduleRequest struct {
	Cron           *string `json:"cron,omitempty"`
	Selector       *string `json:"selector,omitempty"`
	Script         *string `json:"script,omitempty"`
	Concurrency    *int    `json:"concurrency,omitempty"`
	TimeoutSeconds *int    `json:"timeout_seconds,omitempty"`
	User           *string `json:"user,omitempty"`
	// Disabled stops (true) or resumes (false) the schedule's runs.
	Disabled *bool `json:"disabled,omitempty"`
}

// AppRemoval is the answer of DELETE /api/v1/apps/{app}: what went with
// the application.
type AppRemoval struct {
	App Application `json:"app"`
	// Groups are the names of the deployment groups removed with it.
	Groups []string `json:"groups"`
	// Revisions is how many revisions (and their bundles, unless another
	// application has the same bundle) were removed.
	Revisions int `json:"revisions"`
}

// EnvRemoval is the answer of DELETE /api/v1/envs/{env}.
type EnvRemoval struct {
	Name string `json:"name"`
	// Serial is the state serial the environment had.
	Serial int64 `json:"serial"`
	// Runs is how many lifecycle runs of its history went with it.
	Runs int `json:"runs"`
}

// forceQuery is ?force=true when force is set.
func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

// DeleteApp removes an application. Without force it is refused (409,
// in_use) while it has deployment groups or an environment deploys it;
// with force its groups, their deployments, its revisions and bundles go
// too. It is always refused while one of its deployments is in progress.
func (c *Client) DeleteApp(ctx context.Context, app string, force bool) (AppRemoval, error) {
	var out AppRemoval
	err := c.do(ctx, http.MethodDelete, path("apps", app), forceQuery(force), nil, &out)
	return out, err
}

// UpdateGroup changes the settings of a deployment group and returns it.
func (c *Client) UpdateGroup(ctx context.Context, app, group string, req UpdateGroupRequest) (DeploymentGroup, error) {
	var out DeploymentGroup
	err := c.do(ctx, http.MethodPatch, path("apps", app, "groups", group), nil, req, &out)
	return out, err
}

// DeleteGroup removes a deployment group with its deployment history and
// returns it. A group an environment manages needs force; a group with a
// deployment in progress is always refused.
func (c *Client) DeleteGroup(ctx context.Context, app, group string, force bool) (DeploymentGroup, error) {
	var out DeploymentGroup
	err := c.do(ctx, http.MethodDelete, path("apps", app, "groups", group), forceQuery(force), nil, &out)
	return out, err
}

// DeleteEnv removes the record (state and history) of an environment that
// has been destroyed; refused (409, in_use) while it has resources.
func (c *Client) DeleteEnv(ctx context.Context, env string) (EnvRemoval, error) {
	var out EnvRemoval
	err := c.do(ctx, http.MethodDelete, path("envs", env), nil, nil, &out)
	return out, err
}

// GetSchedule returns one schedule.
func (c *Client) GetSchedule(ctx context.Context, id string) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodGet, path("schedules", id), nil, nil, &out)
	return out, err
}

// UpdateSchedule changes a schedule and returns it.
func (c *Client) UpdateSchedule(ctx context.Context, id string, req UpdateScheduleRequest) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodPatch, path("schedules", id), nil, req, &out)
	return out, err
}
