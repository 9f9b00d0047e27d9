package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b), rec.Result().Header
}

func TestShop(t *testing.T) {
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/greeting" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "hello from db-0\n")
	}))
	defer db.Close()
	// A database that never answers: the page must not wait past the
	// client's timeout.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dbAddr := strings.TrimPrefix(db.URL, "http://")
	hangAddr := strings.TrimPrefix(hang.URL, "http://")
	tests := []struct {
		name, dbFile, want string
	}{
		{"db answers", write("ok", dbAddr+"\n"), "shop v7 served by web-3 (db " + dbAddr + ": hello from db-0)\n"},
		{"db refuses", write("refused", closedAddr), "shop v7 served by web-3 (db " + closedAddr + ": unreachable)\n"},
		{"db hangs", write("hang", hangAddr), "shop v7 served by web-3 (db " + hangAddr + ": unreachable)\n"},
		{"db without port gets 5432", write("noport", "127.0.0.1"), "shop v7 served by web-3 (db 127.0.0.1: "},
		{"no db file", filepath.Join(dir, "missing"), "shop v7 served by web-3 (db ?: not configured)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{version: "v7", dbFile: tt.dbFile, host: "web-3", client: &http.Client{Timeout: 200 * time.Millisecond}}
			code, body, h := get(t, s.routes(), "/")
			if code != 200 || !strings.HasPrefix(body, tt.want) {
				t.Errorf("GET / = %d %q, want 200 %q", code, body, tt.want)
			}
			if got := h.Get("X-Served-By"); got != "web-3" {
				t.Errorf("X-Served-By = %q", got)
			}
		})
	}

	s := &server{version: "v7", dbFile: filepath.Join(dir, "missing"), host: "web-3", client: http.DefaultClient}
	if code, body, _ := get(t, s.routes(), "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	if code, _, _ := get(t, s.routes(), "/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestHostName(t *testing.T) {
	t.Setenv("GANTRY_HOST_NAME", "e2e-web-1")
	if got := hostName(); got != "e2e-web-1" {
		t.Errorf("hostName() = %q with GANTRY_HOST_NAME set", got)
	}
	t.Setenv("GANTRY_HOST_NAME", "")
	if h, _ := os.Hostname(); hostName() != h {
		t.Errorf("hostName() = %q, want the kernel's %q", hostName(), h)
	}
}
