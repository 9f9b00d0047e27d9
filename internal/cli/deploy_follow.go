package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-dev/gantry/api"
)

// followDeployment waits for a deployment to end, showing its progress on
// view (nil shows nothing), and returns the final deployment with its
// hosts. It follows the event stream; if the stream ends early (a server
// restart) it polls the deployment until it is final.
func (a *app) followDeployment(ctx context.Context, c *api.Client, dep api.Deployment, view *deployView) (api.Deployment, error) {
	view.setDeployment(dep)
	if api.DeployDone(dep.State) {
		final, err := c.GetDeployment(ctx, dep.ID)
		if err == nil {
			view.setDeployment(final)
		}
		return final, err
	}
	var done *api.Deployment
	err := c.StreamDeployment(ctx, dep.ID, func(ev api.DeploymentEvent) error {
		switch ev.Type {
		case "host":
			if ev.Host != nil {
				view.setHost(*ev.Host)
			}
		case "deployment":
			if ev.Deployment != nil {
				view.setDeployment(*ev.Deployment)
			}
		case "traffic":
			if ev.Traffic != nil {
				view.traffic(*ev.Traffic)
			}
		case "analysis":
			if ev.Analysis != nil {
				view.note(analysisLine(*ev.Analysis))
			}
		case "done":
			if ev.Deployment != nil {
				d := *ev.Deployment
				done = &d
				view.setDeployment(d)
			}
		}
		return nil
	})
	switch {
	case err == nil && done != nil && len(done.Hosts) > 0:
		return *done, nil
	case err == nil:
		final, err := c.GetDeployment(ctx, dep.ID)
		if err == nil {
			view.setDeployment(final)
		}
		return final, err
	case ctx.Err() != nil:
		return api.Deployment{}, ctx.Err()
	case !retryable(err):
		return api.Deployment{}, err
	}
	view.interrupt()
	fmt.Fprintf(a.stderr, "gantry: lost the deployment's event stream (%v); polling the deployment every %s\n", err, a.follow.PollInterval)
	return a.pollDeployment(ctx, c, dep.ID, view)
}

// pollDeployment fetches the deployment until it is final, showing each
// change on view. It gives up when the server has not answered for the
// grace period.
func (a *app) pollDeployment(ctx context.Context, c *api.Client, id string, view *deployView) (api.Deployment, error) {
	lastOK := a.now()
	for {
		dep, err := c.GetDeployment(ctx, id)
		switch {
		case err == nil:
			view.setDeployment(dep)
			if api.DeployDone(dep.State) {
				return dep, nil
			}
			lastOK = a.now()
		case ctx.Err() != nil:
			return api.Deployment{}, ctx.Err()
		case !retryable(err):
			return api.Deployment{}, err
		case a.now().Sub(lastOK) > a.follow.Grace:
			return api.Deployment{}, fmt.Errorf("lost contact with the server: %w", err)
		}
		if err := sleepCtx(ctx, a.follow.PollInterval); err != nil {
			return api.Deployment{}, err
		}
	}
}

// isTerminal reports whether w is a terminal that understands cursor
// movement (TERM is not "dumb").
func (a *app) isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || a.env("TERM") == "dumb" {
		return false
	}
	return isTTY(f)
}

// isTTY reports whether f is a terminal (not merely a character device
// such as /dev/null).
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// deployView shows a deployment's progress. On a terminal (tty) it keeps
// one line per host under a progress bar, redrawn in place; otherwise it
// prints one plain line per change. A nil view shows nothing.
type deployView struct {
	w     io.Writer
	tty   bool
	dep   api.Deployment // without hosts
	order []string       // host ids, in first-seen order
	hosts map[string]api.DeploymentHost
	drawn int // lines of the last tty drawing, to move back over
	width int // longest host name seen, for plain lines
}

func newDeployView(w io.Writer, tty bool) *deployView {
	return &deployView{w: w, tty: tty, hosts: map[string]api.DeploymentHost{}}
}

// setDeployment records the deployment's state and batch, and its hosts'
// when it carries them.
func (v *deployView) setDeployment(d api.Deployment) {
	if v == nil {
		return
	}
	prev := v.dep
	hosts := d.Hosts
	d.Hosts = nil
	v.dep = d
	for _, h := range hosts {
		v.width = max(v.width, len(deployHostLabel(h)))
	}
	if !v.tty {
		switch {
		case prev.ID == "":
			fmt.Fprintf(v.w, "deployment %s: revision %s of %s to group %s, %s, %s\n",
				d.ID, orDash(d.Revision), d.App, d.Group, plural(len(hosts), "host"), hostStateText(d.State))
		case prev.State != d.State || prev.Batch != d.Batch:
			fmt.Fprintf(v.w, "deployment %s: batch %d, %s\n", d.ID, d.Batch, hostStateText(d.State))
		}
	}
	if line := fleetNote(d); line != "" && line != fleetNote(prev) {
		if v.tty {
			v.note(line)
		} else {
			fmt.Fprintln(v.w, line)
		}
	}
	changed := false
	for _, h := range hosts {
		changed = v.updateHost(h) || changed
	}
	if v.tty && (changed || prev.ID == "" || prev.State != d.State || prev.Batch != d.Batch) {
		v.redraw()
	}
}

