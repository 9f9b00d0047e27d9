package sshhost

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestStart(t *testing.T) {
	h := Start(t)

	if !strings.HasPrefix(h.Address, "10.213.") || !strings.HasSuffix(h.Address, ".2") || !strings.HasSuffix(h.HostSideIP, ".1") {
		t.Fatalf("addresses: %s / %s", h.Address, h.HostSideIP)
	}
	if out := h.Exec(t, "ip", "-o", "-4", "addr", "show"); !strings.Contains(out, h.Address+"/30") {
		t.Fatalf("namespace addresses:\n%s", out)
	}

	key, err := os.ReadFile(h.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(h.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	c, err := ssh.Dial("tcp", h.Target(), &ssh.ClientConfig{
		User: h.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(host string, remote net.Addr, k ssh.PublicKey) error {
			got = ssh.FingerprintSHA256(k)
			return cb(host, remote, k)
		},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got != h.HostKeyFingerprint {
		t.Errorf("fingerprint %s, want %s", got, h.HostKeyFingerprint)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("id -u")
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("id -u: %q %v", out, err)
	}

	// The fingerprint is the one ssh-keygen prints.
	kg, err := exec.Command("ssh-keygen", "-lf", h.KnownHostsFile).Output()
	if err != nil || !strings.Contains(string(kg), h.HostKeyFingerprint) {
		t.Fatalf("ssh-keygen -lf: %s %v (want %s)", kg, err, h.HostKeyFingerprint)
	}
}

func TestCleanupRemovesNamespace(t *testing.T) {
	var ns, veth string
	t.Run("host", func(t *testing.T) {
		h := Start(t)
		ns = h.Namespace
		cmd := h.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() //nolint:errcheck // reaped when cleanup kills it
		veth = h.HostSideIP
	})
	if ns == "" {
		t.Skip("no host started")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), ns) {
		t.Errorf("namespace %s still listed:\n%s", ns, out)
	}
	addrs, _ := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if strings.Contains(string(addrs), veth+"/") {
		t.Errorf("address %s still present:\n%s", veth, addrs)
	}
}
