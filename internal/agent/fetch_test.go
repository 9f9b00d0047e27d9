package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// A bundle download cut by the server (a restart) is retried over the
// pinned TLS client and ends with the right bytes; a refusal (403) is not
// retried; a server with another CA is refused at once.
func TestFetchBundleRetriesLostConnections(t *testing.T) {
	body := strings.Repeat("bundle bytes ", 1000)
	sum := sha256.Sum256([]byte(body))
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, "/expired"):
			http.Error(w, "capability expired", http.StatusForbidden)
		case n == 1: // cut the connection half-way
			w.Header().Set("Content-Length", "13000")
			_, _ = w.Write([]byte(body[:100]))
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		default:
			_, _ = w.Write([]byte(body))
		}
	}))
	defer srv.Close()
	pin := &api.Pin{Fingerprint: api.Fingerprint(srv.Certificate().Raw)}
	a := &Agent{cfg: Config{DataDir: t.TempDir()}, id: Identity{Server: srv.URL}, log: slog.New(slog.DiscardHandler),
		bundles: httpClient(pin, srv.URL, 0)}
	d := &protocol.DeployCommand{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(body)), BundlePath: "/b"}
	path, err := a.fetchBundle(t.Context(), d)
	if err != nil {
		t.Fatalf("fetch after a lost connection: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != body || calls.Load() != 2 {
		t.Fatalf("got %d bytes after %d requests, want the bundle after 2", len(b), calls.Load())
	}

	calls.Store(10)
	d.BundlePath = "/expired"
	if _, err := a.fetchBundle(t.Context(), d); err == nil || calls.Load() != 11 {
		t.Fatalf("403: err %v after %d requests, want one refused request", err, calls.Load()-10)
	}

	a.bundles = httpClient(&api.Pin{Fingerprint: "sha256:" + strings.Repeat("00", 32)}, srv.URL, 0)
	calls.Store(20)
	d.BundlePath = "/b"
	if _, err := a.fetchBundle(t.Context(), d); err == nil || !strings.Contains(err.Error(), "pins sha256:00") || calls.Load() != 20 {
		t.Fatalf("wrong pin: err %v, %d requests reached the server", err, calls.Load()-20)
	}
}
