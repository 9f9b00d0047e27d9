package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	resp, err := c.send(ctx, http.MethodPost, path("envs", env, "apply"), nil, req)
	if err != nil {
		return Environment{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev ApplyEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return Environment{}, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return Environment{}, ErrStreamClosed
			}
			return Environment{}, fmt.Errorf("%w: %v", ErrStreamClosed, err)
		}
		if fn != nil {
			fn(ev)
		}
		if ev.Type == "done" {
			var out Environment
			if ev.Environment != nil {
				out = *ev.Environment
			}
			if ev.Error != "" {
				return out, errors.New(ev.Error)
			}
			return out, nil
		}
	}
}
