package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/validate"
)

// Idempotent creates (issue 9, item 6). A create route marked Idempotent
// accepts an Idempotency-Key header (1 to 255 visible ASCII characters;
// the CLI sends a random one per invocation and reuses it on its own
// retries). The first request with a key claims it in the store, keyed by
// (caller's API token id, key), with a SHA-256 of its method, path and
// body bytes; the claim is a primary-key insert, so of two concurrent
// requests only one runs. When the create succeeds the key records what
// it created and the status; a repeat with the same key and the same
// request answers that status with the resource as it is now (header
// Idempotent-Replayed: true) and creates nothing. The same key with
// another request is refused with 422 "idempotency_key_reused". A repeat
// that arrives while the first still runs waits for it (up to
// idempotencyWait), then gets 409 "idempotency_in_progress". A create that
// fails releases its claim, so a retry runs again. Keys are kept for
// idempotencyTTL and purged at most once an hour, by a request.
//
// Not covered: a server that dies between storing the resource and
// recording the key leaves the claim unfinished; repeats then get 409 (the
// message says to check before retrying with a new key) rather than a
// second resource.
const (
	// IdempotencyKeyHeader names the request header.
	IdempotencyKeyHeader = "Idempotency-Key"
	idempotencyTTL       = 24 * time.Hour
	idempotencyWait      = 10 * time.Second
	idempotencyPoll      = 50 * time.Millisecond
	// idempotencyStale is how old an unfinished claim is before a repeat
	// is told it was probably abandoned.
	idempotencyStale = time.Minute
)

// createFunc creates a resource and returns its id and wire form.
type createFunc func(r *http.Request) (id string, v any, err error)

// loadFunc returns the wire form of a created resource by id.
type loadFunc func(ctx context.Context, id string) (any, error)

// validIdempotencyKey checks a key's length and characters.
func validIdempotencyKey(k string) error {
	if len(k) == 0 || len(k) > validate.MaxIdempotencyKey {
		return errBadRequest(fmt.Sprintf("%s header: must be 1 to %d characters, got %d", IdempotencyKeyHeader, validate.MaxIdempotencyKey, len(k)))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return errBadRequest(fmt.Sprintf("%s header: only visible ASCII characters are allowed (byte %d is 0x%02x)", IdempotencyKeyHeader, i, k[i]))
		}
	}
	return nil
}

// idempotent runs create at most once per (caller, Idempotency-Key) and
// writes its result with status 201, or replays the first result.
func (a *API) idempotent(w http.ResponseWriter, r *http.Request, create createFunc, load loadFunc) {
	key := r.Header.Get(IdempotencyKeyHeader)
	if key == "" {
		_, v, err := create(r)
		writeResult(a, w, r, http.StatusCreated, v, err)
		return
	}
	if err := validIdempotencyKey(key); err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.New()
	fmt.Fprintf(sum, "%s\n%s\n", r.Method, r.URL.Path)
	sum.Write(body)
	now := time.Now().UTC()
	caller, _ := principal(r)
	k := store.IdempotencyKey{Caller: caller.ID, Key: key, RequestHash: hex.EncodeToString(sum.Sum(nil)), CreatedAt: now, ExpiresAt: now.Add(idempotencyTTL)}
	a.purgeIdempotencyKeys(now)

	deadline := now.Add(idempotencyWait)
	for {
		rec, claimed, err := a.d.Store.ClaimIdempotencyKey(r.Context(), k, time.Now().UTC())
		switch {
		case err != nil:
			writeError(w, r, err, a.d.Log)
			return
		case claimed:
			a.runClaimed(w, r, k, create)
			return
		case rec.RequestHash != k.RequestHash:
			writeError(w, r, &apiError{http.StatusUnprocessableEntity, "idempotency_key_reused", fmt.Sprintf(
				"%s %q was already used at %s for a different request; send a new key for a new request",
				IdempotencyKeyHeader, key, rec.CreatedAt.Format(time.RFC3339))}, a.d.Log)
			return
		case rec.ResourceID != "":
			v, err := load(r.Context(), rec.ResourceID)
			if err != nil {
				writeError(w, r, fmt.Errorf("replay of %s %q (created %s): %w", IdempotencyKeyHeader, key, rec.ResourceID, err), a.d.Log)
				return
			}
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSON(w, rec.Status, v)
			return
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			msg := fmt.Sprintf("a request with %s %q is still running; retry later with the same key", IdempotencyKeyHeader, key)
			if time.Since(rec.CreatedAt) > idempotencyStale {
				msg = fmt.Sprintf("the first request with %s %q (at %s) never finished (the server may have restarted); check whether it created anything before retrying with a new key",
					IdempotencyKeyHeader, key, rec.CreatedAt.Format(time.RFC3339))
			}
			writeError(w, r, &apiError{http.StatusConflict, "idempotency_in_progress", msg}, a.d.Log)
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(idempotencyPoll):
		}
	}
}

// runClaimed runs create for a key this request claimed, then records its
// result (or releases the claim if it failed).
func (a *API) runClaimed(w http.ResponseWriter, r *http.Request, k store.IdempotencyKey, create createFunc) {
	id, v, err := create(r)
	ctx := context.WithoutCancel(r.Context())
	if err != nil {
		if rerr := a.d.Store.ReleaseIdempotencyKey(ctx, k.Caller, k.Key); rerr != nil {
			a.d.Log.Warn("release idempotency key", "key", k.Key, "err", rerr)
		}
		writeError(w, r, err, a.d.Log)
		return
	}
	if ferr := a.d.Store.FinishIdempotencyKey(ctx, k.Caller, k.Key, id, http.StatusCreated); ferr != nil {
		a.d.Log.Error("record idempotency key", "key", k.Key, "resource", id, "err", ferr)
	}
	writeJSON(w, http.StatusCreated, v)
}

// purgeIdempotencyKeys deletes expired keys in the background, at most
// once an hour per server.
func (a *API) purgeIdempotencyKeys(now time.Time) {
	last := a.idemPurged.Load()
	if now.UnixNano()-last < int64(time.Hour) || !a.idemPurged.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if n, err := a.d.Store.PurgeIdempotencyKeys(ctx, now); err != nil {
			a.d.Log.Warn("purge idempotency keys", "err", err)
		} else if n > 0 {
			a.d.Log.Debug("purged idempotency keys", "count", n)
		}
	}()
}
