// Package pki gives the gantry server its TLS identity and gives clients
// the means to check it.
//
// On the first start the server makes its own certificate authority
// (ECDSA P-256, valid 10 years; ca.key mode 0600 and ca.crt in the data
// directory, marked O=gantry, OU="gantry self-managed CA") and issues from
// it, in memory, a serving certificate for every name and address it
// listens on or advertises (plus --tls-san, localhost, 127.0.0.1 and ::1;
// for a 0.0.0.0 listen also the machine's hostname and interface
// addresses). Serving certificates live 30 days and are reissued at 2/3 of
// their lifetime; the TLS configuration returns the current one on every
// handshake, so connected agents notice nothing. Or the user gives
// --tls-cert, --tls-key and --tls-ca and gantry uses those unchanged.
// Either way the server sends leaf and CA, and the pin is the CA's
// fingerprint, "sha256:" and the hex SHA-256 of its DER.
//
// Clients verify by pin (api.Pin, shared with the api package, which may
// import nothing internal): the chain must contain the pinned CA and the
// leaf must verify against it alone. Host names are not checked for a
// self-managed CA: it is trusted only because its hash is pinned, it issues
// only this server's certificates, and containers reach the server through
// forwarders at addresses unknown when the certificate is made. They are
// checked as usual for a user-supplied CA, which may issue for other names.
//
// Join tokens carry the pin: "<secret>.<64 hex digits>" (see
// FormatJoinToken). The secret part is what the store hashes, as before;
// the agent checks the server's chain against the pin before it sends the
// secret.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Files of the self-managed CA in the server's data directory.
const (
	CAKeyFile  = "ca.key"
	CACertFile = "ca.crt"
)

// Lifetimes of what the self-managed CA makes.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	DefaultLeafTTL = 30 * 24 * time.Hour
)

// CA is a certificate authority: the certificate, and the key when gantry
// manages it.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Fingerprint is the CA's pin.
func (c *CA) Fingerprint() string { return api.Fingerprint(c.Cert.Raw) }

// PEM is the CA certificate in PEM form.
func (c *CA) PEM() []byte { return EncodeCert(c.Cert.Raw) }

// EncodeCert wraps a DER certificate in PEM.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// LoadOrCreateCA reads dir/ca.key and dir/ca.crt, or makes a new CA there
// if neither exists (one without the other is an error: never silently
// replace a pinned CA).
func LoadOrCreateCA(dir string, now time.Time) (*CA, error) {
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	_, kerr := os.Stat(keyPath)
	_, cerr := os.Stat(certPath)
	switch {
	case kerr == nil && cerr == nil:
		cert, err := ReadCert(certPath)
		if err != nil {
			return nil, err
		}
		key, err := readKey(keyPath)
		if err != nil {
			return nil, err
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return nil, fmt.Errorf("%s does not belong to %s", keyPath, certPath)
		}
		return &CA{Cert: cert, Key: key}, nil
	case errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist):
	case kerr != nil && !errors.Is(kerr, fs.ErrNotExist):
		return nil, fmt.Errorf("CA key %s: %w", keyPath, kerr)
	case cerr != nil && !errors.Is(cerr, fs.ErrNotExist):
		return nil, fmt.Errorf("CA certificate %s: %w", certPath, cerr)
	default:
		return nil, fmt.Errorf("only one of %s and %s exists: restore the other, or remove both to make a new CA (agents and `gantry login` profiles then need the new fingerprint)", keyPath, certPath)
	}
	ca, err := NewCA(now)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeAtomic(certPath, ca.PEM(), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// NewCA makes a self-managed CA in memory.
func NewCA(now time.Time) (*CA, error) {
	host, _ := os.Hostname()
	return newCA(now, pkix.Name{
		Organization:       []string{api.SelfManagedCAOrg},
		OrganizationalUnit: []string{api.SelfManagedCAUnit},
		CommonName:         "gantry CA " + host,
	})
}

// newCA makes a CA with the given subject.
func newCA(now time.Time, subject pkix.Name) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue makes a serving certificate for names (DNS names or IP addresses)
// valid from now for ttl, returned as leaf + CA chain.
func (c *CA) Issue(names []string, now time.Time, ttl time.Duration) (*tls.Certificate, error) {
	if c.Key == nil {
		return nil, errors.New("this CA has no key: it cannot issue certificates")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving key: %w", err)
	}
	dns, ips := splitNames(names)
	cn := "gantry server"
	if len(dns) > 0 {
		cn = dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{api.SelfManagedCAOrg}, CommonName: cn},
		NotBefore:    now.Add(-5 * time.Minute), // tolerate clients a little behind
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	if err != nil {
		return nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, c.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ReadCert reads the first certificate of a PEM file.
func ReadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	cert, err := ParseCertPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// ParseCertPEM parses the first certificate of PEM data.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if blk.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return cert, nil
		}
	}
}

// readKey reads a PEM private key (PKCS#8, EC or PKCS#1).
func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", path, k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// FormatJoinToken appends the CA pin to a join token's secret:
// "<secret>.<64 hex>". Without a pin (TLS off) it is the secret alone.
func FormatJoinToken(secret, fingerprint string) string {
	if fingerprint == "" {
		return secret
	}
	return secret + "." + strings.TrimPrefix(fingerprint, "sha256:")
}

// ParseJoinToken splits a join token into the secret (what the server
// hashes) and the CA fingerprint it pins ("" for a token without one).
func ParseJoinToken(tok string) (secret, fingerprint string, err error) {
	tok = strings.TrimSpace(tok)
	secret, hexFP, found := strings.Cut(tok, ".")
	if secret == "" {
		return "", "", errors.New("the join token is empty")
	}
	if !found {
		return secret, "", nil
	}
	fp, err := api.ParseFingerprint("sha256:" + hexFP)
	if err != nil {
		return "", "", fmt.Errorf("the join token's CA fingerprint (after the dot) is not 64 hex digits: copy the whole token from `gantry token create`")
	}
	return secret, fp, nil
}

// JoinTokenSecret is the part of a join token the store hashes (the token
// without its pin).
func JoinTokenSecret(tok string) string {
	secret, _, _ := strings.Cut(strings.TrimSpace(tok), ".")
	return secret
}
