package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/gantry-dev/gantry/internal/provider"
)

const someFingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"

func TestRegistered(t *testing.T) {
	f, err := provider.Lookup("ssh")
	if err != nil {
		t.Fatal(err)
	}
	if f.Info.Networks || f.Info.Images || len(f.Info.InPlace) != 0 {
		t.Errorf("info = %+v", f.Info)
	}
	for _, k := range []string{"user", "private_key_file", "known_hosts", "host_key", "use_agent", "agent_dir", "server_url", "bus_url", "port"} {
		if f.Info.Config[k] == "" {
			t.Errorf("config %s undocumented", k)
		}
	}
	for _, k := range []string{"address", "port", "user", "private_key_file", "known_hosts", "host_key", "agent_dir"} {
		if f.Info.MachineAttrs[k] == "" {
			t.Errorf("machine attribute %s undocumented", k)
		}
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name   string
		config map[string]string
		want   string // in the error; "" = no error
	}{
		{"defaults", map[string]string{"host_key": someFingerprint}, ""},
		{"unknown attribute", map[string]string{"hots_key": "x"}, `unknown attribute "hots_key"`},
		{"md5 host key", map[string]string{"host_key": "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48"}, "not a SHA256 fingerprint"},
		{"short host key", map[string]string{"host_key": "SHA256:abc"}, "not a SHA256 fingerprint"},
		{"use_agent", map[string]string{"use_agent": "yes"}, `use_agent = "yes"`},
		{"port", map[string]string{"port": "0"}, `port = "0"`},
		{"user", map[string]string{"user": "a b"}, `user = "a b"`},
		{"root dir", map[string]string{"agent_dir": "/"}, "agent_dir"},
		{"shallow dir", map[string]string{"agent_dir": "/opt"}, "at least two levels deep"},
		{"relative dir", map[string]string{"agent_dir": "opt/gantry"}, "absolute, clean path"},
		{"unclean dir", map[string]string{"agent_dir": "/opt/../etc/x"}, "absolute, clean path"},
		{"dir with space", map[string]string{"agent_dir": "/opt/my agent"}, "absolute, clean path"},
		{"dir with quote", map[string]string{"agent_dir": "/opt/it's"}, "absolute, clean path"},
		{"server_url", map[string]string{"server_url": "gantry:7070"}, "not an absolute URL"},
		{"bus_url newline", map[string]string{"bus_url": "nats://a:4222\nx"}, "control character"},
		{"missing key", map[string]string{"private_key_file": "/nonexistent/id"}, "private_key_file"},
		{"address at provider level", map[string]string{"address": "10.0.0.1"}, `unknown attribute "address"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.config, provider.Env{})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPassphraseKey(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("this test needs ssh-keygen: apt-get install -y openssh-client (make test installs it)")
	}
	key := filepath.Join(t.TempDir(), "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	_, err := New(map[string]string{"private_key_file": key, "host_key": someFingerprint}, provider.Env{})
	if err == nil || !strings.Contains(err.Error(), "passphrase") || !strings.Contains(err.Error(), "ssh-agent") || !strings.Contains(err.Error(), key) {
		t.Fatalf("err = %v, want a passphrase error pointing to ssh-agent", err)
	}
}

func TestMachineSettings(t *testing.T) {
	p, err := New(map[string]string{"host_key": someFingerprint, "user": "admin", "port": "2200"}, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.machineSettings(map[string]string{"address": "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.id(), "admin@10.1.2.3:2200|/opt/gantry-agent"; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	s, err = p.machineSettings(map[string]string{"address": "fd00::1", "port": "22", "user": "root", "agent_dir": "/srv/gantry", "known_hosts": "/etc/kh"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.id(), "root@[fd00::1]:22|/srv/gantry"; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	if s.hostKey != "" || s.knownHosts != "/etc/kh" {
		t.Errorf("a machine's known_hosts must replace the provider's host_key: %+v", s)
	}
	back, err := p.idSettings(s.id())
	if err != nil || back.address != "fd00::1" || back.port != 22 || back.user != "root" || back.agentDir != "/srv/gantry" {
		t.Errorf("idSettings = %+v, %v", back, err)
	}

	for _, bad := range []map[string]string{
		{},
		{"address": "-oProxyCommand=evil"},
		{"address": "a b"},
		{"address": "h", "agent_dir": "/"},
		{"address": "h", "cpus": "2"},
		{"address": "h", "use_agent": "true"},
	} {
		if _, err := p.machineSettings(bad); err == nil {
			t.Errorf("machineSettings(%v) accepted", bad)
		}
	}
	if _, err := p.idSettings("nonsense"); err == nil {
		t.Error("idSettings accepted a bad id")
	}
}

func TestCheckPlatform(t *testing.T) {
	tests := []struct {
		uname, arch string
		want        string
	}{
		{"Linux x86_64\n", "amd64", ""},
		{"Linux aarch64\n", "arm64", ""},
		{"Linux aarch64\n", "amd64", "the host is aarch64 but the agent binary /b is for amd64"},
		{"Linux x86_64\n", "arm64", "the host is x86_64"},
		{"Linux mips\n", "amd64", "the host is mips"},
		{"FreeBSD amd64\n", "amd64", "Linux only"},
		{"", "amd64", "uname"},
	}
	for _, tt := range tests {
		err := checkPlatform(tt.uname, tt.arch, "/b")
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkPlatform(%q, %s) = %v, want %q", tt.uname, tt.arch, err, tt.want)
		}
	}
}

func TestAgentServerURL(t *testing.T) {
	p, err := New(map[string]string{"host_key": someFingerprint}, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.agentServerURL("http://127.0.0.1:7070", "10.0.0.5"); err == nil || !strings.Contains(err.Error(), "server_url") {
		t.Errorf("loopback server URL for a remote host: err = %v", err)
	}
	if u, err := p.agentServerURL("http://127.0.0.1:7070", "127.0.0.1"); err != nil || u != "http://127.0.0.1:7070" {
		t.Errorf("loopback host: %s, %v", u, err)
	}
	if _, err := p.agentServerURL("", "10.0.0.5"); err == nil {
		t.Error("no server URL accepted")
	}
	p.serverURL = "http://gantry.internal:7070"
	if u, err := p.agentServerURL("http://127.0.0.1:7070", "10.0.0.5"); err != nil || u != p.serverURL {
		t.Errorf("server_url: %s, %v", u, err)
	}
}

func TestNetworksNotSupported(t *testing.T) {
	p, err := New(map[string]string{"host_key": someFingerprint}, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := p.CreateNetwork(ctx, provider.Network{Name: "n"}); !errors.Is(err, provider.ErrNotSupported) {
		t.Errorf("CreateNetwork: %v", err)
	}
	if _, _, err := p.ReadNetwork(ctx, "n"); !errors.Is(err, provider.ErrNotSupported) {
		t.Errorf("ReadNetwork: %v", err)
	}
	if err := p.DeleteNetwork(ctx, "n"); !errors.Is(err, provider.ErrNotSupported) {
		t.Errorf("DeleteNetwork: %v", err)
	}
	if _, err := p.CreateMachine(ctx, provider.Machine{Name: "m", Networks: []string{"n"}, Attrs: map[string]string{"address": "h"}}); !errors.Is(err, provider.ErrNotSupported) {
		t.Errorf("CreateMachine with networks: %v", err)
	}
	if found, err := p.List(ctx, "prod"); found != nil || err != nil {
		t.Errorf("List = %v, %v", found, err)
	}
}

// A server that accepts but never speaks SSH, or hangs up: clear errors
// naming the address, within the connect timeout.
func TestNotAnSSHServer(t *testing.T) {
	for name, serve := range map[string]func(net.Conn){
		"silent":  func(c net.Conn) { t.Cleanup(func() { c.Close() }) },
		"hang up": func(c net.Conn) { c.Close() },
	} {
		t.Run(name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					serve(c)
				}
			}()
			p, err := New(map[string]string{"host_key": someFingerprint, "use_agent": "false", "private_key_file": writeKey(t)}, provider.Env{})
			if err != nil {
				t.Fatal(err)
			}
			p.connectTimeout = 300 * time.Millisecond
			host, port, _ := net.SplitHostPort(l.Addr().String())
			_, _, err = p.ReadMachine(t.Context(), "root@"+host+":"+port+"|/opt/gantry-agent")
			want := map[string]string{"silent": "no SSH handshake within 300ms", "hang up": "closed the connection during the SSH handshake"}[name]
			if err == nil || !strings.Contains(err.Error(), "ssh root@"+l.Addr().String()+": ") || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one containing %q", err, want)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	p, err := New(map[string]string{"host_key": someFingerprint, "use_agent": "false", "private_key_file": writeKey(t)}, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := p.ReadMachine(ctx, "root@192.0.2.1:22|/opt/gantry-agent"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func writeKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
