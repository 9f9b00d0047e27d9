package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/selector"
	"github.com/gantry-dev/gantry/internal/store"
)

// Label ownership (issue 9, item 3). A host's labels decide which jobs,
// deployment groups and environments reach it, so an agent cannot choose
// them freely:
//
//   - the join token's Labels are pinned: they always win over what the
//     agent asks for (environment machines get gantry.env, gantry.group and
//     gantry.resource this way, from their own single-use token);
//   - the agent may set only the keys the token lists in AgentLabels
//     (`gantry token create --agent-labels k1,k2`; default none);
//   - never a reserved "gantry.*" key, nor a key that a deployment group's
//     selector uses, even when the token lists it (a group created after
//     the token still counts, at the moment of enrollment);
//   - an admin sets any label later with `gantry hosts label`.
//
// A request outside these rules is refused (403, code
// "labels_not_allowed") rather than silently stripped: the operator who
// typed --labels learns at once why the host would not be where they
// expect, and nothing is enrolled. Keys the token pins are not an error:
// the token's value wins, as it always did. Later hellos and facts never
// carry labels (protocol.Hello has none), so an enrolled agent cannot
// change them either.

// ReservedLabelPrefix starts the label keys only the server sets.
const ReservedLabelPrefix = "gantry."

// errLabelsNotAllowed is the enrollment refusal for labels an agent may
// not set.
func errLabelsNotAllowed(msg string) error {
	return &apiError{http.StatusForbidden, "labels_not_allowed", msg}
}

// enrollLabels returns the labels an agent asked for if its join token
// (by hash) lets it set them all, without the keys the token pins (the
// store adds those). A token that is unknown, expired or used up passes
// through unchanged: EnrollHost reports that.
func (a *API) enrollLabels(ctx context.Context, tokenHash string, requested map[string]string, now time.Time) (map[string]string, error) {
	if len(requested) == 0 {
		return requested, nil
	}
	tok, err := a.d.Store.GetJoinTokenByHash(ctx, tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return requested, nil
	}
	if err != nil {
		return nil, err
	}
	if !tok.ExpiresAt.After(now) || (tok.MaxUses > 0 && tok.Uses >= tok.MaxUses) {
		return requested, nil
	}
	groupKeys, err := a.groupSelectorKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var reserved, grouped, notAllowed []string
	for k, v := range requested {
		if _, pinned := tok.Labels[k]; pinned {
			continue
		}
		switch {
		case strings.HasPrefix(k, ReservedLabelPrefix):
			reserved = append(reserved, k)
		case groupKeys[k] != "":
			grouped = append(grouped, k+" (deployment group "+groupKeys[k]+")")
		case !slices.Contains(tok.AgentLabels, k):
			notAllowed = append(notAllowed, k)
		default:
			out[k] = v
		}
	}
	var why []string
	if len(reserved) > 0 {
		sort.Strings(reserved)
		why = append(why, fmt.Sprintf("%s: keys under %q are set only by the server", strings.Join(reserved, ", "), ReservedLabelPrefix))
	}
	if len(grouped) > 0 {
		sort.Strings(grouped)
		why = append(why, fmt.Sprintf("%s: a deployment group selects hosts by this key, so only an admin sets it", strings.Join(grouped, ", ")))
	}
	if len(notAllowed) > 0 {
		sort.Strings(notAllowed)
		allowed := "none"
		if len(tok.AgentLabels) > 0 {
			allowed = strings.Join(tok.AgentLabels, ",")
		}
		why = append(why, fmt.Sprintf("%s: join token %s lets the agent set only: %s (allow keys with `gantry token create --agent-labels %s`)",
			strings.Join(notAllowed, ", "), tok.ID, allowed, strings.Join(notAllowed, ",")))
	}
	if len(why) > 0 {
		return nil, errLabelsNotAllowed("the agent may not set the labels it asked for (--labels): " + strings.Join(why, "; ") +
			". Pin labels in the join token (`gantry token create --labels k=v`) or set them after enrollment (`gantry hosts label HOST k=v`), and drop them from the agent's --labels")
	}
	return out, nil
}

// groupSelectorKeys returns every label key a deployment group's selector
// uses, with one group ("app/group") that uses it.
func (a *API) groupSelectorKeys(ctx context.Context) (map[string]string, error) {
	gs, err := a.d.Store.ListGroups(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list deployment groups: %w", err)
	}
	keys := map[string]string{}
	for _, g := range gs {
		sel, err := selector.Parse(g.Selector)
		if err != nil {
			continue // stored selectors were validated; an old bad one selects nothing new
		}
		for _, req := range sel.Requirements() {
			if keys[req.Key] == "" {
				keys[req.Key] = g.App + "/" + g.Name
			}
		}
	}
	return keys, nil
}

// validateAgentLabelKeys checks the keys a new join token lets agents set.
func (a *API) validateAgentLabelKeys(ctx context.Context, keys []string) error {
	groupKeys, err := a.groupSelectorKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := selector.ValidateKey(k); err != nil {
			return errBadRequest(fmt.Sprintf("agent_labels: key %q: %v", k, err))
		}
		if strings.HasPrefix(k, ReservedLabelPrefix) {
			return errBadRequest(fmt.Sprintf("agent_labels: %q: keys under %q are set only by the server; an agent may never set them", k, ReservedLabelPrefix))
		}
		if g := groupKeys[k]; g != "" {
			return errBadRequest(fmt.Sprintf("agent_labels: %q: deployment group %s selects hosts by this key, so agents may not set it; pin it with labels (--labels %s=VALUE) instead", k, g, k))
		}
	}
	return nil
}
