package agent

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/pki"
)

// The agent's transport security: it trusts the server by the CA
// fingerprint its join token carries (checked before the token is sent),
// then keeps that CA certificate in its identity and trusts nothing else,
// for the bus and for every HTTP call. A plain http:// server or nats://
// bus is refused unless Config.Insecure.

// errPlainServer explains why a plain server URL is refused.
func errPlainServer(raw string) error {
	return fmt.Errorf("--server %s is plain http://: the join token and every bundle would cross the network in clear text; use the https:// URL the server prints, or pass --insecure (only on a trusted network)", raw)
}

// checkServerURL refuses a server URL that is not https:// unless insecure.
func checkServerURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--server %q: want https://HOST:PORT", raw)
	}
	if u.Scheme == "http" && !insecure {
		return errPlainServer(raw)
	}
	return nil
}

// pin is how the agent trusts the server, from its identity (nil: no pin,
// system roots for https://).
func (id Identity) pin() (*api.Pin, error) {
	if id.CAFingerprint == "" {
		return nil, nil
	}
	p := &api.Pin{Fingerprint: id.CAFingerprint, PinnedBy: "this agent's identity"}
	if id.CACert != "" {
		ca, err := pki.ParseCertPEM([]byte(id.CACert))
		if err != nil {
			return nil, fmt.Errorf("identity: CA certificate: %w", err)
		}
		if api.Fingerprint(ca.Raw) != id.CAFingerprint {
			return nil, errors.New("identity: the saved CA certificate does not match its fingerprint (remove the data dir to enroll again)")
		}
		p.CA = ca
	}
	return p, nil
}

// httpClient is the client for calls to the server (enrollment, bundles):
// pinned when p is set. timeout 0 means none.
func httpClient(p *api.Pin, server string, timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if p != nil {
		c.Transport = api.PinnedTransport(*p, server)
	}
	return c
}

// caFromChain returns the pinned CA certificate out of a verified chain.
func caFromChain(p api.Pin, certs []*x509.Certificate) (*x509.Certificate, error) {
	for _, c := range certs {
		if api.Fingerprint(c.Raw) == p.Fingerprint {
			return c, nil
		}
	}
	return nil, fmt.Errorf("the server's chain does not contain the pinned CA %s", p.Fingerprint)
}

// busTLS returns the nats options that secure the bus connection: TLS
// verified by pin when the agent has one; with no pin, a plain nats:// URL
// is refused unless insecure.
func busTLS(p *api.Pin, urls []string, insecure bool) ([]nats.Option, error) {
	if p != nil {
		host := ""
		if len(urls) > 0 {
			if u, err := url.Parse(urls[0]); err == nil {
				host = u.Hostname()
			}
		}
		return []nats.Option{nats.Secure(p.TLSConfig(host))}, nil
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "nats://") && !insecure {
			return nil, fmt.Errorf("bus URL %s is plain text and this agent has no CA pin: enroll with a server that has TLS on (its join tokens carry the pin), or pass --insecure (only on a trusted network)", u)
		}
	}
	return nil, nil
}
