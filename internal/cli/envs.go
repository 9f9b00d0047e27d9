package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	// waitAfter is set by up and scale when they wait for the machines
	// after applying: with -o json, the wait prints the one JSON document
	// (the environment once online), not the apply.
	waitAfter bool
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
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long to wait for every machine to be online")
	if noWait {
		cmd.Flags().BoolVar(&o.NoWait, "no-wait", false, "return once the machines are created, without waiting for them to be online")
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

// envDefinition resolves --env and packs the definition directory.
func (a *app) envDefinition(o *envOptions, dir string) (string, []byte, error) {
	env, err := a.envName(o)
	if err != nil {
		return "", nil, err
	}
	def, err := packDefinition(dir)
	return env, def, err
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
and refuses if the environment's state moved since.`,
		Example: `  gantry plan examples/shop --env dev
  gantry plan . --env prod --var web_count=4 --out prod.plan
  gantry apply prod.plan`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, def, err := a.envDefinition(&o, dirArg(args))
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.PlanEnv(cmd.Context(), env, api.EnvRequest{Definition: def, Vars: o.Vars})
			if err != nil {
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
			return nil
		},
	}
	o.registerEnv(cmd)
	o.registerVars(cmd)
	cmd.Flags().StringVar(&o.Out, "out", "", "save the plan to `FILE` (mode 0600; it holds the definition) for 'gantry apply FILE'")
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
state matching what exists; the next apply goes on from there.`,
		Example: `  gantry apply examples/shop --env dev
  gantry apply . --env prod --var web_count=6 --auto-approve
  gantry apply prod.plan`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := dirArg(args)
			if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
				return a.applyPlanFile(cmd.Context(), path, &o)
			}
			env, def, err := a.envDefinition(&o, path)
			if err != nil {
				return err
			}
			req := api.EnvRequest{Definition: def, Vars: o.Vars}
			_, err = a.planConfirmApply(cmd.Context(), env, req, &o, "apply")
			return err
		},
	}
	o.registerEnv(cmd)
	o.registerVars(cmd)
	o.registerApply(cmd, true)
	return cmd
}

func (a *app) newDestroyCmd() *cobra.Command {
	var o envOptions
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Destroy every machine and network of an environment",
		Long: `Destroy an environment: each machine's shutdown script runs first (its
timeout, default 120 s), then machines and networks are deleted and their
hosts removed from the inventory. The definition last applied is used; an ssh
host loses only the gantry agent.`,
		Example: `  gantry destroy --env dev
  gantry destroy --env ci-42 --auto-approve`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := a.envName(&o)
			if err != nil {
				return err
			}
			_, err = a.planConfirmApply(cmd.Context(), env, api.EnvRequest{Destroy: true}, &o, "destroy")
			return err
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

Exit status 0 when every machine is online, 1 when one failed or the wait
timed out (see 'gantry env show NAME').`,
		Example: `  gantry up examples/shop --env dev
  gantry up . --env staging --var web_count=3 --timeout 5m`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, def, err := a.envDefinition(&o, dirArg(args))
			if err != nil {
				return err
			}
			o.AutoApprove, o.waitAfter = true, true
			if _, err := a.planConfirmApply(cmd.Context(), env, api.EnvRequest{Definition: def, Vars: o.Vars}, &o, "apply"); err != nil {
				return err
			}
			return a.waitOnline(cmd.Context(), env, &o)
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
		Use:   "scale GROUP=N [GROUP=N...]",
		Short: "Change the number of machines of groups and wait for them",
		Long: `Scale groups of an environment, using the definition last applied. New
machines are set up and get the group's current revision; configure runs on
every machine once they are online. Scaling in removes machines that are not
in a deployment, running their shutdown script first.

The counts are kept in the environment's state until an apply from a
definition sets them again.`,
		Example: `  gantry scale --env dev web=4
  gantry scale --env prod web=10 worker=3 --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := a.envName(&o)
			if err != nil {
				return err
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
			if _, err := a.planConfirmApply(cmd.Context(), env, api.EnvRequest{Scale: scale}, &o, "apply"); err != nil {
				return err
			}
			if o.NoWait {
				return nil
			}
			return a.waitOnline(cmd.Context(), env, &o)
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
	if !o.AutoApprove {
		p, err := c.PlanEnv(ctx, env, req)
		if err != nil {
			return api.Environment{}, err
		}
		if !a.jsonOutput() {
			_ = planview.Render(a.stdout, p)
		}
		if len(p.Changes) == 0 {
			return api.Environment{}, nil
		}
		if err := a.confirm(fmt.Sprintf("Do you want to %s environment %q? Only 'yes' is accepted: ", verb, env)); err != nil {
			return api.Environment{}, err
		}
		req = api.EnvRequest{Plan: &p, Who: req.Who, LockTimeoutSeconds: req.LockTimeoutSeconds}
	}
	return a.applyStream(ctx, c, env, req, !o.waitAfter)
}

// applyPlanFile applies a saved plan.
func (a *app) applyPlanFile(ctx context.Context, path string, o *envOptions) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return usageErrorf("plan file %s: %v", path, err)
	}
	var p api.Plan
	if err := json.Unmarshal(b, &p); err != nil || p.Env == "" {
		return usageErrorf("%s is not a saved plan (from 'gantry plan --out FILE'): %v", path, err)
	}
	if o.Env != "" && o.Env != p.Env {
		return usageErrorf("--env %s: the plan in %s is for environment %s", o.Env, path, p.Env)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if !a.jsonOutput() {
		_ = planview.Render(a.stdout, p)
	}
	if !o.AutoApprove {
		if err := a.confirm(fmt.Sprintf("Do you want to apply this plan to environment %q? Only 'yes' is accepted: ", p.Env)); err != nil {
			return err
		}
	}
	_, err = a.applyStream(ctx, c, p.Env, api.EnvRequest{Plan: &p, Who: who(), LockTimeoutSeconds: int(o.LockTimeout.Seconds())}, true)
	return err
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
// applied environment as one JSON document when jsonResult is set, or when
// the apply failed (the command ends there).
func (a *app) applyStream(ctx context.Context, c *api.Client, env string, req api.EnvRequest, jsonResult bool) (api.Environment, error) {
	var counts = map[string]int{}
	noChanges := false
	start := time.Now()
	out, err := c.ApplyEnv(ctx, env, req, func(ev api.ApplyEvent) {
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

// waitOnline polls the environment until every machine is online, one
// failed, or the timeout passes; it shows a live table and then the outputs.
func (a *app) waitOnline(ctx context.Context, env string, o *envOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	tty := a.isTerminal(a.stdout) && !a.jsonOutput()
	deadline := time.Now().Add(o.Timeout)
	last := map[string]string{}
	drawn := 0
	var e api.Environment
	for {
		e, err = c.GetEnv(ctx, env)
		if err != nil {
			return err
		}
		online, failed := 0, 0
		for _, m := range e.Machines {
			switch m.Phase {
			case api.PhaseOnline:
				online++
			case api.PhaseFailed:
				failed++
			}
		}
		if !a.jsonOutput() {
			if tty {
				if drawn > 0 {
					fmt.Fprintf(a.stdout, "\x1b[%dA\x1b[J", drawn)
				}
				var b bytes.Buffer
				_ = machineTable(&b, e.Machines)
				fmt.Fprintf(&b, "%d/%d online\n", online, len(e.Machines))
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
			}
		}
		if failed > 0 || online == len(e.Machines) {
			break
		}
		if time.Now().After(deadline) {
			if a.jsonOutput() {
				_ = writeJSON(a.stdout, e)
			}
			var late []string
			for _, m := range e.Machines {
				if m.Phase != api.PhaseOnline {
					late = append(late, m.Name+" "+m.Phase+phaseHint(m.Phase))
				}
			}
			return fmt.Errorf("%d of %d machines online after %s; not online: %s. See 'gantry env show %s'", online, len(e.Machines), o.Timeout, strings.Join(late, "; "), env)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	if a.jsonOutput() {
		if err := writeJSON(a.stdout, e); err != nil {
			return err
		}
	} else {
		printOutputs(a.stdout, e.Outputs)
	}
	for _, m := range e.Machines {
		if m.Phase == api.PhaseFailed {
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "Machine %s failed: %s\n", m.Address, m.Error)
			}
			return &exitError{exitFailed}
		}
	}
	if !a.jsonOutput() {
		fmt.Fprintf(a.stdout, "Environment %q is up: %d machines online.\n", env, len(e.Machines))
	}
	return nil
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

// errNoEnv hints at the command that makes an environment.
var errNoEnv = errors.New("no such environment: create it with 'gantry up DIR --env NAME'")
