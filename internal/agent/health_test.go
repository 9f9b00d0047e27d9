package agent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

func TestHealthCheck(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable) // starting up
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, tc := range []struct {
		name string
		hc   api.HealthCheck
		want string // "" = passes; else a substring of the error
	}{
		{"http passes once ready", api.HealthCheck{HTTP: srv.URL, ExpectStatus: 204, IntervalMillis: 10, TimeoutSeconds: 5}, ""},
		{"http wrong status", api.HealthCheck{HTTP: srv.URL, ExpectStatus: 200, IntervalMillis: 10, TimeoutSeconds: 1}, "status 204, want 200"},
		{"tcp port", api.HealthCheck{TCP: port, TimeoutSeconds: 1}, ""},
		{"tcp closed", api.HealthCheck{TCP: closedAddr, IntervalMillis: 50, TimeoutSeconds: 1}, "did not pass within 1s"},
		{"command passes", api.HealthCheck{Command: []string{"true"}, TimeoutSeconds: 1}, ""},
		{"command fails with output", api.HealthCheck{Command: []string{"sh", "-c", "echo not ready; exit 3"}, IntervalMillis: 50, TimeoutSeconds: 1}, "not ready"},
		{"argument is not shell", api.HealthCheck{Command: []string{"test", "-n", "$(touch /tmp/gantry-health-injected)"}, TimeoutSeconds: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := runHealthCheck(context.Background(), tc.hc)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want pass, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
	if _, err := os.Stat("/tmp/gantry-health-injected"); err == nil {
		os.Remove("/tmp/gantry-health-injected")
		t.Fatal("a health check argument was run by a shell")
	}
}
