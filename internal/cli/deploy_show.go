package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

func (a *app) newDeploymentsCmd() *cobra.Command {
	return newGroupCmd("deployments", "List deployments, show one host by host, stop one, promote or abort a canary",
		`  gantry deployments ls shop
  gantry deployments show DEPLOYMENT_ID --host web1
  gantry deployments stop DEPLOYMENT_ID
  gantry deployments promote DEPLOYMENT_ID
  gantry deployments abort DEPLOYMENT_ID`,
		a.newDeploymentsListCmd(), a.newDeploymentsShowCmd(), a.newDeploymentsStopCmd(),
		a.newDeploymentsPromoteCmd(), a.newDeploymentsAbortCmd())
}

// deploymentsListOptions are the inputs of 'gantry deployments ls'.
type deploymentsListOptions struct {
	App   string
	Limit int
	Quiet bool // ids only
}

func (a *app) newDeploymentsListCmd() *cobra.Command {
	o := deploymentsListOptions{Limit: 20}
	cmd := &cobra.Command{
		Use:     "ls [APP]",
		Aliases: []string{"list"},
		Short:   "List the most recent deployments, newest first",
		Example: `  gantry deployments ls
  gantry deployments ls shop --limit 5
  gantry deployments ls -o json | jq -r '.[] | select(.state == "failed") | .id'
  gantry deployments show "$(gantry deployments ls -q shop | head -n1)"   # the newest`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("unexpected argument %q: want at most APP", args[1])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.App = args[0]
			}
			return a.runDeploymentsList(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.Limit, "limit", o.Limit, "show at most `N` deployments, up to 1000 (0 = the server's default, 50)")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "print only the deployment ids, one per line, newest first")
	return cmd
}

