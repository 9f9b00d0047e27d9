package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bundle"
	"github.com/gantry-dev/gantry/internal/infra/planview"
)

// envOptions are the flags shared by plan, apply, destroy, up and scale.
type envOptions struct {
	Env         string
	Vars        []string
	Out         string
	AutoApprove bool
	LockTimeout time.Duration
	Timeout     time.Duration
	NoWait      bool
	// DetailedExitCode (plan) exits 2 when the plan has changes.
	DetailedExitCode bool
	// source is the definition directory's absolute path (set by
	// envDefinition), recorded by apply for destroy DIR and scale DIR.
	source string
	// waitAfter is set when the command waits for the lifecycle work after
	// applying: with -o json, the wait prints the one JSON document (the
	// outcome), not the apply.
	waitAfter bool
	// applied and since are set once an apply ran (or had nothing to do):
	// since is the state serial it started from (api.EnvOutcome).
	applied bool
	since   int64
}

func (o *envOptions) registerEnv(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.Env, "env", "", "environment instance `NAME` (dev, staging, prod…); its variables are read from DIR/envs/NAME.hcl (env GANTRY_ENV)")
}

func (o *envOptions) registerVars(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.Vars, "var", nil, "set a variable, `name=value` (repeatable; wins over envs/NAME.hcl and defaults)")
}

func (o *envOptions) registerApply(cmd *cobra.Command, approve bool) {
	if approve {
		cmd.Flags().BoolVar(&o.AutoApprove, "auto-approve", false, "apply without asking for confirmation")
	}
	cmd.Flags().DurationVar(&o.LockTimeout, "lock-timeout", 0, "wait this long for another apply's lock (default: fail at once, naming the holder)")
}

func (o *envOptions) registerWait(cmd *cobra.Command, noWait bool) {
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for the lifecycle work (setup, deployment, configure) to finish")
	if noWait {
		cmd.Flags().BoolVar(&o.NoWait, "no-wait", false, "return once the machines are created or removed, without waiting for setup, deployment and configure")
	}
}

// envName resolves --env (or GANTRY_ENV).
func (a *app) envName(o *envOptions) (string, error) {
	env := firstNonEmpty(o.Env, a.env("GANTRY_ENV"))
	if env == "" {
		return "", usageErrorf("--env is required: the environment instance to act on (e.g. --env dev)")
	}
	return env, nil
}

// envDefinition resolves --env and packs the definition directory,
// warning when DIR has an envs/ directory without envs/ENV.hcl.
func (a *app) envDefinition(o *envOptions, dir string) (string, []byte, error) {
	env, err := a.envName(o)
	if err != nil {
		return "", nil, err
	}
	def, err := packDefinition(dir)
	if err != nil {
		return env, nil, err
	}
	o.source = absDir(dir)
	a.warnEnvFile(dir, env)
	return env, def, nil
}

// absDir is dir made absolute (dir itself if that fails).
func absDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// warnEnvFile warns on stderr when DIR has an envs/ directory but no
// envs/ENV.hcl: a mistyped --env would otherwise silently get the
// variables' defaults.
func (a *app) warnEnvFile(dir, env string) {
	envs := filepath.Join(dir, "envs")
	if fi, err := os.Stat(envs); err != nil || !fi.IsDir() {
		return
	}
	file := filepath.Join(envs, env+".hcl")
	if _, err := os.Stat(file); err == nil {
		return
	}
	files, _ := filepath.Glob(filepath.Join(envs, "*.hcl"))
	have := make([]string, 0, len(files))
	for _, f := range files {
		have = append(have, strings.TrimSuffix(filepath.Base(f), ".hcl"))
	}
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	fmt.Fprintf(a.stderr, "Warning: %s does not exist: environment %q gets the variables' defaults and --var values only (variable files for: %s)\n", file, env, list)
}

// matchDefinition packs the DIR given to destroy or scale, which the
// server checks against the applied definition.
func matchDefinition(req *api.EnvRequest, args []string) error {
	if len(args) == 0 {
		return nil
	}
	def, err := packDefinition(args[0])
	if err != nil {
		return err
	}
	req.Match, req.Source = def, absDir(args[0])
	return nil
}

