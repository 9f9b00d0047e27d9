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

func (a *app) newJobsCmd() *cobra.Command {
	return newGroupCmd("jobs", "List past and running jobs and show their results",
		`  gantry jobs ls
  gantry jobs show JOB_ID --host web1`,
		a.newJobsListCmd(), a.newJobsShowCmd())
}

// jobsListOptions are the inputs of 'gantry jobs ls'.
type jobsListOptions struct {
	Limit int
	Quiet bool // ids only
}

func (a *app) newJobsListCmd() *cobra.Command {
	o := jobsListOptions{Limit: 20}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the most recent jobs, newest first",
		Example: `  gantry jobs ls
  gantry jobs ls --limit 100 -o json | jq '.[] | select(.counts.failed > 0) | .id'
  gantry jobs show "$(gantry jobs ls -q | head -n1)"     # the newest job`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runJobsList(cmd.Context(), o) },
	}
	cmd.Flags().IntVar(&o.Limit, "limit", o.Limit, "show at most `N` jobs, up to 1000 (0 = the server's default, 50)")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "print only the job ids, one per line, newest first")
	return cmd
}

func (a *app) runJobsList(ctx context.Context, o jobsListOptions) error {
	if o.Limit < 0 {
		return usageErrorf("invalid --limit %d: must be 0 or more", o.Limit)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	jobs, err := c.ListJobs(ctx, o.Limit)
	if err != nil {
		return err
	}
	if o.Quiet {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		return a.printIDs(ids)
	}
	now := a.now()
	return emitList(a, jobs, "No jobs yet.", func(w io.Writer) error {
		t := newTable(w, "ID", "SELECTOR", "STATE", "HOSTS", "CREATED", "SCHEDULE")
		for _, j := range jobs {
			t.row(j.ID, formatSelector(j.Selector), j.State, jobHosts(j), relTime(j.CreatedAt, now), orDash(j.ScheduleID))
		}
		return t.flush()
	})
}

// printIDs writes ids one per line: the -q/--quiet output of the ls
// commands (like `docker ps -q`), for `$(gantry jobs ls -q | head -n1)`.
func (a *app) printIDs(ids []string) error {
	if a.jsonOutput() {
		return usageErrorf("-q/--quiet and -o json exclude each other: -q prints the ids only")
	}
	for _, id := range ids {
		if _, err := fmt.Fprintln(a.stdout, id); err != nil {
			return err
		}
	}
	return nil
}

// jobHosts renders a job's host count and states: "3 (2 succeeded, 1 failed)".
func jobHosts(j api.Job) string {
	counts := j.Counts
	if counts == nil {
		counts = countStates(j.Executions)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, summarizeCounts(counts))
}

// jobsShowOptions are the inputs of 'gantry jobs show'.
type jobsShowOptions struct {
	ID   string
	Host string // only this host (name or id)
}

func (a *app) newJobsShowCmd() *cobra.Command {
	var o jobsShowOptions
	cmd := &cobra.Command{
		Use:     "show JOB_ID",
		Aliases: []string{"get"},
		Short:   "Show a job: its spec, and each host's state, exit code and output",
		Example: `  gantry jobs show JOB_ID
  gantry jobs show JOB_ID --host web1
  gantry jobs show JOB_ID -o json | jq -r '.executions[] | select(.state != "succeeded") | .host_name'`,
		Args: exactArgs("JOB_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			return a.runJobsShow(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Host, "host", "", "show only this `HOST`'s execution (name or id)")
	return cmd
}

func (a *app) runJobsShow(ctx context.Context, o jobsShowOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	job, err := c.GetJob(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.Host != "" {
		var keep []api.Execution
		var names []string
		for _, e := range job.Executions {
			names = append(names, hostLabel(e))
			if e.HostName == o.Host || e.HostID == o.Host {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("job %s did not run on host %q (its hosts: %s)", job.ID, o.Host, orDash(strings.Join(names, ", ")))
		}
		job.Executions = keep
	}
	now := a.now()
	return a.emit(job, func(w io.Writer) error { return printJob(w, job, now) })
}

// printJob prints a job's spec, its execution table and each host's output.
func printJob(w io.Writer, job api.Job, now time.Time) error {
	t := newTable(w)
	state := job.State
	if s := summarizeCounts(countStates(job.Executions)); s != "" {
		state += " (" + s + ")"
	}
	concurrency := "all hosts at once"
	if job.Concurrency > 0 {
		concurrency = strconv.Itoa(job.Concurrency) + " hosts at a time"
	}
	t.row("ID:", job.ID)
	t.row("State:", state)
	t.row("Selector:", formatSelector(job.Selector))
	t.row("Created:", absTime(job.CreatedAt, now))
	if job.FinishedAt != nil {
		t.row("Finished:", absTime(*job.FinishedAt, now))
	}
	t.row("Concurrency:", concurrency)
	t.row("Timeout:", (time.Duration(job.TimeoutSeconds) * time.Second).String())
	t.row("User:", orDash(job.User))
	t.row("Schedule:", orDash(job.ScheduleID))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "Script:\n%s\n", indent(job.Script, "  "))
	fmt.Fprintln(w)
	if err := executionTable(w, job.Executions, now); err != nil {
		return err
	}
	p := newLinePrinter(w, job.Executions)
	for _, e := range job.Executions {
		fmt.Fprintf(w, "\n== %s (%s): %s, exit %s, %s\n", hostLabel(e), e.HostID, e.State, exitCode(e), execDuration(e, now))
		if e.Error != "" {
			fmt.Fprintf(w, "error: %s\n", e.Error)
		}
		if e.Stdout == "" && e.Stderr == "" {
			fmt.Fprintln(w, "(no output)")
		}
		p.write(hostLabel(e), "stdout", e.Stdout)
		p.flush()
		p.write(hostLabel(e), "stderr", e.Stderr)
		p.flush()
		for _, tr := range []struct {
			stream string
			cut    bool
		}{{"stdout", e.StdoutTruncated}, {"stderr", e.StderrTruncated}} {
			if tr.cut {
				fmt.Fprintf(w, "[%s truncated: the server keeps only part of a host's output]\n", tr.stream)
			}
		}
	}
	return nil
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
