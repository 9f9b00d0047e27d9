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

// TestFaultsAndSlow: -error-rate answers exactly that share of GET / with
// 500, evenly spread (the bad release of the traffic tests), and GET
// /slow?ms=N answers after N ms.
func TestFaultsAndSlow(t *testing.T) {
	dir := t.TempDir()
	s := &server{version: "v2", dbFile: filepath.Join(dir, "missing"), host: "web-1", client: http.DefaultClient, errorRate: 0.2}
	h := s.routes()
	var failed []int
	for i := 1; i <= 100; i++ {
		if code, _, _ := get(t, h, "/"); code == 500 {
			failed = append(failed, i)
		} else if code != 200 {
			t.Fatalf("GET / #%d = %d", i, code)
		}
	}
	if len(failed) != 20 || failed[0] != 5 || failed[1] != 10 {
		t.Errorf("error rate 0.2: requests answered 500 = %v, want every fifth (20 of 100)", failed)
	}
	s0 := &server{version: "v1", dbFile: filepath.Join(dir, "missing"), host: "web-1", client: http.DefaultClient}
	for i := range 50 {
		if code, _, _ := get(t, s0.routes(), "/"); code != 200 {
			t.Fatalf("error rate 0: GET / #%d = %d", i, code)
		}
	}

	start := time.Now()
	code, body, _ := get(t, h, "/slow?ms=150")
	if el := time.Since(start); code != 200 || el < 150*time.Millisecond || !strings.Contains(body, "after 150 ms") {
		t.Errorf("GET /slow?ms=150 = %d %q after %s", code, body, el)
	}
	for _, bad := range []string{"/slow", "/slow?ms=-1", "/slow?ms=x", "/slow?ms=60001"} {
		if code, _, _ := get(t, h, bad); code != 400 {
			t.Errorf("GET %s = %d, want 400", bad, code)
		}
	}
}
