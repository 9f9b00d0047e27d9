package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// TestGroupLBFlags: --lb and its companions become the group's
// load_balancer; their mistakes are usage errors that never reach the
// server.
func TestGroupLBFlags(t *testing.T) {
	f := newDeployFake(t)
	r := f.gantry(t, "group", "create", "shop", "web", "-l", "role=web", "--lb", "lb1/web", "--lb-socket", "/run/haproxy/admin.sock",
		"--lb-state-file", "/var/lib/haproxy/state", "--drain-timeout", "2500ms")
	r.expect(t, 0, "Deployment group web of shop created")
	_, body := f.request(0)
	var got api.CreateGroupRequest
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := &api.LBTarget{Host: "lb1", Backend: "web", Socket: "/run/haproxy/admin.sock", StateFile: "/var/lib/haproxy/state", DrainTimeoutSeconds: 3}
	if !reflect.DeepEqual(got.LoadBalancer, want) {
		t.Fatalf("load_balancer %+v, want %+v", got.LoadBalancer, want)
	}
	n := f.count()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--lb", "lb1"}, `invalid --lb "lb1": want HOST/BACKEND`},
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--lb", "/web"}, `invalid --lb "/web"`},
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--lb-socket", "/s"}, "--lb-socket needs --lb HOST/BACKEND"},
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--drain-timeout", "5s"}, "--drain-timeout needs --lb"},
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--lb", "lb1/web", "--drain-timeout", "2h"}, "invalid --drain-timeout 2h0m0s: want 1s to 1h"},
		{[]string{"group", "create", "shop", "web", "-l", "a=b", "--lb", "lb1/web", "--lb-state-file", "/x"}, "--lb-state-file needs --lb-socket"},
		{[]string{"group", "update", "shop", "web", "--lb", "lb1/web", "--no-lb"}, "--lb and --no-lb exclude each other"},
	} {
		f.gantry(t, c.args...).expect(t, 2, c.want)
	}
	if f.count() != n {
		t.Fatalf("usage errors reached the server")
	}
}

// TestLBShow: `gantry lb show --app --group` prints the backend's servers
// as a table, or the view as JSON.
func TestLBShow(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	view := api.LBView{Host: "lb1", Driver: "haproxy", Servers: []api.LBServerStatus{
		{Backend: "web", Name: "web-1", Weight: 100, State: api.LBReady, Health: "UP", Check: "L7OK", Sessions: 3, Total: 1200, HTTP5xx: 2, RespTimeMillis: 4},
		{Backend: "web", Name: "web-2", Weight: 100, State: api.LBMaint, Health: "DOWN", Total: 900},
	}}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/api/v1/apps/shop/groups/web/lb" {
			fail(w, 404, "not_found", "no route")
			return
		}
		reply(w, 200, view)
	}))
	t.Cleanup(srv.Close)
	f := &fakeServer{URL: srv.URL, token: "admin-token", caFP: api.Fingerprint(srv.Certificate().Raw)}
	r := f.gantry(t, nil, "lb", "show", "--app", "shop", "--group", "web")
	r.expect(t, 0, "Load balancer lb1 (haproxy), group shop/web", "SERVER", "WEIGHT", "STATE", "HEALTH", "SESSIONS", "TOTAL", "5XX", "RESP MS")
	lines := strings.Split(r.stdout, "\n")
	var row1 string
	for _, l := range lines {
		if strings.HasPrefix(l, "web-1") {
			row1 = l
		}
	}
	if fields := strings.Fields(row1); !reflect.DeepEqual(fields, []string{"web-1", "100", "ready", "UP", "(L7OK)", "3", "1200", "2", "4"}) {
		t.Fatalf("web-1 row %q", row1)
	}
	r = f.gantry(t, nil, "lb", "show", "--app", "shop", "--group", "web", "-o", "json")
	var got api.LBView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, view) {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	f.gantry(t, nil, "lb", "show", "--app", "shop").expect(t, 2, "--app and --group are required")
	f.gantry(t, nil, "lb", "show", "dev", "--app", "shop", "--group", "web").expect(t, 2, "give either ENV [GROUP]")
	if len(paths) != 2 {
		t.Fatalf("requests %q", paths)
	}
}

// TestTrafficLines: the follow view prints load balancer changes as
// lines of their own.
func TestTrafficLines(t *testing.T) {
	for _, c := range []struct {
		c    api.TrafficChange
		want string
	}{
		{api.TrafficChange{Server: "dev-web-0", Action: api.LBDrain, Detail: "drained 3 sessions in 2.9s"}, "dev-web-0: drained 3 sessions in 2.9s"},
		{api.TrafficChange{Server: "dev-web-0", Action: api.LBReady, Weight: 100, Detail: "UP after rise checks, ready"}, "dev-web-0: UP after rise checks, ready (weight 100)"},
		{api.TrafficChange{Server: "dev-web-0", Action: api.LBDrain, Error: "web-0 is the last ready server"}, "dev-web-0: drain failed: web-0 is the last ready server"},
	} {
		if got := trafficLine(c.c); got != c.want {
			t.Errorf("trafficLine(%+v) = %q, want %q", c.c, got, c.want)
		}
	}
	var b strings.Builder
	v := newDeployView(&b, false)
	v.setDeployment(api.Deployment{ID: "d-1", App: "shop", Group: "web", State: api.DeployRunning, CreatedAt: time.Now()})
	v.traffic(api.TrafficChange{Server: "web-1", Action: api.LBDrain, Detail: "drained 0 sessions in 0s"})
	if !strings.Contains(b.String(), "web-1: drained 0 sessions in 0s\n") {
		t.Fatalf("follow output %q", b.String())
	}
}
