package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// APIToken is a bearer token for the HTTP API. Token (the secret) is set
// only in the response that creates it; the server keeps a hash.
type APIToken struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Token string `json:"token,omitempty"`
	// Role is what the token may do; "admin" (everything) is the only role
	// so far.
	Role string `json:"role"`
	// Owner is the name of the token that created this one; "" for the
	// server's bootstrap admin token.
	Owner string `json:"owner,omitempty"`
	// ExpiresAt is when the token stops working; absent = never.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// CreateAPITokenRequest is the body of POST /api/v1/tokens.
type CreateAPITokenRequest struct {
	// Name identifies the token in lists and in `gantry token rm NAME`:
	// 1 to 64 letters, digits, '-', '_', '.' or '@', unique.
	Name string `json:"name"`
	// TTLSeconds is how long the token works: 0 = never expires, at most
	// 10 years. A token that expires cannot create one that outlives it.
	TTLSeconds int64 `json:"ttl_seconds"`
}

// CreateAPIToken creates an API token owned by the caller's token; the
// returned Token field holds the secret, which the server never shows again.
func (c *Client) CreateAPIToken(ctx context.Context, req CreateAPITokenRequest) (APIToken, error) {
	var out APIToken
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, req, &out)
	return out, err
}

// ListAPITokens returns the API tokens (without their secrets), expired ones
// included.
func (c *Client) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	return list[APIToken](ctx, c, "/api/v1/tokens", nil)
}

// DeleteAPIToken revokes an API token by id or name at once. The server
// refuses to delete the token of the request itself unless force is set.
func (c *Client) DeleteAPIToken(ctx context.Context, ref string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, http.MethodDelete, path("tokens", ref), q, nil, nil)
}

// DeleteJoinToken deletes a join token by id; hosts enrolled with it stay
// enrolled.
func (c *Client) DeleteJoinToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, path("join-tokens", id), nil, nil, nil)
}
