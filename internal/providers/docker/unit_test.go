package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
)

// These tests need no Docker engine.

func TestRegistered(t *testing.T) {
	f, err := provider.Lookup("docker")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Info.Networks || !f.Info.Images || strings.Join(f.Info.InPlace, ",") != "cpus,memory" || f.Info.Config["host"] == "" {
		t.Errorf("info %+v", f.Info)
	}
	if _, err := f.New(map[string]string{"hots": "x"}, provider.Env{}); err == nil || !strings.Contains(err.Error(), "unknown attribute(s) hots (accepted: host)") {
		t.Errorf("unknown config key: err = %v", err)
	}
	if _, err := f.New(map[string]string{"host": "ftp://x"}, provider.Env{}); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Errorf("bad host: err = %v", err)
	}
}

func TestUnreachableDaemon(t *testing.T) {
	p, err := New(map[string]string{"host": "unix:///nonexistent"}, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	want := []string{
		"docker: cannot reach the daemon at unix:///nonexistent: ",
		`; is Docker running? set provider "docker" { host = … } or DOCKER_HOST`,
	}
	_, err1 := p.CreateNetwork(ctx, provider.Network{Name: "n"})
	_, _, err2 := p.ReadMachine(ctx, "x")
	_, err3 := p.List(ctx, "e")
	_, err4 := p.CreateMachine(ctx, provider.Machine{Name: "m", Image: "i", Agent: provider.Agent{Binary: "unit_test.go", ServerURL: "http://127.0.0.1:1"}})
	for i, err := range []error{err1, err2, err3, err4, p.DeleteMachine(ctx, "x"), p.DeleteNetwork(ctx, "x")} {
		if err == nil {
			t.Errorf("call %d: no error", i)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("call %d: %v\nwant it to contain %q", i, err, w)
			}
		}
	}
}

func TestAgentURL(t *testing.T) {
	gw := net.ParseIP("172.18.0.1")
	for _, tc := range []struct{ in, out, target string }{
		{"http://127.0.0.1:7070", "http://172.18.0.1:7070", "127.0.0.1:7070"},
		{"nats://127.0.0.1:7422", "nats://172.18.0.1:7422", "127.0.0.1:7422"},
		{"http://localhost:8080/base", "http://172.18.0.1:8080/base", "127.0.0.1:8080"},
		{"nats://127.0.0.1", "nats://172.18.0.1:4222", "127.0.0.1:4222"},
		{"http://[::1]:7070", "http://172.18.0.1:7070", "[::1]:7070"},
		{"http://gantry.internal:7070", "http://gantry.internal:7070", ""},
		{"http://10.0.0.5:7070", "http://10.0.0.5:7070", ""},
		{"", "", ""},
	} {
		out, target, err := agentURL(tc.in, gw)
		if err != nil || out != tc.out || target != tc.target {
			t.Errorf("agentURL(%q) = %q, %q, %v; want %q, %q", tc.in, out, target, err, tc.out, tc.target)
		}
	}
}

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestForwarderAcceptsOnlyItsSubnet(t *testing.T) {
	target := echoServer(t)
	for _, tc := range []struct {
		allow string
		ok    bool
	}{{"127.0.0.0/8", true}, {"10.0.0.0/8", false}} {
		_, allow, _ := net.ParseCIDR(tc.allow)
		f, err := startForwarder("127.0.0.1:0", target, allow)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", f.addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "ping\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if tc.ok && (err != nil || line != "ping\n") {
			t.Errorf("allow %s: got %q, %v; want the echo", tc.allow, line, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("allow %s: got %q; want the connection dropped", tc.allow, line)
		}
		c.Close()
		f.close()
		if c, err := net.Dial("tcp", f.addr()); err == nil {
			c.Close()
			t.Errorf("allow %s: still listening after close", tc.allow)
		}
	}
}

func TestForwardersAreSharedAndReleased(t *testing.T) {
	target := echoServer(t)
	_, port, _ := net.SplitHostPort(target)
	// The target's own address is taken: EADDRINUSE means "use it as is".
	_, allow, _ := net.ParseCIDR("127.0.0.0/8")
	h := newHolder()
	if err := h.forward(target, target, allow); err != nil {
		t.Fatalf("address in use: %v", err)
	}
	if len(h.keys) != 0 {
		t.Errorf("holds %v for an address in use", h.keys)
	}
	listen := net.JoinHostPort("127.0.0.2", port)
	h1, h2 := newHolder(), newHolder()
	for _, h := range []*holder{h1, h2, h1} {
		if err := h.forward(listen, target, allow); err != nil {
			t.Fatal(err)
		}
	}
	registry.Lock()
	refs := registry.m[listen].refs
	registry.Unlock()
	if refs != 2 {
		t.Errorf("refs = %d, want 2", refs)
	}
	if err := h2.forward(listen, "127.0.0.1:1", allow); err == nil {
		t.Errorf("a second target for %s accepted", listen)
	}
	dial := func() error {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err
	}
	h1.releaseAll()
	if err := dial(); err != nil {
		t.Errorf("released by one of two holders: %v", err)
	}
	h2.releaseAll()
	if err := dial(); err == nil {
		t.Errorf("still listening when nobody holds it")
	}
}

func TestAgentTar(t *testing.T) {
	var buf bytes.Buffer
	bin := []byte("\x7fELF fake")
	if err := writeAgentTar(&buf, bytes.NewReader(bin), int64(len(bin)), time.Now()); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name+" "+h.FileInfo().Mode().String())
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			if !bytes.Equal(b, bin) {
				t.Errorf("content %q", b)
			}
		}
	}
	if strings.Join(got, "; ") != ".gantry/ drwxr-xr-x; .gantry/gantry -rwxr-xr-x" {
		t.Errorf("entries %v", got)
	}
	if err := writeAgentTar(io.Discard, bytes.NewReader(bin), 100, time.Now()); err == nil {
		t.Error("short binary: no error")
	}
}

func TestStateAddressOrder(t *testing.T) {
	var ci containerInspect
	ci.ID = "c1"
	ci.State.Running = true
	ci.Config.Labels = map[string]string{LabelNetworks: "net-b-0123456789ab,net-a"}
	ci.NetworkSettings.Networks = map[string]endpoint{
		"a-name": {NetworkID: "net-a", IPAddress: "10.0.1.5"},
		"b-name": {NetworkID: "net-b-0123456789abcdef", IPAddress: "10.0.2.5"},
		"extra":  {NetworkID: "net-x", IPAddress: "10.0.3.5"},
	}
	st := ci.state()
	if st.Address != "10.0.2.5" || st.Addresses["net-b-0123456789ab"] != "10.0.2.5" || st.Addresses["net-a"] != "10.0.1.5" || st.Addresses["net-x"] != "10.0.3.5" || !st.Running {
		t.Errorf("state %+v", st)
	}
	ci.Config.Labels = nil
	ci.NetworkSettings.Networks = map[string]endpoint{"bridge": {NetworkID: "br", IPAddress: "172.17.0.3"}}
	if st := ci.state(); st.Address != "172.17.0.3" || st.Addresses["br"] != "172.17.0.3" {
		t.Errorf("default bridge: state %+v", st)
	}
}
