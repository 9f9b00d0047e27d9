// Package sshhost starts a real OpenSSH server in a network namespace, for
// tests of what gantry does over SSH (the ssh provider, end-to-end tests).
//
// Start creates a namespace gt-ssh-<random> joined to the machine by a veth
// pair: the machine's side is 10.213.<n>.1/30 (HostSideIP), the namespace's
// side 10.213.<n>.2/30 (Address), n picked at random in 1–250 among the
// ones no interface uses. sshd (Debian's openssh-server) listens on
// Address:22 with a fresh ed25519 host key and accepts one fresh client key
// for root. The namespace only has its own network: it shares the
// machine's file system, users and processes' view of files, so a test can
// look at what a command run over SSH left on disk.
//
// It needs root, ip (iproute2) and sshd. Without them Start fails the test
// with the command that installs what is missing, or skips it under
// `go test -short`.
package sshhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is the sshd binary Start runs.
const SSHD = "/usr/sbin/sshd"

// startTimeout bounds how long Start waits for sshd to accept connections.
const startTimeout = 15 * time.Second

// Host is a running sshd in its own network namespace.
type Host struct {
	// Namespace is the network namespace's name (gt-ssh-<random>).
	Namespace string
	// Address is the namespace side of the veth pair ("10.213.n.2"), where
	// sshd listens.
	Address string
	// Port is sshd's port (22).
	Port int
	// User is the user the client key logs in as ("root").
	User string
	// KeyFile is the path of the client's private key (ed25519, no
	// passphrase); KeyFile+".pub" is its public half.
	KeyFile string
	// HostKeyFingerprint is the fingerprint of sshd's host key as
	// `ssh-keygen -lf` prints it ("SHA256:…").
	HostKeyFingerprint string
	// HostPublicKey is sshd's host key in authorized_keys format.
	HostPublicKey string
	// KnownHostsFile is a known_hosts file with one line: Address and the
	// host key.
	KnownHostsFile string
	// HostSideIP is the machine's side of the veth pair ("10.213.n.1"):
	// where a server running on the machine must listen to be reachable
	// from inside the namespace.
	HostSideIP string
	// Dir is the temporary directory holding the keys, sshd_config and
	// sshd's log (sshd.log).
	Dir string

	hostKey ssh.PublicKey
}

// Target is "Address:Port".
func (h *Host) Target() string { return net.JoinHostPort(h.Address, strconv.Itoa(h.Port)) }

// Command returns an unstarted command that runs name with args inside the
// namespace (through `ip netns exec`).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Namespace, name}, args...)...)
}

// Exec runs args[0] with args[1:] inside the namespace and returns its
// standard output; it fails the test if the command fails.
func (h *Host) Exec(t testing.TB, args ...string) string {
	t.Helper()
	if len(args) == 0 {
		t.Fatal("sshhost: Exec without a command")
	}
	out, err := h.ExecErr(args...)
	if err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	return out
}

