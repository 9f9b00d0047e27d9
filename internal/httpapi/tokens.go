package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// API tokens (issue 9, item 5): every token has a name, an owner (the
// name of the token that created it) and an optional expiry that
// authenticate enforces ("token expired", 401). Only admin tokens manage
// tokens (routes marked Admin); every token is an admin token until roles
// arrive, so the check is the hook RBAC will fill. A token cannot create
// one that outlives it, so an expiring token cannot mint a permanent one.
// Deleting the token a request is made with needs ?force=true; the last
// working token is never deleted (the server would then accept no one
// until it restarts and makes a new bootstrap token).

// tokenRoutes are the routes of API tokens and of deleting join tokens.
func (a *API) tokenRoutes() []route {
	return []route{
		{Method: "POST", Path: "/api/v1/tokens", Summary: "Create an API token owned by the caller's token (admin).", Admin: true, Body: api.CreateAPITokenRequest{}, Resp: api.APIToken{}, Status: 201, Handler: a.createAPIToken},
		{Method: "GET", Path: "/api/v1/tokens", Summary: "List API tokens, expired ones included, without secrets (admin).", Admin: true, Resp: []api.APIToken{}, Handler: a.listAPITokens},
		{Method: "DELETE", Path: "/api/v1/tokens/{token}", Summary: "Revoke an API token by id or name at once; the caller's own token needs force=true (admin).", Admin: true, Query: []string{"force"}, Status: 204, Handler: a.deleteAPIToken},
		{Method: "DELETE", Path: "/api/v1/join-tokens/{id}", Summary: "Delete a join token; hosts enrolled with it stay (admin).", Admin: true, Status: 204, Handler: a.deleteJoinToken},
	}
}

// requireAdmin refuses a caller whose token is not an admin token.
func requireAdmin(r *http.Request) error {
	if t, _ := principal(r); t.Role != "admin" {
		return errForbidden(fmt.Sprintf("token %q (role %q) may not manage tokens: an admin token is needed", t.Name, t.Role))
	}
	return nil
}

// errTokenExpired is the 401 of an expired API token.
func errTokenExpired(t store.APIToken) error {
	return &apiError{http.StatusUnauthorized, "token_expired", fmt.Sprintf("token expired: API token %q expired at %s; ask an admin for a new one (`gantry token create --api --name NAME`)",
		t.Name, t.ExpiresAt.UTC().Format(time.RFC3339))}
}

// apiToken is the wire form of a stored token (never its hash).
func apiToken(t store.APIToken) api.APIToken {
	out := api.APIToken{ID: t.ID, Name: t.Name, Role: t.Role, Owner: t.Owner, CreatedAt: t.CreatedAt}
	if !t.ExpiresAt.IsZero() {
		exp := t.ExpiresAt
		out.ExpiresAt = &exp
	}
	return out
}

func (a *API) createAPIToken(w http.ResponseWriter, r *http.Request) {
	var req api.CreateAPITokenRequest
	if err := decode(r, &req); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	t, err := a.newAPIToken(r, req)
	writeResult(a, w, r, http.StatusCreated, t, err)
}