// maxDefinitionBytes caps a packed definition directory.
const maxDefinitionBytes = 64 << 20

// packDefinition packs a definition directory, checking that it has *.hcl
// files.
func packDefinition(dir string) ([]byte, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, usageErrorf("definition directory %s: %v", dir, err)
	}
	if !fi.IsDir() {
		return nil, usageErrorf("%s is not a directory: pass the directory of the environment's *.hcl files", dir)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if len(files) == 0 {
		return nil, usageErrorf("%s has no *.hcl file: pass the directory of the environment's definition", dir)
	}
	skip, err := loadIgnore(dir)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := bundle.PackFiltered(dir, &buf, skip); err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	if buf.Len() > maxDefinitionBytes {
		return nil, fmt.Errorf("%s packs to %d MiB; the limit is %d MiB: list large files (binaries, bundles) in %s", dir, buf.Len()>>20, maxDefinitionBytes>>20, filepath.Join(dir, ignoreFile))
	}
	return buf.Bytes(), nil
}

// who names the caller for the lock message.
func who() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s (pid %d)", name, host, os.Getpid())
}

func dirArg(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}

func (a *app) newPlanCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what apply would change in an environment",
		Long: `Refresh an environment's state from its providers and show what applying the
definition in DIR (default .) would do:

  +    create               ~    update in place
  -/+  replace (the attribute that forces it is marked)
  -    destroy

A resource deleted or stopped behind gantry's back shows as drift (created or
replaced again). --out saves the plan; 'gantry apply FILE' applies exactly it,
and refuses if the environment's state moved since.

Planning a new environment creates nothing: the plan says "(new
environment)"; apply or up creates it.

Exit status: 0 the plan was made, 1 it failed, 2 usage error (a definition
with errors included). With
--detailed-exitcode (Terraform's meaning, for CI drift checks): 0 no changes,
1 error (the definition's errors included), 2 changes present; a usage error
(unknown flag, missing --env) also exits 2, as with terraform, so check the
output when a 2 is unexpected.`,
		Example: `  gantry plan examples/shop --env dev
  gantry plan . --env prod --var web_count=4 --out prod.plan
  gantry apply prod.plan
  gantry plan examples/shop --env prod --detailed-exitcode   # CI: 2 = drift`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, def, err := a.envDefinition(&o, dirArg(args))
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.PlanEnv(cmd.Context(), env, api.EnvRequest{Definition: def, Vars: o.Vars, Source: o.source})
			if err != nil {
				if o.DetailedExitCode {
					return &codedError{err: err, code: exitFailed}
				}
				return err
			}
			if o.Out != "" {
				b, _ := json.MarshalIndent(p, "", "  ")
				if err := os.WriteFile(o.Out, b, 0o600); err != nil {
					return fmt.Errorf("--out %s: %w", o.Out, err)
				}
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, p)
			}
			if err := planview.Render(a.stdout, p); err != nil {
				return err
			}
			if o.Out != "" {
				fmt.Fprintf(a.stdout, "Saved the plan to %s: apply it with: gantry apply %s\n", o.Out, o.Out)
			}
			if o.DetailedExitCode && len(p.Changes) > 0 {
				return &exitError{exitChanges}
			}
			return nil
		},
	}
	o.registerEnv(cmd)
	o.registerVars(cmd)
	cmd.Flags().StringVar(&o.Out, "out", "", "save the plan to `FILE` (mode 0600; it holds the definition) for 'gantry apply FILE'")
	cmd.Flags().BoolVar(&o.DetailedExitCode, "detailed-exitcode", false, "exit 0 when there are no changes, 1 on an error, 2 when there are changes (as terraform plan); flag and argument errors still exit 2")
	return cmd
}

