// Package engine is a small client of the Docker Engine HTTP API, pinned to
// API version 1.41 (Docker Engine 20.10), for the docker provider and its
// test helpers. It speaks plain HTTP over the daemon's unix socket or over
// tcp:// (with TLS when DOCKER_TLS_VERIFY is set, certificates from
// DOCKER_CERT_PATH), and turns the engine's JSON error bodies into errors
// that carry the engine's message.
//
// It exists instead of github.com/docker/docker/client: gantry needs about a
// dozen endpoints, and that module pulls in dozens of dependencies.
package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// APIVersion is the Engine API version every request is made with (the
// version of Docker Engine 20.10; newer engines still serve it).
const APIVersion = "1.41"

// DefaultHost is the daemon address used when neither the caller nor
// $DOCKER_HOST gives one.
const DefaultHost = "unix:///var/run/docker.sock"

// DefaultHint ends the message of an UnreachableError when the client's
// Hint is empty.
const DefaultHint = "set DOCKER_HOST"

// Client is a Docker Engine API client. It is safe for concurrent use.
type Client struct {
	host string
	base url.URL
	hc   *http.Client
	// Hint ends the message of an UnreachableError: how the user points
	// gantry at the daemon (default DefaultHint).
	Hint string
}

// New returns a client of the daemon at host: "unix:///path/to/socket",
// "tcp://host:port" or "http://host:port". An empty host means $DOCKER_HOST,
// or DefaultHost when that is unset. No request is made: a daemon that is
// down shows as an UnreachableError on the first call.
func New(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker: daemon address %q: %w", host, err)
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // builds and waits answer late; requests carry contexts
	}
	c := &Client{host: host, hc: &http.Client{Transport: tr}}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return nil, fmt.Errorf("docker: daemon address %q: no socket path (want unix:///var/run/docker.sock)", host)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
		c.base = url.URL{Scheme: "http", Host: "docker"}
	case "tcp", "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("docker: daemon address %q: no host:port", host)
		}
		c.base = url.URL{Scheme: "http", Host: u.Host}
		if u.Scheme == "https" || (u.Scheme == "tcp" && os.Getenv("DOCKER_TLS_VERIFY") != "") {
			cfg, err := tlsConfig()
			if err != nil {
				return nil, fmt.Errorf("docker: daemon address %q: %w", host, err)
			}
			tr.TLSClientConfig = cfg
			c.base.Scheme = "https"
		}
	default:
		return nil, fmt.Errorf("docker: daemon address %q: unsupported scheme %q (want unix:// or tcp://)", host, u.Scheme)
	}
	return c, nil
}

// tlsConfig loads ca.pem, cert.pem and key.pem from $DOCKER_CERT_PATH
// (default ~/.docker), as the docker CLI does.
func tlsConfig() (*tls.Config, error) {
	dir := os.Getenv("DOCKER_CERT_PATH")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH is not: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("TLS: no certificate in %s", filepath.Join(dir, "ca.pem"))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Host returns the daemon address the client talks to, as given (after
// defaulting).
func (c *Client) Host() string { return c.host }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is an error answer of the engine.
type APIError struct {
	// Method and Path are the request's (Path without the version).
	Method, Path string
	// StatusCode is the HTTP status (404 not found, 409 conflict, ...).
	StatusCode int
	// Message is the engine's "message" (or the body, when it has none).
	Message string
}

// Error returns the engine's message.
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s %s: %s", e.Method, e.Path, http.StatusText(e.StatusCode))
	}
	return e.Message
}

// UnreachableError reports that the daemon did not answer at all.
type UnreachableError struct {
	// Host is the daemon address tried.
	Host string
	// Err is the network error (connection refused, no such socket...).
	Err error
	// Hint ends the message (default DefaultHint).
	Hint string
}

// Error says where gantry looked and how to point it elsewhere.
func (e *UnreachableError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = DefaultHint
	}
	return fmt.Sprintf("docker: cannot reach the daemon at %s: %v; is Docker running? %s", e.Host, e.Err, hint)
}

// Unwrap returns the network error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// IsNotFound reports whether err is the engine's 404.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }

// IsConflict reports whether err is the engine's 409 (name in use, ...).
func IsConflict(err error) bool { return statusIs(err, http.StatusConflict) }

func statusIs(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == code
}

// LabelFilter returns the "filters" query of a list request that keeps
// objects carrying every given label ("key=value" or "key").
func LabelFilter(labels ...string) url.Values {
	b, _ := json.Marshal(map[string][]string{"label": labels})
	return url.Values{"filters": {string(b)}}
}

// Do makes a request and decodes a JSON answer into out (unless out is
// nil). in is sent as JSON unless it is nil. path is the API path without
// the version prefix ("/containers/create"); it is escaped as needed.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("docker: %s %s: encode request: %w", method, path, err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.Stream(ctx, method, path, query, ctype, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("docker: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Stream makes a request with a raw body (of the given content type, if
// any) and returns the answer for the caller to read and close. An answer
// with a status of 400 or more is returned as an *APIError instead.
func (c *Client) Stream(ctx context.Context, method, path string, query url.Values, contentType string, body io.Reader) (*http.Response, error) {
	u := c.base
	u.Path = "/v" + APIVersion + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("docker: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("docker: %s %s: %w", method, path, ctx.Err())
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{Host: c.host, Err: op, Hint: c.Hint}
		}
		return nil, fmt.Errorf("docker: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var msg struct {
			Message string `json:"message"`
		}
		ae := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode}
		if json.Unmarshal(b, &msg) == nil && msg.Message != "" {
			ae.Message = msg.Message
		} else {
			ae.Message = strings.TrimSpace(string(b))
		}
		return nil, ae
	}
	return resp, nil
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.Stream(ctx, http.MethodGet, "/_ping", nil, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
