package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func chain(t *testing.T, c *tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func TestCAIsMadeOnceAndKeptPrivate(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", fi.Mode().Perm())
	}
	if !api.IsSelfManagedCA(ca.Cert) {
		t.Errorf("CA subject %v is not marked self-managed", ca.Cert.Subject)
	}
	again, err := LoadOrCreateCA(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Errorf("second start made another CA: %s, then %s", ca.Fingerprint(), again.Fingerprint())
	}
	if !strings.HasPrefix(ca.Fingerprint(), "sha256:") || len(ca.Fingerprint()) != 7+64 {
		t.Errorf("fingerprint %q: want sha256:<64 hex>", ca.Fingerprint())
	}
	// One file without the other is refused, never replaced.
	if err := os.Remove(filepath.Join(dir, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("key without certificate: %v, want a refusal", err)
	}
}

func TestIssueAndVerifyByPin(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(Names([]string{"127.0.0.1:7070", "0.0.0.0:7422"}, []string{"tls://bus.example:7422"}, []string{"gantry.internal"}), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs := chain(t, leaf)
	if len(certs) != 2 || api.Fingerprint(certs[1].Raw) != ca.Fingerprint() {
		t.Fatalf("chain must be leaf + CA, got %d certificates", len(certs))
	}
	for _, n := range []string{"localhost", "gantry.internal", "bus.example"} {
		if err := certs[0].VerifyHostname(n); err != nil {
			t.Errorf("leaf does not cover %s: %v", n, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if err := certs[0].VerifyHostname(ip); err != nil {
			t.Errorf("leaf does not cover %s: %v", ip, err)
		}
	}
	pin := api.Pin{Fingerprint: ca.Fingerprint(), PinnedBy: "the join token"}
	// Self-managed CA: any dialled name is fine (forwarders).
	if _, err := pin.VerifyChain(certs, "172.17.0.1"); err != nil {
		t.Errorf("verify through a forwarder address: %v", err)
	}
	// Leaf alone, CA already held (an enrolled agent).
	if _, err := (api.Pin{Fingerprint: ca.Fingerprint(), CA: ca.Cert}).VerifyChain(certs[:1], ""); err != nil {
		t.Errorf("verify leaf with a held CA: %v", err)
	}

	other, err := NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = (api.Pin{Fingerprint: other.Fingerprint(), PinnedBy: "the join token"}).VerifyChain(certs, "127.0.0.1")
	var pm *api.PinMismatchError
	if !errors.As(err, &pm) {
		t.Fatalf("wrong pin: %v, want a PinMismatchError", err)
	}
	want := "the server presented CA " + ca.Fingerprint() + ", but the join token pins " + other.Fingerprint()
	if err.Error() != want {
		t.Errorf("mismatch message:\n got %s\nwant %s", err, want)
	}

	// A chain that carries the pinned CA but a leaf from another CA.
	forged, err := other.Issue([]string{"127.0.0.1"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(chain(t, forged)[:1], ca.Cert)
	if _, err := pin.VerifyChain(mixed, "127.0.0.1"); err == nil {
		t.Error("a leaf from another CA verified because the pinned CA was appended to its chain")
	}
}

func TestUserCAChecksNames(t *testing.T) {
	// A CA not marked as gantry's: names are checked.
	now := time.Now()
	ca, err := newCA(now, pkix.Name{Organization: []string{"Example Corp"}, CommonName: "Example CA"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"gantry.example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pin := api.Pin{Fingerprint: ca.Fingerprint()}
	if _, err := pin.VerifyChain(chain(t, leaf), "gantry.example.com"); err != nil {
		t.Errorf("right name: %v", err)
	}
	if _, err := pin.VerifyChain(chain(t, leaf), "other.example.com"); err == nil {
		t.Error("a user CA's certificate verified for a name it does not carry")
	}
}

func TestRenewalBeforeExpiry(t *testing.T) {
	// Start 21 days ago so that the renewed certificate is valid now.
	clock := &fakeClock{t: time.Now().Add(-21 * 24 * time.Hour)}
	s, err := OpenServing(ServingOptions{Dir: t.TempDir(), Names: []string{"127.0.0.1"}, LeafTTL: 30 * 24 * time.Hour, Now: clock.Now, CheckEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Current()
	clock.Add(19 * 24 * time.Hour) // before 2/3 of 30 days
	if renewed, err := s.RenewIfDue(); err != nil || renewed {
		t.Fatalf("renewed=%v err=%v at 19 days, want no renewal", renewed, err)
	}
	if s.Current() != first {
		t.Fatal("the certificate changed before it was due")
	}
	// The loop renews once 2/3 of the life has passed.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	clock.Add(2 * 24 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for s.Current() == first {
		if time.Now().After(deadline) {
			t.Fatal("the renewal loop did not renew the certificate at 21 days of 30")
		}
		time.Sleep(time.Millisecond)
	}
	next := s.Current().Leaf
	if !next.NotAfter.After(first.Leaf.NotAfter) {
		t.Errorf("renewed certificate ends %s, not after the old %s", next.NotAfter, first.Leaf.NotAfter)
	}
	if _, err := (api.Pin{Fingerprint: s.Fingerprint()}).VerifyChain(chain(t, s.Current()), ""); err != nil {
		t.Errorf("renewed certificate does not verify against the same pin: %v", err)
	}
}

// TestRenewalUnnoticedByClients serves TLS from a Serving, renews, and
// checks that a pinned client keeps working and sees the new certificate.
func TestRenewalUnnoticedByClients(t *testing.T) {
	clock := &fakeClock{t: time.Now().Add(-41 * time.Minute)}
	s, err := OpenServing(ServingOptions{Dir: t.TempDir(), Names: []string{"127.0.0.1"}, LeafTTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "https://" + ln.Addr().String()
	c := &http.Client{Transport: api.PinnedTransport(api.Pin{Fingerprint: s.Fingerprint()}, url)}
	serial := func() string {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		c.CloseIdleConnections()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	clock.Add(41 * time.Minute)
	if renewed, err := s.RenewIfDue(); err != nil || !renewed {
		t.Fatalf("renewed=%v err=%v at 41 of 60 minutes", renewed, err)
	}
	if after := serial(); after == before {
		t.Error("the server still presents the old certificate after renewal")
	}
}

func TestUserSuppliedCertificate(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := NewCA(now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"gantry.example.com"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certF, keyF, caF := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certF, EncodeCert(leaf.Certificate[0])) // leaf only: the server adds the CA
	write(keyF, pemKey(keyDER))
	write(caF, ca.PEM())
	s, err := OpenServing(ServingOptions{Dir: dir, CertFile: certF, KeyFile: keyF, CAFile: caF})
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint() != ca.Fingerprint() || s.SelfManaged() {
		t.Errorf("pin %s self-managed %v, want the user's CA %s", s.Fingerprint(), s.SelfManaged(), ca.Fingerprint())
	}
	if n := len(s.Current().Certificate); n != 2 {
		t.Errorf("served chain has %d certificates, want leaf + CA", n)
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA key was made although the user gave certificates: %v", err)
	}
	other, _ := NewCA(now)
	write(caF, other.PEM())
	if _, err := OpenServing(ServingOptions{Dir: dir, CertFile: certF, KeyFile: keyF, CAFile: caF}); err == nil {
		t.Error("--tls-ca that did not issue --tls-cert was accepted")
	}
	if _, err := OpenServing(ServingOptions{Dir: dir, CertFile: certF}); err == nil {
		t.Error("--tls-cert alone was accepted")
	}
}

func TestJoinTokenFormat(t *testing.T) {
	fp := "sha256:" + strings.Repeat("ab", 32)
	tok := FormatJoinToken("gjt_secret", fp)
	if tok != "gjt_secret."+strings.Repeat("ab", 32) {
		t.Errorf("token %q", tok)
	}
	secret, pin, err := ParseJoinToken(tok)
	if err != nil || secret != "gjt_secret" || pin != fp {
		t.Errorf("parse: %q %q %v", secret, pin, err)
	}
	if JoinTokenSecret(tok) != "gjt_secret" || JoinTokenSecret("gjt_secret") != "gjt_secret" {
		t.Error("JoinTokenSecret must strip the pin and leave a bare secret alone")
	}
	if s, p, err := ParseJoinToken("gjt_secret"); err != nil || s != "gjt_secret" || p != "" {
		t.Errorf("bare secret: %q %q %v", s, p, err)
	}
	if _, _, err := ParseJoinToken("gjt_secret.abc"); err == nil {
		t.Error("a truncated fingerprint was accepted")
	}
}

func TestNamesForWildcardListen(t *testing.T) {
	names := Names([]string{"0.0.0.0:7070"}, nil, nil)
	host, _ := os.Hostname()
	has := func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
	if host != "" && !has(host) {
		t.Errorf("names %v lack the hostname %s", names, host)
	}
	if has("0.0.0.0") {
		t.Errorf("names %v contain the unspecified address", names)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !has(n.IP.String()) {
			t.Errorf("names %v lack interface address %s", names, n.IP)
		}
	}
}

func pemKey(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