func (a *app) newApplyCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "apply [DIR | PLANFILE]",
		Short: "Create or change an environment to match its definition",
		Long: `Plan the definition in DIR (default .), show the plan, ask for confirmation
(unless --auto-approve), then apply it: resources are created, changed and
destroyed in dependency order, in parallel where the graph allows, with live
progress. A saved plan (gantry plan --out FILE) is applied as it is.

An environment has one apply at a time: a second one fails at once naming the
holder of the lock (or waits with --lock-timeout). A failed apply leaves the
state matching what exists; the next apply goes on from there.

Then it waits for the lifecycle work the change triggered (setup of new
machines, their deployment, configure on the machines that stay, the load
balancer included) and reports each failure with its error and the end of its
log (--no-wait returns at once). Exit status 0 when all of it succeeded, 1
when the apply or any of that work failed or --timeout passed.`,
		Example: `  gantry apply examples/shop --env dev
  gantry apply . --env prod --var web_count=6 --auto-approve
  gantry apply prod.plan`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := dirArg(args)
			o.waitAfter = !o.NoWait
			if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
				env, err := a.applyPlanFile(cmd.Context(), path, &o)
				if err != nil || o.NoWait {
					return err
				}
				return a.waitSettled(cmd.Context(), env, &o, "apply")
			}
			env, def, err := a.envDefinition(&o, path)
			if err != nil {
				return err
			}
			req := api.EnvRequest{Definition: def, Vars: o.Vars}
			if _, err = a.planConfirmApply(cmd.Context(), env, req, &o, "apply"); err != nil || o.NoWait {
				return err
			}
			return a.waitSettled(cmd.Context(), env, &o, "apply")
		},
	}
	o.registerEnv(cmd)
	o.registerVars(cmd)
	o.registerApply(cmd, true)
	o.registerWait(cmd, true)
	return cmd
}

func (a *app) newDestroyCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "destroy [DIR]",
		Short: "Destroy every machine and network of an environment",
		Long: `Destroy an environment: each machine's shutdown script runs first (its
timeout, default 120 s), then machines and networks are deleted and their
hosts removed from the inventory. The definition last applied is used; an ssh
host loses only the gantry agent. A shutdown script that fails is reported with
its error and log tail, and destroy exits 1 (the machines are gone all the
same); a machine already deleted outside gantry gets no shutdown.

DIR, when given, must be the definition applied to the environment (the same
files, or the directory it was applied from with the same groups): a
different one is refused, naming both, so that a command meant for another
environment destroys nothing.`,
		Example: `  gantry destroy examples/shop --env dev
  gantry destroy --env dev
  gantry destroy --env ci-42 --auto-approve`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := a.envName(&o)
			if err != nil {
				return err
			}
			req := api.EnvRequest{Destroy: true}
			if err := matchDefinition(&req, args); err != nil {
				return err
			}
			o.waitAfter = true
			if _, err = a.planConfirmApply(cmd.Context(), env, req, &o, "destroy"); err != nil {
				return err
			}
			return a.waitSettled(cmd.Context(), env, &o, "destroy")
		},
	}
	o.registerEnv(cmd)
	o.registerApply(cmd, true)
	return cmd
}

func (a *app) newUpCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "up [DIR]",
		Short: "Create an environment and wait until every machine is online",
		Long: `One command from nothing to a serving environment: apply the definition in
DIR (default .) without asking, then wait until every machine is set up,
deployed and healthy, showing a live table, and print the outputs.

It waits for all the lifecycle work the change triggered: setup, the
group's deployment, and configure on every machine whose group has one (the
load balancer included), and reports each failure with its error and the end
of its log.

Exit status 0 when every machine is online and that work succeeded, 1 when
any of it failed or the wait timed out (see 'gantry env show --env NAME').`,
		Example: `  gantry up examples/shop --env dev
  gantry up . --env staging --var web_count=3 --timeout 5m`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, def, err := a.envDefinition(&o, dirArg(args))
			if err != nil {
				return err
			}
			o.AutoApprove, o.waitAfter = true, true
			if _, err := a.planConfirmApply(cmd.Context(), env, api.EnvRequest{Definition: def, Vars: o.Vars}, &o, "apply"); err != nil {
				return err
			}
			return a.waitSettled(cmd.Context(), env, &o, "up")
		},
	}
	o.registerEnv(cmd)
	o.registerVars(cmd)
	o.registerApply(cmd, true)
	o.registerWait(cmd, false)
	return cmd
}

