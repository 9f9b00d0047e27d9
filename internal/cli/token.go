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

func (a *app) newTokenCmd() *cobra.Command {
	return newGroupCmd("token", "Manage join tokens (agents enroll with them) and API tokens (clients use them)",
		`  gantry token create --labels env=prod,role=web --agent-labels zone
  gantry token create --api --name ci --ttl 720h
  gantry token ls
  gantry token rm ci`,
		a.newTokenCreateCmd(), a.newTokenListCmd(), a.newTokenRmCmd())
}

// tokenCreateOptions are the inputs of 'gantry token create'.
type tokenCreateOptions struct {
	TTL    time.Duration
	TTLSet bool // --ttl was given (API tokens have their own default)
	Uses   int
	Labels string // "k=v,k2=v2", given to every host enrolled with the token
	// AgentLabels is "k1,k2": the keys an enrolling agent may set itself.
	AgentLabels string
	// API makes an API token named Name instead of a join token.
	API  bool
	Name string
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	o := tokenCreateOptions{TTL: time.Hour, Uses: 1}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a join token and print the command that enrolls a host with it",
		Long: `Create a join token, or with --api an API token. The token is shown once.

Join token: copy it, or run the printed 'gantry agent' command on the new
host. Hosts enrolled with it get its --labels (pinned: they win over the
agent's). An agent may set labels of its own (its --labels) only under the
keys listed in --agent-labels (default: none; never "gantry.*" nor a key a
deployment group selects on); asking for any other key refuses enrollment.

API token (--api --name NAME): for the CLI and programs (GANTRY_TOKEN). It
is owned by the token that creates it and works until --ttl runs out
(default 720h; --ttl 0 = never expires, only from a token that never
expires itself).`,
		Example: `  gantry token create                          # one use, valid 1h
  gantry token create --uses 10 --ttl 24h --labels env=prod,role=web
  gantry token create --uses 0 --ttl 15m       # unlimited uses for 15 minutes
  gantry token create --labels role=web --agent-labels zone,rack
  TOKEN=$(gantry token create -o json | jq -r .token)
  gantry token create --api --name ci --ttl 720h`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.TTLSet = cmd.Flags().Changed("ttl")
			if o.API {
				return a.runAPITokenCreate(cmd.Context(), o)
			}
			if o.Name != "" {
				return usageErrorf("--name is for API tokens: add --api (join tokens have an id only)")
			}
			return a.runTokenCreate(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.TTL, "ttl", o.TTL, "how long the token stays valid (e.g. 15m, 24h; API tokens: default 720h, 0 = never expires)")
	cmd.Flags().IntVar(&o.Uses, "uses", o.Uses, "how many hosts may enroll with it (0 = unlimited until it expires)")
	cmd.Flags().StringVar(&o.Labels, "labels", "", "`LABELS` pinned on enrolled hosts, as KEY=VALUE[,KEY=VALUE...]")
	cmd.Flags().StringVar(&o.AgentLabels, "agent-labels", "", "label `KEYS` an enrolling agent may set itself, as KEY[,KEY...] (default none)")
	cmd.Flags().BoolVar(&o.API, "api", false, "create an API token (needs --name) instead of a join token")
	cmd.Flags().StringVar(&o.Name, "name", "", "`NAME` of the API token (with --api)")
	return cmd
}

func (a *app) runTokenCreate(ctx context.Context, o tokenCreateOptions) error {
	if o.TTL <= 0 {
		return usageErrorf("invalid --ttl %s: must be positive", o.TTL)
	}
	if o.Uses < 0 {
		return usageErrorf("invalid --uses %d: must be 0 (unlimited) or more", o.Uses)
	}
	labels, err := parseLabelList("--labels", o.Labels)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	jt, err := c.CreateJoinToken(ctx, api.CreateJoinTokenRequest{
		TTLSeconds: ceilSeconds(o.TTL), MaxUses: o.Uses, Labels: labels, AgentLabels: splitNonEmpty(o.AgentLabels),
	})
	if err != nil {
		return err
	}
	now := a.now()
	return a.emit(jt, func(w io.Writer) error {
		t := newTable(w)
		t.row("Token:", jt.Token)
		t.row("ID:", jt.ID)
		t.row("Expires:", absTime(jt.ExpiresAt, now))
		t.row("Uses:", formatUses(jt))
		t.row("Labels:", formatLabels(jt.Labels, ", "))
		t.row("Agent labels:", orDash(strings.Join(jt.AgentLabels, ", ")))
		if err := t.flush(); err != nil {
			return err
		}
		insecure := ""
		if strings.HasPrefix(c.BaseURL, "http://") {
			insecure = " --insecure"
		}
		pinNote := ""
		if strings.Contains(jt.Token, ".") {
			pinNote = " It ends with the fingerprint of the server's CA:\nthe agent checks the server against it before it sends the token."
		}
		_, err := fmt.Fprintf(w, "\nThe token is shown only once.%s To enroll a host, run on it\n(the environment keeps the token out of the process list):\n\n  GANTRY_JOIN_TOKEN=%s gantry agent --server %s%s\n",
			pinNote, jt.Token, c.BaseURL, insecure)
		return err
	})
}

// formatUses renders "used/max", with "unlimited" for MaxUses 0.
func formatUses(jt api.JoinToken) string {
	if jt.MaxUses == 0 {
		return strconv.Itoa(jt.Uses) + "/unlimited"
	}
	return fmt.Sprintf("%d/%d", jt.Uses, jt.MaxUses)
}

// ceilSeconds converts a positive duration to whole seconds, rounding up
// without overflow (the largest duration gives 9223372037: the server
// refuses it by its range, see docs/limits.md).
func ceilSeconds(d time.Duration) int {
	s := d / time.Second
	if d%time.Second > 0 {
		s++
	}
	return int(s)
}
