package api

import (
	"context"
	"net/http"
)

// GroupLB returns the servers of a deployment group's load balancer
// backend as the load balancer reports them (weights, states, health,
// sessions, counters).
func (c *Client) GroupLB(ctx context.Context, app, group string) (LBView, error) {
	var out LBView
	err := c.do(ctx, http.MethodGet, path("apps", app, "groups", group, "lb"), nil, nil, &out)
	return out, err
}
