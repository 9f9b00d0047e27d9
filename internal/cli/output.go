package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// outputFormat is the value of --output; Set rejects unknown formats so a
// bad value is a flag (usage) error.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

// String returns the format's name.
func (o *outputFormat) String() string { return string(*o) }

// Set validates and stores a format name.
func (o *outputFormat) Set(s string) error {
	switch f := outputFormat(strings.ToLower(s)); f {
	case outputTable, outputJSON:
		*o = f
		return nil
	}
	return fmt.Errorf("must be one of: table, json")
}

// Type names the flag's value in help.
func (o *outputFormat) Type() string { return "format" }

func (a *app) jsonOutput() bool { return a.global.Output == outputJSON }

// emit prints v as indented JSON with --output json, else calls human.
func (a *app) emit(v any, human func(w io.Writer) error) error {
	if a.jsonOutput() {
		return writeJSON(a.stdout, v)
	}
	return human(a.stdout)
}

// emitList is emit for lists: in table mode an empty list prints a note on
// stderr instead of a header without rows.
func emitList[T any](a *app, items []T, none string, human func(w io.Writer) error) error {
	if items == nil {
		items = []T{}
	}
	if !a.jsonOutput() && len(items) == 0 {
		_, err := fmt.Fprintln(a.stderr, none)
		return err
	}
	return a.emit(items, human)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns. A table without headers is a key/value list.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		// Tabs and newlines inside a cell would break the alignment.
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// formatLabels renders labels sorted by key as "k=v,k2=v2", or "-".
func formatLabels(labels map[string]string, sep string) string {
	if len(labels) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, sep)
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatSelector shows the empty selector as what it means.
func formatSelector(s string) string {
	if s == "" {
		return "(all hosts)"
	}
	return s
}

// relTime renders t relative to now: "3s ago", "in 5m", or "never".
func relTime(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := now.Sub(t); d >= 0 {
		return roughDuration(d) + " ago"
	}
	return "in " + roughDuration(t.Sub(now).Round(time.Second))
}

// relTimePtr is relTime for optional times.
func relTimePtr(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return relTime(*t, now)
}

// absTime renders t as local time with its relative form.
func absTime(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + relTime(t, now) + ")"
}

// roughDuration keeps one unit: 3s, 5m, 2h, 4d.
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// formatDuration renders a run time: milliseconds under a second, tenths
// of a second under a minute, whole seconds above.
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// formatBytes renders a size in binary units: "512 B", "7.8 GiB".
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// execDuration is how long an execution ran (so far), or "-".
func execDuration(e api.Execution, now time.Time) string {
	switch {
	case e.StartedAt == nil:
		return "-"
	case e.FinishedAt != nil:
		return formatDuration(e.FinishedAt.Sub(*e.StartedAt))
	case !api.ExecDone(e.State):
		return formatDuration(now.Sub(*e.StartedAt))
	}
	return "-"
}

func exitCode(e api.Execution) string {
	if e.ExitCode == nil {
		return "-"
	}
	return strconv.Itoa(*e.ExitCode)
}

// stateOrder lists execution states in the order summaries show them.
var stateOrder = []string{
	api.ExecSucceeded, api.ExecFailed, api.ExecTimedOut, api.ExecOffline, api.ExecUnknown,
	api.ExecRunning, api.ExecDispatched, api.ExecPending,
}

// summarizeCounts renders state counts as "2 succeeded, 1 failed".
func summarizeCounts(counts map[string]int) string {
	var parts []string
	seen := map[string]bool{}
	add := func(state string) {
		if n := counts[state]; n > 0 && !seen[state] {
			parts = append(parts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(state, "_", " ")))
		}
		seen[state] = true
	}
	for _, s := range stateOrder {
		add(s)
	}
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		add(s)
	}
	return strings.Join(parts, ", ")
}

// countStates counts a job's executions per state.
func countStates(execs []api.Execution) map[string]int {
	counts := map[string]int{}
	for _, e := range execs {
		counts[e.State]++
	}
	return counts
}

// totalsLine renders "3 hosts: 2 succeeded, 1 failed".
func totalsLine(execs []api.Execution) string {
	return fmt.Sprintf("%s: %s", plural(len(execs), "host"), summarizeCounts(countStates(execs)))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// executionTable prints one row per execution, sorted by host name, with
// an ERROR column when any execution carries an error.
func executionTable(w io.Writer, execs []api.Execution, now time.Time) error {
	execs = slices.Clone(execs)
	slices.SortStableFunc(execs, func(x, y api.Execution) int { return strings.Compare(hostLabel(x), hostLabel(y)) })
	withErr := slices.ContainsFunc(execs, func(e api.Execution) bool { return e.Error != "" })
	headers := []string{"HOST", "STATE", "EXIT", "DURATION"}
	if withErr {
		headers = append(headers, "ERROR")
	}
	t := newTable(w, headers...)
	for _, e := range execs {
		cols := []string{hostLabel(e), e.State, exitCode(e), execDuration(e, now)}
		if withErr {
			cols = append(cols, orDash(e.Error))
		}
		t.row(cols...)
	}
	return t.flush()
}

// hostLabel names an execution's host: its name, else its id.
func hostLabel(e api.Execution) string { return firstNonEmpty(e.HostName, e.HostID) }
