package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/pki"
)

// tlsProxy is a man in the middle: it terminates TLS with a certificate of
// its own CA, records every byte it decrypts from its clients, and passes
// them on to the real server over a TLS connection of its own.
type tlsProxy struct {
	ln  net.Listener
	fp  string // its CA's fingerprint
	mu  sync.Mutex
	got []byte // what clients sent, decrypted
	hs  int    // completed handshakes
}

func newTLSProxy(t *testing.T, upstream string) *tlsProxy {
	t.Helper()
	ca, err := pki.NewCA(time.Now()) // marked like gantry's own: the pin still tells them apart
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProxy{ln: ln, fp: ca.Fingerprint()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c.(*tls.Conn), upstream)
		}
	}()
	return p
}

func (p *tlsProxy) serve(c *tls.Conn, upstream string) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return // the client refused our certificate
	}
	p.mu.Lock()
	p.hs++
	p.mu.Unlock()
	up, err := tls.Dial("tcp", upstream, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the attacker trusts anyone
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(c, up) }()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			p.mu.Unlock()
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tlsProxy) url() string { return "https://" + p.ln.Addr().String() }

func (p *tlsProxy) seen() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.got), p.hs
}

// A TLS-terminating proxy with its own certificate between agent and
// server: the agent refuses to enroll, naming both fingerprints, before it
// sends a byte, so the proxy never sees the join token; the token stays
// unused. The same proxy does see what a client that trusts it sends (the
// control). A plain http:// server is refused by the agent and the CLI
// without --insecure, accepted with it and a warning. `gantry login` pins
// the CA; once the server's CA changes, the CLI refuses it.
func TestTLSPinnedEnrollment(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	if !strings.HasPrefix(c.url, "https://") || !strings.HasPrefix(c.caFP, "sha256:") {
		t.Fatalf("the server does not serve TLS by default: url %s, CA %q", c.url, c.caFP)
	}
	if !strings.Contains(c.server.out.String(), c.caFP) {
		t.Errorf("the server's start-up output does not print its CA fingerprint %s:\n%s", c.caFP, c.server.out)
	}
	proxy := newTLSProxy(t, c.httpAddr)

	tok := c.joinToken()
	secret, pin, err := pki.ParseJoinToken(tok)
	if err != nil || pin != c.caFP {
		t.Fatalf("join token %q pins %q (%v), want the server's CA %s", tok, pin, err, c.caFP)
	}

	// The agent pointed at the proxy refuses before sending the token.
	a := start(t, []string{"GANTRY_JOIN_TOKEN=" + tok}, "agent", "--server", proxy.url(), "--name", "mitm",
		"--data-dir", c.agentDir("mitm"))
	if code := a.exitCode(15 * time.Second); code == 0 {
		t.Fatalf("the agent enrolled through a proxy with another CA:\n%s", a.out)
	}
	wantMsg := "the server presented CA " + proxy.fp + ", but the join token pins " + c.caFP + ": refusing to send the join token"
	if !strings.Contains(a.out.String(), wantMsg) {
		t.Errorf("agent error does not name both fingerprints; want %q in:\n%s", wantMsg, a.out)
	}
	if got, _ := proxy.seen(); got != "" || strings.Contains(got, secret) {
		t.Errorf("the proxy decrypted %d bytes from the agent (join token seen: %v):\n%q", len(got), strings.Contains(got, secret), got)
	}
	if _, err := os.Stat(filepath.Join(c.agentDir("mitm"), "identity.json")); err == nil {
		t.Error("an identity was saved after the refused enrollment")
	}
	// The token is still unused: the same token enrolls with the real server.
	c.startAgent("real", "", tok)
	h := c.waitHost("real", api.HostOnline, 15*time.Second)
	var id struct {
		CAFingerprint string   `json:"ca_fingerprint"`
		CACert        string   `json:"ca_cert"`
		NATSURLs      []string `json:"nats_urls"`
	}
	b, err := os.ReadFile(filepath.Join(c.agentDir("real"), "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &id); err != nil || id.CAFingerprint != c.caFP || !strings.Contains(id.CACert, "BEGIN CERTIFICATE") {
		t.Errorf("the enrolled agent did not keep the CA beside its identity: %v %+v", err, id)
	}
	// Its bus connection is TLS: the server advertises tls://, its NATS
	// port requires TLS of every client, and a job runs over it.
	if len(id.NATSURLs) == 0 || !strings.HasPrefix(id.NATSURLs[0], "tls://") {
		t.Errorf("bus URLs given at enrollment %v, want tls://", id.NATSURLs)
	}
	if conn, err := net.DialTimeout("tcp", c.natsAddr, 5*time.Second); err != nil {
		t.Errorf("dial the bus: %v", err)
	} else {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		info, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.Contains(info, `"tls_required":true`) {
			t.Errorf("the bus does not require TLS; its INFO: %s", info)
		}
	}
	r := c.gantry("run", "--selector", "", "--", "echo over-tls")
	if r.code != 0 || !strings.Contains(r.stdout, h.Name+" | over-tls") {
		t.Errorf("a job on the TLS-enrolled agent: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// Control: a client that pins the proxy's CA talks through it, and the
	// proxy reads its API token: the pin is what kept the join token safe.
	r = runCLI(t, []string{"GANTRY_SERVER=" + proxy.url(), "GANTRY_TOKEN=" + c.token, "GANTRY_CA_FINGERPRINT=" + proxy.fp,
		"GANTRY_CONFIG=" + filepath.Join(c.dir, "none.json")}, "hosts", "ls")
	r.ok(t)
	if got, _ := proxy.seen(); !strings.Contains(got, c.token) {
		t.Errorf("control: the proxy did not see the API token of a client that trusted it (is it a real proxy?): %q", got)
	}
	// The CLI with the real pin refuses the proxy, naming both.
	r = runCLI(t, []string{"GANTRY_SERVER=" + proxy.url(), "GANTRY_TOKEN=" + c.token, "GANTRY_CA_FINGERPRINT=" + c.caFP,
		"GANTRY_CONFIG=" + filepath.Join(c.dir, "none.json")}, "hosts", "ls")
	if r.code == 0 || !strings.Contains(r.stderr, "the server presented CA "+proxy.fp+", but GANTRY_CA_FINGERPRINT pins "+c.caFP) {
		t.Errorf("CLI through the proxy with the real pin: exit %d\n%s", r.code, r.stderr)
	}

	t.Run("login pins the CA", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "config.json")
		env := []string{"GANTRY_CONFIG=" + cfg, "GANTRY_SERVER=", "GANTRY_TOKEN=", "GANTRY_CA_FINGERPRINT="}
		// A wrong --ca-fingerprint is refused, naming both.
		r := runCLI(t, env, "login", "--server", c.url, "--token", c.token, "--ca-fingerprint", proxy.fp)
		if r.code == 0 || !strings.Contains(r.stderr, "the server presented CA "+c.caFP+", but --ca-fingerprint pins "+proxy.fp) {
			t.Errorf("login with a wrong --ca-fingerprint: exit %d\n%s", r.code, r.stderr)
		}
		// Trust on first use: shown and saved.
		r = runCLI(t, env, "login", "--server", c.url, "--token", c.token)
		r.ok(t)
		if !strings.Contains(r.stdout, c.caFP) {
			t.Errorf("login does not show the CA fingerprint %s:\n%s", c.caFP, r.stdout)
		}
		var prof struct {
			CAFingerprint string `json:"ca_fingerprint"`
		}
		b, _ := os.ReadFile(cfg)
		if err := json.Unmarshal(b, &prof); err != nil || prof.CAFingerprint != c.caFP {
			t.Fatalf("profile does not pin %s: %v\n%s", c.caFP, err, b)
		}
		runCLI(t, env, "hosts", "ls").ok(t)

		// The server gets another CA (as a server in the middle would
		// present): the profile's pin refuses it, and so does a new login.
		old := c.caFP
		c.server.stop()
		for _, f := range []string{"ca.key", "ca.crt"} {
			if err := os.Remove(filepath.Join(c.dir, "server", f)); err != nil {
				t.Fatal(err)
			}
		}
		c.startServer()
		if c.caFP == old {
			t.Fatal("the server kept its CA")
		}
		want := "the server presented CA " + c.caFP + ", but the profile (" + cfg + ") pins " + old
		r = runCLI(t, env, "hosts", "ls")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("CLI with a pinned profile against a changed CA: exit %d, want %q in\n%s", r.code, want, r.stderr)
		}
		r = runCLI(t, env, "login", "--server", c.url, "--token", c.token)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("a new login against a changed CA: exit %d, want %q in\n%s", r.code, want, r.stderr)
		}
	})

	t.Run("plain http refused without --insecure", func(t *testing.T) {
		p := newCluster(t, clusterOpts{plain: true})
		tok := p.joinToken()
		if strings.Contains(tok, ".") {
			t.Errorf("a server without TLS made a join token with a pin: %s", tok)
		}
		// Agent: refused without --insecure, nothing sent.
		a := start(t, []string{"GANTRY_JOIN_TOKEN=" + tok}, "agent", "--server", p.url, "--name", "plain-refused", "--data-dir", p.agentDir("plain-refused"))
		if code := a.exitCode(15 * time.Second); code == 0 || !strings.Contains(a.out.String(), "is plain http://") {
			t.Errorf("agent with an http:// server and no --insecure: exit %d\n%s", code, a.out)
		}
		if _, ok := p.host("plain-refused"); ok {
			t.Error("the refused agent enrolled")
		}
		// Accepted with --insecure, with the warning.
		ok := p.startAgent("plain-ok", "", tok)
		p.waitHost("plain-ok", api.HostOnline, 15*time.Second)
		if !strings.Contains(ok.out.String(), "WARNING: --insecure") {
			t.Errorf("agent with --insecure does not warn:\n%s", ok.out)
		}
		// CLI: refused without --insecure (a usage error), warned with it.
		env := []string{"GANTRY_SERVER=" + p.url, "GANTRY_TOKEN=" + p.token, "GANTRY_CONFIG=" + filepath.Join(p.dir, "none.json")}
		r := runCLI(t, env, "hosts", "ls")
		if r.code != 2 || !strings.Contains(r.stderr, "is plain http://") || !strings.Contains(r.stderr, "--insecure") {
			t.Errorf("CLI with an http:// server: exit %d\n%s", r.code, r.stderr)
		}
		r = runCLI(t, env, "--insecure", "hosts", "ls")
		r.ok(t)
		if !strings.Contains(r.stderr, "WARNING: --insecure") || !strings.Contains(r.stdout, "plain-ok") {
			t.Errorf("CLI with --insecure: stdout\n%s\nstderr\n%s", r.stdout, r.stderr)
		}
	})
}
