package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

func (a *app) newHostsCmd() *cobra.Command {
	return newGroupCmd("hosts", "List, inspect, label and remove enrolled hosts",
		`  gantry hosts ls --selector 'env=prod'
  gantry hosts show web1
  gantry hosts label web1 role=web tier-
  gantry hosts rm web1`,
		a.newHostsListCmd(), a.newHostsShowCmd(), a.newHostsLabelCmd(), a.newHostsRemoveCmd())
}

// hostsListOptions are the inputs of 'gantry hosts ls'.
type hostsListOptions struct {
	Selector string
	All      bool // include revoked hosts
}

func (a *app) newHostsListCmd() *cobra.Command {
	var o hostsListOptions
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List hosts, optionally only those matching a label selector",
		Long: `List enrolled hosts with their status, labels and facts.

A selector (Kubernetes syntax) is a comma-separated list of label
requirements, all of which must hold: 'key=value' (also 'key==value'),
'key!=value', 'key in (a,b)', 'key notin (a,b)', 'key' (label present),
'!key' (absent). '' selects every host.`,
		Example: `  gantry hosts ls
  gantry hosts ls --selector 'env=prod,role=web'
  gantry hosts ls --selector 'zone in (a,b),!draining'
  gantry hosts ls --all              # include revoked hosts
  gantry hosts ls -o json | jq -r '.[].name'`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runHostsList(cmd.Context(), o) },
	}
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "only hosts matching this label `SELECTOR`")
	cmd.Flags().BoolVar(&o.All, "all", false, "include revoked hosts")
	return cmd
}

func (a *app) runHostsList(ctx context.Context, o hostsListOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	hosts, err := c.ListHosts(ctx, o.Selector, o.All)
	if err != nil {
		return err
	}
	now := a.now()
	return emitList(a, hosts, "No hosts found.", func(w io.Writer) error {
		t := newTable(w, "NAME", "ID", "STATUS", "LABELS", "OS/ARCH", "ADDRESSES", "LAST SEEN", "CLOCK SKEW")
		skewed := 0
		for _, h := range hosts {
			t.row(h.Name, h.ID, h.Status, formatLabels(h.Labels, ","), osArch(h.Facts),
				orDash(strings.Join(h.Facts.Addresses, ",")), relTime(h.LastSeen, now), clockSkew(h))
			if h.ClockSkewed() {
				skewed++
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if skewed > 0 {
			_, err := fmt.Fprintf(w, "\n(!) %d host(s) with a clock off by more than %s: fix their clocks (NTP); see `gantry hosts show`.\n", skewed, api.MaxClockSkew)
			return err
		}
		return nil
	})
}

// clockSkewMark flags a clock off by more than api.MaxClockSkew.
const clockSkewMark = "(!)"

// clockSkew renders a host's clock skew for a table: "-" until measured,
// else signed ("+10m0s", "-3ms"), marked when beyond api.MaxClockSkew.
func clockSkew(h api.Host) string {
	d, ok := h.ClockSkew()
	if !ok {
		return "-"
	}
	s := api.RoundClockSkew(d).String()
	if d >= 0 {
		s = "+" + s
	}
	if h.ClockSkewed() {
		s += " " + clockSkewMark
	}
	return s
}

// clockSkewDetail says how a host's clock stands against the server's.
func clockSkewDetail(h api.Host) string {
	d, ok := h.ClockSkew()
	switch {
	case !ok:
		return "not measured yet"
	case h.ClockSkewed():
		return fmt.Sprintf("host clock %s %s over %s: fix this host's clock (NTP); commands are checked against the server's time",
			api.DescribeClockSkew(d), clockSkewMark, api.MaxClockSkew)
	default:
		return "host clock " + api.DescribeClockSkew(d)
	}
}

func osArch(f api.Facts) string {
	if f.OS == "" && f.Arch == "" {
		return "-"
	}
	return f.OS + "/" + f.Arch
}

// hostsShowOptions are the inputs of 'gantry hosts show'.
type hostsShowOptions struct {
	Host string // id or name
}

func (a *app) newHostsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show HOST",
		Aliases: []string{"get"},
		Short:   "Show every field and fact of one host (by name or id)",
		Example: "  gantry hosts show web1\n  gantry hosts show web1 -o json",
		Args:    exactArgs("HOST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHostsShow(cmd.Context(), hostsShowOptions{Host: args[0]})
		},
	}
}