func (a *app) newScaleCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "scale [DIR] GROUP=N [GROUP=N...]",
		Short: "Change the number of machines of groups and wait for them",
		Long: `Scale groups of an environment, using the definition last applied. New
machines are set up and get the group's current revision; configure runs on
every machine once they are online. Scaling in removes machines that are not
in a deployment: configure runs first on the machines that stay (a load
balancer drops the leaving ones), then the leaving machines' shutdown script,
then they are deleted.

Like up, it waits for that lifecycle work (not with --no-wait) and reports
each failure with its error and the end of its log: exit 1 if any failed.

The counts are kept in the environment's state until an apply from a
definition sets them again.

DIR, when given, must be the definition applied to the environment (the same
files, or the directory it was applied from with the same groups; an edit
there is not applied by scale: use apply). A different one is refused.`,
		Example: `  gantry scale examples/shop --env dev web=4
  gantry scale --env dev web=4
  gantry scale --env prod web=10 worker=3 --no-wait`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing GROUP=N argument (e.g. web=4)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := a.envName(&o)
			if err != nil {
				return err
			}
			var dir []string
			if !strings.Contains(args[0], "=") {
				dir, args = args[:1], args[1:]
				if len(args) == 0 {
					return usageErrorf("missing GROUP=N argument after the directory %s (e.g. web=4)", dir[0])
				}
			}
			scale := map[string]int{}
			for _, arg := range args {
				g, n, ok := strings.Cut(arg, "=")
				count, err := strconv.Atoi(n)
				if !ok || g == "" || err != nil || count < 0 {
					return usageErrorf("%q: want GROUP=N with N a whole number from 0 (e.g. web=4)", arg)
				}
				scale[g] = count
			}
			o.AutoApprove, o.waitAfter = true, !o.NoWait
			req := api.EnvRequest{Scale: scale}
			if err := matchDefinition(&req, dir); err != nil {
				return err
			}
			if _, err := a.planConfirmApply(cmd.Context(), env, req, &o, "apply"); err != nil {
				return err
			}
			if o.NoWait {
				return nil
			}
			return a.waitSettled(cmd.Context(), env, &o, "scale")
		},
	}
	o.registerEnv(cmd)
	o.registerApply(cmd, true)
	o.registerWait(cmd, true)
	return cmd
}

// planConfirmApply shows the plan, asks (unless auto-approved), and
// applies it. Auto-approved, it plans and applies in one request under the
// lock, so that --lock-timeout waits before the plan is made.
func (a *app) planConfirmApply(ctx context.Context, env string, req api.EnvRequest, o *envOptions, verb string) (api.Environment, error) {
	c, err := a.client()
	if err != nil {
		return api.Environment{}, err
	}
	req.Who, req.LockTimeoutSeconds = who(), int(o.LockTimeout.Seconds())
	if req.Source == "" && len(req.Definition) > 0 {
		req.Source = o.source
	}
	if !o.AutoApprove {
		p, err := c.PlanEnv(ctx, env, req)
		if err != nil {
			return api.Environment{}, err
		}
		if !a.jsonOutput() {
			_ = planview.Render(a.stdout, p)
		}
		if len(p.Changes) == 0 {
			o.applied, o.since = true, p.Serial
			return api.Environment{}, nil
		}
		if err := a.confirm(fmt.Sprintf("Do you want to %s environment %q? Only 'yes' is accepted: ", verb, env)); err != nil {
			return api.Environment{}, err
		}
		req = api.EnvRequest{Plan: &p, Who: req.Who, LockTimeoutSeconds: req.LockTimeoutSeconds}
	}
	return a.applyStream(ctx, c, env, req, o)
}

// applyPlanFile applies a saved plan and returns its environment's name.
func (a *app) applyPlanFile(ctx context.Context, path string, o *envOptions) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageErrorf("plan file %s: %v", path, err)
	}
	var p api.Plan
	if err := json.Unmarshal(b, &p); err != nil || p.Env == "" {
		return "", usageErrorf("%s is not a saved plan (from 'gantry plan --out FILE'): %v", path, err)
	}
	if o.Env != "" && o.Env != p.Env {
		return "", usageErrorf("--env %s: the plan in %s is for environment %s", o.Env, path, p.Env)
	}
	c, err := a.client()
	if err != nil {
		return "", err
	}
	if !a.jsonOutput() {
		_ = planview.Render(a.stdout, p)
	}
	if !o.AutoApprove {
		if err := a.confirm(fmt.Sprintf("Do you want to apply this plan to environment %q? Only 'yes' is accepted: ", p.Env)); err != nil {
			return "", err
		}
	}
	_, err = a.applyStream(ctx, c, p.Env, api.EnvRequest{Plan: &p, Who: who(), LockTimeoutSeconds: int(o.LockTimeout.Seconds())}, o)
	return p.Env, err
}

