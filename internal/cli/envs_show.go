package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/diag"
)

func (a *app) newEnvCmd() *cobra.Command {
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List environments",
		Example: "  gantry env ls\n  gantry env ls -o json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			envs, err := c.ListEnvs(cmd.Context())
			if err != nil {
				return err
			}
			now := a.now()
			return emitList(a, envs, "No environments. Create one with: gantry up DIR --env NAME", func(w io.Writer) error {
				t := newTable(w, "NAME", "MACHINES", "ONLINE", "RESOURCES", "SERIAL", "LOCK", "UPDATED")
				for _, e := range envs {
					online := 0
					for _, m := range e.Machines {
						if m.Phase == api.PhaseOnline {
							online++
						}
					}
					t.row(e.Name, fmt.Sprint(len(e.Machines)), fmt.Sprint(online), fmt.Sprint(len(e.Resources)), fmt.Sprint(e.Serial), orDash(e.Lock), relTime(e.UpdatedAt, now))
				}
				return t.flush()
			})
		},
	}
	var showEnvFlag, outputsEnvFlag string
	show := &cobra.Command{
		Use:     "show [NAME] [--env NAME]",
		Short:   "Show an environment: machines and their phase, resources, outputs, lifecycle runs",
		Example: "  gantry env show --env dev\n  gantry env show dev -o json",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := a.envArg(showEnvFlag, args)
			if err != nil {
				return err
			}
			e, err := a.getEnv(cmd.Context(), name)
			if err != nil {
				return err
			}
			return a.emit(e, func(w io.Writer) error { return showEnv(w, e, a) })
		},
	}
	outputs := &cobra.Command{
		Use:   "outputs [ENV] [NAME] [--env ENV]",
		Short: "Print an environment's outputs, or one output's bare value (for scripts)",
		Long: `Print an environment's outputs, or one output's bare value (for scripts).

The environment is --env ENV; or the first argument (the older form: then
NAME is the second); or GANTRY_ENV.`,
		Example: `  gantry env outputs --env dev
  curl "$(gantry env outputs --env dev url)"
  gantry env outputs dev -o json`,
		Args: maxArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var envArgs []string
			switch {
			case outputsEnvFlag == "" && len(args) > 0:
				envArgs, args = args[:1], args[1:]
			case outputsEnvFlag != "" && len(args) == 2:
				envArgs, args = args[:1], args[1:]
			}
			name, err := a.envArg(outputsEnvFlag, envArgs)
			if err != nil {
				return err
			}
			args = append([]string{name}, args...)
			e, err := a.getEnv(cmd.Context(), name)
			if err != nil {
				return err
			}
			outs := e.Outputs
			if outs == nil {
				outs = map[string]any{}
			}
			if len(args) == 2 {
				v, ok := outs[args[1]]
				if !ok {
					return fmt.Errorf("environment %s has no output %q (outputs: %s)", e.Name, args[1], strings.Join(sortedNames(outs), ", "))
				}
				if str, isStr := v.(string); isStr && !a.jsonOutput() {
					_, err := fmt.Fprintln(a.stdout, str)
					return err
				}
				return writeJSON(a.stdout, v)
			}
			return a.emit(outs, func(w io.Writer) error {
				if len(outs) == 0 {
					_, err := fmt.Fprintln(w, "No outputs.")
					return err
				}
				printOutputs(w, outs)
				return nil
			})
		},
	}
	show.Flags().StringVar(&showEnvFlag, "env", "", "environment `NAME` (env GANTRY_ENV; or give it as the argument)")
	outputs.Flags().StringVar(&outputsEnvFlag, "env", "", "environment `ENV` (env GANTRY_ENV; or give it as the first argument)")
	return newGroupCmd("env", "List and inspect environments (plan, apply, up, scale and destroy change them)",
		"  gantry env ls\n  gantry env show --env dev\n  gantry env outputs --env dev -o json", ls, show, outputs, a.newEnvRmCmd())
}

// envArg resolves the environment of env show and env outputs: --env, the
// positional argument (kept for compatibility), or GANTRY_ENV. Both given
// and different is a usage error.
func (a *app) envArg(flag string, args []string) (string, error) {
	switch {
	case flag != "" && len(args) > 0 && args[0] != flag:
		return "", usageErrorf("environment given twice: --env %s and argument %q; give one", flag, args[0])
	case flag != "":
		return flag, nil
	case len(args) > 0:
		return args[0], nil
	}
	if env := a.env("GANTRY_ENV"); env != "" {
		return env, nil
	}
	return "", usageErrorf("--env is required: the environment to show (e.g. --env dev; 'gantry env ls' lists them)")
}

// getEnv fetches an environment. For a missing one, the server's error
// names it and lists the environments that exist.
func (a *app) getEnv(ctx context.Context, name string) (api.Environment, error) {
	c, err := a.client()
	if err != nil {
		return api.Environment{}, err
	}
	return c.GetEnv(ctx, name)
}

func showEnv(w io.Writer, e api.Environment, a *app) error {
	now := a.now()
	fmt.Fprintf(w, "Environment %s (state serial %d, updated %s)\n", e.Name, e.Serial, relTime(e.UpdatedAt, now))
	if e.Lock != "" {
		fmt.Fprintf(w, "Locked: %s\n", e.Lock)
	}
	if e.Progress != nil && !e.Progress.Settled {
		fmt.Fprintln(w, "Lifecycle work still going:")
		for _, p := range e.Progress.Pending {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintln(w)
	if len(e.Machines) > 0 {
		if err := machineTable(w, e.Machines); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	var nets []api.EnvResource
	for _, r := range e.Resources {
		if r.Kind != "machine" {
			nets = append(nets, r)
		}
	}
	if len(nets) > 0 {
		t := newTable(w, "RESOURCE", "PROVIDER", "ID")
		for _, r := range nets {
			t.row(r.Address, r.Provider, shortText(r.ProviderID, 24))
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	printOutputs(w, e.Outputs)
	if len(e.Events) > 0 {
		fmt.Fprintln(w, "\nLifecycle runs (newest last):")
		t := newTable(w, "EVENT", "STATE", "HOSTS", "STARTED", "JOB")
		runs := e.Events
		if len(runs) > 15 {
			runs = runs[len(runs)-15:]
		}
		for _, r := range runs {
			t.row(r.Event, r.State, orDash(strings.Join(r.Hosts, ",")), relTime(r.CreatedAt, now), r.ID)
		}
		return t.flush()
	}
	return nil
}

func shortText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// renderDiagnostics formats a definition's problems like a compiler, with
// the source line and a caret.
func renderDiagnostics(ds []api.Diagnostic) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(diag.Diagnostic{File: d.File, Line: d.Line, Column: d.Column, Field: d.Field, Message: d.Message, Snippet: d.Snippet}.Error())
	}
	return b.String()
}

func sortedNames(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