// ExecErr is Exec returning the error (with the command's standard error)
// instead of failing the test.
func (h *Host) ExecErr(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no command")
	}
	cmd := h.Command(args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("in %s: %s: %v: %s", h.Namespace, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Start creates the namespace and the veth pair, starts sshd in it, waits
// until it accepts connections and registers the cleanup that kills every
// process of the namespace and deletes the veth pair and the namespace.
func Start(t testing.TB) *Host {
	t.Helper()
	requirements(t)

	dir := t.TempDir()
	h := &Host{Port: 22, User: "root", Dir: dir}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatalf("sshhost: %v", err)
	}
	keys(t, h)

	sshd := &exec.Cmd{}
	vethHost, err := createNamespace(h)
	t.Cleanup(func() { h.destroy(t, sshd, vethHost) })
	if err != nil {
		t.Fatalf("sshhost: %v", err)
	}

	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress " + h.Target(),
		"HostKey " + filepath.Join(dir, "ssh_host_ed25519_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"StrictModes no",
		"UsePAM no",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"LogLevel VERBOSE",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	defer logf.Close()
	*sshd = *exec.Command("ip", "netns", "exec", h.Namespace, SSHD, "-D", "-e", "-f", cfg)
	sshd.Stdout, sshd.Stderr = logf, logf
	if err := sshd.Start(); err != nil {
		t.Fatalf("sshhost: start sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sshd.Wait() }()
	if err := waitListening(h.Target(), exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
		t.Fatalf("sshhost: sshd in %s: %v\nsshd log:\n%s", h.Namespace, err, log)
	}
	return h
}

// requirements fails (or, under -short, skips) the test when root, ip,
// sshd or ssh-keygen is missing.
func requirements(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces): run the tests as root, e.g. sudo -E go test ./...")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip: apt-get install -y iproute2")
	}
	if _, err := os.Stat(SSHD); err != nil {
		missing = append(missing, SSHD+": apt-get install -y openssh-server")
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		missing = append(missing, "ssh-keygen: apt-get install -y openssh-client")
	}
	if len(missing) == 0 {
		return
	}
	msg := "sshhost: a real sshd test host needs " + strings.Join(missing, "; ")
	if testing.Short() {
		t.Skip(msg)
	}
	t.Fatal(msg)
}

// keys generates the host key and the client key pair and writes
// authorized_keys and known_hosts.
func keys(t testing.TB, h *Host) {
	t.Helper()
	hostKey := filepath.Join(h.Dir, "ssh_host_ed25519_key")
	h.KeyFile = filepath.Join(h.Dir, "id_ed25519")
	for _, k := range []struct{ file, comment string }{{hostKey, "gantry-test-host"}, {h.KeyFile, "gantry-test-client"}} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k.comment, "-f", k.file).CombinedOutput()
		if err != nil {
			t.Fatalf("sshhost: ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(h.KeyFile + ".pub")
	if err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatalf("sshhost: %v", err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(hostPub)
	if err != nil {
		t.Fatalf("sshhost: parse host key: %v", err)
	}
	h.HostKeyFingerprint = ssh.FingerprintSHA256(key)
	h.HostPublicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	h.KnownHostsFile = filepath.Join(h.Dir, "known_hosts")
	// The line is written once the address is known (createNamespace).
	h.hostKey = key
}

// lockFile serializes the choice of a subnet between test processes (go
// test runs packages in parallel).
var lockFile = filepath.Join(os.TempDir(), "gantry-sshhost.lock")

// createNamespace picks a free 10.213.n.0/30, creates the namespace and the
// veth pair and writes the known_hosts line. It returns the name of the
// veth end on the machine's side ("" if it was not created).
func createNamespace(h *Host) (string, error) {
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lockFile, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway

	suffix := randomHex(4)
	h.Namespace = "gt-ssh-" + suffix
	vethHost, vethNS := "gts"+suffix+"h", "gts"+suffix+"n" // ≤ 15 characters

	used, err := usedSubnets()
	if err != nil {
		return "", err
	}
	n := 0
	for range 500 {
		c := 1 + randomInt(250)
		if !used[c] {
			n = c
			break
		}
	}
	if n == 0 {
		return "", errors.New("no free subnet 10.213.n.0/30 (n in 1–250): delete leftover gt-ssh-* namespaces (ip netns list)")
	}
	h.HostSideIP = fmt.Sprintf("10.213.%d.1", n)
	h.Address = fmt.Sprintf("10.213.%d.2", n)

	steps := [][]string{
		{"netns", "add", h.Namespace},
		{"link", "add", vethHost, "type", "veth", "peer", "name", vethNS},
		{"link", "set", vethNS, "netns", h.Namespace},
		{"addr", "add", h.HostSideIP + "/30", "dev", vethHost},
		{"link", "set", vethHost, "up"},
		{"netns", "exec", h.Namespace, "ip", "link", "set", "lo", "up"},
		{"netns", "exec", h.Namespace, "ip", "addr", "add", h.Address + "/30", "dev", vethNS},
		{"netns", "exec", h.Namespace, "ip", "link", "set", vethNS, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return vethHost, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	line := knownhosts.Line([]string{h.Target()}, h.hostKey) + "\n"
	if err := os.WriteFile(h.KnownHostsFile, []byte(line), 0o600); err != nil {
		return vethHost, err
	}
	return vethHost, nil
}

// usedSubnets returns the n of every 10.213.n.x address on the machine.
func usedSubnets() (map[int]bool, error) {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip addr show: %v: %s", err, out)
	}
	used := map[int]bool{}
	for _, f := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(f, "10.213.")
		if !ok {
			continue
		}
		if i := strings.IndexByte(rest, '.'); i > 0 {
			if v, err := strconv.Atoi(rest[:i]); err == nil {
				used[v] = true
			}
		}
	}
	return used, nil
}

// waitListening polls addr until it accepts a TCP connection, sshd exits
// or the deadline passes.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s: %v", addr, startTimeout, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening: %v", err)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
	}
}

// destroy kills sshd and every process of the namespace, then deletes the
// veth pair and the namespace. It logs sshd's output when the test failed.
func (h *Host) destroy(t testing.TB, sshd *exec.Cmd, vethHost string) {
	if sshd.Process != nil {
		_ = sshd.Process.Kill()
	}
	if h.Namespace != "" {
		h.killAll()
	}
	if vethHost != "" {
		_ = exec.Command("ip", "link", "del", vethHost).Run()
	}
	if h.Namespace != "" {
		if out, err := exec.Command("ip", "netns", "del", h.Namespace).CombinedOutput(); err != nil {
			t.Logf("sshhost: ip netns del %s: %v: %s", h.Namespace, err, out)
		}
	}
	if t.Failed() {
		if log, err := os.ReadFile(filepath.Join(h.Dir, "sshd.log")); err == nil {
			t.Logf("sshhost: sshd log of %s:\n%s", h.Namespace, log)
		}
	}
}

// killAll SIGKILLs every process in the namespace until none is left (or a
// deadline passes).
func (h *Host) killAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", h.Namespace).Output()
		if err != nil {
			return
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond): // poll interval while the kernel reaps them
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

func randomInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err)
	}
	return int(v.Int64())
}
