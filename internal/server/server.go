// Package server is the composition root of the gantry control plane: it
// opens the store (SQLite in the data directory, or PostgreSQL), starts the
// bus (embedded NATS, or an external one), the engines and the HTTP API, and
// shuts them down in order.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/httpapi"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/pki"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/postgres"
	"github.com/gantry-dev/gantry/internal/store/sqlite"
	"github.com/gantry-dev/gantry/internal/traffic"
)

// Config is the server's configuration (flags of `gantry server`).
type Config struct {
	// DataDir holds the SQLite database, the command-signing key and
	// dev-mode files (default ./gantry-data).
	DataDir string
	// Listen is the HTTP address (default 127.0.0.1:7070).
	Listen string
	// NATSListen is the embedded NATS address (default 127.0.0.1:7422).
	NATSListen string
	// NATSAdvertise is the bus URL given to agents (default tls://NATSListen,
	// or nats://NATSListen with NoTLS).
	NATSAdvertise string
	// NATSURL uses an external NATS instead of the embedded one.
	NATSURL string
	// Database is a postgres:// URL; empty means SQLite in DataDir.
	Database string
	// AdminToken, if set (GANTRY_ADMIN_TOKEN), is ensured to exist as an
	// admin API token.
	AdminToken string
	// NoTLS serves plain HTTP and a plain bus (for a TLS-terminating front
	// proxy); default false: TLS on both.
	NoTLS bool
	// TLSCert, TLSKey and TLSCA are a user-supplied serving certificate,
	// its key and the CA that issued it (all three or none; default none:
	// gantry's own CA in DataDir, see package pki).
	TLSCert, TLSKey, TLSCA string
	// TLSSANs are extra names and addresses for the self-issued serving
	// certificate (besides the listen and advertise addresses).
	TLSSANs []string
	// Heartbeat is the agents' heartbeat interval (default 5s).
	Heartbeat time.Duration
	// MinScheduleInterval is the shortest interval between two runs of a
	// new schedule (default 10s).
	MinScheduleInterval time.Duration
	// AgentBinary is the static gantry binary that providers install as
	// the agent on new machines (default: this server's own executable).
	AgentBinary string
	// Log receives the server's structured log.
	Log *slog.Logger
}

// absolutePaths resolves the configured paths against the working
// directory once, at start: the server hands them (and paths under them)
// to providers and agents, which run in directories of their own, so a
// relative --data-dir (`make dev`'s default ./gantry-data) or
// --agent-binary would point elsewhere for them.
func (cfg *Config) absolutePaths() error {
	for _, p := range []struct {
		flag string
		path *string
	}{{"--data-dir", &cfg.DataDir}, {"--agent-binary", &cfg.AgentBinary}, {"--tls-cert", &cfg.TLSCert}, {"--tls-key", &cfg.TLSKey}, {"--tls-ca", &cfg.TLSCA}} {
		if *p.path == "" || filepath.IsAbs(*p.path) {
			continue
		}
		abs, err := filepath.Abs(*p.path)
		if err != nil {
			return fmt.Errorf("%s %s: make the path absolute: %w", p.flag, *p.path, err)
		}
		*p.path = abs
	}
	return nil
}

// Server is a running control plane.
type Server struct {
	cfg    Config
	log    *slog.Logger
	st     store.Store
	bus    *bus.Bus
	fleet  *fleet.Engine
	deploy *deploy.Engine
	infra  *infra.Engine
	http   *http.Server
	ln     net.Listener
	tls    *pki.Serving
	cancel context.CancelFunc
	ready  atomic.Bool
	// NewAdminToken is the admin token created at this start, if any: it is
	// shown once and never again.
	NewAdminToken string

	// traffic drives load balancers through their machines' agents.
	traffic *traffic.Controller
}

