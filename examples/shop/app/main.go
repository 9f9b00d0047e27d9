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
	"strings"
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
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /{$}", s.index)
	return mux
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	addr, said := s.askDB(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Served-By", s.host)
	fmt.Fprintf(w, "shop %s served by %s (db %s: %s)\n", s.version, s.host, addr, said)
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
	flag.Parse()

	s := &server{version: *version, dbFile: *dbFile, host: hostName(), client: &http.Client{Timeout: time.Second}}
	srv := &http.Server{Addr: *listen, Handler: s.routes(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("shop %s on %s listening on %s", *version, s.host, *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-drained // requests in flight end (SIGTERM from ApplicationStop)
}
