package api

import (
	"context"
	"errors"
	"net/http"
)

// ListEnvs returns every environment (without their lifecycle runs).
func (c *Client) ListEnvs(ctx context.Context) ([]Environment, error) {
	return list[Environment](ctx, c, path("envs"), nil)
}

// GetEnv returns an environment with its machines, outputs and runs.
func (c *Client) GetEnv(ctx context.Context, env string) (Environment, error) {
	var out Environment
	err := c.do(ctx, http.MethodGet, path("envs", env), nil, nil, &out)
	return out, err
}

// PlanEnv refreshes an environment and returns what applying req would
// do. A definition with errors gives a *StatusError with Diagnostics.
func (c *Client) PlanEnv(ctx context.Context, env string, req EnvRequest) (Plan, error) {
	var out Plan
	err := c.do(ctx, http.MethodPost, path("envs", env, "plan"), nil, req, &out)
	return out, err
}

// ApplyEnv applies req (a plan in req.Plan, or a definition to plan and
// apply at once) and calls fn for each progress event, in order, the last
// being "done". It returns the environment from the done event and its
// error (an apply that failed part-way), or the request's error.
func (c *Client) ApplyEnv(ctx context.Context, env string, req EnvRequest, fn func(ApplyEvent)) (Environment, error) {
	var last ApplyEvent
	err := streamRequest(ctx, c, http.MethodPost, path("envs", env, "apply"), req, func(ev ApplyEvent) error {
		if fn != nil {
			fn(ev)
		}
		last = ev
		return nil
	}, func(ev ApplyEvent) bool { return ev.Type == "done" })
	if err != nil {
		return Environment{}, err
	}
	var out Environment
	if last.Environment != nil {
		out = *last.Environment
	}
	if last.Error != "" {
		return out, errors.New(last.Error)
	}
	return out, nil
}