// confirm asks for "yes" on the terminal.
func (a *app) confirm(prompt string) error {
	if f, ok := a.stdin.(*os.File); !ok || !isTTY(f) {
		return usageErrorf("refusing to change the environment without confirmation: standard input is not a terminal; pass --auto-approve")
	}
	fmt.Fprint(a.stdout, prompt)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		fmt.Fprintln(a.stdout, "Cancelled: nothing was changed.")
		return &exitError{exitFailed}
	}
	return nil
}

// applyStream applies and prints the progress. With -o json it prints the
// applied environment as one JSON document unless o.waitAfter (the wait
// prints the one document), or when the apply failed (the command ends
// there). A successful apply sets o.applied and o.since.
func (a *app) applyStream(ctx context.Context, c *api.Client, env string, req api.EnvRequest, o *envOptions) (api.Environment, error) {
	jsonResult := !o.waitAfter
	var counts = map[string]int{}
	noChanges := false
	since := int64(-1)
	start := time.Now()
	out, err := c.ApplyEnv(ctx, env, req, func(ev api.ApplyEvent) {
		if ev.Type == "plan" && since < 0 {
			since = ev.Serial
		}
		if a.jsonOutput() {
			return
		}
		switch ev.Type {
		case "resource":
			switch ev.State {
			case "started":
				fmt.Fprintf(a.stdout, "%s: %s…\n", ev.Address, progressVerb(ev.Action))
			case "done":
				counts[ev.Action]++
				fmt.Fprintf(a.stdout, "%s: %s (%s)\n", ev.Address, doneVerb(ev.Action), ev.Message)
			case "failed":
				fmt.Fprintf(a.stdout, "%s: %s FAILED: %s\n", ev.Address, progressVerb(ev.Action), ev.Error)
			}
		case "log", "plan":
			if ev.Address != "" {
				fmt.Fprintf(a.stdout, "%s: %s\n", ev.Address, ev.Message)
			} else if ev.Type == "plan" && ev.Summary != nil && *ev.Summary == (api.PlanSummary{}) {
				noChanges = true
				fmt.Fprintf(a.stdout, "No changes: environment %q matches its definition.\n", env)
			} else if ev.Type == "plan" {
				fmt.Fprintf(a.stdout, "Applying to environment %q: %s.\n", env, ev.Message)
			} else {
				fmt.Fprintln(a.stdout, ev.Message)
			}
		}
	})
	if err == nil {
		o.applied, o.since = true, max(since, 0)
	}
	if a.jsonOutput() {
		if (jsonResult || err != nil) && (err == nil || out.Name != "") {
			_ = writeJSON(a.stdout, out)
		}
		return out, err
	}
	if err != nil {
		if out.Name != "" {
			fmt.Fprintf(a.stdout, "Apply failed after %s. The state records what was done; fix the cause and apply again.\n", formatDuration(time.Since(start)))
		}
		return out, err
	}
	if noChanges {
		return out, nil
	}
	what := "Apply"
	if req.Destroy || (req.Plan != nil && req.Plan.Destroy) {
		what = "Destroy"
	}
	fmt.Fprintf(a.stdout, "%s complete in %s: %d created, %d updated, %d replaced, %d destroyed.\n", what, formatDuration(time.Since(start)),
		counts[api.ActionCreate], counts[api.ActionUpdate], counts[api.ActionReplace], counts[api.ActionDelete])
	return out, nil
}

func progressVerb(action string) string {
	switch action {
	case api.ActionCreate:
		return "creating"
	case api.ActionUpdate:
		return "updating"
	case api.ActionReplace:
		return "replacing"
	case api.ActionDelete:
		return "destroying"
	}
	return action
}