// Start opens everything and serves in the background. Close stops it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "gantry-data"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:7070"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.absolutePaths(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
	}
	s := &Server{cfg: cfg, log: cfg.Log}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	var err error
	if s.st, err = openStore(ctx, cfg); err != nil {
		return nil, err
	}
	if err := s.bootstrapAdmin(ctx); err != nil {
		return nil, err
	}
	signer, err := bus.LoadOrCreateSigner(filepath.Join(cfg.DataDir, "server.nkey"))
	if err != nil {
		return nil, err
	}
	bo := bus.Options{Listen: cfg.NATSListen, Advertise: cfg.NATSAdvertise, ExternalURL: cfg.NATSURL, CalloutKey: filepath.Join(cfg.DataDir, "nats-callout.nkey"), Log: cfg.Log, Lookup: s.lookupHost}
	if !cfg.NoTLS {
		natsListen := cfg.NATSListen
		if natsListen == "" {
			natsListen = bus.DefaultListen
		}
		s.tls, err = pki.OpenServing(pki.ServingOptions{
			Dir: cfg.DataDir, Names: pki.Names([]string{cfg.Listen, natsListen}, []string{cfg.NATSAdvertise}, cfg.TLSSANs),
			CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA, Log: cfg.Log,
		})
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		bo.TLSConfig = s.tls.TLSConfig()
	}
	s.bus, err = bus.Start(bo)
	if err != nil {
		return nil, err
	}
	send := func(c protocol.Command) error {
		m, err := signer.Message(c)
		if err != nil {
			return err
		}
		return s.bus.Conn.PublishMsg(m)
	}
	capKey, err := s.secret(ctx, "bundle-capability-key")
	if err != nil {
		return nil, err
	}
	caps := deploy.Capabilities{Key: capKey}
	s.fleet = fleet.New(s.st, send, fleet.Config{Heartbeat: cfg.Heartbeat, MinScheduleInterval: cfg.MinScheduleInterval, OnExecDone: func(job, exec string) {
		s.deploy.ExecDone(job, exec)
		s.infra.Kick()
	}}, cfg.Log)
	s.deploy = deploy.NewEngine(s.st, s.fleet, caps.Path, deploy.EngineConfig{}, cfg.Log)
	// Load balancer commands are requests: signed like every command, sent
	// on the host's command subject, answered by its agent.
	s.traffic = traffic.New(s.st, s.fleet, traffic.RequesterFunc(func(ctx context.Context, c protocol.Command) ([]byte, error) {
		m, err := signer.Message(c)
		if err != nil {
			return nil, err
		}
		reply, err := s.bus.Conn.RequestMsgWithContext(ctx, m)
		if err != nil {
			return nil, err
		}
		return reply.Data, nil
	}))
	s.deploy.SetLoadBalancers(s.traffic)
	s.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	if s.infra, err = s.newInfra(); err != nil {
		return nil, err
	}
	// Blue/green deployments of environment groups get their replacement
	// machines from the environments engine.
	s.deploy.SetFleets(s.infra)
	if err := s.subscribe(); err != nil {
		return nil, err
	}
	ectx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.fleet.Start(ectx); err != nil {
		return nil, err
	}
	if err := s.deploy.Start(ectx); err != nil {
		return nil, err
	}
	s.infra.Start(ectx)
	if s.tls != nil {
		go s.tls.Run(ectx)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler := httpapi.New(httpapi.Deps{
		Store: s.st, Fleet: s.fleet, Revisions: revisionsIn(cfg.DataDir, s.st), Deploy: s.deploy, Infra: s.infra, Traffic: s.traffic, Capabilities: caps, Blobs: deploy.NewBlobCache(s.st, blobCacheBytes), Revoke: s.bus.Disconnect, BusURLs: s.bus.AgentURLs(), ServerKey: signer.PublicKey(), CAFingerprint: s.CAFingerprint(),
		Ready: s.ready.Load, Log: cfg.Log, Registry: reg,
	})
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serve := func() error { return s.http.Serve(s.ln) }
	if s.tls != nil {
		s.http.TLSConfig = s.tls.TLSConfig()
		serve = func() error { return s.http.ServeTLS(s.ln, "", "") }
	} else {
		s.log.Warn("TLS is off (--tls=false): the API and the bus are plain text; only run so behind a TLS-terminating proxy on a trusted network")
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	s.ready.Store(true)
	ok = true
	s.log.Info("gantry server ready", "http", s.URL(), "ca_fingerprint", s.CAFingerprint(), "nats", s.bus.AgentURLs(), "data_dir", cfg.DataDir, "database", storeKind(cfg))
	return s, nil
}

// newInfra makes the environments engine: machines get this server's
// own binary (or --agent-binary) as their agent, and join tokens of one
// use.
func (s *Server) newInfra() (*infra.Engine, error) {
	bin := s.cfg.AgentBinary
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own binary for agents: %w", err)
		}
		bin = self
	}
	busURL := ""
	if urls := s.bus.AgentURLs(); len(urls) > 0 {
		busURL = urls[0]
	}
	newToken := func(ctx context.Context, owner string, labels map[string]string, ttl time.Duration) (string, error) {
		secret := ids.Secret("gjt")
		now := time.Now().UTC()
		err := s.st.CreateJoinToken(ctx, store.JoinTokenRecord{Hash: httpapi.HashToken(secret), JoinToken: api.JoinToken{
			ID: ids.New("jt"), Labels: labels, ExpiresAt: now.Add(ttl), MaxUses: 1, CreatedAt: now, Internal: true, Owner: owner}})
		return pki.FormatJoinToken(secret, s.CAFingerprint()), err
	}
	voidTokens := func(ctx context.Context, owner string) {
		if _, err := s.st.DeleteJoinTokensOf(ctx, owner); err != nil {
			s.log.Warn("void the join tokens of a deleted machine", "owner", owner, "err", err)
		}
	}
	revoke := func(hostID string) {
		if h, err := s.st.GetHost(context.Background(), hostID); err == nil {
			_ = s.bus.Disconnect(h.NKey)
		}
		s.fleet.Forget(hostID)
	}
	return infra.New(s.st, s.fleet, s.deploy, infra.Config{
		DataDir: filepath.Join(s.cfg.DataDir, "infra"), Agent: provider.Agent{Binary: bin, ServerURL: s.URL(), BusURL: busURL, Insecure: s.tls == nil},
		Revoke: revoke, NewJoinToken: newToken, VoidJoinTokens: voidTokens, LB: s.traffic,
	}, s.log), nil
}

