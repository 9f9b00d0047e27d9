package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// connectTimeout bounds the TCP connection and the SSH handshake.
const connectTimeout = 10 * time.Second

// hostKeyAlgorithms is the order in which gantry asks for the host's key
// (OpenSSH's order): a host_key pin should be the host's ed25519 key.
var hostKeyAlgorithms = []string{
	gossh.KeyAlgoED25519,
	gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
	gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256,
}

// conn is one SSH connection to a host.
type conn struct {
	client *gossh.Client
	// target is "user@host:port", the prefix of every error.
	target string
	// onCommand, when set, sees every command line sent (tests).
	onCommand func(string)
	closers   []io.Closer
}

// Close closes the connection (and the ssh-agent connection, if any).
func (c *conn) Close() error {
	err := c.client.Close()
	for _, cl := range c.closers {
		cl.Close()
	}
	return err
}

// hostKeyError is returned by the host key callback; its message is
// complete apart from the "ssh TARGET: " prefix.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// dial connects and authenticates to the host s describes.
func (p *Provider) dial(ctx context.Context, s settings) (*conn, error) {
	hostport := net.JoinHostPort(s.address, strconv.Itoa(s.port))
	target := s.user + "@" + hostport
	fail := func(format string, a ...any) error {
		return fmt.Errorf("ssh %s: "+format, append([]any{target}, a...)...)
	}

	auth, tried, closers, err := authMethod(s)
	if err != nil {
		return nil, fail("%w", err)
	}
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}

	d := net.Dialer{Timeout: p.connectTimeout}
	nc, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		closeAll()
		if ctx.Err() != nil {
			return nil, fail("%w", ctx.Err())
		}
		return nil, fail("%s", dialProblem(err, p.connectTimeout))
	}

	hostKeyCB, algos, err := hostKeyCheck(s, hostport, nc.RemoteAddr())
	if err != nil {
		nc.Close()
		closeAll()
		return nil, fail("%w", err)
	}
	cfg := &gossh.ClientConfig{
		User:              s.user,
		Auth:              []gossh.AuthMethod{auth},
		HostKeyCallback:   hostKeyCB,
		HostKeyAlgorithms: algos,
		Timeout:           p.connectTimeout,
	}
	_ = nc.SetDeadline(time.Now().Add(p.connectTimeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	sc, chans, reqs, err := gossh.NewClientConn(nc, hostport, cfg)
	stop()
	if err != nil {
		nc.Close()
		closeAll()
		var hk *hostKeyError
		switch {
		case errors.As(err, &hk):
			return nil, fail("%s", hk.msg)
		case ctx.Err() != nil:
			return nil, fail("%w", ctx.Err())
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fail("authentication failed (tried: %s)", strings.Join(tried, ", "))
		case isTimeout(err):
			return nil, fail("no SSH handshake within %s (is this an SSH server?)", p.connectTimeout)
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			return nil, fail("the server closed the connection during the SSH handshake (is this an SSH server, does it allow this user?)")
		}
		return nil, fail("%w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &conn{client: gossh.NewClient(sc, chans, reqs), target: target, onCommand: p.onCommand, closers: closers}, nil
}

// dialProblem describes a failed TCP connection.
func dialProblem(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is sshd running and listening on that port?)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable: " + err.Error()
	case isTimeout(err):
		return fmt.Sprintf("no answer within %s (host down, wrong address or a firewall dropping the port?)", timeout)
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// authMethod is the public-key method with the signers of the key file
// and/or ssh-agent, and the list of what it tries (for the error).
func authMethod(s settings) (gossh.AuthMethod, []string, []io.Closer, error) {
	var (
		signers []gossh.Signer
		tried   []string
		closers []io.Closer
	)
	if s.keyFile != "" {
		signer, err := loadKey(s.keyFile)
		if err != nil {
			return nil, nil, nil, err
		}
		signers = append(signers, signer)
		tried = append(tried, "key "+s.keyFile)
	}
	var agentSigners func() ([]gossh.Signer, error)
	sock := os.Getenv("SSH_AUTH_SOCK")
	useAgent := s.useAgent == "true" || (s.useAgent == "" && s.keyFile == "" && sock != "")
	if useAgent {
		if sock == "" {
			return nil, nil, nil, errors.New(`use_agent = "true" but SSH_AUTH_SOCK is not set (start ssh-agent and ssh-add the key, in the server's environment)`)
		}
		ac, err := net.DialTimeout("unix", sock, connectTimeout)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK=%s: %w", sock, err)
		}
		closers = append(closers, ac)
		agentSigners = agent.NewClient(ac).Signers
		tried = append(tried, "agent")
	}
	if len(tried) == 0 {
		return nil, nil, nil, errors.New("no credentials: set private_key_file, or run ssh-agent (SSH_AUTH_SOCK) with the key loaded")
	}
	cb := func() ([]gossh.Signer, error) {
		out := append([]gossh.Signer(nil), signers...)
		if agentSigners != nil {
			as, err := agentSigners()
			if err != nil && len(out) == 0 {
				return nil, fmt.Errorf("ssh-agent: %w", err)
			}
			out = append(out, as...)
		}
		return out, nil
	}
	// One method: x/crypto/ssh tries each method name once, so the key
	// file and the agent's keys must share the publickey method.
	return gossh.PublicKeysCallback(cb), tried, closers, nil
}

// loadKey reads an unencrypted private key (ed25519, RSA, ECDSA).
func loadKey(path string) (gossh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private_key_file: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	var pm *gossh.PassphraseMissingError
	if errors.As(err, &pm) {
		return nil, fmt.Errorf("private key %s is protected by a passphrase, which gantry cannot ask for: load it into ssh-agent (ssh-add %s), set use_agent = \"true\" and leave private_key_file unset", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return signer, nil
}

// hostKeyCheck is the host key callback for s (a pinned fingerprint or a
// known_hosts file; never none) and the host key algorithms to ask for.
func hostKeyCheck(s settings, hostport string, remote net.Addr) (gossh.HostKeyCallback, []string, error) {
	host, port, _ := net.SplitHostPort(hostport)
	if s.hostKey != "" {
		want := s.hostKey
		return func(_ string, _ net.Addr, key gossh.PublicKey) error {
			got := gossh.FingerprintSHA256(key)
			if got != want {
				return &hostKeyError{fmt.Sprintf("host key mismatch: got %s, want %s (the host offered its %s key): if the host was reinstalled, check the new key on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update host_key",
					got, want, key.Type())}
			}
			return nil
		}, hostKeyAlgorithms, nil
	}

	file := s.knownHosts
	unknown := func(key gossh.PublicKey) error {
		fp := gossh.FingerprintSHA256(key)
		return &hostKeyError{fmt.Sprintf("unknown host: its %s key %s is not in %s; after checking it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), pin it with host_key = %q, or add it to known_hosts with: ssh-keyscan -p %s -t %s %s >> %s",
			key.Type(), fp, file, fp, port, keyscanType(key.Type()), host, file)}
	}
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return func(_ string, _ net.Addr, key gossh.PublicKey) error { return unknown(key) }, hostKeyAlgorithms, nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts: %w", err)
	}
	check := func(h string, r net.Addr, key gossh.PublicKey) error {
		err := cb(h, r, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return unknown(key)
			}
			var want []string
			for _, w := range ke.Want {
				want = append(want, fmt.Sprintf("%s (%s, %s:%d)", gossh.FingerprintSHA256(w.Key), w.Key.Type(), w.Filename, w.Line))
			}
			return &hostKeyError{fmt.Sprintf("host key mismatch: got %s, want %s (the host offered its %s key): if the host was reinstalled, check the new key on the host and replace the line in %s",
				gossh.FingerprintSHA256(key), strings.Join(want, " or "), key.Type(), file)}
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return &hostKeyError{fmt.Sprintf("host key %s is revoked in %s", gossh.FingerprintSHA256(key), file)}
		}
		return err
	}
	return check, knownAlgorithms(cb, hostport, remote), nil
}

// keyscanType is the ssh-keyscan -t name of a key type.
func keyscanType(t string) string {
	switch {
	case t == gossh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == gossh.KeyAlgoRSA:
		return "rsa"
	}
	return t
}

// knownAlgorithms asks for the key types known_hosts has for the host, so
// that a host with several keys offers one gantry can check (the usual
// trick: a key that cannot match makes the callback list the known ones).
func knownAlgorithms(cb gossh.HostKeyCallback, hostport string, remote net.Addr) []string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return hostKeyAlgorithms
	}
	probe, err := gossh.NewPublicKey(pub)
	if err != nil {
		return hostKeyAlgorithms
	}
	var ke *knownhosts.KeyError
	if !errors.As(cb(hostport, remote, probe), &ke) || len(ke.Want) == 0 {
		return hostKeyAlgorithms
	}
	known := map[string]bool{}
	for _, w := range ke.Want {
		switch t := w.Key.Type(); t {
		case gossh.KeyAlgoRSA:
			known[gossh.KeyAlgoRSASHA512], known[gossh.KeyAlgoRSASHA256] = true, true
		default:
			known[t] = true
		}
	}
	var algos []string
	for _, a := range hostKeyAlgorithms {
		if known[a] {
			algos = append(algos, a)
		}
	}
	if len(algos) == 0 {
		return hostKeyAlgorithms
	}
	return algos
}

