// Package agent is the gantry host agent: it enrolls once with a join token,
// keeps its own NATS identity (an nkey pair made on the host, the private
// half never leaves it), reports facts and heartbeats, and runs the signed
// commands addressed to it.
//
// Exactly-once start and at-least-once results come from the journal: an
// execution id is recorded on disk before its script starts, a repeat
// delivery is answered with the recorded result (or ignored while it runs),
// and results stay in the outbox until the server acknowledges them, across
// reconnects and restarts of either side. A command that was running when
// the agent died is reported as unknown and never run again.
//
// The agent measures its clock against the server's from every hello reply
// and reports the skew in its heartbeats; it checks commands' expiry against
// the server's time (its clock corrected by the skew), and answers a command
// refused as expired with a failure naming the skew (see clock.go).
//
// Several agents can run in one process (each with its own Config and data
// directory): the fleet benchmark emulates thousands that way.
package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/agent/journal"
	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/pki"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// Config configures an agent.
type Config struct {
	// Server is the gantry server's HTTP URL, used only to enroll.
	Server string
	// BusURLs, if set, are used instead of the bus URLs the server gave at
	// enrollment (a machine that reaches the bus at another address than
	// the one the server advertises: containers, network namespaces).
	BusURLs []string
	// JoinToken enrolls the agent the first time; ignored once enrolled.
	JoinToken string
	// Name is the host's name in the inventory (default: the hostname).
	Name string
	// Labels are requested at enrollment (the join token's labels win).
	Labels map[string]string
	// DataDir holds the identity (mode 0600) and the journal.
	DataDir string
	// Version is reported in the facts.
	Version string
	// Log receives the agent's log.
	Log *slog.Logger
	// Facts overrides fact gathering (tests, emulated agents); nil = gather.
	Facts func() api.Facts
	// NoExec, for emulated agents, answers every command with exit code 0
	// without starting a process; deployments fetch and verify the bundle
	// but run no event.
	NoExec bool
	// KeepRevisions is the number of revision directories kept per
	// application for fast rollback (default 5).
	KeepRevisions int
	// Insecure accepts a plain http:// server and a plain nats:// bus
	// (default false: refused). See tls.go.
	Insecure bool
	// DestRoot is prefixed to every absolute destination of an appspec
	// ("" = the host's file system). Tests use it to run several agents on
	// one machine.
	DestRoot string
	// ClockOffset shifts the agent's clock, for tests only (emulating a
	// host whose clock is off); 0 = read GANTRY_TEST_CLOCK_OFFSET, which
	// is unset in production. See clock.go.
	ClockOffset time.Duration
}

// Identity is what enrollment gives an agent; saved as identity.json.
type Identity struct {
	HostID          string   `json:"host_id"`
	Name            string   `json:"name"`
	Server          string   `json:"server"`
	Seed            string   `json:"nkey_seed"`
	ServerKey       string   `json:"server_key"`
	NATSURLs        []string `json:"nats_urls"`
	HeartbeatMillis int64    `json:"heartbeat_ms"`
	// CAFingerprint is the server CA's pin (from the join token) and
	// CACert that CA's certificate (PEM), taken from the enrollment
	// handshake; both empty when enrolled without TLS.
	CAFingerprint string `json:"ca_fingerprint,omitempty"`
	CACert        string `json:"ca_cert,omitempty"`
}

// ErrRevoked is returned when the bus refuses the agent's identity: the host
// was removed and must enroll again with a new data directory.
var ErrRevoked = errors.New("the server refused this agent's identity: the host was removed (`gantry hosts rm`); enroll again with a new join token and an empty --data-dir")

// Agent is a running agent.
type Agent struct {
	cfg  Config
	id   Identity
	log  *slog.Logger
	jnl  *journal.Journal
	nc   *nats.Conn
	ver  *bus.Verifier
	wake chan struct{}
	wg   sync.WaitGroup
	// every is the heartbeat interval in milliseconds, as the server last
	// said (enrollment, then every hello reply).
	every atomic.Int64
	rearm chan struct{}
	// finishing holds results (journal.Record by id) sent while their
	// journal record is still being written, to answer repeats with.
	finishing sync.Map
	// running holds the cancel functions of running deploy commands, by id.
	running sync.Map
	// pin is how the server is trusted (nil: enrolled without TLS).
	pin *api.Pin
	// bundles fetches bundles; its timeout bounds a whole download.
	bundles *http.Client
	// clk is the host's clock and its measured skew (clock.go).
	clk *clock
}

