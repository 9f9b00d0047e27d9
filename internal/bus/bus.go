package bus

import (
	"crypto/rand"
	"crypto/tls"
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
	// Advertise is the URL agents are told to connect to; default
	// tls://Listen with TLSConfig, else nats://Listen.
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
	// TLSConfig, if set, makes the embedded server require TLS from every
	// client but the server's own in-process connection, and the default
	// advertised URL tls://. Nil: plain text (TLS off).
	TLSConfig *tls.Config
}

// DefaultListen is the embedded server's default client address.
const DefaultListen = "127.0.0.1:7422"

// Bus is a running bus and the server's own connection to it.
type Bus struct {
	// Conn is the server's connection, allowed every subject.
	Conn *nats.Conn
	srv  *server.Server
	urls []string
	// closed is closed when Conn is (after Drain).
	closed chan struct{}
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
		closed := make(chan struct{})
		nc, err := nats.Connect(o.ExternalURL, nats.Name("gantry-server"), nats.MaxReconnects(-1), closedHandler(closed))
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
		return &Bus{Conn: nc, urls: []string{adv}, issuer: pub, closed: closed}, nil
	}
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want HOST:PORT: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("--nats-listen %q: port must be a number from 0 to 65535", o.Listen)
	}
	if port == 0 {
		// ":0" is any free port, as for net.Listen; NATS reads 0 as its
		// default port 4222, so two buses (two test packages at once)
		// would fight over it.
		port = server.RANDOM_PORT
	}
	secret := randomHex(32)
	auth := &Authenticator{serverUser: "gantry-server", serverSecret: secret, lookup: o.Lookup, log: o.Log}
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
		TLSConfig:                  o.TLSConfig,
		TLS:                        o.TLSConfig != nil,
		// Thousands of agents reconnecting at once queue for the CPU.
		TLSTimeout: 10,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start on %s (is the port in use?)", o.Listen)
	}
	closed := make(chan struct{})
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.UserInfo(auth.serverUser, secret), nats.Name("gantry-server"), nats.MaxReconnects(-1), closedHandler(closed))
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
		scheme := "nats://"
		if o.TLSConfig != nil {
			scheme = "tls://"
		}
		adv = scheme + net.JoinHostPort(h, strconv.Itoa(addr.Port))
	}
	return &Bus{Conn: nc, srv: srv, urls: []string{adv}, closed: closed}, nil
}

// closedHandler closes ch when the connection is closed.
func closedHandler(ch chan struct{}) nats.Option {
	return nats.ClosedHandler(func(*nats.Conn) { close(ch) })
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

// Disconnect drops every live connection authenticated with the agent key
// nkey (used on revocation; the lookup refuses the key from then on).
func (b *Bus) Disconnect(nkey string) error {
	if b.srv == nil {
		return errors.New("cannot drop connections on an external NATS: the key is refused at its next connection")
	}
	// For nkey connections the server's user filter is the public key.
	cz, err := b.srv.Connz(&server.ConnzOptions{User: nkey, Limit: 1 << 16})
	if err != nil {
		return fmt.Errorf("list connections of %s: %w", nkey, err)
	}
	for _, c := range cz.Conns {
		_ = b.srv.DisconnectClientByID(c.Cid) // gone already is fine
	}
	return nil
}

// Close drains the server's connection and stops the embedded server.
func (b *Bus) Close() {
	if b.Conn != nil {
		_ = b.Conn.Drain()
		select {
		case <-b.closed:
		case <-time.After(2 * time.Second):
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
