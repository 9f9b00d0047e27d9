package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// newEnvRmCmd is `gantry env rm`: it removes the record (state and
// lifecycle history) of an environment that has been destroyed.
func (a *app) newEnvRmCmd() *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:     "rm NAME | --env NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a destroyed environment's record (its state and history)",
		Long: `Remove the record of an environment that has been destroyed: its empty
state, the definition it was last applied from and its lifecycle history.
'gantry env ls' no longer lists it and 'gantry env show' no longer finds it.

It is refused while the environment has machines or other resources:
destroy it first with 'gantry destroy --env NAME'.

Exit status: 0 removed, 1 refused or not found, 2 usage.`,
		Example: `  gantry destroy --env dev --auto-approve && gantry env rm dev
  gantry env rm --env dev -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usageErrorf("want one environment NAME, got %d arguments", len(args))
			case len(args) == 1 && env != "" && args[0] != env:
				return usageErrorf("environment %q and --env %q differ: give one", args[0], env)
			case len(args) == 1:
				env = args[0]
			case env == "":
				return usageErrorf("missing environment NAME (see 'gantry env ls')")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rm, err := c.DeleteEnv(cmd.Context(), env)
			if err != nil {
				return err
			}
			return a.emit(rm, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Environment %s removed (serial %d, %s of history).\n", rm.Name, rm.Serial, plural(rm.Runs, "lifecycle run"))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "the environment `NAME` (instead of the argument)")
	return cmd
}
