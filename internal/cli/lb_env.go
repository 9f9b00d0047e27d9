package cli

import (
	"context"
	"fmt"
	"io"
)

// The environments' form of `gantry lb show`: ENV [GROUP].
func init() { lbShowEnv = runLBShowEnv }

// runLBShowEnv shows the load balancers of environment args[0] (only the
// one of group args[1], a load balancer group or the group it balances,
// when given): each one's machine, driver and servers.
func runLBShowEnv(a *app, ctx context.Context, args []string) error {
	env, group := args[0], ""
	if len(args) > 1 {
		group = args[1]
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	vs, err := c.EnvLB(ctx, env, group)
	if err != nil {
		return err
	}
	return a.emit(vs, func(w io.Writer) error {
		if len(vs) == 0 {
			_, err := fmt.Fprintf(w, "Environment %s has no load balancer (a group with a load_balancer block).\n", env)
			return err
		}
		for i, v := range vs {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "Load balancer %s (%s), environment %s:\n", v.Host, v.Driver, env)
			if err := writeLBServers(w, v.Servers); err != nil {
				return err
			}
		}
		return nil
	})
}
