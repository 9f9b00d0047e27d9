package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// rawBody is a request body sent as is (a bundle), not as JSON.
type rawBody struct {
	r           io.Reader
	contentType string
}

// CreateApp creates an application.
func (c *Client) CreateApp(ctx context.Context, name string) (Application, error) {
	var out Application
	err := c.do(ctx, http.MethodPost, path("apps"), nil, Application{Name: name}, &out)
	return out, err
}

// ListApps lists applications.
func (c *Client) ListApps(ctx context.Context) ([]Application, error) {
	return list[Application](ctx, c, path("apps"), nil)
}

// PushRevision uploads a bundle (.tar.gz or .zip bytes) as a revision of
// app. Pushing the same bytes again returns the existing revision.
func (c *Client) PushRevision(ctx context.Context, app string, bundle io.Reader, description string) (Revision, error) {
	var out Revision
	q := url.Values{}
	if description != "" {
		q.Set("description", description)
	}
	err := c.do(ctx, http.MethodPost, path("apps", app, "revisions"), q, rawBody{bundle, "application/octet-stream"}, &out)
	return out, err
}

// ListRevisions lists an application's revisions, newest first.
func (c *Client) ListRevisions(ctx context.Context, app string) ([]Revision, error) {
	return list[Revision](ctx, c, path("apps", app, "revisions"), nil)
}

// GetRevision returns one revision with its appspec.yml.
func (c *Client) GetRevision(ctx context.Context, app, id string) (Revision, error) {
	var out Revision
	err := c.do(ctx, http.MethodGet, path("apps", app, "revisions", id), nil, nil, &out)
	return out, err
}
