package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"syscall"
	"time"
)

// IdempotencyKeyHeader is the request header that makes a create
// idempotent: a repeat with the same key (from the same API token) returns
// the first result instead of creating again. The server keeps keys 24 h.
const IdempotencyKeyHeader = "Idempotency-Key"

type idempotencyKeyCtx struct{}

// NewIdempotencyKey returns a random key (128 bits, hex).
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// WithIdempotencyKey returns a context whose create requests (CreateJob,
// Deploy, Rollback) carry key. Without one, each such call makes its own
// random key, used for that call's retries.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

// idempotencyKey returns the key ctx carries, if any.
func idempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKeyCtx{}).(string)
	return k
}

// createRetryDelays are the waits between the attempts of a create: a
// retry is safe because every attempt carries the same Idempotency-Key.
var createRetryDelays = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

// create POSTs an idempotent create with an Idempotency-Key (ctx's, or a
// new one) and retries it with the same key when the server could not be
// reached, the connection broke, the server answered 502, 503 or 504, or
// the first attempt with the key is still running (409
// idempotency_in_progress).
func (c *Client) create(ctx context.Context, p string, body, out any) error {
	if idempotencyKey(ctx) == "" {
		ctx = WithIdempotencyKey(ctx, NewIdempotencyKey())
	}
	for attempt := 0; ; attempt++ {
		err := c.do(ctx, http.MethodPost, p, nil, body, out)
		if err == nil || attempt >= len(createRetryDelays) || !retryableCreate(ctx, err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(createRetryDelays[attempt]):
		}
	}
}

// retryableCreate reports whether a failed create may be sent again.
func retryableCreate(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		case http.StatusConflict:
			return se.Code == "idempotency_in_progress"
		}
		return false
	}
	// No status: retry only what a new connection may fix (refused,
	// reset, cut short), not a bad URL, a certificate or a timeout.
	var ue *UnreachableError
	return errors.As(err, &ue) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}
