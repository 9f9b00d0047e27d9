package docker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/providers/docker/dockertest"
	"github.com/gantry-dev/gantry/internal/providers/docker/engine"
)

// testImage is the image of the test machines: busybox only.
const testImage = "gantry-test-docker-provider:dev"

var (
	buildOnce  sync.Once
	buildErr   error
	agentBin   string
	imageBuilt bool
	tmpDir     string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageBuilt {
		if c, err := dockertest.Client(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_ = dockertest.RemoveImage(ctx, c, testImage)
			cancel()
		}
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// fixtures builds, once, the test image and the fake agent binary (a static
// Go program from testdata/fakeagent).
func fixtures(t *testing.T) (agent string) {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if buildErr = dockertest.BuildImage(ctx, testImage, nil); buildErr != nil {
			return
		}
		imageBuilt = true
		if tmpDir, buildErr = os.MkdirTemp("", "gantry-docker-test-"); buildErr != nil {
			return
		}
		agentBin = filepath.Join(tmpDir, "fakeagent")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", agentBin, "./testdata/fakeagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the fake agent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return agentBin
}

// testEnv returns a fresh environment name whose objects are removed when
// the test ends.
func testEnv(t *testing.T, c *engine.Client) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	env := "gtest-" + hex.EncodeToString(b)
	dockertest.Cleanup(t, c, provider.LabelEnv+"="+env)
	return env
}

func newProvider(t *testing.T, config map[string]string) *Docker {
	t.Helper()
	p, err := New(config, provider.Env{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// report is one request of the fake agent.
type report struct {
	name, hostname, token, host string
}

// fakeServer stands in for the gantry server: an HTTP server and a "bus"
// TCP listener on loopback, recording what fake agents send.
type fakeServer struct {
	http    *httptest.Server
	bus     net.Listener
	reports chan report
	bussed  chan string
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{reports: make(chan report, 1024), bussed: make(chan string, 1024)}
	f.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		select {
		case f.reports <- report{q.Get("name"), q.Get("hostname"), r.Header.Get("X-Join-Token"), r.Host}:
		default:
		}
	}))
	t.Cleanup(f.http.Close)
	var err error
	if f.bus, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.bus.Close() })
	go func() {
		for {
			c, err := f.bus.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					select {
					case f.bussed <- strings.TrimSpace(line):
					default:
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeServer) agent(bin, name, token string) provider.Agent {
	return provider.Agent{Binary: bin, ServerURL: f.http.URL, BusURL: "nats://" + f.bus.Addr().String(), JoinToken: token, Name: name}
}

// drain forgets what agents reported so far.
func (f *fakeServer) drain() {
	for {
		select {
		case <-f.reports:
		case <-f.bussed:
		default:
			return
		}
	}
}

// waitReport waits (up to a deadline) for a report from the agent name.
func (f *fakeServer) waitReport(t *testing.T, name string, d time.Duration) report {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-f.reports:
			if r.name == name {
				return r
			}
		case <-deadline:
			t.Fatalf("no request from agent %s within %v", name, d)
		}
	}
}

// waitBus waits (up to a deadline) for a bus connection from name.
func (f *fakeServer) waitBus(t *testing.T, name string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case n := <-f.bussed:
			if n == name {
				return
			}
		case <-deadline:
			t.Fatalf("no bus connection from agent %s within %v", name, d)
		}
	}
}

// inspect is the raw inspection of a container, for assertions.
type inspect struct {
	Path   string
	Args   []string
	Config struct {
		Hostname   string
		Entrypoint []string
		Cmd        []string
		Env        []string
		Labels     map[string]string
	}
	HostConfig struct {
		NanoCpus      int64
		Memory        int64
		MemorySwap    int64
		RestartPolicy struct{ Name string }
	}
	NetworkSettings struct {
		Networks map[string]struct{ NetworkID, IPAddress string }
	}
}

func inspectRaw(t *testing.T, c *engine.Client, id string) inspect {
	t.Helper()
	var ci inspect
	if err := c.Do(context.Background(), http.MethodGet, "/containers/"+id+"/json", nil, nil, &ci); err != nil {
		t.Fatal(err)
	}
	return ci
}

func inSubnet(t *testing.T, ip, cidr string) bool {
	t.Helper()
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatalf("subnet %q: %v", cidr, err)
	}
	return n.Contains(net.ParseIP(ip))
}

// freeSubnet returns a /24 in 10.213.0.0/16 that no network of the daemon
// uses.
func freeSubnet(t *testing.T, c *engine.Client) string {
	t.Helper()
	var ns []struct {
		IPAM struct{ Config []struct{ Subnet string } }
	}
	if err := c.Do(context.Background(), http.MethodGet, "/networks", nil, nil, &ns); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, n := range ns {
		for _, cfg := range n.IPAM.Config {
			used[cfg.Subnet] = true
		}
	}
	b := make([]byte, 1)
	for range 256 {
		_, _ = rand.Read(b)
		s := fmt.Sprintf("10.213.%d.0/24", b[0])
		if !used[s] {
			return s
		}
	}
	t.Fatal("no free subnet in 10.213.0.0/16")
	return ""
}