func doneVerb(action string) string {
	switch action {
	case api.ActionCreate:
		return "created"
	case api.ActionUpdate:
		return "updated"
	case api.ActionReplace:
		return "replaced"
	case api.ActionDelete:
		return "destroyed"
	}
	return action
}

// waitSettled polls the environment after an apply until the lifecycle
// work it triggered has settled (the server's Progress: setup, deployment,
// configure on the machines that stay) or the timeout passes, showing a
// live table (or, not on a terminal, each change of a machine's phase and
// each run's end), then reports the outcome: with -o json the one JSON
// document (api.EnvOutcome), else the outputs, every failure with its
// cause and log tail, and a summary line. Any failure exits 1.
func (a *app) waitSettled(ctx context.Context, env string, o *envOptions, verb string) error {
	if !o.applied {
		return nil // cancelled: nothing was applied
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	tty := a.isTerminal(a.stdout) && !a.jsonOutput()
	deadline := time.Now().Add(timeout)
	last := map[string]string{}
	runs := map[string]string{}
	drawn := 0
	timedOut := false
	var e api.Environment
	for {
		e, err = c.GetEnv(ctx, env)
		if err != nil {
			return err
		}
		settled := settledEnv(e)
		if !a.jsonOutput() {
			if tty {
				if drawn > 0 {
					fmt.Fprintf(a.stdout, "\x1b[%dA\x1b[J", drawn)
				}
				var b bytes.Buffer
				if len(e.Machines) > 0 {
					_ = machineTable(&b, e.Machines)
				}
				online := 0
				for _, m := range e.Machines {
					if m.Phase == api.PhaseOnline {
						online++
					}
				}
				fmt.Fprintf(&b, "%d/%d online", online, len(e.Machines))
				if e.Progress != nil && len(e.Progress.Pending) > 0 {
					fmt.Fprintf(&b, "; waiting for: %s", e.Progress.Pending[0])
				}
				b.WriteString("\n")
				drawn = strings.Count(b.String(), "\n")
				_, _ = a.stdout.Write(b.Bytes())
			} else {
				for _, m := range e.Machines {
					if last[m.Address] != m.Phase {
						line := fmt.Sprintf("%s (%s): %s", m.Address, m.Name, m.Phase)
						if m.Error != "" {
							line += ": " + m.Error
						}
						fmt.Fprintln(a.stdout, line)
						last[m.Address] = m.Phase
					}
				}
				for _, r := range e.Events {
					if r.Serial <= o.since || r.Event == "setup" || runs[r.ID] == r.State || r.State == "running" || r.State == "superseded" {
						continue
					}
					runs[r.ID] = r.State
					if r.Event == "configure" && r.Group == "" {
						continue // a membership with nothing to run
					}
					fmt.Fprintf(a.stdout, "%s of group %s on %s: %s\n", r.Event, r.Group, strings.Join(r.Hosts, ", "), r.State)
				}
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			timedOut = true
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	out := api.EnvOutcome{Environment: e, SinceSerial: o.since, Failures: e.FailuresSince(o.since), TimedOut: timedOut}
	if a.jsonOutput() {
		if err := writeJSON(a.stdout, out); err != nil {
			return err
		}
	} else {
		if verb != "destroy" {
			printOutputs(a.stdout, e.Outputs)
		}
		printFailures(a.stdout, out.Failures)
	}
	online := 0
	for _, m := range e.Machines {
		if m.Phase == api.PhaseOnline {
			online++
		}
	}
	if timedOut {
		var late []string
		for _, m := range e.Machines {
			if m.Phase != api.PhaseOnline && m.Phase != api.PhaseFailed {
				late = append(late, m.Name+" "+m.Phase+phaseHint(m.Phase))
			}
		}
		pending := ""
		if e.Progress != nil {
			pending = strings.Join(e.Progress.Pending, "; ")
		}
		if len(late) > 0 {
			return fmt.Errorf("%d of %d machines online after %s; not online: %s. See 'gantry env show %s'", online, len(e.Machines), timeout, strings.Join(late, "; "), env)
		}
		return fmt.Errorf("the lifecycle work of this %s was still going after %s: %s. See 'gantry env show %s'", verb, timeout, pending, env)
	}
	if n := len(out.Failures); n > 0 {
		what := "lifecycle run"
		if n > 1 {
			what += "s"
		}
		return fmt.Errorf("environment %q: %d %s failed (above): %s", env, n, what, failureSummary(out.Failures))
	}
	if !a.jsonOutput() {
		switch verb {
		case "destroy":
		case "up":
			fmt.Fprintf(a.stdout, "Environment %q is up: %d machines online.\n", env, online)
		default:
			fmt.Fprintf(a.stdout, "Environment %q: %d machines online; setup, deployment and configure done.\n", env, online)
		}
	}
	return nil
}

// settledEnv reports whether the server says the lifecycle work has
// settled (a server without Progress: every machine online or failed).
func settledEnv(e api.Environment) bool {
	if e.Progress != nil {
		return e.Progress.Settled
	}
	for _, m := range e.Machines {
		if m.Phase != api.PhaseOnline && m.Phase != api.PhaseFailed {
			return false
		}
	}
	return true
}

// printFailures prints each failure with its cause and log tail.
func printFailures(w io.Writer, fs []api.EnvFailure) {
	for _, f := range fs {
		where := f.Machine
		if f.Group != "" {
			where += " (group " + f.Group + ")"
		}
		fmt.Fprintf(w, "FAILED %s on %s: %s\n", f.Event, where, f.Error)
		if f.RunID != "" {
			show := "gantry jobs show " + f.RunID
			if f.Event == "deploy" {
				show = "gantry deployments show " + f.RunID
			}
			fmt.Fprintf(w, "  details: %s\n", show)
		}
		if f.LogTail != "" {
			fmt.Fprintln(w, "  log (last lines):")
			for _, l := range strings.Split(f.LogTail, "\n") {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}

// failureSummary names the failures in one line: "configure on dev-lb-0
// (lb)".
func failureSummary(fs []api.EnvFailure) string {
	var parts []string
	for _, f := range fs {
		p := f.Event + " on " + f.Machine
		if f.Group != "" {
			p += " (" + f.Group + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// phaseHint says where to look when a machine stays in a phase.
func phaseHint(phase string) string {
	switch phase {
	case api.PhaseJoining:
		return " (its agent has not enrolled: check that it can reach the server; docker logs NAME for containers)"
	case api.PhaseSetup:
		return " (setup still running: gantry jobs show su-<host id>)"
	case api.PhaseDeploying:
		return " (see gantry deployments ls)"
	case api.PhaseOffline:
		return " (its agent is silent)"
	}
	return ""
}

func machineTable(w io.Writer, ms []api.EnvMachine) error {
	// The LB column (a machine's state in its group's load balancer) only
	// when a group has a load balancer.
	withLB := false
	for _, m := range ms {
		withLB = withLB || m.LB != ""
	}
	if withLB {
		t := newTable(w, "MACHINE", "NAME", "IP", "PHASE", "LB", "REVISION", "ERROR")
		for _, m := range ms {
			lb := orDash(m.LB)
			if m.Fleet != "" {
				lb += " (blue/green " + m.Fleet + ")" // of m.FleetDeployment
			}
			t.row(m.Address, m.Name, orDash(m.IP), m.Phase, lb, orDash(m.Revision), orDash(m.Error))
		}
		return t.flush()
	}
	t := newTable(w, "MACHINE", "NAME", "IP", "PHASE", "REVISION", "ERROR")
	for _, m := range ms {
		t.row(m.Address, m.Name, orDash(m.IP), m.Phase, orDash(m.Revision), orDash(m.Error))
	}
	return t.flush()
}

func printOutputs(w io.Writer, outs map[string]any) {
	if len(outs) == 0 {
		return
	}
	fmt.Fprintln(w, "Outputs:")
	keys := make([]string, 0, len(outs))
	for k := range outs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(outs[k])
		var s string
		if json.Unmarshal(b, &s) == nil {
			fmt.Fprintf(w, "  %s = %s\n", k, s)
		} else {
			fmt.Fprintf(w, "  %s = %s\n", k, b)
		}
	}
}
