package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

// An unexpected error reaches the user as an id to quote, never as its
// text (driver messages, server paths); the log has both.
func TestInternalErrorShowsOnlyARequestID(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	r := httptest.NewRequest("GET", "/api/v1/apps", nil)
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, &requestInfo{id: "req-abc"}))
	w := httptest.NewRecorder()
	writeError(w, r, fmt.Errorf("list: %w", errors.New("UNIQUE constraint failed: applications.name (1555) at /var/tmp/gantry-push-1")), log)
	var body api.Error
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || body.Error != "internal error (request id req-abc; the server log has the cause)" || body.Code != "internal" {
		t.Errorf("answer %d %+v", w.Code, body)
	}
	if l := logBuf.String(); !strings.Contains(l, "request_id=req-abc") || !strings.Contains(l, "UNIQUE constraint failed") {
		t.Errorf("the log lacks the id or the cause:\n%s", l)
	}
}

// newAppsAPI is newAPI with the revisions intake, over a real SQLite store.
func newAppsAPI(t *testing.T, log *slog.Logger) (*API, string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const tok = "test-token-0123456789"
	if err := st.CreateAPIToken(context.Background(), store.APIToken{ID: "t-1", Name: "admin", Hash: HashToken(tok), Role: "admin", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	eng := fleet.New(st, func(protocol.Command) error { return nil }, fleet.Config{}, log)
	return New(Deps{Store: st, Fleet: eng, Revisions: deploy.NewRevisions(st), Revoke: func(string) error { return nil }, Log: log, Registry: prometheus.NewRegistry()}), tok
}

func errCall(t *testing.T, a *API, tok, method, path, body string) (*httptest.ResponseRecorder, api.Error) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	var e api.Error
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return w, e
}

// A duplicate is 409 in the user's words (the store's unique violation,
// without the driver's text); an unknown app is 404 listing the apps and
// the command that creates it; every answer carries its request id.
func TestConflictAndNotFoundMessages(t *testing.T) {
	a, tok := newAppsAPI(t, slog.New(slog.DiscardHandler))
	if w, _ := errCall(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	w, e := errCall(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`)
	if want := `app "shop" already exists: pick another name, or push to it with: gantry push shop DIR`; w.Code != 409 || e.Error != want || e.Code != "conflict" {
		t.Errorf("duplicate: %d %+v, want 409 %q", w.Code, e, want)
	}
	if !strings.HasPrefix(w.Header().Get(RequestIDHeader), "req-") {
		t.Errorf("no %s header: %v", RequestIDHeader, w.Header())
	}
	w, e = errCall(t, a, tok, "GET", "/api/v1/apps/nope/groups/web", "")
	if want := `app "nope" not found; apps: shop. Create it with: gantry app create nope`; w.Code != 404 || e.Error != want {
		t.Errorf("unknown app: %d %+v, want 404 %q", w.Code, e, want)
	}
	w, e = errCall(t, a, tok, "GET", "/api/v1/apps/shop/revisions/r-x", "")
	if want := `revision "r-x" of app "shop" not found; app shop has no revisions. Push one with: gantry push shop DIR`; w.Code != 404 || e.Error != want {
		t.Errorf("unknown revision: %d %+v, want 404 %q", w.Code, e, want)
	}
}

// A handler that panics answers 500 with the request id, and the server
// goes on serving.
func TestPanicIsAnInternalError(t *testing.T) {
	var logBuf bytes.Buffer
	a, tok := newAPI(t)
	a.d.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	a.d.Revisions = nil // createApp dereferences it
	w, e := errCall(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`)
	id := w.Header().Get(RequestIDHeader)
	if w.Code != 500 || id == "" || !strings.Contains(e.Error, "request id "+id) {
		t.Errorf("panic: %d %+v (request id %q)", w.Code, e, id)
	}
	if !strings.Contains(logBuf.String(), "handler panicked") {
		t.Errorf("panic not logged:\n%s", logBuf.String())
	}
	if w, _ := errCall(t, a, tok, "GET", "/api/v1/apps", ""); w.Code != http.StatusOK {
		t.Errorf("after the panic: %d", w.Code)
	}
}

// An apply stream's final error shows the error's text unless a SQL driver
// wrote it (then an internal error with the request id, logged).
func TestStreamErrorHidesDriverText(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.CreateApplication(ctx, api.Application{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	dup := st.CreateApplication(ctx, api.Application{Name: "web"})
	if !fromDriver(dup) || !errors.Is(dup, store.ErrConflict) {
		t.Fatalf("duplicate: %v (fromDriver %v)", dup, fromDriver(dup))
	}
	var driver error = dup
	for errors.Unwrap(driver) != nil {
		driver = errors.Unwrap(driver)
	}
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	r := httptest.NewRequest("POST", "/api/v1/envs/dev/apply", nil)
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, &requestInfo{id: "req-s"}))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("record the state of dev: %w", driver), "internal error (request id req-s; the server log has the cause)"},
		{dup, "create application web: already exists"},
		{errors.New(`group.web[0]: image "x" not found locally`), `group.web[0]: image "x" not found locally`},
	} {
		if got := streamError(r, tc.err, log); got != tc.want {
			t.Errorf("streamError(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if !strings.Contains(logBuf.String(), "request_id=req-s") {
		t.Errorf("driver error not logged:\n%s", logBuf.String())
	}
}
