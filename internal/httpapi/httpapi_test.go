package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
)

func newAPI(t *testing.T) (*API, string) {
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
	log := slog.New(slog.DiscardHandler)
	eng := fleet.New(st, func(protocol.Command) error { return nil }, fleet.Config{}, log)
	return New(Deps{Store: st, Fleet: eng, Revoke: func(string) error { return nil }, Log: log, Registry: prometheus.NewRegistry()}), tok
}

// Every route not marked public refuses a request without a valid token,
// before looking at its body.
func TestEveryRouteNeedsAToken(t *testing.T) {
	a, tok := newAPI(t)
	for _, rt := range a.routes() {
		path := strings.NewReplacer("{host}", "h-x", "{id}", "j-x").Replace(rt.Path)
		for _, auth := range []string{"", "Bearer wrong", "Basic " + tok, "Bearer "} {
			req := httptest.NewRequest(rt.Method, path, strings.NewReader("{not json"))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			a.ServeHTTP(w, req)
			if rt.Public {
				if w.Code == http.StatusUnauthorized && rt.Path != "/api/v1/enroll" {
					t.Errorf("public %s %s answered 401", rt.Method, rt.Path)
				}
				continue
			}
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s %s with auth %q: %d, want 401", rt.Method, rt.Path, auth, w.Code)
			}
		}
	}
}

// The OpenAPI document has exactly the table's routes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	a, _ := newAPI(t)
	b, _ := json.Marshal(a.OpenAPI())
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rt := range a.routes() {
		if _, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]; !ok {
			t.Errorf("document lacks %s %s", rt.Method, rt.Path)
		}
		n++
	}
	m := 0
	for _, ops := range doc.Paths {
		m += len(ops)
	}
	if m != n {
		t.Errorf("document has %d operations, the table %d", m, n)
	}
	if !strings.Contains(string(b), `"exit_code"`) || !strings.Contains(string(b), `"stdout_truncated"`) {
		t.Error("Job schema lacks execution fields")
	}
}
