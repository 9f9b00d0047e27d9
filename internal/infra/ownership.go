package infra

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
)

// Ownership of names (issue 10, item 1). A machine's host name is
// "<env>-<group>-<index>" (or "<env>-<host>"), and host names are unique
// among live hosts, so the name alone cannot tell whether a host is the
// environment's: an agent someone started by hand, or `make dev`'s, may
// carry it. A host is owned by an environment's machine when its labels
// say so: gantry.env is the environment and gantry.resource the machine's
// address. Those labels are pinned by the machine's own single-use join
// token and only the server sets gantry.* labels, so an agent cannot
// claim them.
//
// The engine acts only on hosts it owns: it revokes a host of the same
// name before creating a machine (a re-created machine) only when owned,
// sets labels, runs setup, configure and shutdown, and counts a machine
// online only through an owned host. A plan that would create a machine
// whose name an unowned live host holds is refused, naming both, and so
// is its apply if such a host appeared after the plan was made.

// owns reports whether host h was created for the machine at address addr
// of environment env.
func owns(h store.HostRecord, env, addr string) bool {
	return h.Labels[provider.LabelEnv] == env && h.Labels[provider.LabelResource] == addr
}

// ownedHost returns the live host of a recorded machine from hosts by
// name, if that host is the machine's own.
func ownedHost(byName map[string]store.HostRecord, env string, r *Resource) (store.HostRecord, bool) {
	h, ok := byName[r.Name]
	if !ok || !owns(h, env, r.Address) {
		return store.HostRecord{}, false
	}
	return h, true
}

// NameTakenError refuses a plan or an apply that would create machines
// whose names belong to live hosts the environment does not own. It
// matches store.ErrConflict (the API answers 409).
type NameTakenError struct {
	// Taken describes each collision, one sentence each.
	Taken []string
}

func (e *NameTakenError) Error() string {
	if len(e.Taken) == 1 {
		return e.Taken[0]
	}
	return fmt.Sprintf("%d machine names are taken:\n  %s", len(e.Taken), strings.Join(e.Taken, "\n  "))
}

// Unwrap makes the error a store.ErrConflict.
func (e *NameTakenError) Unwrap() error { return store.ErrConflict }

// takenMessage describes machine name as held by host h, which environment
// env does not own (the caller prefixes the machine's address).
func takenMessage(env, name string, h store.HostRecord) string {
	whose := "a host that is not an environment's machine"
	if other := h.Labels[provider.LabelEnv]; other != "" {
		whose = fmt.Sprintf("machine %s of environment %q", h.Labels[provider.LabelResource], other)
	}
	return fmt.Sprintf("machine name %q is already taken by host %s (%s, %s), which environment %q does not own; "+
		"choose another environment name (--env) or rename the group, or remove that host with 'gantry hosts rm %s'",
		name, h.Name, h.ID, whose, env, h.Name)
}

// checkNames refuses a plan that creates a machine whose name a live host
// that the environment does not own holds.
func (e *Engine) checkNames(ctx context.Context, env string, pl api.Plan) error {
	var taken []string
	for _, c := range pl.Changes {
		if c.Action != api.ActionCreate && c.Action != api.ActionReplace {
			continue
		}
		name, ok := machineNameOf(env, c.Address)
		if !ok {
			continue
		}
		h, err := e.st.GetHostByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("look up host %s: %w", name, err)
		}
		if !owns(h, env, c.Address) {
			taken = append(taken, c.Address+": "+takenMessage(env, name, h))
		}
	}
	if len(taken) > 0 {
		return &NameTakenError{Taken: taken}
	}
	return nil
}

// machineNameOf returns the host name of the machine at a plan address
// (group.NAME[i] or host.NAME[0]); false for other addresses.
func machineNameOf(env, addr string) (string, bool) {
	base, idx := splitIndex(addr)
	if idx < 0 {
		return "", false
	}
	if g, ok := strings.CutPrefix(base, "group."); ok {
		return machineName(env, g, idx, false), true
	}
	if h, ok := strings.CutPrefix(base, "host."); ok {
		return machineName(env, h, idx, true), true
	}
	return "", false
}

// claimName makes way for a new machine at addr named name: a live host
// of that name that the environment owns (the machine's earlier
// incarnation) is revoked; one it does not own is never touched, and the
// machine is not created.
func (e *Engine) claimName(ctx context.Context, env, addr, name string) error {
	h, err := e.st.GetHostByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up host %s: %w", name, err)
	}
	if !owns(h, env, addr) {
		return &NameTakenError{Taken: []string{takenMessage(env, name, h)}}
	}
	e.revokeHost(ctx, h)
	return nil
}

// revokeOwnedHost revokes the live host of a deleted machine, if it is the
// machine's own.
func (e *Engine) revokeOwnedHost(ctx context.Context, env string, r *Resource) {
	h, err := e.st.GetHostByName(ctx, r.Name)
	if err != nil {
		return
	}
	if !owns(h, env, r.Address) {
		e.log.Warn("machine deleted; the host of its name is not its own and stays", "env", env, "machine", r.Address, "host", h.Name, "host_id", h.ID)
		return
	}
	e.revokeHost(ctx, h)
}

// revokeHost revokes a host and drops its bus connections.
func (e *Engine) revokeHost(ctx context.Context, h store.HostRecord) {
	if err := e.st.RevokeHost(ctx, h.ID); err != nil {
		e.log.Error("revoke host", "host", h.Name, "err", err)
		return
	}
	e.cfg.Revoke(h.ID)
}
