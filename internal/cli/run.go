package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

// runOptions are the inputs of 'gantry run'.
type runOptions struct {
	jobOptions
	NoWait bool
	// IdempotencyKey is sent with the create (default: random per run).
	IdempotencyKey string
}

func (a *app) newRunCmd() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run --selector SELECTOR [flags] -- SCRIPT...",
		Short: "Run a shell script on every host matching a selector and stream its output",
		Long: `Run a shell script on every host matching a label selector, print each
host's output live as "HOST | line" (stderr as "HOST ! line"), then a summary.

The script is the words after -- joined with spaces, or the content of
--script FILE (at most 256 KiB). Quote it as one word when it has pipes,
redirections or quotes of its own, so your local shell leaves them alone.

Exit status: 0 if the script succeeded on every host, 1 if any host failed,
timed out or was offline (or no host matched), 2 on a usage error.
Interrupting the command (Ctrl-C) does not stop the job: 'gantry jobs show'
reports it later.`,
		Example: `  # Every host labelled role=web, all at once
  gantry run --selector 'role=web' -- uptime

  # All hosts, two at a time, killed after 5 minutes, as user deploy
  gantry run --selector '' --concurrency 2 --timeout 5m --user deploy -- 'cd /srv/app && git pull'

  # A script file; the final job as JSON instead of live output
  gantry run --selector 'env=prod,role!=db' --script ./patch.sh -o json

  # Start and return at once; check later with 'gantry jobs show ID'
  gantry run --selector 'role=db' --no-wait -- 'apt-get update'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.bind(cmd, args); err != nil {
				return err
			}
			return a.runRun(cmd.Context(), o)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&o.NoWait, "no-wait", false, "print the job id and exit without waiting for the job")
	addIdempotencyFlag(cmd, &o.IdempotencyKey)
	return cmd
}

func (a *app) runRun(ctx context.Context, o runOptions) error {
	spec, err := o.spec()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	job, err := c.CreateJob(idempotentCtx(ctx, o.IdempotencyKey), spec)
	if err != nil {
		return err
	}
	if len(job.Executions) == 0 {
		return noHostsError(spec.Selector)
	}
	if o.NoWait {
		return a.emit(job, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, job.ID)
			return err
		})
	}
	final, err := a.followJob(ctx, c, job, !a.jsonOutput())
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; job %s keeps running on the hosts: see 'gantry jobs show %s'", job.ID, job.ID)
		}
		return fmt.Errorf("following job %s: %w (see 'gantry jobs show %s')", job.ID, err, job.ID)
	}
	err = a.emit(final, func(w io.Writer) error {
		if err := executionTable(w, final.Executions, a.now()); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "%s (job %s: 'gantry jobs show %s')\n", totalsLine(final.Executions), final.ID, final.ID)
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range final.Executions {
		if e.State != api.ExecSucceeded {
			return &exitError{exitFailed}
		}
	}
	return nil
}

func noHostsError(selector string) error {
	if selector == "" {
		return errors.New("no hosts are enrolled: create a join token with 'gantry token create' and start an agent")
	}
	return fmt.Errorf("no host matches the selector %q. List the hosts with their labels: gantry hosts ls", selector)
}
