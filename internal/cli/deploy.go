package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/validate"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func (a *app) newGroupsCmd() *cobra.Command {
	return newGroupCmd("group", "Create, list, change and remove deployment groups (the hosts an application is deployed to)",
		`  gantry group create shop web --selector 'role=web' --min-healthy 75% --health-http http://127.0.0.1:8080/healthz
  gantry group ls shop
  gantry group show shop web
  gantry group update shop web --selector 'role=web,zone=eu'
  gantry group rm shop web`,
		a.newGroupCreateCmd(), a.newGroupListCmd(), a.newGroupShowCmd(), a.newGroupUpdateCmd(), a.newGroupRmCmd())
}

// groupCreateOptions are the inputs of 'gantry group create'.
type groupCreateOptions struct {
	App, Name      string
	Selector       string
	SelectorSet    bool // --selector was given (possibly as '', meaning all hosts)
	Config         string
	MinHealthy     string
	HealthHTTP     string
	HealthStatus   int
	HealthTCP      string
	HealthCommand  string
	HealthTimeout  time.Duration
	NoAutoRollback bool
	// lb is the load balancer in front of the group (grouplb.go).
	lb lbFlags

	statusSet, timeoutSet bool
}

func (a *app) newGroupCreateCmd() *cobra.Command {
	o := groupCreateOptions{HealthStatus: 200, HealthTimeout: 60 * time.Second}
	cmd := &cobra.Command{
		Use:   "create APP GROUP --selector SELECTOR [flags]",
		Short: "Create a deployment group: the hosts matching a selector, a rollout pace and a health gate",
		Long: `Create a deployment group of an application: the hosts matching a label
selector, the default deployment configuration and an optional health check.

The configuration says how fast a deployment rolls out: OneAtATime (the
default), HalfAtATime, AllAtOnce, or a minimum of healthy hosts given with
--min-healthy as a count (4) or a percentage (75%). --config and
--min-healthy are two ways to say the same thing: give one.

The health check runs on each host after ValidateService and must pass
within --health-timeout for the host to succeed. Give at most one of
--health-http (a URL fetched from the host, passing on --health-status),
--health-tcp (an address that must accept a connection) and
--health-command (a program and its arguments, split like a shell would
but run without one; it passes when it exits 0).

A failed deployment is rolled back automatically to the group's last good
revision unless --no-auto-rollback is given.

With --lb HOST/BACKEND the group is behind a load balancer that the gantry
agent on HOST drives (haproxy's runtime API; --lb-socket for an haproxy
gantry does not configure, whose servers in BACKEND are named after the
group's hosts). Deployments then drain each host (its sessions end, up to
--drain-timeout) before ApplicationStop and let it in again after
ValidateService and the health check, once haproxy's own checks find it UP.
A drain that would leave the backend without a ready server is refused and
fails the host.`,
		Example: `  # Web hosts, never fewer than 75% healthy, gated on an HTTP check
  gantry group create shop web --selector 'role=web,env=prod' --min-healthy 75% \
      --health-http http://127.0.0.1:8080/healthz --health-status 200 --health-timeout 90s

  # Workers, all at once, checked by a command, no automatic rollback
  gantry group create shop workers --selector 'role=worker' --config AllAtOnce \
      --health-command "/usr/local/bin/check-worker --queue 'orders eu'" --no-auto-rollback

  # The database hosts, one at a time, a TCP check on port 5432
  gantry group create db primary --selector 'role=db' --health-tcp 127.0.0.1:5432

  # Web hosts behind an haproxy on host lb1 (backend "web", servers named after the hosts)
  gantry group create shop web --selector 'role=web' --lb lb1/web --lb-socket /run/haproxy/admin.sock --drain-timeout 20s`,
		Args: exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Name = args[0], args[1]
			o.SelectorSet = cmd.Flags().Changed("selector")
			o.statusSet = cmd.Flags().Changed("health-status")
			o.timeoutSet = cmd.Flags().Changed("health-timeout")
			o.lb.changed(cmd.Flags())
			return a.runGroupCreate(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Selector, "selector", "l", "", "label `SELECTOR` of the group's hosts (required, not empty: a group is the hosts it selects)")
	o.settingFlags(f, "", " (default OneAtATime)")
	return cmd
}

// settingFlags defines the flags of a group's settings that create and
// update share; update's help says "new" (prefix) and has no default.
func (o *groupCreateOptions) settingFlags(f *pflag.FlagSet, prefix, configDefault string) {
	f.StringVar(&o.Config, "config", "", prefix+"deployment configuration `C`: OneAtATime, HalfAtATime or AllAtOnce"+configDefault)
	f.StringVar(&o.MinHealthy, "min-healthy", "", "keep at least `N` hosts, or N% of them, healthy (instead of --config)")
	f.StringVar(&o.HealthHTTP, "health-http", "", prefix+"health check: GET this `URL` from the host")
	f.IntVar(&o.HealthStatus, "health-status", o.HealthStatus, "HTTP `STATUS` that passes the --health-http check")
	f.StringVar(&o.HealthTCP, "health-tcp", "", prefix+"health check: connect to this `ADDR` (host:port, or a port on 127.0.0.1)")
	f.StringVar(&o.HealthCommand, "health-command", "", prefix+"health check: run this `'PROG ARG...'` (no shell; passes on exit 0)")
	f.DurationVar(&o.HealthTimeout, "health-timeout", o.HealthTimeout, "how long the "+prefix+"health check may take to pass on a host")
	f.BoolVar(&o.NoAutoRollback, "no-auto-rollback", false, "do not roll a failed deployment back automatically")
	o.lb.define(f)
}

// request validates the options and returns the request they describe.
func (o groupCreateOptions) request() (api.CreateGroupRequest, error) {
	req := api.CreateGroupRequest{Name: o.Name, Selector: o.Selector, NoAutoRollback: o.NoAutoRollback}
	if !o.SelectorSet || strings.TrimSpace(o.Selector) == "" {
		return req, usageErrorf("--selector is required: give a label selector such as 'role=web' (a group is the hosts it selects, so it cannot be empty)")
	}
	config, err := configFlags(o.Config, o.MinHealthy)
	if err != nil {
		return req, err
	}
	req.Config = config
	hc, err := o.healthCheck()
	if err != nil {
		return req, err
	}
	req.HealthCheck = hc
	if req.LoadBalancer, err = o.lb.target(); err != nil {
		return req, err
	}
	return req, nil
}

// healthCheck builds the health check from at most one of the --health-*
// kinds, or returns nil when none is given.
func (o groupCreateOptions) healthCheck() (*api.HealthCheck, error) {
	var kinds []string
	for _, k := range []struct{ flag, value string }{
		{"--health-http", o.HealthHTTP}, {"--health-tcp", o.HealthTCP}, {"--health-command", o.HealthCommand},
	} {
		if k.value != "" {
			kinds = append(kinds, k.flag)
		}
	}
	switch {
	case len(kinds) > 1:
		return nil, usageErrorf("%s are exclusive: give at most one of --health-http, --health-tcp and --health-command",
			strings.Join(kinds, " and "))
	case o.statusSet && o.HealthHTTP == "":
		return nil, usageErrorf("--health-status needs --health-http URL")
	case o.timeoutSet && len(kinds) == 0:
		return nil, usageErrorf("--health-timeout needs a health check: --health-http, --health-tcp or --health-command")
	case len(kinds) == 0:
		return nil, nil
	}
	if o.HealthTimeout <= 0 {
		return nil, usageErrorf("invalid --health-timeout %s: must be positive", o.HealthTimeout)
	}
	hc := &api.HealthCheck{HTTP: o.HealthHTTP, TCP: o.HealthTCP}
	if o.HealthHTTP != "" {
		if o.HealthStatus < 100 || o.HealthStatus > 599 {
			return nil, usageErrorf("invalid --health-status %d: want an HTTP status between 100 and 599", o.HealthStatus)
		}
		hc.ExpectStatus = o.HealthStatus
	}
	if o.HealthCommand != "" {
		argv, err := splitWords(o.HealthCommand)
		if err != nil {
			return nil, usageErrorf("invalid --health-command: %v", err)
		}
		if len(argv) == 0 {
			return nil, usageErrorf("invalid --health-command: it is empty")
		}
		hc.Command = argv
	}
	if o.timeoutSet {
		hc.TimeoutSeconds = ceilSeconds(o.HealthTimeout)
	}
	return hc, nil
}

// configFlags turns --config and --min-healthy into a deployment
// configuration ("" leaves it to the server or the group).
func configFlags(config, minHealthy string) (string, error) {
	if config != "" && minHealthy != "" {
		return "", usageErrorf("--config and --min-healthy are exclusive: give a configuration name, or a minimum of healthy hosts")
	}
	if minHealthy == "" {
		return config, nil
	}
	if err := checkMinHealthy(minHealthy); err != nil {
		return "", err
	}
	return minHealthy, nil
}

// checkMinHealthy accepts a host count ("4") or a percentage ("75%") in
// the server's range (validate.ParseDeployConfig).
func checkMinHealthy(s string) error {
	if c, err := validate.ParseDeployConfig("--min-healthy", s); err != nil || c.Name != "" {
		return usageErrorf("invalid --min-healthy %q: want a number of hosts from %d to %d (4) or a percentage of at most 100%% (75%%)",
			s, validate.MinHealthyCount.Min, validate.MinHealthyCount.Max)
	}
	return nil
}

// splitWords splits s into words as a POSIX shell would, without running
// one: blanks separate words, single quotes keep everything literal,
// double quotes keep everything but \" \\ \$ and \` literal, and a
// backslash outside quotes escapes the next character. No expansion of
// any kind is done.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word has started (possibly empty: '')
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("a backslash ends the command")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
				in = true
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			in = true
		case c == '"':
			in = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func (a *app) runGroupCreate(ctx context.Context, o groupCreateOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	g, err := c.CreateGroup(ctx, o.App, req)
	if err != nil {
		return err
	}
	return a.emit(g, func(w io.Writer) error {
		fmt.Fprintf(w, "Deployment group %s of %s created: hosts %s, %s, health check %s, automatic rollback %s.\n",
			g.Name, g.App, formatSelector(g.Selector), orDefault(g.Config, "OneAtATime"), describeHealth(g.HealthCheck), onOff(g.AutoRollback))
		if g.LoadBalancer != nil {
			fmt.Fprintf(w, "Behind load balancer %s: each host is drained before ApplicationStop and let in again after ValidateService.\n", describeLB(g.LoadBalancer))
		}
		_, err := fmt.Fprintf(w, "Deploy to it with: gantry deploy %s %s [--revision REVISION]\n", g.App, g.Name)
		return err
	})
}

func (a *app) newGroupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls APP",
		Aliases: []string{"list"},
		Short:   "List an application's deployment groups",
		Example: "  gantry group ls shop\n  gantry group ls shop -o json",
		Args:    exactArgs("APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			groups, err := c.ListGroups(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			now := a.now()
			return emitList(a, groups, "No deployment groups. Create one with: gantry group create "+args[0]+" GROUP --selector SELECTOR",
				func(w io.Writer) error {
					t := newTable(w, "NAME", "SELECTOR", "CONFIG", "HEALTH CHECK", "AUTO ROLLBACK", "REVISION", "CREATED")
					for _, g := range groups {
						t.row(g.Name, formatSelector(g.Selector), orDefault(g.Config, "OneAtATime"), describeHealth(g.HealthCheck),
							onOff(g.AutoRollback), orDash(g.Revision), relTime(g.CreatedAt, now))
					}
					return t.flush()
				})
		},
	}
}

