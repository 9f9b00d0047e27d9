package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

func (a *app) newScheduleCmd() *cobra.Command {
	return newGroupCmd("schedule", "Run jobs on a cron schedule",
		`  gantry schedule create --cron '0 3 * * *' --selector 'role=db' -- /usr/local/bin/backup
  gantry schedule ls
  gantry schedule update SCHEDULE_ID --cron '30 2 * * *'
  gantry schedule rm SCHEDULE_ID`,
		a.newScheduleCreateCmd(), a.newScheduleListCmd(), a.newScheduleUpdateCmd(), a.newScheduleRemoveCmd())
}

// scheduleCreateOptions are the inputs of 'gantry schedule create'.
type scheduleCreateOptions struct {
	jobOptions
	Cron string
}

func (a *app) newScheduleCreateCmd() *cobra.Command {
	var o scheduleCreateOptions
	cmd := &cobra.Command{
		Use:   "create --cron EXPR --selector SELECTOR [flags] -- SCRIPT...",
		Short: "Create a schedule that runs a script on matching hosts",
		Long: `Create a schedule: at every time matched by the cron expression the server
starts a job, as 'gantry run' would, on the hosts matching the selector at
that moment. See its runs with 'gantry jobs ls' (SCHEDULE column).

EXPR has five fields (minute hour day-of-month month day-of-week) or is a
descriptor such as @hourly, @daily or '@every 30m'. Runs must be at least
the server's --min-schedule-interval apart (default 10s).`,
		Example: `  # Every night at 03:00 on the database hosts, killed after an hour
  gantry schedule create --cron '0 3 * * *' --selector 'role=db' --timeout 1h -- /usr/local/bin/backup

  # Every 15 minutes on all hosts, from a file
  gantry schedule create --cron '*/15 * * * *' --selector '' --script ./check-disk.sh`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.bind(cmd, args); err != nil {
				return err
			}
			return a.runScheduleCreate(cmd.Context(), o)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.Cron, "cron", "", "when to run: a cron `EXPR` such as '*/5 * * * *' or '@daily' (required)")
	return cmd
}

func (a *app) runScheduleCreate(ctx context.Context, o scheduleCreateOptions) error {
	if o.Cron == "" {
		return usageErrorf("--cron is required, e.g. --cron '0 3 * * *'")
	}
	spec, err := o.spec()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	s, err := c.CreateSchedule(ctx, api.Schedule{
		Cron: o.Cron, Selector: spec.Selector, Script: spec.Script,
		Concurrency: spec.Concurrency, TimeoutSeconds: spec.TimeoutSeconds, User: spec.User,
	})
	if err != nil {
		return err
	}
	now := a.now()
	return a.emit(s, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Schedule %s created: %q on %s; next run %s.\n",
			s.ID, s.Cron, formatSelector(s.Selector), nextRun(s, now))
		return err
	})
}

func nextRun(s api.Schedule, now time.Time) string {
	if s.NextRunAt == nil {
		return "-"
	}
	return absTime(*s.NextRunAt, now)
}

func (a *app) newScheduleListCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List schedules with their next and last runs",
		Example: "  gantry schedule ls\n  gantry schedule ls -o json\n  sched=$(gantry schedule ls -q | head -n1)   # the newest schedule's id",
		Args:    exactArgs(),
		RunE:    func(cmd *cobra.Command, _ []string) error { return a.runScheduleList(cmd.Context(), quiet) },
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the schedule ids, one per line, newest first")
	return cmd
}

func (a *app) runScheduleList(ctx context.Context, quiet bool) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	schedules, err := c.ListSchedules(ctx)
	if err != nil {
		return err
	}
	if quiet {
		// The list is oldest first; -q is newest first, like the other ls -q.
		ids := make([]string, 0, len(schedules))
		for i := len(schedules) - 1; i >= 0; i-- {
			ids = append(ids, schedules[i].ID)
		}
		return a.printIDs(ids)
	}
	now := a.now()
	return emitList(a, schedules, "No schedules.", func(w io.Writer) error {
		t := newTable(w, "ID", "CRON", "SELECTOR", "NEXT RUN", "LAST RUN", "LAST JOB")
		for _, s := range schedules {
			next := "-"
			if s.NextRunAt != nil {
				next = relTime(*s.NextRunAt, now)
			}
			if s.Disabled {
				next = "disabled"
			}
			t.row(s.ID, s.Cron, formatSelector(s.Selector), next, relTimePtr(s.LastRunAt, now), orDash(s.LastJobID))
		}
		return t.flush()
	})
}

// scheduleRemoveOptions are the inputs of 'gantry schedule rm'.
type scheduleRemoveOptions struct {
	ID string
}

func (a *app) newScheduleRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm SCHEDULE_ID",
		Aliases: []string{"remove", "delete"},
		Short:   "Delete a schedule (jobs it already started are kept)",
		Example: "  gantry schedule rm SCHEDULE_ID",
		Args:    exactArgs("SCHEDULE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runScheduleRemove(cmd.Context(), scheduleRemoveOptions{ID: args[0]})
		},
	}
}

func (a *app) runScheduleRemove(ctx context.Context, o scheduleRemoveOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.DeleteSchedule(ctx, o.ID); err != nil {
		return err
	}
	out := map[string]string{"id": o.ID, "status": "deleted"}
	return a.emit(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Schedule %s deleted.\n", o.ID)
		return err
	})
}
