package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
)

// The end of objects' lifecycles: `app rm`, `group update`, `group rm`
// and `schedule update` (`env rm` is in envs_rm.go). The server judges
// what is in use and refuses with a message that names it; these
// commands only send the request and report what changed. Exit status: 0
// done, 1 refused or not found, 2 usage.

// appRmOptions are the inputs of `gantry app rm`.
type appRmOptions struct {
	App   string
	Force bool
}

func (a *app) newAppRmCmd() *cobra.Command {
	var o appRmOptions
	cmd := &cobra.Command{
		Use:     "rm APP [--force]",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove an application (refused while deployment groups or environments use it)",
		Long: `Remove an application. It is refused while the application has deployment
groups or an environment's deploy block deploys it: the message names
them. Remove them first ('gantry group rm APP GROUP', 'gantry destroy --env
ENV'), or give --force to remove the application with its groups, their
deployment history, its revisions and its stored bundles (a bundle another
application also pushed stays).

Never while one of its deployments is in progress, --force or not: stop it
first with 'gantry deployments stop ID'.

Exit status: 0 removed, 1 refused or not found, 2 usage.`,
		Example: `  gantry app rm shop
  gantry app rm shop --force          # with its groups, revisions and bundles
  gantry app rm shop --force -o json  # what was removed`,
		Args: exactArgs("APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return a.runAppRm(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "also remove its deployment groups, revisions and bundles")
	return cmd
}

func (a *app) runAppRm(ctx context.Context, o appRmOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	rm, err := c.DeleteApp(ctx, o.App, o.Force)
	if err != nil {
		return err
	}
	return a.emit(rm, func(w io.Writer) error {
		what := []string{}
		if len(rm.Groups) > 0 {
			what = append(what, fmt.Sprintf("%s (%s)", plural(len(rm.Groups), "deployment group"), strings.Join(rm.Groups, ", ")))
		}
		if rm.Revisions > 0 {
			what = append(what, plural(rm.Revisions, "revision"))
		}
		msg := fmt.Sprintf("Application %s removed", rm.App.Name)
		if len(what) > 0 {
			msg += " with its " + strings.Join(what, " and ")
		}
		_, err := fmt.Fprintln(w, msg+".")
		return err
	})
}

// groupUpdateOptions are the inputs of `gantry group update`: the health
// check flags are those of `group create`.
type groupUpdateOptions struct {
	groupCreateOptions
	NoHealthCheck bool
	AutoRollback  bool
	// which flags were given
	autoSet, noAutoSet, selectorGiven bool
}

func (a *app) newGroupUpdateCmd() *cobra.Command {
	o := groupUpdateOptions{groupCreateOptions: groupCreateOptions{HealthStatus: 200, HealthTimeout: 60 * time.Second}}
	cmd := &cobra.Command{
		Use:   "update APP GROUP [flags]",
		Short: "Change a deployment group's selector, configuration, health check or automatic rollback",
		Long: `Change the settings of a deployment group. Only the flags given change;
the rest stays as it is. The flags mean what they mean for 'gantry group
create': --selector (never empty), --config or --min-healthy, one of
--health-http, --health-tcp and --health-command (which replaces the
health check; --no-health-check removes it), --auto-rollback or
--no-auto-rollback, and --lb with its --lb-socket, --lb-state-file and
--drain-timeout (which replace the load balancer; --no-lb removes it).

Deployments in progress keep the settings they started with; hosts a new
selector matches get the group's revision as they do when they join. A
group an environment's deploy block made is set again by the
environment's next apply.

Exit status: 0 changed, 1 refused or not found, 2 usage.`,
		Example: `  gantry group update shop web --selector 'role=web,zone=eu'
  gantry group update shop web --min-healthy 75% --health-http http://127.0.0.1:8080/healthz
  gantry group update shop web --no-health-check --no-auto-rollback
  gantry group update shop web --lb lb1/web --lb-socket /run/haproxy/admin.sock
  gantry group update shop web --config AllAtOnce -o json`,
		Args: exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Name = args[0], args[1]
			f := cmd.Flags()
			o.selectorGiven = f.Changed("selector")
			o.statusSet, o.timeoutSet = f.Changed("health-status"), f.Changed("health-timeout")
			o.autoSet, o.noAutoSet = f.Changed("auto-rollback"), f.Changed("no-auto-rollback")
			o.lb.changed(f)
			return a.runGroupUpdate(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "new label `SELECTOR` of the group's hosts")
	o.settingFlags(f, "new ", "")
	f.BoolVar(&o.NoHealthCheck, "no-health-check", false, "remove the health check")
	f.BoolVar(&o.AutoRollback, "auto-rollback", false, "roll a failed deployment back automatically")
	f.BoolVar(&o.lb.NoLB, "no-lb", false, "take the group out from behind its load balancer (its deployments then change no traffic)")
	return cmd
}

// request validates the options and returns the update they describe.
func (o groupUpdateOptions) request() (api.UpdateGroupRequest, error) {
	var req api.UpdateGroupRequest
	if o.selectorGiven {
		if strings.TrimSpace(o.Selector) == "" {
			return req, usageErrorf("--selector is empty: give a label selector such as 'role=web' (a group is the hosts it selects)")
		}
		sel := o.Selector
		req.Selector = &sel
	}
	config, err := configFlags(o.Config, o.MinHealthy)
	if err != nil {
		return req, err
	}
	if config != "" {
		req.Config = &config
	}
	hc, err := o.healthCheck()
	if err != nil {
		return req, err
	}
	if hc != nil && o.NoHealthCheck {
		return req, usageErrorf("--no-health-check and a new health check exclude each other: give one")
	}
	req.HealthCheck, req.NoHealthCheck = hc, o.NoHealthCheck
	if o.autoSet && o.noAutoSet {
		return req, usageErrorf("--auto-rollback and --no-auto-rollback exclude each other: give one")
	}
	if o.autoSet || o.noAutoSet {
		on := o.autoSet && o.AutoRollback || o.noAutoSet && !o.NoAutoRollback
		req.AutoRollback = &on
	}
	if req.LoadBalancer, err = o.lb.target(); err != nil {
		return req, err
	}
	if req.LoadBalancer != nil && o.lb.NoLB {
		return req, usageErrorf("--lb and --no-lb exclude each other: give one")
	}
	req.NoLoadBalancer = o.lb.NoLB
	if req.Selector == nil && req.Config == nil && req.HealthCheck == nil && !req.NoHealthCheck && req.AutoRollback == nil &&
		req.LoadBalancer == nil && !req.NoLoadBalancer {
		return req, usageErrorf("nothing to change: give at least one of --selector, --config, --min-healthy, --health-http, --health-tcp, --health-command, --no-health-check, --auto-rollback, --no-auto-rollback, --lb, --no-lb")
	}
	return req, nil
}

func (a *app) runGroupUpdate(ctx context.Context, o groupUpdateOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	before, err := c.GetGroup(ctx, o.App, o.Name)
	if err != nil {
		return err
	}
	g, err := c.UpdateGroup(ctx, o.App, o.Name, req)
	if err != nil {
		return err
	}
	if envs, err := c.ListEnvs(ctx); err == nil {
		for _, e := range envs {
			for name, eg := range e.Groups {
				if eg.App == g.App && eg.DeployGroup == g.Name {
					fmt.Fprintf(a.stderr, "Note: environment %q (group.%s) made this group; its next apply sets the group's settings from its definition again.\n", e.Name, name)
				}
			}
		}
	}
	return a.emit(g, func(w io.Writer) error {
		fmt.Fprintf(w, "Deployment group %s of %s updated.\n", g.Name, g.App)
		t := newTable(w)
		row := func(name, old, now string) {
			if old != now {
				t.row(name+":", old+" -> "+now)
			}
		}
		row("Selector", formatSelector(before.Selector), formatSelector(g.Selector))
		row("Config", orDefault(before.Config, "OneAtATime"), orDefault(g.Config, "OneAtATime"))
		row("Health check", describeHealth(before.HealthCheck), describeHealth(g.HealthCheck))
		row("Auto rollback", onOff(before.AutoRollback), onOff(g.AutoRollback))
		row("Load balancer", describeLB(before.LoadBalancer), describeLB(g.LoadBalancer))
		return t.flush()
	})
}

// groupRmOptions are the inputs of `gantry group rm`.
type groupRmOptions struct {
	App, Group string
	Force      bool
}

func (a *app) newGroupRmCmd() *cobra.Command {
	var o groupRmOptions
	cmd := &cobra.Command{
		Use:     "rm APP GROUP [--force]",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a deployment group with its deployment history",
		Long: `Remove a deployment group with its deployment history. Its hosts keep what
was deployed to them.

A group an environment's deploy block made belongs to that environment:
'gantry destroy --env ENV' removes it, and removing it by hand needs
--force (the environment's next apply makes it again). Never while a
deployment to the group is in progress: stop it first with 'gantry
deployments stop ID'.

Exit status: 0 removed, 1 refused or not found, 2 usage.`,
		Example: `  gantry group rm shop staging
  gantry group rm shop dev-web --force   # made by environment dev
  gantry group rm shop staging -o json   # the removed group`,
		Args: exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Group = args[0], args[1]
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.DeleteGroup(cmd.Context(), o.App, o.Group, o.Force)
			if err != nil {
				return err
			}
			return a.emit(g, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Deployment group %s of %s removed.\n", g.Name, g.App)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "remove a group an environment made")
	return cmd
}

// scheduleUpdateOptions are the inputs of `gantry schedule update`.
type scheduleUpdateOptions struct {
	jobOptions
	ID              string
	Cron            string
	Enable, Disable bool
}

func (a *app) newScheduleUpdateCmd() *cobra.Command {
	var o scheduleUpdateOptions
	cmd := &cobra.Command{
		Use:   "update SCHEDULE_ID [flags] [-- SCRIPT...]",
		Short: "Change a schedule's expression, selector, script or timeout, or disable it",
		Long: `Change a schedule. Only what is given changes: --cron, --selector (''
means all hosts), --timeout, --concurrency, --user, the script (after --
or with --script FILE); --disable stops its runs and --enable resumes
them. Jobs it already started are not changed. A slot of the new
expression that passed before the change is not run.

Exit status: 0 changed, 1 refused or not found, 2 usage.`,
		Example: `  gantry schedule update s-3kq7x2m4d5f6 --cron '30 2 * * *'
  gantry schedule update s-3kq7x2m4d5f6 --selector 'role=db,zone=eu' --timeout 2h
  gantry schedule update s-3kq7x2m4d5f6 -- /usr/local/bin/backup --full
  gantry schedule update s-3kq7x2m4d5f6 --disable -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if len(args) == 0 || dash == 0 {
				return usageErrorf("missing SCHEDULE_ID argument (see 'gantry schedule ls')")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			dash := cmd.ArgsLenAtDash()
			if dash > 1 || (dash < 0 && len(args) > 1) {
				return usageErrorf("unexpected argument %q: put the script after --, as in: gantry schedule update %s -- uptime", args[1], o.ID)
			}
			if dash == 1 {
				o.ScriptWords = args[1:]
			}
			return a.runScheduleUpdate(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Cron, "cron", "", "new cron `EXPR`, e.g. '*/5 * * * *' or '@daily'")
	f.StringVarP(&o.Selector, "selector", "l", "", "new label `SELECTOR` of the target hosts ('' means all hosts)")
	f.IntVar(&o.Concurrency, "concurrency", 0, "run on at most `N` hosts at a time (0 = all at once)")
	f.DurationVar(&o.Timeout, "timeout", 0, "kill the script on a host after this long, e.g. 30s, 1h")
	f.StringVar(&o.User, "user", "", "run the script as this `USER`")
	f.StringVar(&o.ScriptFile, "script", "", "read the new script from `FILE` instead of the words after --")
	f.BoolVar(&o.Enable, "enable", false, "resume the schedule's runs")
	f.BoolVar(&o.Disable, "disable", false, "stop the schedule's runs (it is kept)")
	return cmd
}

// request validates the options and returns the update they describe.
func (o scheduleUpdateOptions) request(cmd *cobra.Command) (api.UpdateScheduleRequest, error) {
	var req api.UpdateScheduleRequest
	f := cmd.Flags()
	if f.Changed("cron") {
		if strings.TrimSpace(o.Cron) == "" {
			return req, usageErrorf("--cron is empty: give an expression such as '0 3 * * *' or '@daily'")
		}
		req.Cron = &o.Cron
	}
	if f.Changed("selector") {
		req.Selector = &o.Selector
	}
	if f.Changed("concurrency") {
		if o.Concurrency < 0 {
			return req, usageErrorf("invalid --concurrency %d: must be 0 (all at once) or more", o.Concurrency)
		}
		req.Concurrency = &o.Concurrency
	}
	if f.Changed("timeout") {
		if o.Timeout <= 0 {
			return req, usageErrorf("invalid --timeout %s: must be positive", o.Timeout)
		}
		secs := ceilSeconds(o.Timeout)
		req.TimeoutSeconds = &secs
	}
	if f.Changed("user") {
		req.User = &o.User
	}
	if len(o.ScriptWords) > 0 || o.ScriptFile != "" {
		script, err := o.script()
		if err != nil {
			return req, err
		}
		req.Script = &script
	}
	if o.Enable && o.Disable {
		return req, usageErrorf("--enable and --disable exclude each other: give one")
	}
	if o.Enable || o.Disable {
		d := o.Disable
		req.Disabled = &d
	}
	if req == (api.UpdateScheduleRequest{}) {
		return req, usageErrorf("nothing to change: give at least one of --cron, --selector, --timeout, --concurrency, --user, --script, -- SCRIPT, --enable, --disable")
	}
	return req, nil
}

func (a *app) runScheduleUpdate(ctx context.Context, cmd *cobra.Command, o scheduleUpdateOptions) error {
	req, err := o.request(cmd)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	s, err := c.UpdateSchedule(ctx, o.ID, req)
	if err != nil {
		return err
	}
	now := a.now()
	return a.emit(s, func(w io.Writer) error {
		state := "enabled"
		if s.Disabled {
			state = "disabled"
		}
		_, err := fmt.Fprintf(w, "Schedule %s updated: %q on %s, %s; next run %s.\n",
			s.ID, s.Cron, formatSelector(s.Selector), state, nextRun(s, now))
		return err
	})
}
