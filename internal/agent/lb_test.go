package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/lb/haproxy"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// Unknown drivers and ops are refused with the valid ones listed.
func TestRunLBRefusals(t *testing.T) {
	res := RunLB(context.Background(), t.TempDir(), protocol.LBCommand{Driver: "nginx", Op: protocol.LBStatus})
	if !strings.Contains(res.Error, `unknown load balancer driver "nginx" (valid: haproxy)`) {
		t.Errorf("unknown driver: %q", res.Error)
	}
	res = RunLB(context.Background(), t.TempDir(), protocol.LBCommand{Op: "flip"})
	if !strings.Contains(res.Error, `unknown load balancer op "flip" (valid: configure, status, set, weights, drain, allow, remove)`) {
		t.Errorf("unknown op: %q", res.Error)
	}
	res = RunLB(context.Background(), t.TempDir(), protocol.LBCommand{Op: protocol.LBDrain, Backend: "web"})
	if !strings.Contains(res.Error, "needs a backend and a server") {
		t.Errorf("drain without server: %q", res.Error)
	}
	res = RunLB(context.Background(), t.TempDir(), protocol.LBCommand{Op: protocol.LBStatus})
	if !strings.Contains(res.Error, "not configured") {
		t.Errorf("status before configure: %q", res.Error)
	}
}

// Commands run end to end on the agent's managed haproxy: configure,
// allow (UP by rise checks), weights, drain; results carry the backend.
func TestRunLBManaged(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a real haproxy")
	}
	if _, err := haproxy.Binary(); err != nil {
		t.Fatalf("this test needs haproxy: %v", err)
	}
	data, err := os.MkdirTemp("/tmp", "hA-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		balancers.Range(func(k, v any) bool {
			if b, ok := v.(*haproxy.Balancer); ok && b.Managed() {
				_ = b.Stop()
				balancers.Delete(k)
			}
			return true
		})
		if err := os.RemoveAll(data); err != nil {
			t.Error(err)
		}
	})
	var servers []api.LBServer
	for _, name := range []string{"h1", "h2"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		servers = append(servers, api.LBServer{Name: name, Addr: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, State: api.LBMaint})
	}
	ln, _ := net.Listen("tcp", ":0")
	listen := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx := context.Background()
	run := func(c protocol.LBCommand) protocol.LBResult {
		t.Helper()
		res := RunLB(ctx, data, c)
		if res.Error != "" {
			t.Fatalf("%s: %s", c.Op, res.Error)
		}
		return res
	}
	cfg := &api.LBConfig{Backends: []api.LBBackend{{Name: "web", Listen: listen, Check: api.LBCheck{Path: "/", IntervalMillis: 100}, Servers: servers}}}
	res := run(protocol.LBCommand{Op: protocol.LBConfigure, Config: cfg})
	if len(res.Servers) != 2 || res.Servers[0].State != api.LBMaint {
		t.Fatalf("configure: %+v", res)
	}
	for _, h := range []string{"h1", "h2"} {
		res = run(protocol.LBCommand{Op: protocol.LBAllow, Backend: "web", Server: h, Weight: -1, TimeoutMillis: 5000})
		if !strings.HasPrefix(res.Detail, "UP in ") {
			t.Errorf("allow %s: %+v", h, res)
		}
	}
	res = run(protocol.LBCommand{Op: protocol.LBWeights, Backend: "web", Weights: map[string]int{"h1": 10, "h2": 90}})
	w := map[string]int{}
	for _, s := range res.Servers {
		w[s.Name] = s.Weight
	}
	if w["h1"] != 10 || w["h2"] != 90 {
		t.Errorf("weights: %+v", res.Servers)
	}
	res = run(protocol.LBCommand{Op: protocol.LBDrain, Backend: "web", Server: "h1", Weight: -1})
	if !strings.HasPrefix(res.Detail, "drained 0 sessions in ") || res.Servers[0].State != api.LBMaint {
		t.Errorf("drain detail %q", res.Detail)
	}
	res = RunLB(ctx, data, protocol.LBCommand{Op: protocol.LBDrain, Backend: "web", Server: "h2", Weight: -1})
	if !strings.Contains(res.Error, "last server") || len(res.Servers) != 2 {
		t.Errorf("drain of the last server: %+v", res)
	}
	res = RunLB(ctx, data, protocol.LBCommand{Op: protocol.LBConfigure, Socket: "/nonexistent.sock", Config: cfg})
	if !strings.Contains(res.Error, "configured by hand") {
		t.Errorf("configure of an external haproxy: %q", res.Error)
	}
}

// An lb command over the bus is answered on its reply subject, and is not
// journaled: the same command id sent again is run and answered again.
func TestLBCommandOverTheBus(t *testing.T) {
	r := newRig(t)
	now := time.Now().UTC()
	cmd := protocol.Command{ID: "x-lb", HostID: testHost, Kind: protocol.CmdLB, IssuedAt: now, ExpiresAt: now.Add(time.Minute),
		LB: &protocol.LBCommand{Driver: "nginx", Op: protocol.LBStatus}}
	for i := 0; i < 2; i++ {
		reply, err := r.bus.Conn.RequestMsg(r.signed(cmd), 10*time.Second)
		if err != nil {
			t.Fatalf("request %d: no answer: %v", i, err)
		}
		var res protocol.LBResult
		if err := json.Unmarshal(reply.Data, &res); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Error, `unknown load balancer driver "nginx" (valid: haproxy)`) {
			t.Fatalf("request %d: %+v", i, res)
		}
	}
	// A forged one gets no answer.
	m := r.signed(cmd)
	m.Data = []byte(strings.Replace(string(m.Data), "nginx", "haproxy", 1))
	if _, err := r.bus.Conn.RequestMsg(m, 500*time.Millisecond); err == nil {
		t.Fatal("a forged lb command was answered")
	}
}
