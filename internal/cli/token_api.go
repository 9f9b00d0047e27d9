package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-dev/gantry/api"
)

// defaultAPITokenTTL is how long an API token works when --ttl is not
// given (gh's default too).
const defaultAPITokenTTL = 30 * 24 * time.Hour

// Token kinds in `gantry token ls`.
const (
	tokenKindAPI  = "api"
	tokenKindJoin = "join"
)

// runAPITokenCreate creates an API token (`gantry token create --api`).
func (a *app) runAPITokenCreate(ctx context.Context, o tokenCreateOptions) error {
	if o.Name == "" {
		return usageErrorf("--api needs --name NAME (1 to 64 letters, digits, '-', '_', '.' or '@'), e.g. --name ci")
	}
	if o.Uses != 1 || o.Labels != "" || o.AgentLabels != "" {
		return usageErrorf("--uses, --labels and --agent-labels are for join tokens; leave them out with --api")
	}
	ttl := defaultAPITokenTTL
	if o.TTLSet {
		ttl = o.TTL
	}
	if ttl < 0 {
		return usageErrorf("invalid --ttl %s: must be positive, or 0 for a token that never expires", ttl)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	tok, err := c.CreateAPIToken(ctx, api.CreateAPITokenRequest{Name: o.Name, TTLSeconds: int64(ceilSeconds(ttl))})
	if err != nil {
		return err
	}
	now := a.now()
	return a.emit(tok, func(w io.Writer) error {
		t := newTable(w)
		t.row("Token:", tok.Token)
		t.row("ID:", tok.ID)
		t.row("Name:", tok.Name)
		t.row("Owner:", orDash(tok.Owner))
		t.row("Expires:", absTimePtr(tok.ExpiresAt, now))
		if err := t.flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "\nThe token is shown only once. Use it as GANTRY_TOKEN, or save it with\n\n  gantry login --server %s --token TOKEN\n\nRevoke it with 'gantry token rm %s'.\n", c.BaseURL, tok.Name)
		return err
	})
}

// absTimePtr is absTime for an optional time (nil: never).
func absTimePtr(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return absTime(*t, now)
}

// tokenItem is one row of `gantry token ls`, API or join token, in one
// flat shape for tables and JSON.
type tokenItem struct {
	Kind string `json:"kind"` // "api" or "join"
	ID   string `json:"id"`
	// Name and Role are set for API tokens; Owner for API tokens and
	// internal join tokens.
	Name  string `json:"name,omitempty"`
	Owner string `json:"owner,omitempty"`
	Role  string `json:"role,omitempty"`
	// Labels, AgentLabels, MaxUses and Uses are set for join tokens.
	Labels      map[string]string `json:"labels,omitempty"`
	AgentLabels []string          `json:"agent_labels,omitempty"`
	MaxUses     *int              `json:"max_uses,omitempty"`
	Uses        *int              `json:"uses,omitempty"`
	// Internal is set for join tokens gantry made itself (one per
	// environment machine or dev agent; listed with --all), whose Owner is
	// what they were made for (env:dev/group.web[1]).
	Internal bool `json:"internal,omitempty"`
	// ExpiresAt is absent for an API token that never expires.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// tokenListOptions are the flags of `gantry token ls`.
type tokenListOptions struct {
	API, Join bool
	// All lists internal join tokens too.
	All bool
}

func (a *app) newTokenListCmd() *cobra.Command {
	var o tokenListOptions
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List API and join tokens (their secrets are never shown again)",
		Long: `List tokens, oldest first: API tokens (KIND api: name, owner, expiry) and join
tokens (KIND join: pinned labels, keys agents may set, uses). Expired tokens
are listed until removed with 'gantry token rm'.

Join tokens gantry makes itself (one per machine an environment creates,
one per 'gantry server --dev' agent) are internal: hidden unless --all,
with their owner (e.g. env:dev/group.web[1]) in the OWNER column. They
are deleted when their machine is destroyed.`,
		Example: "  gantry token ls\n  gantry token ls --api\n  gantry token ls --join -o json\n  gantry token ls --all      # with the environments' per-machine tokens",
		Args:    exactArgs(),
		RunE:    func(cmd *cobra.Command, _ []string) error { return a.runTokenList(cmd.Context(), o) },
	}
	cmd.Flags().BoolVar(&o.API, "api", false, "list only API tokens")
	cmd.Flags().BoolVar(&o.Join, "join", false, "list only join tokens")
	cmd.Flags().BoolVar(&o.All, "all", false, "also list internal join tokens (per-machine tokens of environments and dev agents)")
	return cmd
}