// newAPIToken checks and stores a new token owned by the caller's.
func (a *API) newAPIToken(r *http.Request, req api.CreateAPITokenRequest) (api.APIToken, error) {
	if err := validate.TokenName("name", req.Name); err != nil {
		return api.APIToken{}, errBadRequest(err.Error())
	}
	if err := validate.APITokenTTL.Check(req.TTLSeconds); err != nil {
		return api.APIToken{}, errBadRequest(err.Error())
	}
	now := time.Now().UTC()
	var expires time.Time
	if req.TTLSeconds > 0 {
		expires = now.Add(time.Duration(req.TTLSeconds) * time.Second)
	}
	creator, _ := principal(r)
	if !creator.ExpiresAt.IsZero() && (expires.IsZero() || expires.After(creator.ExpiresAt)) {
		return api.APIToken{}, errForbidden(fmt.Sprintf("a token cannot outlive the token that creates it: yours (%q) expires at %s; give a --ttl of at most %s",
			creator.Name, creator.ExpiresAt.UTC().Format(time.RFC3339), creator.ExpiresAt.Sub(now).Truncate(time.Second)))
	}
	all, err := a.d.Store.ListAPITokens(r.Context())
	if err != nil {
		return api.APIToken{}, err
	}
	for _, t := range all {
		if t.Name == req.Name {
			return api.APIToken{}, fmt.Errorf("an API token named %q exists (id %s): pick another --name or remove it with `gantry token rm %s`: %w", req.Name, t.ID, req.Name, store.ErrConflict)
		}
	}
	secret := ids.Secret("gat")
	t := store.APIToken{ID: ids.New("t"), Name: req.Name, Hash: HashToken(secret), Role: "admin", CreatedAt: now, Owner: creator.Name, ExpiresAt: expires}
	if err := a.d.Store.CreateAPIToken(r.Context(), t); err != nil {
		return api.APIToken{}, err
	}
	a.d.Log.Info("api token created", "token", t.ID, "name", t.Name, "owner", t.Owner, "expires", t.ExpiresAt)
	out := apiToken(t)
	out.Token = secret
	return out, nil
}

func (a *API) listAPITokens(w http.ResponseWriter, r *http.Request) {
	ts, err := a.d.Store.ListAPITokens(r.Context())
	out := make([]api.APIToken, 0, len(ts))
	for _, t := range ts {
		out = append(out, apiToken(t))
	}
	writeList(a, w, r, out, err)
}

func (a *API) deleteAPIToken(w http.ResponseWriter, r *http.Request) {
	if err := a.removeAPIToken(r); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeAPIToken resolves {token} (an id, else a unique name) and deletes
// it, unless it is the caller's own (without force) or the last working
// token.
func (a *API) removeAPIToken(r *http.Request) error {
	ref := r.PathValue("token")
	all, err := a.d.Store.ListAPITokens(r.Context())
	if err != nil {
		return err
	}
	var match []store.APIToken
	for _, t := range all {
		if t.ID == ref {
			match = []store.APIToken{t}
			break
		}
		if t.Name == ref {
			match = append(match, t)
		}
	}
	switch {
	case len(match) == 0:
		var names []string
		for _, t := range all {
			names = append(names, t.Name)
		}
		return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("API token %q not found; %s. List them with: gantry token ls --api",
			ref, among("API tokens", "API tokens", names))}
	case len(match) > 1:
		var idl []string
		for _, t := range match {
			idl = append(idl, t.ID)
		}
		return fmt.Errorf("%d API tokens are named %q: remove one by id (%s): %w", len(match), ref, strings.Join(idl, ", "), store.ErrConflict)
	}
	t := match[0]
	me, _ := principal(r)
	if t.ID == me.ID && r.URL.Query().Get("force") != "true" {
		return &apiError{http.StatusConflict, "own_token", fmt.Sprintf("token %q is the one this request uses: removing it logs you out; pass --force (API: ?force=true) to remove it anyway", t.Name)}
	}
	now := time.Now()
	working := 0
	for _, o := range all {
		if o.ID != t.ID && !o.Expired(now) {
			working++
		}
	}
	if working == 0 && !t.Expired(now) {
		return &apiError{http.StatusConflict, "last_token", fmt.Sprintf("token %q is the last API token that works: the server would accept no one; create another one first (`gantry token create --api --name NAME`)", t.Name)}
	}
	if err := a.d.Store.DeleteAPIToken(r.Context(), t.ID); err != nil {
		return err
	}
	a.d.Log.Info("api token removed", "token", t.ID, "name", t.Name, "by", me.Name)
	return nil
}

func (a *API) deleteJoinToken(w http.ResponseWriter, r *http.Request) {
	err := a.d.Store.DeleteJoinToken(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		var ids []string
		if jts, lerr := a.d.Store.ListJoinTokens(r.Context()); lerr == nil {
			for _, jt := range jts {
				if !jt.Internal {
					ids = append(ids, jt.ID)
				}
			}
		}
		err = &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("join token %q not found; %s. List them with: gantry token ls --join",
			r.PathValue("id"), among("join tokens", "join tokens", ids))}
	}
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
