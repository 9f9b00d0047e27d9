package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds every request except StreamJob when the caller's
// context has no deadline of its own.
const DefaultTimeout = 60 * time.Second

// Identity is the body of GET /api/v1/whoami: the API token a request was
// authenticated with.
type Identity struct {
	TokenID string `json:"token_id"`
	Name    string `json:"name"`
	Role    string `json:"role"`
}

// Client talks to a gantry server's HTTP API. The zero value is not usable;
// build one with New. A Client is safe for concurrent use.
type Client struct {
	BaseURL string       // e.g. "https://gantry.example.com:8080", no trailing path
	Token   string       // API bearer token; sent on every request when set
	HTTP    *http.Client // transport; must not set Timeout (it would cut streams)
}

// New returns a client for the server at baseURL authenticating with token.
func New(baseURL, token string) *Client {
	return &Client{
		BaseURL: strings.TrimRight(baseURL, "/"),
		Token:   token,
		HTTP:    &http.Client{},
	}
}

// StatusError is returned for every non-2xx response. Its Error method
// returns the server's message.
type StatusError struct {
	Status  int    // HTTP status code
	Code    string // api.Error code, e.g. "not_found"; empty if the body was not JSON
	Message string // api.Error message or a summary of the body
	// Diagnostics are an environment definition's problems
	// (Code "invalid_definition").
	Diagnostics []Diagnostic
	// RequestID is the server's id of the request (header X-Request-Id):
	// the server logs an internal error's cause under it.
	RequestID string
}

// Error returns the server's message.
func (e *StatusError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	msg := fmt.Sprintf("server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	return msg
}

// UnreachableError is returned when no connection to the server could be
// made (connection refused, unknown host, no route).
type UnreachableError struct {
	URL string // the server's base URL
	Err error  // the underlying dial error
}

// Error explains that the server is not reachable and how to fix that.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("the gantry server at %s is not reachable (%v)\n"+
		"Start a local one with 'gantry server --dev', or point the CLI at yours with "+
		"'gantry login --server URL --token TOKEN' (or --server / GANTRY_SERVER)", e.URL, rootCause(e.Err))
}

// Unwrap returns the dial error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// ErrStreamClosed is returned by StreamJob when the event stream ended
// before the "done" event, e.g. because the server restarted.
var ErrStreamClosed = errors.New("event stream closed before the end")

// Whoami returns the identity of the client's token.
func (c *Client) Whoami(ctx context.Context) (Identity, error) {
	var out Identity
	err := c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, nil, &out)
	return out, err
}

// ListHosts returns the hosts matching selector ("" for all); revoked hosts
// are included only when includeRevoked is set.
func (c *Client) ListHosts(ctx context.Context, selector string, includeRevoked bool) ([]Host, error) {
	q := url.Values{}
	if selector != "" {
		q.Set("selector", selector)
	}
	if includeRevoked {
		q.Set("include_revoked", "true")
	}
	return list[Host](ctx, c, "/api/v1/hosts", q)
}

// GetHost returns one host by id or name.
func (c *Client) GetHost(ctx context.Context, host string) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodGet, path("hosts", host), nil, nil, &out)
	return out, err
}

// LabelHost sets and removes labels of a host and returns the updated host.
func (c *Client) LabelHost(ctx context.Context, host string, req LabelsRequest) (Host, error) {
	var out Host
	err := c.do(ctx, http.MethodPatch, path("hosts", host, "labels"), nil, req, &out)
	return out, err
}

// RemoveHost revokes a host: its agent is disconnected and refused thereafter.
func (c *Client) RemoveHost(ctx context.Context, host string) error {
	return c.do(ctx, http.MethodDelete, path("hosts", host), nil, nil, nil)
}

// CreateJoinToken creates a join token; the returned Token field holds the
// secret, which the server never shows again.
func (c *Client) CreateJoinToken(ctx context.Context, req CreateJoinTokenRequest) (JoinToken, error) {
	var out JoinToken
	err := c.do(ctx, http.MethodPost, "/api/v1/join-tokens", nil, req, &out)
	return out, err
}

// ListJoinTokens returns the join tokens (without their secrets).
func (c *Client) ListJoinTokens(ctx context.Context) ([]JoinToken, error) {
	return list[JoinToken](ctx, c, "/api/v1/join-tokens", nil)
}