func (a *app) runDeploymentsList(ctx context.Context, o deploymentsListOptions) error {
	if o.Limit < 0 {
		return usageErrorf("invalid --limit %d: must be 0 or more", o.Limit)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	deps, err := c.ListDeployments(ctx, o.App, o.Limit)
	if err != nil {
		return err
	}
	if o.Quiet {
		ids := make([]string, len(deps))
		for i, d := range deps {
			ids[i] = d.ID
		}
		return a.printIDs(ids)
	}
	now := a.now()
	return emitList(a, deps, "No deployments yet.", func(w io.Writer) error {
		t := newTable(w, "ID", "APP", "GROUP", "REVISION", "KIND", "STATE", "HOSTS", "CREATED")
		for _, d := range deps {
			t.row(d.ID, d.App, d.Group, orDash(d.Revision), orDash(d.Kind), d.State,
				orDash(summarizeHosts(d)), relTime(d.CreatedAt, now))
		}
		return t.flush()
	})
}

// deploymentsShowOptions are the inputs of 'gantry deployments show'.
type deploymentsShowOptions struct {
	ID   string
	Host string // only this host (name or id), with its events
	Wait bool   // follow it until it ends, as deploy --wait does
}

func (a *app) newDeploymentsShowCmd() *cobra.Command {
	var o deploymentsShowOptions
	cmd := &cobra.Command{
		Use:     "show DEPLOYMENT_ID [--host HOST]",
		Aliases: []string{"get"},
		Short:   "Show a deployment and its hosts, or one host's lifecycle events and logs",
		Long: `Show a deployment: its application, group, revision, configuration, state
and rollbacks, then one row per host (batch, state, current or last
lifecycle event, duration).

With --host (a host name or id), show that host's lifecycle events instead:
state, duration and exit code of each, then each event's log tail and
error.

With --wait, follow a running deployment until it ends, as 'gantry deploy
--wait' does (an automatic rollback, a canary), and exit 1 unless it
succeeded.`,
		Example: `  gantry deployments show DEPLOYMENT_ID
  gantry deployments show DEPLOYMENT_ID --host web1
  gantry deployments show "$(gantry deployments ls -q | head -n1)" --wait   # the newest, until it ends
  gantry deployments show DEPLOYMENT_ID -o json | jq -r '.hosts[] | select(.state == "failed") | .host_name'`,
		Args: exactArgs("DEPLOYMENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			return a.runDeploymentsShow(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Host, "host", "", "show this `HOST`'s lifecycle events and logs (name or id)")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "follow the deployment until it ends; exit 1 unless it succeeded")
	cmd.MarkFlagsMutuallyExclusive("host", "wait")
	return cmd
}

func (a *app) runDeploymentsShow(ctx context.Context, o deploymentsShowOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.GetDeployment(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.Wait {
		return a.followToEnd(ctx, c, d)
	}
	now := a.now()
	if o.Host == "" {
		return a.emit(d, func(w io.Writer) error { return printDeployment(w, d, now) })
	}
	var keep []api.DeploymentHost
	var names []string
	for _, h := range d.Hosts {
		names = append(names, deployHostLabel(h))
		if h.HostName == o.Host || h.HostID == o.Host {
			keep = append(keep, h)
		}
	}
	if len(keep) == 0 {
		return fmt.Errorf("deployment %s has no host %q (its hosts: %s)", d.ID, o.Host, orDash(strings.Join(names, ", ")))
	}
	d.Counts = deployCounts(d) // of every host, not only the one shown
	d.Hosts = keep
	return a.emit(d, func(w io.Writer) error {
		if err := printDeploymentHeader(w, d, now); err != nil {
			return err
		}
		for _, h := range keep {
			if err := printHostEvents(w, h, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// printDeployment prints a deployment's header and its host table.
func printDeployment(w io.Writer, d api.Deployment, now time.Time) error {
	if err := printDeploymentHeader(w, d, now); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(d.Hosts) == 0 {
		_, err := fmt.Fprintln(w, "(no hosts)")
		return err
	}
	hosts := sortedHosts(d.Hosts)
	withErr := false
	for _, h := range hosts {
		withErr = withErr || h.Error != ""
	}
	headers := []string{"HOST", "BATCH", "STATE", "EVENT", "DURATION"}
	if withErr {
		headers = append(headers, "ERROR")
	}
	t := newTable(w, headers...)
	for _, h := range hosts {
		cols := []string{deployHostLabel(h), batchText(h.Batch), hostStateText(h.State), orDash(h.Event),
			spanDuration(h.StartedAt, h.FinishedAt, !hostFinal(h.State), now)}
		if withErr {
			cols = append(cols, orDash(h.Error))
		}
		t.row(cols...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if d.Traffic != nil && d.Strategy != "" && d.Strategy != api.StrategyInPlace {
		fmt.Fprintln(w)
		printStrategy(w, d)
	}
	if d.Traffic != nil && len(d.Traffic.Changes) > 0 {
		fmt.Fprintf(w, "\nLoad balancer changes:\n")
		for _, c := range d.Traffic.Changes {
			fmt.Fprintf(w, "  %s  %s\n", c.At.Local().Format("15:04:05.000"), trafficLine(c))
		}
	}
	_, err := fmt.Fprintf(w, "\nA host's lifecycle events and logs: gantry deployments show %s --host HOST\n", d.ID)
	return err
}

// printDeploymentHeader prints a deployment's fields as a key/value list.
func printDeploymentHeader(w io.Writer, d api.Deployment, now time.Time) error {
	t := newTable(w)
	state := d.State
	if s := summarizeHosts(d); s != "" {
		state += " (" + s + ")"
	}
	t.row("ID:", d.ID)
	t.row("Application:", d.App)
	t.row("Group:", d.Group)
	t.row("Revision:", orDash(d.Revision))
	t.row("Kind:", orDash(d.Kind))
	t.row("State:", state)
	t.row("Config:", orDash(d.Config))
	t.row("Min healthy:", plural(d.MinHealthy, "host"))
	t.row("Batches:", strconv.Itoa(d.Batch))
	if d.Description != "" {
		t.row("Description:", d.Description)
	}
	if d.RollbackOf != "" {
		t.row("Rollback of:", d.RollbackOf)
	}
	if d.RolledBackBy != "" {
		t.row("Rolled back by:", d.RolledBackBy)
	}
	if d.StopRequested {
		stop := "requested"
		if d.Force {
			stop += " (forced: running hooks killed)"
		}
		t.row("Stop:", stop)
	}
	t.row("Created:", absTime(d.CreatedAt, now))
	if d.FinishedAt != nil {
		t.row("Finished:", absTime(*d.FinishedAt, now))
	}
	if d.Error != "" {
		t.row("Error:", d.Error)
	}
	return t.flush()
}

// printHostEvents prints one host's lifecycle events as a table, then each
// event's log tail and error.
func printHostEvents(w io.Writer, h api.DeploymentHost, now time.Time) error {
	fmt.Fprintf(w, "\n== %s (%s): %s, batch %s, %s", deployHostLabel(h), h.HostID, hostStateText(h.State), batchText(h.Batch),
		spanDuration(h.StartedAt, h.FinishedAt, !hostFinal(h.State), now))
	if h.PreviousRevision != "" {
		fmt.Fprintf(w, ", previous revision %s", h.PreviousRevision)
	}
	fmt.Fprintln(w)
	if h.Error != "" {
		fmt.Fprintf(w, "error: %s\n", h.Error)
	}
	if len(h.Events) == 0 {
		_, err := fmt.Fprintln(w, "(no lifecycle events yet)")
		return err
	}
	t := newTable(w, "EVENT", "STATE", "DURATION", "EXIT")
	for _, e := range h.Events {
		t.row(e.Name, e.State, spanDuration(e.StartedAt, e.FinishedAt, e.State == "running", now), eventExit(e))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, e := range h.Events {
		if e.LogTail == "" && e.Error == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s, exit %s):\n", e.Name, e.State, eventExit(e))
		if e.LogTail != "" {
			fmt.Fprintln(w, indent(e.LogTail, "    "))
		}
		if e.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", e.Error)
		}
	}
	return nil
}

// eventExit is an event's exit code once it ran, or "-".
func eventExit(e api.LifecycleEvent) string {
	if e.State == "running" || e.State == "skipped" || e.State == "" || e.StartedAt == nil && e.ExitCode == 0 {
		return "-"
	}
	return strconv.Itoa(e.ExitCode)
}

// deploymentsStopOptions are the inputs of 'gantry deployments stop'.
type deploymentsStopOptions struct {
	ID    string
	Force bool
}

func (a *app) newDeploymentsStopCmd() *cobra.Command {
	var o deploymentsStopOptions
	cmd := &cobra.Command{
		Use:   "stop DEPLOYMENT_ID [--force]",
		Short: "Stop a running deployment: no new batch starts",
		Long: `Stop a running deployment. No new batch starts and hosts not yet started are
skipped; hosts in the middle of their lifecycle events finish them, unless
--force is given, which kills the running hooks (the host then fails). The
deployment ends as "stopped"; if the group rolls back automatically, a
rollback deployment follows.`,
		Example: `  gantry deployments stop DEPLOYMENT_ID
  gantry deployments stop DEPLOYMENT_ID --force`,
		Args: exactArgs("DEPLOYMENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.StopDeployment(cmd.Context(), o.ID, api.StopRequest{Force: o.Force})
			if err != nil {
				return err
			}
			return a.emit(d, func(w io.Writer) error {
				how := "hosts in progress finish their current lifecycle events"
				if o.Force {
					how = "running hooks are killed"
				}
				_, err := fmt.Fprintf(w, "Stop requested for deployment %s (now %s): no new batch starts; %s.\nFollow it with: gantry deployments show %s\n",
					d.ID, d.State, how, d.ID)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "kill running hooks instead of letting them finish")
	return cmd
}