func (a *app) runHostsShow(ctx context.Context, o hostsShowOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	h, err := c.GetHost(ctx, o.Host)
	if err != nil {
		return err
	}
	now := a.now()
	return a.emit(h, func(w io.Writer) error {
		f := h.Facts
		t := newTable(w)
		t.row("Name:", h.Name)
		t.row("ID:", h.ID)
		t.row("Status:", h.Status)
		t.row("Status since:", absTime(h.StatusChangedAt, now))
		t.row("Last seen:", absTime(h.LastSeen, now))
		t.row("Clock skew:", clockSkewDetail(h))
		t.row("Enrolled:", absTime(h.EnrolledAt, now))
		t.row("Labels:", formatLabels(h.Labels, ", "))
		t.row("Hostname:", orDash(f.Hostname))
		t.row("OS:", orDash(f.OS))
		t.row("Kernel:", orDash(f.Kernel))
		t.row("Arch:", orDash(f.Arch))
		t.row("CPUs:", strconv.Itoa(f.CPUs))
		t.row("Memory:", formatBytes(f.MemoryBytes))
		t.row("Addresses:", orDash(strings.Join(f.Addresses, ", ")))
		t.row("Agent version:", orDash(f.AgentVersion))
		return t.flush()
	})
}

// hostsLabelOptions are the inputs of 'gantry hosts label'.
type hostsLabelOptions struct {
	Host    string
	Changes []string // "k=v" sets, "k-" removes
}

func (a *app) newHostsLabelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "label HOST KEY=VALUE... KEY-...",
		Short: "Set or remove labels of a host",
		Long: `Set labels with KEY=VALUE and remove them with KEY- (a trailing dash),
in any combination. Other labels are left as they are.`,
		Example: `  gantry hosts label web1 env=prod role=web
  gantry hosts label web1 canary-           # remove the "canary" label
  gantry hosts label web1 role=db canary-   # both at once`,
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return usageErrorf("missing HOST argument")
			case 1:
				return usageErrorf("missing label changes: give KEY=VALUE to set or KEY- to remove")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHostsLabel(cmd.Context(), hostsLabelOptions{Host: args[0], Changes: args[1:]})
		},
	}
}

// parseLabelChanges turns kubectl-style arguments into a LabelsRequest.
func parseLabelChanges(changes []string) (api.LabelsRequest, error) {
	req := api.LabelsRequest{Set: map[string]string{}}
	removed := map[string]bool{}
	for _, ch := range changes {
		if k, v, ok := strings.Cut(ch, "="); ok {
			if k == "" {
				return req, usageErrorf("invalid label %q: the key is empty", ch)
			}
			req.Set[k] = v
			continue
		}
		if k, ok := strings.CutSuffix(ch, "-"); ok && k != "" {
			if !removed[k] {
				req.Remove = append(req.Remove, k)
			}
			removed[k] = true
			continue
		}
		return req, usageErrorf("invalid label change %q: use KEY=VALUE to set or KEY- to remove", ch)
	}
	for k := range req.Set {
		if removed[k] {
			return req, usageErrorf("label %q is both set and removed", k)
		}
	}
	if len(req.Set) == 0 {
		req.Set = nil
	}
	return req, nil
}

func (a *app) runHostsLabel(ctx context.Context, o hostsLabelOptions) error {
	req, err := parseLabelChanges(o.Changes)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	h, err := c.LabelHost(ctx, o.Host, req)
	if err != nil {
		return err
	}
	return a.emit(h, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Labels of %s: %s\n", h.Name, formatLabels(h.Labels, ", "))
		return err
	})
}

// hostsRemoveOptions are the inputs of 'gantry hosts rm'.
type hostsRemoveOptions struct {
	Host string
}

func (a *app) newHostsRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm HOST",
		Aliases: []string{"remove", "revoke"},
		Short:   "Revoke a host: its agent is disconnected and may never reconnect",
		Long: `Revoke a host. Its agent is disconnected at once and refused from then on;
to bring the machine back, enroll it again with a new join token.
Revoked hosts stay visible with 'gantry hosts ls --all'.`,
		Example: "  gantry hosts rm web1",
		Args:    exactArgs("HOST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHostsRemove(cmd.Context(), hostsRemoveOptions{Host: args[0]})
		},
	}
}

func (a *app) runHostsRemove(ctx context.Context, o hostsRemoveOptions) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.RemoveHost(ctx, o.Host); err != nil {
		return err
	}
	out := map[string]string{"host": o.Host, "status": api.HostRevoked}
	return a.emit(out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Host %s revoked.\n", o.Host)
		return err
	})
}

// parseLabelList parses "k=v,k2=v2" (as given to --labels).
func parseLabelList(flag, s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, usageErrorf("invalid %s entry %q: want KEY=VALUE[,KEY=VALUE...]", flag, part)
		}
		out[k] = v
	}
	return out, nil
}