// blobCacheBytes bounds the memory of recently served bundles.
const blobCacheBytes = 256 << 20

// revisionsIn stages pushed bundles under the data directory.
func revisionsIn(dataDir string, st store.Store) *deploy.Revisions {
	r := deploy.NewRevisions(st)
	r.TempDir = filepath.Join(dataDir, "tmp")
	_ = os.MkdirAll(r.TempDir, 0o700)
	return r
}

func storeKind(cfg Config) string {
	if cfg.Database != "" {
		return "postgres"
	}
	return "sqlite"
}

func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	switch {
	case cfg.Database == "":
		return sqlite.Open(filepath.Join(cfg.DataDir, "gantry.db"))
	case strings.HasPrefix(cfg.Database, "postgres://"), strings.HasPrefix(cfg.Database, "postgresql://"):
		return postgres.Open(ctx, cfg.Database)
	default:
		return nil, fmt.Errorf("--database %q: want a postgres:// URL, or nothing for SQLite in the data dir", redact(cfg.Database))
	}
}

// redact hides a password in a URL for error messages.
func redact(u string) string {
	if at := strings.Index(u, "@"); at > 0 {
		if c := strings.Index(u, "://"); c > 0 && c < at {
			return u[:c+3] + "…@" + u[at+1:]
		}
	}
	return u
}

// bootstrapAdmin makes sure an admin token exists: GANTRY_ADMIN_TOKEN if
// given, else a new one on the very first start (kept in NewAdminToken).
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	if tok := s.cfg.AdminToken; tok != "" {
		if len(tok) < 16 {
			return errors.New("GANTRY_ADMIN_TOKEN must be at least 16 characters")
		}
		h := httpapi.HashToken(tok)
		if _, err := s.st.GetAPITokenByHash(ctx, h); err == nil {
			return nil
		}
		return s.st.CreateAPIToken(ctx, store.APIToken{ID: ids.New("t"), Name: "admin (GANTRY_ADMIN_TOKEN)", Hash: h, Role: "admin", CreatedAt: time.Now().UTC()})
	}
	n, err := s.st.CountAPITokens(ctx)
	if err != nil || n > 0 {
		return err
	}
	tok := ids.Secret("gat")
	if err := s.st.CreateAPIToken(ctx, store.APIToken{ID: ids.New("t"), Name: "admin", Hash: httpapi.HashToken(tok), Role: "admin", CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	s.NewAdminToken = tok
	return nil
}

// secret returns a server-wide random 32-byte key kept in the store's
// settings, created on first use (shared by servers on one store).
func (s *Server) secret(ctx context.Context, name string) ([]byte, error) {
	b, err := s.st.GetSetting(ctx, name)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := s.st.PutSetting(ctx, name, b); err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return b, nil
}

// lookupHost authenticates agent keys on the bus.
func (s *Server) lookupHost(nkey string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := s.st.GetHostByNKey(ctx, nkey)
	if err != nil || h.Status == api.HostRevoked {
		return "", false
	}
	return h.ID, true
}

// URL is the server's HTTP base URL.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "https://"
	if s.tls == nil {
		scheme = "http://"
	}
	return scheme + net.JoinHostPort(host, fmt.Sprint(addr.Port))
}

// CAFingerprint is the pin of the server's CA ("sha256:<hex>"), or "" when
// TLS is off.
func (s *Server) CAFingerprint() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.Fingerprint()
}

// ExternalNATSConfig is the authorization block an external NATS needs so
// that gantry authenticates agents (auth callout); "" on the embedded bus.
func (s *Server) ExternalNATSConfig() string { return s.bus.ExternalConfig() }

// Store is the server's store (dev mode makes its join token with it).
func (s *Server) Store() store.Store { return s.st }

// Fleet is the server's fleet engine.
func (s *Server) Fleet() *fleet.Engine { return s.fleet }

// Close shuts down gracefully: HTTP (in-flight requests finish, up to 10 s),
// engines, bus, store.
func (s *Server) Close() {
	s.ready.Store(false)
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.infra != nil {
		s.infra.Close()
	}
	if s.bus != nil {
		s.bus.Close()
	}
	if s.st != nil {
		_ = s.st.Close()
	}
}
