// Command shop is the web application of the examples/shop environment: a
// page that names the version, the host that served it and what the
// environment's database said, so that a client behind the load balancer
// can tell the backends apart.
//
//	shop -listen :8080 -db-file /etc/shop/db-address -version v1
//
// GET /healthz answers 200 "ok". GET / fetches http://<db>:5432/greeting
// (1 s timeout), where <db> is read from -db-file on every request (the
// web group's setup script writes it; "host:port" is taken as it is); an
// unreachable database still gives a 200 page that says so. The host name
// is $GANTRY_HOST_NAME (the inventory name, given to deployment hooks) or
// else the kernel's host name.
//
// For the traffic tests and benchmarks (none of it changes the default
// behaviour):
//
//   - GET /slow?ms=N answers 200 after N milliseconds (0 to 60000; the
//     request in flight that a drain must wait for);
//   - -error-rate R (0 to 1, default 0) answers that share of GET / with
//     500, deterministically: with 0.2 every fifth request. The bundle's
//     start.sh passes it from an optional FAULTS file next to appspec.yml
//     ("error_rate=0.2"): a bad release is the same bundle with that file;
//   - SIGTERM (ApplicationStop) stops accepting connections and lets the
//     requests in flight finish (at most 9 s, within stop.sh's 10 s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// dbPort is the port of the example's stand-in database (busybox httpd).
const dbPort = "5432"

// server holds what the handlers need.
type server struct {
	version string
	dbFile  string
	host    string
	client  *http.Client
	// errorRate is the share of GET / answered 500 (0 to 1); served
	// counts GET / requests for it.
	errorRate float64
	served    atomic.Int64
}

// maxSlow caps GET /slow's wait.
const maxSlow = 60 * time.Second

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /slow", s.slow)
	return mux
}

// fault reports whether the n-th GET / (1-based) is answered 500: the
// requests where floor(n*rate) grows, so that exactly that share fails,
// evenly spread (rate 0.2: the 5th, 10th, ...).
func fault(n int64, rate float64) bool {
	if rate <= 0 {
		return false
	}
	return int64(float64(n)*rate) > int64(float64(n-1)*rate)
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	if fault(s.served.Add(1), s.errorRate) {
		w.Header().Set("X-Served-By", s.host)
		http.Error(w, fmt.Sprintf("shop %s on %s: injected fault (error rate %g)", s.version, s.host, s.errorRate), http.StatusInternalServerError)
		return
	}
	addr, said := s.askDB(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Served-By", s.host)
	fmt.Fprintf(w, "shop %s served by %s (db %s: %s)\n", s.version, s.host, addr, said)
}

// slow answers GET /slow?ms=N after N milliseconds, or earlier with
// nothing when the client goes away.
func (s *server) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > maxSlow {
		http.Error(w, fmt.Sprintf("ms=%q: want milliseconds from 0 to %d", r.URL.Query().Get("ms"), maxSlow.Milliseconds()), http.StatusBadRequest)
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Served-By", s.host)
	fmt.Fprintf(w, "shop %s served by %s after %d ms\n", s.version, s.host, ms)
}

// askDB reads the database's address and fetches its greeting; what it
// returns for the page is "unreachable" (or "not configured") on failure.
func (s *server) askDB(ctx context.Context) (addr, said string) {
	b, err := os.ReadFile(s.dbFile)
	addr = strings.TrimSpace(string(b))
	if err != nil || addr == "" {
		return "?", "not configured"
	}
	hostport := addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		hostport = net.JoinHostPort(addr, dbPort)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+"/greeting", nil)
	if err != nil {
		return addr, "unreachable"
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return addr, "unreachable"
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil || resp.StatusCode != http.StatusOK {
		return addr, "unreachable"
	}
	return addr, strings.TrimSpace(string(body))
}

func hostName() string {
	if h := os.Getenv("GANTRY_HOST_NAME"); h != "" {
		return h
	}
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

func main() {
	listen := flag.String("listen", ":8080", "address to listen on")
	dbFile := flag.String("db-file", "/etc/shop/db-address", "file holding the database's address")
	version := flag.String("version", "v1", "version shown on the page")
	errorRate := flag.Float64("error-rate", 0, "share of GET / answered 500, 0 to 1 (a bad release for tests)")
	flag.Parse()
	if *errorRate < 0 || *errorRate > 1 {
		log.Fatalf("-error-rate %g: want 0 to 1", *errorRate)
	}

	s := &server{version: *version, dbFile: *dbFile, host: hostName(), client: &http.Client{Timeout: time.Second}, errorRate: *errorRate}
	srv := &http.Server{Addr: *listen, Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 9*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("shop %s on %s listening on %s (error rate %g)", *version, s.host, *listen, *errorRate)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-drained // requests in flight end (SIGTERM from ApplicationStop)
}
