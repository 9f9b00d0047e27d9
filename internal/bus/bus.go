package bus

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// MaxPayload is the largest message the bus carries: a final status holds
// up to 1 MiB of each output stream, base64-encoded.
const MaxPayload = 8 << 20

// Options configure Start.
type Options struct {
	// Listen is the embedded server's client address (default 127.0.0.1:7422).
	Listen string
	// Advertise is the URL agents are told to connect to; default nats://Listen.
	Advertise string
	// ExternalURL, if set, connects to an existing NATS instead of embedding
	// one; gantry then serves auth callout for it (see NATSConfigSnippet).
	ExternalURL string
	// CalloutKey is the file of the auth-callout issuer key (an account
	// nkey), made on first use; required with ExternalURL.
	CalloutKey string
	// Lookup resolves agent keys to host ids (embedded server only).
	Lookup HostLookup
	// Log receives bus events.
	Log *slog.Logger
}

// Bus is a running bus and the server's own connection to it.
type Bus struct {
	// Conn is the server's connection, allowed every subject.
	Conn *nats.Conn
	srv  *server.Server
	auth *Authenticator
	urls []string
	// issuer is the auth-callout issuer key (external NATS only).
	issuer string
}

// Start embeds a NATS server (or connects to an external one) and returns
// the server's connection.
func Start(o Options) (*Bus, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ExternalURL != "" {
		nc, err := nats.Connect(o.ExternalURL, nats.Name("gantry-server"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect to NATS at %s: %w", o.ExternalURL, err)
		}
		issuer, err := loadOrCreateKey(o.CalloutKey, nkeys.CreateAccount)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("auth callout key: %w", err)
		}
		if err := serveAuthCallout(nc, issuer, o.Lookup); err != nil {
			nc.Close()
			return nil, fmt.Errorf("serve auth callout on %s: %w", o.ExternalURL, err)
		}
		pub, _ := issuer.PublicKey()
		o.Log.Info("external NATS: gantry serves auth callout for agents", "issuer", pub)
		adv := o.Advertise
		if adv == "" {
			adv = withoutUserinfo(nc.ConnectedUrl()) // agents never get the server's credentials
		}
		return &Bus{Conn: nc, urls: []string{adv}, issuer: pub}, nil
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:7422"
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want HOST:PORT: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--nats-listen %q: port must be a number from 0 to 65535", o.Listen)
	}
	secret := randomHex(32)
	auth := &Authenticator{serverUser: "gantry-server", serverSecret: secret, lookup: o.Lookup, log: o.Log, conns: map[string]map[uint64]struct{}{}}
	srv, err := server.NewServer(&server.Options{
		Host:                       host,
		Port:                       port,
		NoLog:                      true,
		NoSigs:                     true,
		MaxPayload:                 MaxPayload,
		MaxPending:                 64 << 20,
		AlwaysEnableNonce:          true,
		CustomClientAuthentication: auth,
		DisableShortFirstPing:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (is the port in use?)", o.Listen)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.UserInfo(auth.serverUser, secret), nats.Name("gantry-server"), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	adv := o.Advertise
	if adv == "" {
		addr := srv.Addr().(*net.TCPAddr)
		h := host
		if h == "" || h == "0.0.0.0" || h == "::" {
			h = "127.0.0.1"
		}
		adv = "nats://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
	}
	return &Bus{Conn: nc, srv: srv, auth: auth, urls: []string{adv}}, nil
}

// withoutUserinfo strips credentials from a URL.
func withoutUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}

// ExternalConfig is the authorization block the external NATS needs for
// gantry's auth callout, or "" on the embedded bus.
func (b *Bus) ExternalConfig() string {
	if b.issuer == "" {
		return ""
	}
	return NATSConfigSnippet(b.issuer, b.Conn.Opts.User)
}

// AgentURLs are the URLs given to agents at enrollment.
func (b *Bus) AgentURLs() []string { return b.urls }

// Disconnect drops every live connection of hostID (used on revocation;
// the lookup refuses the key from then on).
func (b *Bus) Disconnect(hostID string) error {
	if b.srv == nil {
		return errors.New("cannot drop connections on an external NATS: revoke the key there too")
	}
	for _, id := range b.auth.take(hostID) {
		_ = b.srv.DisconnectClientByID(id) // gone already is fine
	}
	return nil
}

// Close drains the server's connection and stops the embedded server.
func (b *Bus) Close() {
	if b.Conn != nil {
		_ = b.Conn.Drain()
		deadline := time.Now().Add(2 * time.Second)
		for !b.Conn.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		b.Conn.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