func (a *app) newGroupShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show APP GROUP",
		Aliases: []string{"get"},
		Short:   "Show a deployment group: its selector, configuration, health check and current revision",
		Example: "  gantry group show shop web\n  gantry group show shop web -o json | jq .health_check",
		Args:    exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.GetGroup(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			now := a.now()
			return a.emit(g, func(w io.Writer) error {
				t := newTable(w)
				t.row("Group:", g.Name)
				t.row("ID:", g.ID)
				t.row("Application:", g.App)
				t.row("Selector:", formatSelector(g.Selector))
				t.row("Config:", orDefault(g.Config, "OneAtATime"))
				t.row("Health check:", describeHealth(g.HealthCheck))
				t.row("Auto rollback:", onOff(g.AutoRollback))
				t.row("Load balancer:", describeLB(g.LoadBalancer))
				t.row("Revision:", orDefault(g.Revision, "- (nothing deployed yet)"))
				t.row("Created:", absTime(g.CreatedAt, now))
				return t.flush()
			})
		},
	}
}

// describeHealth renders a health check in one line.
func describeHealth(hc *api.HealthCheck) string {
	if hc == nil {
		return "none"
	}
	var s string
	switch {
	case hc.HTTP != "":
		status := hc.ExpectStatus
		if status == 0 {
			status = 200
		}
		s = fmt.Sprintf("GET %s -> %d", hc.HTTP, status)
	case hc.TCP != "":
		s = "tcp " + hc.TCP
	case len(hc.Command) > 0:
		s = "command " + quoteWords(hc.Command)
	default:
		return "none"
	}
	timeout := hc.TimeoutSeconds
	if timeout == 0 {
		timeout = 60
	}
	return fmt.Sprintf("%s (within %s)", s, time.Duration(timeout)*time.Second)
}

