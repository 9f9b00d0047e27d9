// Package httpapi is gantry's HTTP API under /api/v1, plus /healthz,
// /readyz and /metrics.
//
// Routes are declared once, in a table (routes.go) that drives both the
// standard-library mux and the OpenAPI document served at
// /api/v1/openapi.json, so the document cannot drift from the routes.
// Every route requires a bearer token unless the table says otherwise
// (only /healthz, /readyz and the agents' enrollment, which carries a join
// token instead). Authorization happens before any body is read. Errors are
// mapped to statuses in one place (errors.go).
//
// Decisions recorded with their code: an agent's requested labels are
// limited by its join token and a request outside the limit is refused,
// not stripped (enroll.go); API tokens carry a name, an owner and an
// expiry, and only admin tokens manage tokens (tokens.go); creates of jobs
// and deployments are idempotent under an Idempotency-Key header
// (idempotency.go); a bundle capability is honoured only while its host is
// enrolled, so `gantry hosts rm` voids it at once (deployments.go).
package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// Deps are what the API serves from.
type Deps struct {
	Store store.Store
	Fleet *fleet.Engine
	// Revisions takes in applications and pushed bundles.
	Revisions *deploy.Revisions
	// Deploy runs deployment groups and deployments.
	Deploy *deploy.Engine
	// Infra plans and applies environments.
	Infra *infra.Engine
	// Traffic reads and changes load balancers (nil: the load balancer
	// routes answer 503).
	Traffic *traffic.Controller
	// Capabilities checks bundle download capabilities.
	Capabilities deploy.Capabilities
	// Blobs caches the bundles agents download (nil: read the store each time).
	Blobs *deploy.BlobCache
	// Revoke drops the bus connections of an agent key (after the store
	// revoked its host).
	Revoke func(nkey string) error
	// BusURLs and ServerKey are handed to enrolling agents.
	BusURLs   []string
	ServerKey string
	// CAFingerprint is the server's CA pin, appended to every join token
	// made here ("" when TLS is off; see pki.FormatJoinToken).
	CAFingerprint string
	// Ready reports whether the server can take work.
	Ready    func() bool
	Log      *slog.Logger
	Registry *prometheus.Registry
}

// API is the HTTP handler.
type API struct {
	d       Deps
	mux     *http.ServeMux
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	// idemPurged is when expired idempotency keys were last purged (Unix ns).
	idemPurged atomic.Int64
}

// New builds the handler with every route of the table.
func New(d Deps) *API {
	a := &API{d: d, mux: http.NewServeMux()}
	a.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_http_requests_total", Help: "HTTP requests by route and status."}, []string{"route", "code"})
	a.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gantry_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"})
	d.Registry.MustRegister(a.reqs, a.latency)
	for _, r := range a.routes() {
		a.mux.Handle(r.Method+" "+r.Path, a.wrap(r))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Error: "no route " + r.Method + " " + r.URL.Path + " (see /api/v1/openapi.json)", Code: "not_found"})
	})
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type principalKey struct{}

// wrap adds authentication, metrics and panic safety to a route.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		info := &requestInfo{id: ids.New("req"), api: a}
		sw.Header().Set(RequestIDHeader, info.id)
		r = r.WithContext(context.WithValue(r.Context(), requestKey{}, info))
		defer func() {
			a.reqs.WithLabelValues(rt.Path, http.StatusText(sw.code)).Inc()
			a.latency.WithLabelValues(rt.Path).Observe(time.Since(start).Seconds())
		}()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.d.Log.Error("handler panicked", "request_id", info.id, "panic", p, "stack", string(debug.Stack()))
				if !sw.wrote {
					writeError(sw, r, fmt.Errorf("panic: %v", p), a.d.Log)
				}
			}
		}()
		if !rt.Public {
			tok, err := a.authenticate(r)
			if err != nil {
				sw.Header().Set("WWW-Authenticate", `Bearer realm="gantry"`)
				writeError(sw, r, err, a.d.Log)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, tok))
			if rt.Admin {
				if err := requireAdmin(r); err != nil {
					writeError(sw, r, err, a.d.Log)
					return
				}
			}
		}
		if rt.Body != nil {
			limit := rt.MaxBody
			if limit == 0 {
				limit = 1 << 20
			}
			r.Body = http.MaxBytesReader(sw, r.Body, limit)
		}
		rt.Handler(sw, r)
	})
}

// authenticate checks the bearer token against the stored hashes.
func (a *API) authenticate(r *http.Request) (store.APIToken, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return store.APIToken{}, errUnauthorized("missing bearer token: pass --token, set GANTRY_TOKEN or run `gantry login`")
	}
	t, err := a.d.Store.GetAPITokenByHash(r.Context(), HashToken(tok))
	if err != nil {
		return store.APIToken{}, errUnauthorized("invalid token")
	}
	if t.Expired(time.Now()) {
		return store.APIToken{}, errTokenExpired(t)
	}
	return t, nil
}

// HashToken is how API and join tokens are stored: hex SHA-256. Tokens are
// 256-bit random values, so a plain hash is enough (no password stretching).
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool // the header was sent
}

// RequestIDHeader carries the id the server gives every API request; an
// internal error names it so that the operator can find the cause in the
// server log.
const RequestIDHeader = "X-Request-Id"

type requestKey struct{}

// requestInfo is what error mapping needs to know about a request: its id
// (for the log and the user) and the API (to list valid names when
// something is not found).
type requestInfo struct {
	id  string
	api *API
}

func (s *statusWriter) WriteHeader(code int) {
	s.code, s.wrote = code, true
	s.ResponseWriter.WriteHeader(code)
}

// Write marks the header as sent.
func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeList writes a JSON array (never null), or the error.
func writeList[T any](a *API, w http.ResponseWriter, r *http.Request, items []T, err error) {
	if err != nil {
		writeError(w, r, err, a.d.Log)
		return
	}
	if items == nil {
		items = []T{}
	}
	writeJSON(w, 200, items)
}

func (a *API) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.d.Registry, promhttp.HandlerOpts{})
}