func (a *app) runTokenList(ctx context.Context, o tokenListOptions) error {
	if o.API && o.Join {
		return usageErrorf("--api and --join exclude each other; give neither to list both kinds")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var items []tokenItem
	hidden := 0
	if !o.Join {
		ts, err := c.ListAPITokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			items = append(items, tokenItem{Kind: tokenKindAPI, ID: t.ID, Name: t.Name, Owner: t.Owner, Role: t.Role, ExpiresAt: t.ExpiresAt, CreatedAt: t.CreatedAt})
		}
	}
	if !o.API {
		ts, err := c.ListJoinTokens(ctx)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Internal && !o.All {
				hidden++
				continue
			}
			exp := t.ExpiresAt
			items = append(items, tokenItem{Kind: tokenKindJoin, ID: t.ID, Labels: t.Labels, AgentLabels: t.AgentLabels, MaxUses: &t.MaxUses, Uses: &t.Uses, ExpiresAt: &exp, CreatedAt: t.CreatedAt,
				Internal: t.Internal, Owner: t.Owner})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].CreatedAt.Before(items[j].CreatedAt) })
	now := a.now()
	if hidden > 0 && !a.jsonOutput() {
		// On stderr, so that scripts reading the table get rows only.
		defer fmt.Fprintf(a.stderr, "(%s hidden; --all shows them)\n", plural(hidden, "internal token"))
	}
	return emitList(a, items, "No tokens.", func(w io.Writer) error {
		t := newTable(w, "KIND", "ID", "NAME", "OWNER", "LABELS", "USES", "EXPIRES", "CREATED")
		for _, it := range items {
			expires := relTimePtr(it.ExpiresAt, now)
			if it.ExpiresAt != nil && !it.ExpiresAt.After(now) {
				expires = "expired " + expires
			}
			labels, uses := "-", "-"
			if it.Kind == tokenKindJoin {
				labels = formatLabels(it.Labels, ",")
				if len(it.AgentLabels) > 0 {
					labels += " agent:" + strings.Join(it.AgentLabels, ",")
				}
				uses = formatUses(api.JoinToken{MaxUses: *it.MaxUses, Uses: *it.Uses})
			}
			t.row(it.Kind, it.ID, orDash(it.Name), orDash(it.Owner), labels, uses, expires, relTime(it.CreatedAt, now))
		}
		return t.flush()
	})
}

// tokenRmOptions are the flags of `gantry token rm`.
type tokenRmOptions struct {
	Force bool
}

func (a *app) newTokenRmCmd() *cobra.Command {
	var o tokenRmOptions
	cmd := &cobra.Command{
		Use:     "rm ID|NAME...",
		Aliases: []string{"remove", "revoke"},
		Short:   "Revoke API tokens (by id or name) and delete join tokens (by id), at once",
		Long: `Revoke API tokens and delete join tokens. An API token is named by its id or
its name, a join token by its id (jt-…). A revoked API token is refused from
the next request on; hosts enrolled with a deleted join token stay enrolled.

Removing the token you are using logs you out: it needs --force. The last API
token that still works is never removed (create another one first).`,
		Example: `  gantry token rm ci
  gantry token rm t-3kq7x2m4d5f6g7h8 jt-a2b3c4d5e6f7g8h9
  gantry token rm admin --force     # the token this CLI uses`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing ID|NAME argument (see 'gantry token ls')")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return a.runTokenRm(cmd.Context(), o, args) },
	}
	cmd.Flags().BoolVar(&o.Force, "force", false, "also remove the token this command authenticates with")
	return cmd
}

// tokenRemoved is one line of `token rm -o json`: which token was removed.
type tokenRemoved struct {
	Kind string `json:"kind"` // api | join
	Ref  string `json:"ref"`  // the id or name as given
}

func (a *app) runTokenRm(ctx context.Context, o tokenRmOptions, refs []string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var errs []error
	removed := []tokenRemoved{}
	for _, ref := range refs {
		kind := "api"
		if strings.HasPrefix(ref, "jt-") {
			kind, err = "join", c.DeleteJoinToken(ctx, ref)
		} else {
			err = c.DeleteAPIToken(ctx, ref, o.Force)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref, err))
			continue
		}
		removed = append(removed, tokenRemoved{Kind: kind, Ref: ref})
		if !a.jsonOutput() {
			fmt.Fprintf(a.stdout, "Removed %s token %s\n", strings.Replace(kind, "api", "API", 1), ref)
		}
	}
	if a.jsonOutput() {
		if err := writeJSON(a.stdout, removed); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
