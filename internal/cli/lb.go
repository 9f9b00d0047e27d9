package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
)

func (a *app) newLBCmd() *cobra.Command {
	return newGroupCmd("lb", "Show the load balancers gantry drives",
		"  gantry lb show --app shop --group web\n  gantry lb show --app shop --group web -o json",
		a.newLBShowCmd())
}

// lbShowOptions are the inputs of `gantry lb show`.
type lbShowOptions struct {
	// App and Group name a deployment group with a load balancer
	// (--app, --group).
	App, Group string
	// Args are the positional arguments: ENV [GROUP] for an
	// environment's load balancers.
	Args []string
}

func (a *app) newLBShowCmd() *cobra.Command {
	var o lbShowOptions
	cmd := &cobra.Command{
		Use:   "show ENV [GROUP] | --app APP --group GROUP",
		Short: "Show the servers of a load balancer backend: weight, state, health, sessions, counters",
		Long: `Show the servers of the load balancer backend in front of a deployment
group, as the load balancer reports them now (through the gantry agent on
its machine): each server's weight, admin state (ready, drain, maint),
health (UP, DOWN), sessions in flight, requests since haproxy started,
5xx responses and average response time.

Exit status: 0 shown, 1 refused (no load balancer, its host offline or
unknown, the load balancer not answering), 2 usage.`,
		Example: `  gantry lb show dev                 # the load balancers of environment dev
  gantry lb show dev web             # the one in front of group web (or: the lb group's name)
  gantry lb show --app shop --group web
  gantry lb show --app shop --group web -o json | jq '.servers[] | {name, state, sessions}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Args = args
			return a.runLBShow(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.App, "app", "", "the `APP` of the deployment group")
	f.StringVar(&o.Group, "group", "", "the deployment `GROUP` whose load balancer to show")
	return cmd
}

// lbShowEnv shows the load balancers of an environment (`gantry lb show
// ENV [GROUP]`); set by lb_env.go.
var lbShowEnv func(a *app, ctx context.Context, args []string) error

func (a *app) runLBShow(ctx context.Context, o lbShowOptions) error {
	switch {
	case len(o.Args) > 0 && (o.App != "" || o.Group != ""):
		return usageErrorf("give either ENV [GROUP] (an environment's load balancers) or --app APP --group GROUP (a deployment group's), not both")
	case len(o.Args) > 0:
		if lbShowEnv == nil {
			return usageErrorf("gantry lb show ENV is not available in this version: use --app APP --group GROUP")
		}
		if len(o.Args) > 2 {
			return usageErrorf("too many arguments: want ENV [GROUP]")
		}
		return lbShowEnv(a, ctx, o.Args)
	case o.App == "" || o.Group == "":
		return usageErrorf("--app and --group are required: the deployment group whose load balancer to show (e.g. --app shop --group web)")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	v, err := c.GroupLB(ctx, o.App, o.Group)
	if err != nil {
		return err
	}
	return a.emit(v, func(w io.Writer) error {
		fmt.Fprintf(w, "Load balancer %s (%s), group %s/%s:\n", v.Host, v.Driver, o.App, o.Group)
		return writeLBServers(w, v.Servers)
	})
}

// writeLBServers prints servers as a table: server, weight, state,
// health, sessions, total, 5xx, resp ms.
func writeLBServers(w io.Writer, servers []api.LBServerStatus) error {
	if len(servers) == 0 {
		_, err := fmt.Fprintln(w, "No servers.")
		return err
	}
	multi := false
	for _, s := range servers {
		if s.Backend != servers[0].Backend {
			multi = true
		}
	}
	head := []string{"SERVER", "WEIGHT", "STATE", "HEALTH", "SESSIONS", "TOTAL", "5XX", "RESP MS"}
	if multi {
		head = append([]string{"BACKEND"}, head...)
	}
	t := newTable(w, head...)
	for _, s := range servers {
		health := orDefault(s.Health, "-")
		if s.Check != "" {
			health += " (" + s.Check + ")"
		}
		row := []string{s.Name, strconv.Itoa(s.Weight), s.State, health, strconv.Itoa(s.Sessions),
			strconv.FormatInt(s.Total, 10), strconv.FormatInt(s.HTTP5xx, 10), strconv.Itoa(s.RespTimeMillis)}
		if multi {
			row = append([]string{s.Backend}, row...)
		}
		t.row(row...)
	}
	return t.flush()
}