// fleetNote is the phase line of a blue/green deployment
// ("blue/green: provisioning: waiting for web-2 setting up"), "" for
// others.
func fleetNote(d api.Deployment) string {
	t := d.Traffic
	if t == nil || d.Strategy != api.StrategyBlueGreen || t.Phase == "" {
		return ""
	}
	line := "blue/green: " + t.Phase
	if t.Status != "" {
		line += ": " + t.Status
	}
	return line
}

// setHost records a host's batch, event and state.
func (v *deployView) setHost(h api.DeploymentHost) {
	if v == nil {
		return
	}
	if v.updateHost(h) && v.tty {
		v.redraw()
	}
}

// updateHost stores h and reports whether what the view shows of it
// changed; in plain mode it prints the change.
func (v *deployView) updateHost(h api.DeploymentHost) bool {
	key := firstNonEmpty(h.HostID, h.HostName)
	old, seen := v.hosts[key]
	if !seen {
		v.order = append(v.order, key)
	}
	if old.HostName != "" && h.HostName == "" {
		h.HostName = old.HostName
	}
	v.hosts[key] = h
	if seen && old.Batch == h.Batch && old.Event == h.Event && old.State == h.State && old.Error == h.Error {
		return false
	}
	v.width = max(v.width, len(deployHostLabel(h)))
	if !v.tty && (seen || h.Batch > 0 || h.Event != "" || h.State != api.HostDeployPending) {
		line := fmt.Sprintf("%-*s  batch %d  %-*s  %s", v.width, deployHostLabel(h), h.Batch, 18, orDash(h.Event), hostStateText(h.State))
		if h.Error != "" && h.State == api.HostDeployFailed {
			line += ": " + h.Error
		}
		fmt.Fprintln(v.w, line)
	}
	return true
}

// traffic shows a change gantry made to the load balancer, as a line of
// its own: above the host lines on a terminal.
func (v *deployView) traffic(c api.TrafficChange) {
	if v == nil {
		return
	}
	line := trafficLine(c)
	if !v.tty {
		fmt.Fprintln(v.w, line)
		return
	}
	var b bytes.Buffer
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.drawn)
	}
	b.WriteString(line + "\n")
	_, _ = v.w.Write(b.Bytes())
	v.drawn = 0
	v.redraw()
}

// trafficLine renders a load balancer change: "web-1: drained 3 sessions
// in 2.9s", "web-1: UP after rise checks, ready (weight 100)", "web-1:
// drain failed: …".
func trafficLine(c api.TrafficChange) string {
	switch {
	case c.Error != "":
		return fmt.Sprintf("%s: %s failed: %s", c.Server, c.Action, c.Error)
	case c.Detail != "":
		line := c.Server + ": " + c.Detail
		if (c.Action == api.LBReady || c.Action == "weight") && c.Weight > 0 && !strings.Contains(c.Detail, "weight") {
			line += fmt.Sprintf(" (weight %d)", c.Weight)
		}
		return line
	case c.Weight > 0:
		return fmt.Sprintf("%s: %s (weight %d)", c.Server, c.Action, c.Weight)
	}
	return c.Server + ": " + c.Action
}

// interrupt is called before something else is printed on the terminal:
// the next drawing starts below it instead of moving back over it.
func (v *deployView) interrupt() {
	if v != nil {
		v.drawn = 0
	}
}

// redraw draws the host lines and the progress bar over the last drawing.
func (v *deployView) redraw() {
	var b bytes.Buffer
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn)
	}
	lines := v.lines()
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString("\x1b[J") // clear what a longer drawing left below
	v.drawn = len(lines)
	_, _ = v.w.Write(b.Bytes())
}

// lines renders the terminal view: one line per host, then the progress.
func (v *deployView) lines() []string {
	var b bytes.Buffer
	t := newTable(&b, "HOST", "BATCH", "EVENT", "STATE")
	for _, k := range v.order {
		h := v.hosts[k]
		t.row(deployHostLabel(h), batchText(h.Batch), orDash(h.Event), hostStateText(h.State))
	}
	_ = t.flush()
	out := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	return append(out, v.progress())
}

