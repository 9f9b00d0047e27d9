package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// CreateGroup creates a deployment group of app and returns it.
func (c *Client) CreateGroup(ctx context.Context, app string, req CreateGroupRequest) (DeploymentGroup, error) {
	var out DeploymentGroup
	err := c.do(ctx, http.MethodPost, path("apps", app, "groups"), nil, req, &out)
	return out, err
}

// ListGroups returns the deployment groups of app.
func (c *Client) ListGroups(ctx context.Context, app string) ([]DeploymentGroup, error) {
	return list[DeploymentGroup](ctx, c, path("apps", app, "groups"), nil)
}

// GetGroup returns one deployment group of app by name.
func (c *Client) GetGroup(ctx context.Context, app, group string) (DeploymentGroup, error) {
	var out DeploymentGroup
	err := c.do(ctx, http.MethodGet, path("apps", app, "groups", group), nil, nil, &out)
	return out, err
}

// Deploy starts a deployment of a revision of app to a group and returns
// it with its hosts. It is idempotent like CreateJob.
func (c *Client) Deploy(ctx context.Context, app, group string, req DeployRequest) (Deployment, error) {
	var out Deployment
	err := c.create(ctx, path("apps", app, "groups", group, "deployments"), req, &out)
	return out, err
}

// Rollback starts a deployment that rolls a group back by hand; the server
// picks the revision (the group's last good one) and returns the new
// deployment with its hosts. It is idempotent like CreateJob.
func (c *Client) Rollback(ctx context.Context, app, group string) (Deployment, error) {
	var out Deployment
	err := c.create(ctx, path("apps", app, "groups", group, "rollback"), nil, &out)
	return out, err
}

// ListDeployments returns the most recent deployments, newest first, with
// their Counts and without their hosts. app "" lists every application's;
// limit <= 0 leaves the number to the server.
func (c *Client) ListDeployments(ctx context.Context, app string, limit int) ([]Deployment, error) {
	q := url.Values{}
	if app != "" {
		q.Set("app", app)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return list[Deployment](ctx, c, path("deployments"), q)
}

// GetDeployment returns a deployment with its hosts and their lifecycle
// events.
func (c *Client) GetDeployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodGet, path("deployments", id), nil, nil, &out)
	return out, err
}

// StreamDeployment follows a deployment's events and calls fn for each one,
// in order. It returns nil after fn has handled the "done" event, fn's
// error if it returns one, ErrStreamClosed (possibly wrapped) if the stream
// ends early, or the request's error. ctx bounds the whole stream.
func (c *Client) StreamDeployment(ctx context.Context, id string, fn func(DeploymentEvent) error) error {
	return stream(ctx, c, path("deployments", id, "events"), fn, func(ev DeploymentEvent) bool { return ev.Type == "done" })
}

// StopDeployment asks a running deployment to stop: no new batch starts,
// and running hooks finish unless req.Force is set. It returns the
// deployment as the server has it after the request.
func (c *Client) StopDeployment(ctx context.Context, id string, req StopRequest) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodPost, path("deployments", id, "stop"), nil, req, &out)
	return out, err
}

// PromoteDeployment promotes a canary deployment: its remaining steps are
// skipped and the rest of the group's hosts are deployed. On a blue/green
// deployment in its keep period it ends the period now (the originals are
// let go). It returns the deployment as the server has it after the request.
func (c *Client) PromoteDeployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodPost, path("deployments", id, "promote"), nil, nil, &out)
	return out, err
}

// AbortDeployment aborts a canary or blue/green deployment: traffic goes
// back to the stable (original) hosts at once and the deployment fails (an
// automatic rollback then redeploys the canary hosts).
func (c *Client) AbortDeployment(ctx context.Context, id string) (Deployment, error) {
	var out Deployment
	err := c.do(ctx, http.MethodPost, path("deployments", id, "abort"), nil, nil, &out)
	return out, err
}
