package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/spf13/cobra"
)

func (a *app) newTokenCmd() *cobra.Command {
	return newGroupCmd("token", "Create and list join tokens that let agents enroll",
		`  gantry token create --labels env=prod,role=web
  gantry token ls`,
		a.newTokenCreateCmd(), a.newTokenListCmd())
}

// tokenCreateOptions are the inputs of 'gantry token create'.
type tokenCreateOptions struct {
	TTL    time.Duration
	Uses   int
	Labels string // "k=v,k2=v2", given to every host enrolled with the token
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	o := tokenCreateOptions{TTL: time.Hour, Uses: 1}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a join token and print the command that enrolls a host with it",
		Long: `Create a join token. The token is shown once: copy it, or run the printed
'gantry agent' command on the new host. Hosts enrolled with the token get
its labels.`,
		Example: `  gantry token create                          # one use, valid 1h
  gantry token create --uses 10 --ttl 24h --labels env=prod,role=web
  gantry token create --uses 0 --ttl 15m       # unlimited uses for 15 minutes
  TOKEN=$(gantry token create -o json | jq -r .token)`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runTokenCreate(cmd.Context(), o) },
	}
	cmd.Flags().DurationVar(&o.TTL, "ttl", o.TTL, "how long the token stays valid (e.g. 15m, 24h)")
	cmd.Flags().IntVar(&o.Uses, "uses", o.Uses, "how many hosts may enroll with it (0 = unlimited until it expires)")
	cmd.Flags().StringVar(&o.Labels, "labels", "", "`LABELS` for enrolled hosts, as KEY=VALUE[,KEY=VALUE...]")
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
		TTLSeconds: ceilSeconds(o.TTL), MaxUses: o.Uses, Labels: labels,
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
		if err := t.flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "\nThe token is shown only once. To enroll a host, run on it (the environment keeps the\ntoken out of the process list):\n\n  GANTRY_JOIN_TOKEN=%s gantry agent --server %s\n",
			jt.Token, c.BaseURL)
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

func (a *app) newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List join tokens (their secrets are never shown again)",
		Example: "  gantry token ls\n  gantry token ls -o json",
		Args:    exactArgs(),
		RunE:    func(cmd *cobra.Command, _ []string) error { return a.runTokenList(cmd.Context()) },
	}
}

func (a *app) runTokenList(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	tokens, err := c.ListJoinTokens(ctx)
	if err != nil {
		return err
	}
	now := a.now()
	return emitList(a, tokens, "No join tokens.", func(w io.Writer) error {
		t := newTable(w, "ID", "LABELS", "USES", "EXPIRES", "CREATED")
		for _, jt := range tokens {
			expires := relTime(jt.ExpiresAt, now)
			if !jt.ExpiresAt.After(now) {
				expires = "expired " + expires
			}
			t.row(jt.ID, formatLabels(jt.Labels, ","), formatUses(jt), expires, relTime(jt.CreatedAt, now))
		}
		return t.flush()
	})
}

// ceilSeconds converts a positive duration to whole seconds, rounding up.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