// CreateJob starts a job and returns it with one execution per matched
// host. It is idempotent: see WithIdempotencyKey; transient failures are
// retried with the same key.
func (c *Client) CreateJob(ctx context.Context, spec JobSpec) (Job, error) {
	var out Job
	err := c.create(ctx, "/api/v1/jobs", spec, &out)
	return out, err
}

// ListJobs returns the most recent jobs, newest first, with their Counts.
// limit <= 0 leaves the number to the server.
func (c *Client) ListJobs(ctx context.Context, limit int) ([]Job, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return list[Job](ctx, c, "/api/v1/jobs", q)
}

// GetJob returns a job with its executions, output included.
func (c *Client) GetJob(ctx context.Context, id string) (Job, error) {
	var out Job
	err := c.do(ctx, http.MethodGet, path("jobs", id), nil, nil, &out)
	return out, err
}

// StreamJob follows a job's events and calls fn for each one, in order. It
// returns nil after fn has handled the "done" event, fn's error if it
// returns one, ErrStreamClosed (possibly wrapped) if the stream ends early,
// or the request's error. ctx bounds the whole stream.
func (c *Client) StreamJob(ctx context.Context, id string, fn func(JobEvent) error) error {
	return stream(ctx, c, path("jobs", id, "events"), fn, func(ev JobEvent) bool { return ev.Type == "done" })
}

// stream reads an NDJSON event stream until done(ev), calling fn for each
// event (see StreamJob for the results).
func stream[T any](ctx context.Context, c *Client, p string, fn func(T) error, done func(T) bool) error {
	return streamRequest(ctx, c, http.MethodGet, p, nil, fn, done)
}

// streamRequest sends a request whose answer is an NDJSON stream and calls
// fn for each event until done says the stream is complete.
func streamRequest[T any](ctx context.Context, c *Client, method, p string, body any, fn func(T) error, done func(T) bool) error {
	resp, err := c.send(ctx, method, p, nil, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev T
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return ErrStreamClosed
			}
			return fmt.Errorf("%w: %v", ErrStreamClosed, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		if done(ev) {
			return nil
		}
	}
}

// CreateSchedule creates a cron schedule.
func (c *Client) CreateSchedule(ctx context.Context, s Schedule) (Schedule, error) {
	var out Schedule
	err := c.do(ctx, http.MethodPost, "/api/v1/schedules", nil, s, &out)
	return out, err
}

// ListSchedules returns every schedule.
func (c *Client) ListSchedules(ctx context.Context) ([]Schedule, error) {
	return list[Schedule](ctx, c, "/api/v1/schedules", nil)
}

// DeleteSchedule deletes a schedule; jobs it already started are kept.
func (c *Client) DeleteSchedule(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, path("schedules", id), nil, nil, nil)
}

// path joins escaped segments under /api/v1/.
func path(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// list GETs a JSON array, never returning a nil slice on success.
func list[T any](ctx context.Context, c *Client, p string, q url.Values) ([]T, error) {
	var out []T
	if err := c.do(ctx, http.MethodGet, p, q, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// do performs a bounded request and decodes a JSON response into out
// (ignored when nil).
func (c *Client) do(ctx context.Context, method, p string, q url.Values, body, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, p, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, p, err)
	}
	return nil
}

// send performs a request and returns the response if its status is 2xx;
// otherwise it closes the body and returns a *StatusError.
func (c *Client) send(ctx context.Context, method, p string, q url.Values, body any) (*http.Response, error) {
	u := c.BaseURL + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	contentType := "application/json"
	if raw, ok := body.(rawBody); ok {
		rd, contentType = raw.r, raw.contentType
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("bad server URL %q: %w", c.BaseURL, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if k := idempotencyKey(ctx); k != "" && method == http.MethodPost {
		req.Header.Set(IdempotencyKeyHeader, k)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if ctx.Err() == nil && errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{URL: c.BaseURL, Err: err}
		}
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, statusError(resp)
}

// statusError builds a *StatusError from a non-2xx response.
func statusError(resp *http.Response) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	se := &StatusError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var e Error
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		se.Code, se.Message, se.Diagnostics = e.Code, e.Error, e.Diagnostics
		return se
	}
	if msg := strings.TrimSpace(string(raw)); msg != "" && len(msg) < 200 && !strings.ContainsAny(msg, "<>") {
		se.Message = fmt.Sprintf("server answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), msg)
	}
	return se
}

// rootCause strips url.Error and net.OpError wrappers for a short message.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