// Enroll loads the identity from the data directory, or enrolls with the
// join token and saves it. A failed enrollment saves nothing.
func Enroll(ctx context.Context, cfg Config) (Identity, error) {
	path := filepath.Join(cfg.DataDir, "identity.json")
	if b, err := os.ReadFile(path); err == nil {
		var id Identity
		if err := json.Unmarshal(b, &id); err != nil {
			return id, fmt.Errorf("identity file %s is corrupt: %w (remove the data dir to enroll again)", path, err)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Identity{}, fmt.Errorf("read identity %s: %w", path, err)
	}
	if cfg.JoinToken == "" {
		return Identity{}, errors.New("this agent is not enrolled yet: pass --join-token (or GANTRY_JOIN_TOKEN) from `gantry token create`")
	}
	if cfg.Server == "" {
		return Identity{}, errors.New("--server is required to enroll (the gantry server's URL, e.g. https://127.0.0.1:7070)")
	}
	if err := checkServerURL(cfg.Server, cfg.Insecure); err != nil {
		return Identity{}, err
	}
	secret, fp, err := pki.ParseJoinToken(cfg.JoinToken)
	if err != nil {
		return Identity{}, err
	}
	var pin *api.Pin
	if fp != "" {
		pin = &api.Pin{Fingerprint: fp, PinnedBy: "the join token"}
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Identity{}, err
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	facts := cfg.facts()
	name := cfg.Name
	if name == "" {
		name = facts.Hostname
	}
	body, _ := json.Marshal(api.EnrollRequest{JoinToken: secret, Name: name, Labels: cfg.Labels, Facts: facts, NKey: pub})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(cfg.Server, "/")+"/api/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("--server %q: %w", cfg.Server, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := httpClient(pin, cfg.Server, time.Minute)
	defer hc.CloseIdleConnections() // one request: leave no connection open on the server
	resp, err := hc.Do(req)
	if err != nil {
		var pm *api.PinMismatchError
		if errors.As(err, &pm) {
			return Identity{}, fmt.Errorf("enroll with %s: %s: refusing to send the join token (a proxy or another server is in between?)", cfg.Server, pm)
		}
		var unknownCA x509.UnknownAuthorityError
		if pin == nil && errors.As(err, &unknownCA) {
			return Identity{}, fmt.Errorf("enroll with %s: the join token carries no CA fingerprint and this machine's roots do not trust the server's certificate (%v): copy the whole token from `gantry token create` (it ends with .<fingerprint>)", cfg.Server, unknownCA)
		}
		return Identity{}, fmt.Errorf("enroll with %s: %w", cfg.Server, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var e api.Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return Identity{}, fmt.Errorf("enrollment refused: %s", e.Error)
		}
		return Identity{}, fmt.Errorf("enrollment refused: %s", resp.Status)
	}
	var er api.EnrollResponse
	if err := json.Unmarshal(data, &er); err != nil {
		return Identity{}, fmt.Errorf("enroll: bad response: %w", err)
	}
	id := Identity{HostID: er.HostID, Name: name, Server: cfg.Server, Seed: string(seed), ServerKey: er.ServerKey, NATSURLs: er.NATSURLs, HeartbeatMillis: er.HeartbeatMillis}
	if pin != nil && resp.TLS != nil {
		ca, err := caFromChain(*pin, resp.TLS.PeerCertificates)
		if err != nil {
			return Identity{}, err
		}
		id.CAFingerprint, id.CACert = pin.Fingerprint, string(pki.EncodeCert(ca.Raw))
	}
	if err := saveIdentity(path, id); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// saveIdentity writes the identity file (mode 0600) with the one atomic
// write: on any error (a full disk) the previous file, if any, is intact.
func saveIdentity(path string, id Identity) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save the agent's identity: %w", err)
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("save the agent's identity: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("save the agent's identity: %w", err)
	}
	return nil
}

// Run enrolls if needed, connects and serves until ctx ends or the identity
// is refused (ErrRevoked).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	id, err := Enroll(ctx, cfg)
	if err != nil {
		return err
	}
	a := &Agent{cfg: cfg, id: id, log: cfg.Log.With("host", id.HostID), wake: make(chan struct{}, 1), rearm: make(chan struct{}, 1)}
	if a.pin, err = id.pin(); err != nil {
		return err
	}
	if a.pin == nil && !cfg.Insecure {
		if err := checkServerURL(id.Server, false); err != nil {
			return fmt.Errorf("this agent was enrolled without TLS: %w", err)
		}
	}
	a.bundles = httpClient(a.pin, id.Server, 10*time.Minute)
	a.every.Store(id.HeartbeatMillis)
	if a.jnl, err = journal.Open(filepath.Join(cfg.DataDir, "journal")); err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	if a.ver, err = bus.NewVerifier(id.ServerKey, id.HostID); err != nil {
		return err
	}
	a.clk = &clock{offset: cfg.ClockOffset}
	if a.clk.offset == 0 {
		if a.clk.offset, err = testClockOffset(); err != nil {
			return err
		}
	}
	if a.clk.offset != 0 {
		a.log.Warn("test-only clock offset in effect: this agent's clock is shifted", "offset", a.clk.offset)
	}
	a.ver.SetClock(a.clk.now, a.clk.Skew)
	a.reportInterrupted()
	return a.serve(ctx)
}

func (a *Agent) serve(ctx context.Context) error {
	kp, err := nkeys.FromSeed([]byte(a.id.Seed))
	if err != nil {
		return fmt.Errorf("identity seed: %w", err)
	}
	pub, _ := kp.PublicKey()
	closed := make(chan error, 1)
	var lastErr error
	var errMu sync.Mutex
	urls := a.id.NATSURLs
	if len(a.cfg.BusURLs) > 0 {
		urls = a.cfg.BusURLs
	}
	secure, err := busTLS(a.pin, urls, a.cfg.Insecure)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(strings.Join(urls, ","), append(secure,
		nats.Name("gantry-agent "+a.id.HostID),
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(bus.InboxPrefix(a.id.HostID)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(c *nats.Conn) { a.log.Info("connected to bus"); a.onConnect(c) }),
		nats.ReconnectHandler(func(c *nats.Conn) { a.log.Info("reconnected to bus"); a.onConnect(c) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				a.log.Warn("disconnected from bus", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			errMu.Lock()
			lastErr = err
			errMu.Unlock()
			a.log.Warn("bus error", "err", err)
		}),
		nats.ClosedHandler(func(c *nats.Conn) {
			errMu.Lock()
			err := lastErr
			errMu.Unlock()
			if err == nil {
				err = c.LastError()
			}
			closed <- err
		}),
	)...)
	if err != nil {
		return fmt.Errorf("connect to bus %v: %w", urls, err)
	}
	a.nc = nc
	if _, err := nc.Subscribe(bus.CommandSubject(a.id.HostID), a.onCommand); err != nil {
		nc.Close()
		return fmt.Errorf("subscribe to commands: %w", err)
	}
	a.wg.Add(2)
	go a.heartbeatLoop(ctx)
	go a.outboxLoop(ctx)
	select {
	case <-ctx.Done():
		nc.Close()
		a.wg.Wait()
		return nil
	case err := <-closed:
		a.wg.Wait()
		if errors.Is(err, nats.ErrAuthorization) || (err != nil && strings.Contains(strings.ToLower(err.Error()), "authorization")) {
			return ErrRevoked
		}
		return fmt.Errorf("bus connection closed: %v", err)
	}
}

// onConnect announces the agent on nc (the connection the callback got: a.nc
// may not be set yet), takes the server's current heartbeat interval from
// the reply, and flushes the outbox.
func (a *Agent) onConnect(nc *nats.Conn) {
	if nc != nil {
		go a.hello(nc, 5*time.Second)
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	defer a.wg.Done()
	if a.every.Load() <= 0 {
		a.every.Store(5000)
	}
	// The first connect may have happened before a.nc was set.
	a.onConnect(a.nc)
	var seq uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.rearm: // a new interval or clock measurement: send now
		case <-time.After(time.Duration(a.every.Load()) * time.Millisecond):
		}
		if a.nc.IsClosed() {
			return
		}
		seq++
		b, _ := json.Marshal(a.heartbeatMsg(seq))
		_ = a.nc.Publish(bus.AgentSubject(a.id.HostID, bus.KindHeartbeat), b)
	}
}

// hello announces the agent on nc (its facts) and takes from the reply
// the server's heartbeat interval and a measurement of the host's clock.
// It reports whether the clock was measured.
func (a *Agent) hello(nc *nats.Conn, timeout time.Duration) bool {
	b, _ := json.Marshal(helloMsg(a.cfg.facts(), a.clk.now()))
	sent := a.clk.now()
	reply, err := nc.Request(bus.AgentSubject(a.id.HostID, bus.KindHello), b, timeout)
	received := a.clk.now()
	if err != nil {
		return false // an older server, or a reconnect in progress: keep the interval
	}
	var hr protocol.HelloReply
	if json.Unmarshal(reply.Data, &hr) != nil {
		return false
	}
	rearm := hr.HeartbeatMillis > 0 && a.every.Swap(hr.HeartbeatMillis) != hr.HeartbeatMillis
	measured := !hr.ServerTime.IsZero()
	if measured {
		a.logSkew(a.clk.observe(sent, received, hr.ServerTime))
	}
	if rearm || measured {
		select { // heartbeat now: the new interval, the new clock report
		case a.rearm <- struct{}{}:
		default:
		}
	}
	return measured
}

// HostID is the agent's host id.
func (a *Agent) HostID() string { return a.id.HostID }
