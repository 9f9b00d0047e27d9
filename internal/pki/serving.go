package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/atomicfile"
)

// ServingOptions configure a Serving identity.
type ServingOptions struct {
	// Dir is the server's data directory (the self-managed CA's files).
	Dir string
	// Names are the DNS names and IP addresses the serving certificate
	// covers (see Names to build them from the listen addresses).
	Names []string
	// CertFile, KeyFile and CAFile are a user-supplied certificate (PEM,
	// may hold the chain), its key and the CA that issued it; all three or
	// none. Then nothing is issued or renewed.
	CertFile, KeyFile, CAFile string
	// LeafTTL is the life of an issued serving certificate (default 30
	// days); it is renewed at 2/3 of it.
	LeafTTL time.Duration
	// CheckEvery is how often the renewal loop looks at the clock (default
	// 1 minute).
	CheckEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives renewals.
	Log *slog.Logger
}

// Serving is the server's TLS identity: the CA and the current serving
// certificate.
type Serving struct {
	o    ServingOptions
	ca   *CA
	mu   sync.RWMutex
	cert *tls.Certificate
}

// OpenServing loads or makes the CA and issues a serving certificate, or
// loads the user's files.
func OpenServing(o ServingOptions) (*Serving, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeafTTL <= 0 {
		o.LeafTTL = DefaultLeafTTL
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Serving{o: o}
	given := 0
	for _, f := range []string{o.CertFile, o.KeyFile, o.CAFile} {
		if f != "" {
			given++
		}
	}
	switch given {
	case 3:
		return s, s.loadUser()
	case 0:
	default:
		return nil, errors.New("--tls-cert, --tls-key and --tls-ca go together: give all three, or none for gantry's own CA")
	}
	ca, err := LoadOrCreateCA(o.Dir, o.Now())
	if err != nil {
		return nil, err
	}
	s.ca = ca
	if err := s.issue(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadUser reads --tls-cert/--tls-key/--tls-ca and checks they fit.
func (s *Serving) loadUser() error {
	kp, err := tls.LoadX509KeyPair(s.o.CertFile, s.o.KeyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", s.o.CertFile, s.o.KeyFile, err)
	}
	ca, err := ReadCert(s.o.CAFile)
	if err != nil {
		return fmt.Errorf("--tls-ca: %w", err)
	}
	s.ca = &CA{Cert: ca}
	has := false
	for _, der := range kp.Certificate {
		if string(der) == string(ca.Raw) {
			has = true
		}
	}
	if !has { // the pin must be in the chain the server presents
		kp.Certificate = append(kp.Certificate, ca.Raw)
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return fmt.Errorf("--tls-cert %s: %w", s.o.CertFile, err)
	}
	kp.Leaf = leaf
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ca)
	for _, der := range kp.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s for server authentication: %w", s.o.CertFile, s.o.CAFile, err)
	}
	s.cert = &kp
	return nil
}

// Fingerprint is the pin clients check: the CA certificate's.
func (s *Serving) Fingerprint() string { return s.ca.Fingerprint() }

// CA is the CA certificate.
func (s *Serving) CA() *CA { return s.ca }

// SelfManaged reports whether gantry made the CA (and renews the leaf).
func (s *Serving) SelfManaged() bool { return s.ca.Key != nil }

// Current is the serving certificate handed out now.
func (s *Serving) Current() *tls.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert
}

// TLSConfig serves the current certificate on every handshake.
func (s *Serving) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.Current(), nil },
	}
}

// issue makes a new serving certificate and makes it current.
func (s *Serving) issue() error {
	c, err := s.ca.Issue(s.o.Names, s.o.Now(), s.o.LeafTTL)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cert = c
	s.mu.Unlock()
	return nil
}

// RenewIfDue reissues the serving certificate once 2/3 of its life has
// passed; it reports whether it did. User-supplied certificates are never
// renewed.
func (s *Serving) RenewIfDue() (bool, error) {
	if !s.SelfManaged() {
		return false, nil
	}
	leaf := s.Current().Leaf
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if s.o.Now().Before(leaf.NotBefore.Add(life * 2 / 3)) {
		return false, nil
	}
	if err := s.issue(); err != nil {
		return false, err
	}
	s.o.Log.Info("renewed the TLS serving certificate", "not_after", s.Current().Leaf.NotAfter)
	return true, nil
}

// Run renews the serving certificate before it expires until ctx ends.
func (s *Serving) Run(ctx context.Context) {
	if !s.SelfManaged() {
		return
	}
	t := time.NewTicker(s.o.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.RenewIfDue(); err != nil {
				s.o.Log.Error("renew the TLS serving certificate", "err", err)
			}
		}
	}
}

// Names lists what a serving certificate covers: the hosts of the listen
// addresses and advertised URLs, extra names, localhost, 127.0.0.1 and ::1,
// and for an unspecified listen address (0.0.0.0, ::, "") the hostname and
// every interface address.
func Names(listens, urls, extra []string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	wildcard := false
	for _, l := range listens {
		h, _, err := net.SplitHostPort(l)
		if err != nil {
			h = l
		}
		if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
			wildcard = true
			continue
		}
		names = append(names, h)
	}
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			names = append(names, u.Hostname())
		}
	}
	names = append(names, extra...)
	if wildcard {
		if h, err := os.Hostname(); err == nil && h != "" {
			names = append(names, h)
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
					names = append(names, n.IP.String())
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// splitNames separates IP addresses from DNS names.
func splitNames(names []string) (dns []string, ips []net.IP) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else if n != "" {
			dns = append(dns, n)
		}
	}
	return dns, ips
}

// writeAtomic creates path's directory (mode 0700) if needed and writes
// data to path with the project's one atomic write (atomicfile.Write).
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, data, perm)
}
