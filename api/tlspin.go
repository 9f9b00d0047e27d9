package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Verification by pin: gantry clients (the CLI, agents, this package's
// Client) trust a server because the SHA-256 of its CA certificate equals a
// fingerprint they were given out of band (in the join token, by `gantry
// login`, in GANTRY_CA_FINGERPRINT), not because of the system's roots.
//
// The presented chain must contain a certificate whose fingerprint is the
// pin (or the caller already holds that certificate); the leaf must then
// verify against that certificate as the only root, for server
// authentication. Host names are checked only when the pinned CA is not one
// that gantry made for itself: a self-managed CA (Subject O=gantry,
// OU="gantry self-managed CA") is trusted only because its hash is pinned,
// it issues only that one server's certificates, and containers reach the
// server through forwarders at addresses unknown when the certificate is
// made. A user-supplied CA (`gantry server --tls-ca`) may issue for other
// names too, so the normal name checks apply.

// Subject fields that mark a CA made by gantry for itself (see the package
// comment on verification by pin).
const (
	SelfManagedCAOrg  = "gantry"
	SelfManagedCAUnit = "gantry self-managed CA"
)

// fingerprintPrefix starts every CA fingerprint.
const fingerprintPrefix = "sha256:"

// Fingerprint is the pin of a certificate: "sha256:" and the lower-case hex
// SHA-256 of its DER encoding.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint checks a CA fingerprint as a user wrote it
// ("sha256:" and 64 hex digits, either case; colons between byte pairs are
// accepted) and returns it in canonical form.
func ParseFingerprint(s string) (string, error) {
	h, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), fingerprintPrefix)
	h = strings.ReplaceAll(h, ":", "")
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA fingerprint %q: want sha256: and 64 hex digits (as `gantry server` prints it)", s)
	}
	return fingerprintPrefix + h, nil
}

// IsSelfManagedCA reports whether cert is a CA gantry made for itself
// (marked in its Subject).
func IsSelfManagedCA(cert *x509.Certificate) bool {
	return cert.IsCA && len(cert.Subject.Organization) == 1 && cert.Subject.Organization[0] == SelfManagedCAOrg &&
		len(cert.Subject.OrganizationalUnit) == 1 && cert.Subject.OrganizationalUnit[0] == SelfManagedCAUnit
}

// PinMismatchError is returned (wrapped in the connection's error) when the
// server's chain does not contain the pinned CA: something else than the
// expected server answered.
type PinMismatchError struct {
	Presented string // fingerprint of the chain's last certificate ("" if none)
	Pinned    string // the expected fingerprint
	PinnedBy  string // where the pin comes from, e.g. "the join token"
}

// Error names both fingerprints.
func (e *PinMismatchError) Error() string {
	by := e.PinnedBy
	if by == "" {
		by = "the client"
	}
	presented := e.Presented
	if presented == "" {
		presented = "no certificate"
	}
	return fmt.Sprintf("the server presented CA %s, but %s pins %s", presented, by, e.Pinned)
}

// Pin is what a client trusts a server by.
type Pin struct {
	// Fingerprint is the CA's "sha256:<hex>" (required).
	Fingerprint string
	// CA is the pinned certificate if the client already holds it (an
	// enrolled agent): then a chain that omits it still verifies.
	CA *x509.Certificate
	// PinnedBy names the pin's source in errors (default "the client").
	PinnedBy string
}

// VerifyChain checks a presented chain (leaf first) against the pin and
// returns the pinned CA certificate. serverName is the host the client
// dialled (a DNS name or an IP address); it is checked only for a CA that
// is not self-managed.
func (p Pin) VerifyChain(certs []*x509.Certificate, serverName string) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, &PinMismatchError{Pinned: p.Fingerprint, PinnedBy: p.PinnedBy}
	}
	var ca *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range certs {
		if Fingerprint(c.Raw) == p.Fingerprint {
			ca = c
		} else {
			inter.AddCert(c)
		}
	}
	if ca == nil && p.CA != nil && Fingerprint(p.CA.Raw) == p.Fingerprint {
		ca = p.CA
	}
	if ca == nil {
		return nil, &PinMismatchError{Presented: Fingerprint(certs[len(certs)-1].Raw), Pinned: p.Fingerprint, PinnedBy: p.PinnedBy}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if !IsSelfManagedCA(ca) {
		if serverName == "" {
			return nil, errors.New("cannot check the server's name: no host name to check against the certificate")
		}
		opts.DNSName = serverName
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return nil, fmt.Errorf("the server's certificate does not verify against the pinned CA %s: %w", p.Fingerprint, err)
	}
	return ca, nil
}

// TLSConfig returns a client configuration that accepts only a server
// whose chain verifies against the pin (see VerifyChain). serverName is the
// host the client dials, used when the handshake itself carries none (IP
// addresses send no SNI).
func (p Pin) TLSConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard verification (system roots, names) is replaced by
		// VerifyConnection below, which always runs.
		InsecureSkipVerify: true, //nolint:gosec // verified by pin in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := cs.ServerName
			if name == "" {
				name = serverName
			}
			_, err := p.VerifyChain(cs.PeerCertificates, name)
			return err
		},
	}
}

// hostOf returns the host part of a URL ("" if it has none).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// PinnedTransport is an HTTP transport (the defaults' timeouts) that trusts
// only servers verified by pin; baseURL names the host the client dials.
func PinnedTransport(p Pin, baseURL string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = p.TLSConfig(hostOf(baseURL))
	return t
}

// PinCA makes the client trust only a server whose CA has fingerprint fp
// (see Pin). It replaces the client's transport.
func (c *Client) PinCA(fp string) error {
	canon, err := ParseFingerprint(fp)
	if err != nil {
		return err
	}
	c.HTTP = &http.Client{Transport: PinnedTransport(Pin{Fingerprint: canon, PinnedBy: "the client"}, c.BaseURL)}
	return nil
}

// FetchCA connects to an https:// server without trusting it yet and
// returns the CA certificate its chain ends with, after checking that the
// leaf verifies against it (trust on first use: show its fingerprint to the
// user, then pin it).
func FetchCA(ctx context.Context, baseURL string) (*x509.Certificate, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://HOST[:PORT]", baseURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	d := tls.Dialer{Config: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // the chain is checked below, then shown to the user
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, &UnreachableError{URL: baseURL, Err: err}
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", baseURL, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", baseURL)
	}
	top := certs[len(certs)-1]
	if _, err := (Pin{Fingerprint: Fingerprint(top.Raw)}).VerifyChain(certs, u.Hostname()); err != nil {
		return nil, fmt.Errorf("%s: %w", baseURL, err)
	}
	return top, nil
}
