package api

import (
	"context"
	"net/url"
)

// EnvLB returns the load balancers of environment env as they report
// their servers (GET /api/v1/envs/{env}/lb): one view per load balancer
// group, or only the one of group (a load balancer group or the group it
// balances) when group is not "".
func (c *Client) EnvLB(ctx context.Context, env, group string) ([]LBView, error) {
	var q url.Values
	if group != "" {
		q = url.Values{"group": {group}}
	}
	return list[LBView](ctx, c, path("envs", env, "lb"), q)
}