// checkFingerprint validates a host_key value: "SHA256:" and the base64 of
// 32 bytes, as `ssh-keygen -lf` prints it.
func checkFingerprint(fp string) error {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if ok {
		if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err == nil && len(b) == 32 {
			return nil
		}
	}
	return fmt.Errorf("host_key %q is not a SHA256 fingerprint as `ssh-keygen -lf` prints it (SHA256:…, 43 base64 characters)", fp)
}

// expandHome turns a leading "~/" into the home directory.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// remoteError is a script that ran and exited non-zero.
type remoteError struct {
	target, what string
	status       int
	stderr       string
}

func (e *remoteError) Error() string {
	msg := fmt.Sprintf("ssh %s: %s: exit status %d", e.target, e.what, e.status)
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

// maxStderr is how much of a script's standard error an error keeps.
const maxStderr = 2048

// run runs script with args on the host, stdin (may be nil) as its
// standard input, and returns its standard output.
func (c *conn) run(ctx context.Context, what string, stdin io.Reader, script string, args ...string) (string, error) {
	line, err := remoteCommand(script, args...)
	if err != nil {
		return "", fmt.Errorf("ssh %s: %s: %w", c.target, what, err)
	}
	if c.onCommand != nil {
		c.onCommand(line)
	}
	sess, err := c.client.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh %s: %s: open a session: %w", c.target, what, err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	if stdin != nil {
		sess.Stdin = stdin
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	err = sess.Run(line)
	stop()
	if ctx.Err() != nil {
		return "", fmt.Errorf("ssh %s: %s: %w", c.target, what, ctx.Err())
	}
	if err != nil {
		var ee *gossh.ExitError
		if errors.As(err, &ee) {
			msg := strings.TrimSpace(stderr.String())
			if len(msg) > maxStderr {
				msg = "…" + msg[len(msg)-maxStderr:]
			}
			return stdout.String(), &remoteError{target: c.target, what: what, status: ee.ExitStatus(), stderr: msg}
		}
		return "", fmt.Errorf("ssh %s: %s: %w", c.target, what, err)
	}
	return stdout.String(), nil
}