func TestNetworkLifecycle(t *testing.T) {
	c := dockertest.Require(t)
	ctx := context.Background()
	env := testEnv(t, c)
	p := newProvider(t, nil)
	subnet := freeSubnet(t, c)

	st, err := p.CreateNetwork(ctx, provider.Network{Env: env, Resource: "network.back", Name: env + "-back", Attrs: map[string]string{"subnet": subnet}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID == "" || st.Subnet != subnet || !inSubnet(t, st.Gateway, subnet) {
		t.Fatalf("created %+v, want subnet %s and a gateway in it", st, subnet)
	}
	auto, err := p.CreateNetwork(ctx, provider.Network{Env: env, Resource: "network.auto", Name: env + "-auto", Attrs: map[string]string{"internal": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if auto.Subnet == "" || !inSubnet(t, auto.Gateway, auto.Subnet) {
		t.Fatalf("created %+v: want the engine's subnet and gateway", auto)
	}

	got, ok, err := p.ReadNetwork(ctx, st.ID)
	if err != nil || !ok || got != st {
		t.Fatalf("read = %+v, %v, %v; want %+v", got, ok, err, st)
	}

	// The labels, as a user's label filter sees them.
	var listed []struct {
		ID       string `json:"Id"`
		Labels   map[string]string
		Internal bool
	}
	if err := c.Do(ctx, http.MethodGet, "/networks", engine.LabelFilter(provider.LabelEnv+"="+env, provider.LabelResource+"=network.back"), nil, &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != st.ID {
		t.Fatalf("label filter found %+v, want network %s", listed, st.ID)
	}
	if g, ok := listed[0].Labels[provider.LabelGroup]; !ok || g != "" {
		t.Errorf("labels %v: want gantry.group=\"\"", listed[0].Labels)
	}
	var autoRaw struct{ Internal bool }
	if err := c.Do(ctx, http.MethodGet, "/networks/"+auto.ID, nil, nil, &autoRaw); err != nil || !autoRaw.Internal {
		t.Errorf("network %s internal = %v (%v), want true", auto.ID, autoRaw.Internal, err)
	}

	// A duplicate name and bad attributes are refused.
	if _, err := p.CreateNetwork(ctx, provider.Network{Env: env, Resource: "network.dup", Name: env + "-back"}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("duplicate name: err = %v", err)
	}
	for attrs, want := range map[string]map[string]string{
		"not a CIDR":     {"subnet": "10.1.2.3"},
		`want "true" or`: {"internal": "maybe"},
		"unknown attribute(s) colour (accepted: internal, subnet)": {"colour": "red"},
	} {
		_, err := p.CreateNetwork(ctx, provider.Network{Env: env, Name: env + "-bad", Attrs: want})
		if err == nil || !strings.Contains(err.Error(), attrs) {
			t.Errorf("attrs %v: err = %v, want %q", want, err, attrs)
		}
	}

	// Delete disconnects a running container still attached.
	var created struct {
		ID string `json:"Id"`
	}
	req := map[string]any{
		"Image": testImage, "Cmd": []string{"sleep", "3600"}, "Labels": map[string]string{provider.LabelEnv: env},
		"HostConfig": map[string]any{"NetworkMode": st.ID},
	}
	fixtures(t)
	if err := c.Do(ctx, http.MethodPost, "/containers/create", nil, req, &created); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodPost, "/containers/"+created.ID+"/start", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteNetwork(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := p.ReadNetwork(ctx, st.ID); ok || err != nil {
		t.Fatalf("read after delete: exists=%v err=%v", ok, err)
	}
	if err := p.DeleteNetwork(ctx, st.ID); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if ci := inspectRaw(t, c, created.ID); len(ci.NetworkSettings.Networks) != 0 {
		t.Errorf("container still on networks %v", ci.NetworkSettings.Networks)
	}
}

func TestMachineLifecycle(t *testing.T) {
	c := dockertest.Require(t)
	bin := fixtures(t)
	ctx := context.Background()
	env := testEnv(t, c)
	p := newProvider(t, nil)
	srv := newFakeServer(t)

	front, err := p.CreateNetwork(ctx, provider.Network{Env: env, Resource: "network.front", Name: env + "-front", Attrs: map[string]string{"internal": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := p.CreateNetwork(ctx, provider.Network{Env: env, Resource: "network.back", Name: env + "-back", Attrs: map[string]string{"subnet": freeSubnet(t, c)}})
	if err != nil {
		t.Fatal(err)
	}

	name := env + "-web-0"
	token := "gjt_secret_" + env
	m := provider.Machine{
		Env: env, Group: "web", Resource: "group.web[0]", Name: name, Image: testImage,
		CPUs: 0.5, MemoryMB: 64, Networks: []string{front.ID, back.ID},
		Labels: map[string]string{"role": "web"},
		Agent:  srv.agent(bin, name, token),
	}
	st, err := p.CreateMachine(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.ID == "" {
		t.Fatalf("created %+v: want a running container", st)
	}
	if st.Address != st.Addresses[front.ID] || !inSubnet(t, st.Address, front.Subnet) {
		t.Errorf("address %s (addresses %v): want the first network's, in %s", st.Address, st.Addresses, front.Subnet)
	}
	if !inSubnet(t, st.Addresses[back.ID], back.Subnet) || len(st.Addresses) != 2 {
		t.Errorf("addresses %v: want one in %s on network %s too", st.Addresses, back.Subnet, back.ID)
	}

	// The agent reached the loopback server through the forwarder on the
	// first network's gateway (an internal network), with the token.
	_, port, _ := net.SplitHostPort(srv.http.Listener.Addr().String())
	r := srv.waitReport(t, name, 30*time.Second)
	if r.token != token || r.hostname != name || r.host != net.JoinHostPort(front.Gateway, port) {
		t.Errorf("agent reported %+v: want token %s, hostname %s, via %s:%s", r, token, name, front.Gateway, port)
	}
	srv.waitBus(t, name, 30*time.Second)

	// The forwarder serves the network's subnet only: a container on the
	// default bridge reaches the gateway address but is dropped.
	out, code, err := dockertest.Run(ctx, c, testImage, "timeout", "10", "wget", "-q", "-O-",
		"http://"+net.JoinHostPort(front.Gateway, port)+"/fake-agent?name=intruder")
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Errorf("a container outside %s got through the forwarder: %s", front.Subnet, out)
	}

	ci := inspectRaw(t, c, st.ID)
	cmdline := strings.Join(append(append(append([]string{ci.Path}, ci.Args...), ci.Config.Entrypoint...), ci.Config.Cmd...), " ")
	if strings.Contains(cmdline, token) {
		t.Errorf("the join token is on the command line: %s", cmdline)
	}
	if ci.Path != AgentPath || len(ci.Config.Entrypoint) == 0 || !slices.Equal(ci.Args, ci.Config.Entrypoint[1:]) {
		t.Errorf("runs %s %q, want the entrypoint %q alone (not the image's CMD)", ci.Path, ci.Args, ci.Config.Entrypoint)
	}
	if !slices.Contains(ci.Config.Env, "GANTRY_JOIN_TOKEN="+token) {
		t.Errorf("env %v lacks the join token", ci.Config.Env)
	}
	wantEntry := []string{AgentPath, "agent", "--server", "http://" + net.JoinHostPort(front.Gateway, port), "--bus-url"}
	if len(ci.Config.Entrypoint) < len(wantEntry) || !slices.Equal(ci.Config.Entrypoint[:len(wantEntry)], wantEntry) || !slices.Contains(ci.Config.Entrypoint, AgentDataDir) {
		t.Errorf("entrypoint %q, want it to start with %q", ci.Config.Entrypoint, wantEntry)
	}
	if ci.HostConfig.NanoCpus != 5e8 || ci.HostConfig.Memory != 64<<20 || ci.HostConfig.MemorySwap != 64<<20 {
		t.Errorf("limits %+v: want 0.5 CPU and 64 MiB without swap", ci.HostConfig)
	}
	if ci.HostConfig.RestartPolicy.Name != "unless-stopped" || ci.Config.Hostname != name {
		t.Errorf("restart policy %q, hostname %q", ci.HostConfig.RestartPolicy.Name, ci.Config.Hostname)
	}
	for k, v := range map[string]string{
		provider.LabelEnv: env, provider.LabelGroup: "web", provider.LabelResource: "group.web[0]",
		LabelPrefix + "role": "web", LabelNetworks: front.ID + "," + back.ID,
	} {
		if ci.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, ci.Config.Labels[k], v)
		}
	}

	// A second machine of the same name is refused, clearly.
	if _, err := p.CreateMachine(ctx, m); err == nil || !strings.Contains(err.Error(), "name is in use") {
		t.Errorf("same name again: err = %v", err)
	}

	// Size changes in place.
	m.CPUs, m.MemoryMB = 1, 128
	if err := p.UpdateMachine(ctx, st.ID, m); err != nil {
		t.Fatal(err)
	}
	if hc := inspectRaw(t, c, st.ID).HostConfig; hc.Memory != 128<<20 || hc.NanoCpus != 1e9 {
		t.Errorf("after update: %+v, want 1 CPU and 128 MiB", hc)
	}
	m.CPUs, m.MemoryMB = 0, 0
	if err := p.UpdateMachine(ctx, st.ID, m); err != nil {
		t.Fatalf("update to no limits: %v", err)
	}

	// A server restart: the forwarders stop with the provider, and a new
	// provider reading the running machine starts them again; the agent
	// reconnects.
	p.Close()
	fwd := net.JoinHostPort(front.Gateway, port)
	if conn, err := net.DialTimeout("tcp", fwd, 2*time.Second); err == nil {
		conn.Close()
		t.Fatalf("forwarder %s still listening after Close", fwd)
	}
	p2 := newProvider(t, nil)
	got, ok, err := p2.ReadMachine(ctx, st.ID)
	if err != nil || !ok || got.Address != st.Address || !got.Running {
		t.Fatalf("read = %+v, %v, %v; want %+v", got, ok, err, st)
	}
	srv.drain()
	srv.waitReport(t, name, 30*time.Second)
	srv.waitBus(t, name, 30*time.Second)

	found, err := p2.List(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []provider.Found{
		{Kind: "machine", ID: st.ID, Resource: "group.web[0]"},
		{Kind: "network", ID: front.ID, Resource: "network.front"},
		{Kind: "network", ID: back.ID, Resource: "network.back"},
	} {
		if !slices.Contains(found, want) {
			t.Errorf("list = %+v, lacks %+v", found, want)
		}
	}

	// Deleting a network still in use disconnects the machine.
	if err := p2.DeleteNetwork(ctx, back.ID); err != nil {
		t.Fatal(err)
	}
	if err := p2.DeleteMachine(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := p2.ReadMachine(ctx, st.ID); ok || err != nil {
		t.Fatalf("read after delete: exists=%v err=%v", ok, err)
	}
	if err := p2.DeleteMachine(ctx, st.ID); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	if err := p2.DeleteNetwork(ctx, front.ID); err != nil {
		t.Fatal(err)
	}
}

func TestMachineOnDefaultBridge(t *testing.T) {
	c := dockertest.Require(t)
	bin := fixtures(t)
	ctx := context.Background()
	env := testEnv(t, c)
	p := newProvider(t, nil)
	srv := newFakeServer(t)

	name := env + "-solo-0"
	st, err := p.CreateMachine(ctx, provider.Machine{
		Env: env, Group: "solo", Resource: "group.solo[0]", Name: name, Image: testImage,
		Agent: srv.agent(bin, name, "gjt_x"),
	})
	if err != nil {
		t.Fatal(err)
	}
	bridge, ok, err := p.ReadNetwork(ctx, "bridge")
	if err != nil || !ok {
		t.Fatalf("read the default bridge: %v, %v", ok, err)
	}
	if !inSubnet(t, st.Address, bridge.Subnet) || len(st.Addresses) != 1 {
		t.Errorf("state %+v: want an address on the default bridge %s", st, bridge.Subnet)
	}
	r := srv.waitReport(t, name, 30*time.Second)
	if h, _, _ := net.SplitHostPort(r.host); h != bridge.Gateway || !inSubnet(t, h, bridge.Subnet) {
		t.Errorf("agent came through %s, want the bridge gateway %s", r.host, bridge.Gateway)
	}

	// Removed behind gantry's back: gone, not an error.
	if err := c.Do(ctx, http.MethodDelete, "/containers/"+st.ID, url.Values{"force": {"1"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := p.ReadMachine(ctx, st.ID); ok || err != nil {
		t.Fatalf("read after docker rm -f: exists=%v err=%v", ok, err)
	}
	if err := p.DeleteMachine(ctx, st.ID); err != nil {
		t.Fatalf("delete of a removed container: %v", err)
	}
}

func TestMissingImage(t *testing.T) {
	c := dockertest.Require(t)
	ctx := context.Background()
	env := testEnv(t, c)
	p := newProvider(t, nil)
	exe, _ := os.Executable()
	const img = "gantry-test-missing-image:dev"
	done := make(chan error, 1)
	go func() {
		_, err := p.CreateMachine(ctx, provider.Machine{
			Env: env, Name: env + "-x-0", Image: img,
			Agent: provider.Agent{Binary: exe, ServerURL: "http://127.0.0.1:1", Name: env + "-x-0"},
		})
		done <- err
	}()
	select {
	case err := <-done:
		want := `image "` + img + `" not found locally: build it or pull it first`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("CreateMachine with a missing image hangs (pulling?)")
	}
	if found, err := p.List(ctx, env); err != nil || len(found) != 0 {
		t.Errorf("left behind %+v (%v)", found, err)
	}
}