// quoteWords renders an argv so that splitWords gives it back.
func quoteWords(argv []string) string {
	out := make([]string, len(argv))
	for i, w := range argv {
		if w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`") {
			out[i] = w
		} else {
			out[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// deployOptions are the inputs of 'gantry deploy'.
type deployOptions struct {
	App, Group  string
	Revision    string
	Config      string
	MinHealthy  string
	Description string
	Wait        bool
	// IdempotencyKey is sent with the create (default: random per run).
	IdempotencyKey string
	// strat are the strategy flags (deploy_strategy.go).
	strat strategyFlags
}

func (a *app) newDeployCmd() *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy APP GROUP [flags]",
		Short: "Deploy a revision of an application to a deployment group",
		Long: `Deploy a revision of an application to the hosts of a deployment group, in
batches sized by the group's configuration (or --config / --min-healthy for
this deployment only). Without --revision the application's newest
revision is deployed.

Without --wait the deployment id is printed and the command returns; see
the deployment with 'gantry deployments show ID'. With --wait the command
follows the deployment: on a terminal, one line per host (host, batch,
lifecycle event, state) redrawn in place under a progress bar; otherwise
one plain line per change. A summary follows: each host's state, and for
failed hosts the event that failed with its error and log tail.

Exit status with --wait: 0 if the deployment succeeded, 1 if it failed or
was stopped (the summary says whether an automatic rollback was started),
2 on a usage error. -o json prints only the final deployment. Interrupting
the command (Ctrl-C) does not stop the deployment: use
'gantry deployments stop ID'.

Strategies (groups with a load balancer): --strategy canary deploys
--canary-hosts hosts first and gives them growing shares of the traffic
(--canary-steps WEIGHT:PAUSE,...), comparing their 5xx rate and response
time with the stable hosts' every --analysis-interval from the load
balancer's own counters; a failed analysis drains the canary at once and
fails the deployment (and rolls it back), passing every step deploys the
other hosts in place. An interval without canary traffic is "no data":
with --on-no-data wait (the default) a step that ends without data fails,
it never passes silently. A pause of 0 waits for 'gantry deployments
promote ID'; 'gantry deployments abort ID' drains the canary by hand.
--strategy blue-green deploys the revision to replacement hosts, moves the
traffic to them (at once, or --shift-step percent every --shift-interval)
and keeps the original hosts ready for --keep-original, during which
'gantry rollback' or 'gantry deployments abort' moves the traffic back in
one change. On an environment's group the environment makes the
replacement machines itself (as many as the group has) and removes the
fleet that lost afterwards: the originals after a success, the
replacements after a rollback. On hand-onboarded hosts,
--replacement-selector names the replacement hosts.`,
		Example: `  # The newest revision, following it live
  gantry deploy shop web --wait

  # A given revision, keeping at least 4 hosts healthy, with a note
  gantry deploy shop web --revision r-3f2a9c0d1e2b --min-healthy 4 --description "hotfix #812"

  # All at once; the final deployment as JSON (exit 1 if it failed)
  gantry deploy shop workers --config AllAtOnce --wait -o json

  # A canary: 10% for 30s, 50% for 30s, then wait for 'gantry deployments promote'
  gantry deploy shop web --strategy canary --canary-steps 10:30s,50:30s,100:0 \
      --analysis-interval 10s --max-error-rate 1% --max-latency-ratio 2 --wait

  # Blue/green of an environment's group: new machines, 50% more every 10s, originals kept 5m
  gantry deploy shop web --strategy blue-green --shift-step 50 --shift-interval 10s --keep-original 5m --wait

  # Blue/green to the hand-onboarded hosts labelled color=green, 25% more every 30s, originals kept 10m
  gantry deploy shop web --strategy blue-green --replacement-selector color=green \
      --shift-step 25 --shift-interval 30s --keep-original 10m --wait`,
		Args: exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Group = args[0], args[1]
			o.strat.changed(cmd.Flags())
			return a.runDeploy(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Revision, "revision", "", "deploy this `REVISION` (default: the application's newest)")
	f.StringVar(&o.Config, "config", "", "deployment configuration `C` for this deployment: OneAtATime, HalfAtATime or AllAtOnce")
	f.StringVar(&o.MinHealthy, "min-healthy", "", "keep at least `N` hosts, or N% of them, healthy (instead of --config)")
	f.StringVar(&o.Description, "description", "", "a `note` shown with the deployment")
	f.BoolVar(&o.Wait, "wait", false, "follow the deployment until it ends; exit 1 unless it succeeded")
	o.strat.define(f)
	addIdempotencyFlag(cmd, &o.IdempotencyKey)
	return cmd
}

func (a *app) runDeploy(ctx context.Context, o deployOptions) error {
	config, err := configFlags(o.Config, o.MinHealthy)
	if err != nil {
		return err
	}
	req := api.DeployRequest{Revision: o.Revision, Config: config, Description: o.Description}
	if err := o.strat.apply(&req); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	dep, err := c.Deploy(idempotentCtx(ctx, o.IdempotencyKey), o.App, o.Group, req)
	if err != nil {
		return err
	}
	return a.afterStart(ctx, c, dep, o.Wait)
}

// rollbackOptions are the inputs of 'gantry rollback'.
type rollbackOptions struct {
	App, Group string
	Wait       bool
	// IdempotencyKey is sent with the create (default: random per run).
	IdempotencyKey string
}

func (a *app) newRollbackCmd() *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback APP GROUP [--wait]",
		Short: "Roll a deployment group back to its last good revision",
		Long: `Roll a deployment group back by hand: the server starts a new deployment of
the group's last successfully deployed revision (side effects of hook
scripts are not undone). --wait follows it as 'gantry deploy --wait' does,
with the same output and exit status.`,
		Example: `  gantry rollback shop web
  gantry rollback shop web --wait
  gantry rollback shop web --wait -o json | jq .state`,
		Args: exactArgs("APP", "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Group = args[0], args[1]
			c, err := a.client()
			if err != nil {
				return err
			}
			dep, err := c.Rollback(idempotentCtx(cmd.Context(), o.IdempotencyKey), o.App, o.Group)
			if err != nil {
				return err
			}
			return a.afterStart(cmd.Context(), c, dep, o.Wait)
		},
	}
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "follow the rollback until it ends; exit 1 unless it succeeded")
	addIdempotencyFlag(cmd, &o.IdempotencyKey)
	return cmd
}

// afterStart reports a deployment just created: its id, or with wait its
// live progress and outcome.
func (a *app) afterStart(ctx context.Context, c *api.Client, dep api.Deployment, wait bool) error {
	if !wait {
		err := a.emit(dep, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, dep.ID)
			return err
		})
		switch {
		case err != nil || a.jsonOutput():
		case dep.Traffic != nil && dep.Traffic.AbortRequested && dep.Strategy == api.StrategyBlueGreen:
			// A rollback during a blue/green keep period starts nothing:
			// the same deployment moves the traffic back.
			fmt.Fprintf(a.stderr, "Blue/green deployment %s of %s to group %s: the traffic goes back to the original hosts (nothing is redeployed). Follow it with: gantry deployments show %s\n",
				dep.ID, dep.App, dep.Group, dep.ID)
		default:
			fmt.Fprintf(a.stderr, "Deployment %s of %s revision %s to group %s started (%s). Follow it with: gantry deployments show %s\n",
				dep.ID, dep.App, orDash(dep.Revision), dep.Group, plural(len(dep.Hosts), "host"), dep.ID)
		}
		return err
	}
	return a.followToEnd(ctx, c, dep)
}

// followToEnd shows a deployment's live progress until it ends, then its
// summary; exit 1 unless it succeeded.
func (a *app) followToEnd(ctx context.Context, c *api.Client, dep api.Deployment) error {
	var view *deployView
	if !a.jsonOutput() {
		view = newDeployView(a.stdout, a.isTerminal(a.stdout))
	}
	final, err := a.followDeployment(ctx, c, dep, view)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; deployment %s goes on: see 'gantry deployments show %s', stop it with 'gantry deployments stop %s'",
				dep.ID, dep.ID, dep.ID)
		}
		return fmt.Errorf("following deployment %s: %w (see 'gantry deployments show %s')", dep.ID, err, dep.ID)
	}
	now := a.now()
	if err := a.emit(final, func(w io.Writer) error { return printDeploySummary(w, final, now) }); err != nil {
		return err
	}
	if final.State != api.DeploySucceeded {
		return &exitError{exitFailed}
	}
	return nil
}