// progress renders "[#####.....] 3/6 hosts  batch 2".
func (v *deployView) progress() string {
	const width = 20
	done := 0
	for _, k := range v.order {
		if hostFinal(v.hosts[k].State) {
			done++
		}
	}
	total := len(v.order)
	filled := 0
	if total > 0 {
		filled = done * width / total
	}
	s := fmt.Sprintf("[%s%s] %d/%d hosts  batch %d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, v.dep.Batch)
	if v.dep.State != "" && v.dep.State != api.DeployRunning {
		s += "  " + v.dep.State
	}
	return s
}

func hostFinal(state string) bool {
	return state == api.HostDeploySucceeded || state == api.HostDeployFailed || state == api.HostDeploySkipped
}

func hostStateText(s string) string { return strings.ReplaceAll(orDash(s), "_", " ") }

func batchText(n int) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

// deployHostLabel names a deployment's host: its name, else its id.
func deployHostLabel(h api.DeploymentHost) string { return firstNonEmpty(h.HostName, h.HostID) }

// failedEvent returns the lifecycle event that failed on a host, if any.
func failedEvent(h api.DeploymentHost) (api.LifecycleEvent, bool) {
	for i := len(h.Events) - 1; i >= 0; i-- {
		if h.Events[i].State == "failed" {
			return h.Events[i], true
		}
	}
	if h.State == api.HostDeployFailed && h.Event != "" {
		return api.LifecycleEvent{Name: h.Event, State: "failed", Error: h.Error}, true
	}
	return api.LifecycleEvent{}, false
}

// summaryLogLines is how many lines of a failed event's log the summary
// shows; 'gantry deployments show ID --host H' shows the whole tail.
const summaryLogLines = 10

// printDeploySummary prints the outcome of a followed deployment: each
// host's state, the failed events with their errors and logs, and the
// overall state with any automatic rollback.
func printDeploySummary(w io.Writer, d api.Deployment, now time.Time) error {
	fmt.Fprintln(w)
	hosts := sortedHosts(d.Hosts)
	t := newTable(w, "HOST", "BATCH", "STATE", "EVENT", "DURATION", "ERROR")
	for _, h := range hosts {
		ev := h.Event
		if fe, ok := failedEvent(h); ok {
			ev = fe.Name
		}
		t.row(deployHostLabel(h), batchText(h.Batch), hostStateText(h.State), orDash(ev), spanDuration(h.StartedAt, h.FinishedAt, !hostFinal(h.State), now), orDash(h.Error))
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, h := range hosts {
		fe, ok := failedEvent(h)
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s failed", deployHostLabel(h), fe.Name)
		if fe.FinishedAt != nil || fe.ExitCode != 0 {
			fmt.Fprintf(w, " (exit %d)", fe.ExitCode)
		}
		if msg := firstNonEmpty(fe.Error, h.Error); msg != "" {
			fmt.Fprintf(w, ": %s", msg)
		}
		fmt.Fprintln(w)
		if tail := lastLines(fe.LogTail, summaryLogLines); tail != "" {
			fmt.Fprintln(w, indent(tail, "    "))
		}
	}
	fmt.Fprintf(w, "\nDeployment %s %s", d.ID, d.State)
	if s := summarizeHosts(d); s != "" {
		fmt.Fprintf(w, ": %s", s)
	}
	fmt.Fprintln(w)
	if d.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", d.Error)
	}
	printStrategy(w, d)
	if d.RolledBackBy != "" {
		fmt.Fprintf(w, "An automatic rollback was started: deployment %s. Follow it with: gantry deployments show %s\n", d.RolledBackBy, d.RolledBackBy)
	} else if d.State != api.DeploySucceeded {
		fmt.Fprintf(w, "Details: gantry deployments show %s --host HOST\n", d.ID)
	}
	return nil
}

// sortedHosts orders hosts by batch, then name.
func sortedHosts(hosts []api.DeploymentHost) []api.DeploymentHost {
	hosts = slices.Clone(hosts)
	slices.SortStableFunc(hosts, func(x, y api.DeploymentHost) int {
		if x.Batch != y.Batch {
			// Hosts not started yet (batch 0) go last.
			switch {
			case x.Batch == 0:
				return 1
			case y.Batch == 0:
				return -1
			}
			return x.Batch - y.Batch
		}
		return strings.Compare(deployHostLabel(x), deployHostLabel(y))
	})
	return hosts
}

// hostStateOrder lists deployment host states in the order summaries
// show them.
var hostStateOrder = []string{
	api.HostDeploySucceeded, api.HostDeployFailed, api.HostDeploySkipped, api.HostDeployInProgress, api.HostDeployPending,
}

// summarizeHosts renders a deployment's host counts: "5 succeeded, 1 failed".
func summarizeHosts(d api.Deployment) string {
	counts := deployCounts(d)
	var parts []string
	for _, s := range hostStateOrder {
		if n := counts[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, hostStateText(s)))
		}
	}
	rest := map[string]int{}
	for s, n := range counts {
		if !slices.Contains(hostStateOrder, s) {
			rest[s] = n
		}
	}
	if r := summarizeCounts(rest); r != "" {
		parts = append(parts, r)
	}
	return strings.Join(parts, ", ")
}

// deployCounts returns a deployment's host counts per state, from Counts
// or from its hosts.
func deployCounts(d api.Deployment) map[string]int {
	if d.Counts != nil {
		return d.Counts
	}
	counts := map[string]int{}
	for _, h := range d.Hosts {
		counts[h.State]++
	}
	return counts
}

// spanDuration is how long something ran (so far when running), or "-".
func spanDuration(start, end *time.Time, running bool, now time.Time) string {
	switch {
	case start == nil:
		return "-"
	case end != nil:
		return formatDuration(end.Sub(*start))
	case running:
		return formatDuration(now.Sub(*start))
	}
	return "-"
}

// lastLines returns at most n trailing lines of s, without the final
// newline.
func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
