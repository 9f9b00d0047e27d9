package haproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/lb"
)

// needHAProxy fails (skips only under -short) without haproxy.
func needHAProxy(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test starts a real haproxy")
	}
	bin, err := Binary()
	if err != nil {
		t.Fatalf("this test needs haproxy: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("this test needs haproxy at %s: %v", bin, err)
	}
}

// backend is a small HTTP server: / answers its name, /slow takes 3 s,
// /health answers 200.
type backend struct {
	name string
	port int
	srv  *http.Server
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, port: ln.Addr().(*net.TCPAddr).Port}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
		io.WriteString(w, name)
	})
	b.srv = &http.Server{Handler: mux}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) server(state string) api.LBServer {
	return api.LBServer{Name: b.name, Addr: "127.0.0.1", Port: b.port, State: state}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// managed opens a managed haproxy in a fresh directory, stopped and
// removed at the end of the test.
func managed(t *testing.T) *Balancer {
	t.Helper()
	needHAProxy(t)
	dir, err := os.MkdirTemp("/tmp", "hA-lb-")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(lb.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Stop()
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return b
}

func webBackend(listen int, servers ...api.LBServer) api.LBBackend {
	return api.LBBackend{Name: "web", Listen: listen, Check: api.LBCheck{Path: "/health", IntervalMillis: 100, Rise: 2, Fall: 2}, Header: "X-Backend", Servers: servers}
}

var client = &http.Client{Timeout: 10 * time.Second}

// get fetches / through the load balancer and returns the server's name.
func get(t *testing.T, port int) string {
	t.Helper()
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET through haproxy: %s %s", resp.Status, body)
	}
	return string(body)
}

func status(t *testing.T, b *Balancer, backend string) map[string]api.LBServerStatus {
	t.Helper()
	st, err := b.Status(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]api.LBServerStatus{}
	for _, s := range st {
		m[s.Name] = s
	}
	return m
}

// waitUp waits until every named server is UP by a passed check (a server
// haproxy starts UP shows the check INI until its first check).
func waitUp(t *testing.T, b *Balancer, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := status(t, b, "web")
		ok := true
		for _, n := range names {
			if st[n].Health != "UP" || st[n].Check != "L7OK" {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers %v not UP: %+v", names, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The runtime client reads counters that move with traffic, and a weight
// change applies at once (its latency measured).
func TestRuntimeCountersAndWeight(t *testing.T) {
	b := managed(t)
	ctx := context.Background()
	s1, s2 := startBackend(t, "s1"), startBackend(t, "s2")
	port := freePort(t)
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{webBackend(port, s1.server(""), s2.server(""))}}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, b, "s1", "s2")
	before := status(t, b, "web")
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		seen[get(t, port)]++
	}
	after := status(t, b, "web")
	for _, n := range []string{"s1", "s2"} {
		if seen[n] == 0 {
			t.Errorf("%s got no request: %v", n, seen)
		}
		if got := after[n].Total - before[n].Total; got != int64(seen[n]) {
			t.Errorf("%s: total moved by %d, want %d", n, got, seen[n])
		}
		if got := after[n].Responses - before[n].Responses; got != int64(seen[n]) {
			t.Errorf("%s: responses moved by %d, want %d", n, got, seen[n])
		}
		if after[n].Weight != 100 || after[n].State != api.LBReady || after[n].Check != "L7OK" || after[n].Addr != "127.0.0.1" {
			t.Errorf("%s: %+v", n, after[n])
		}
	}
	// The header names the answering server's address.
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := map[string]int{"s1": s1.port, "s2": s2.port}[string(body)]
	if got := resp.Header.Get("X-Backend"); got != "127.0.0.1:"+strconv.Itoa(want) {
		t.Errorf("X-Backend = %q, want 127.0.0.1:%d", got, want)
	}

	// Weight changes: measured, and applied for the next request.
	var lat []time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		if err := b.Set(ctx, "web", "s1", "", 1+i%200); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("weight change (set over the socket + desired state written): p50 %v p99 %v max %v", p50, p99, lat[len(lat)-1])
	// The goal is 10 ms (4 ms measured on an idle 2-core machine); the
	// bound leaves room for a machine busy with other tests.
	if p99 > 50*time.Millisecond {
		t.Errorf("weight change p99 %v, want < 50ms (goal 10ms)", p99)
	}
	if err := b.Set(ctx, "web", "s1", "", 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if got := get(t, port); got != "s2" {
			t.Fatalf("request %d after s1's weight 0 went to %s", i, got)
		}
	}
	if w := status(t, b, "web")["s1"].Weight; w != 0 {
		t.Errorf("s1 weight %d after set 0", w)
	}
	if err := b.Set(ctx, "web", "nope", "", 5); err == nil || !strings.Contains(err.Error(), "No such server") {
		t.Errorf("set on a missing server: %v", err)
	}
	if _, err := b.Status(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no backend "nope"`) {
		t.Errorf("status of a missing backend: %v", err)
	}
}

// Servers added and removed by Configure change at runtime: same haproxy
// process, configuration file updated.
func TestConfigureAddsAndRemovesWithoutReload(t *testing.T) {
	b := managed(t)
	ctx := context.Background()
	s1, s2 := startBackend(t, "s1"), startBackend(t, "s2")
	port := freePort(t)
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{webBackend(port, s1.server(""))}}); err != nil {
		t.Fatal(err)
	}
	pids := b.Pids()
	if len(pids) != 1 {
		t.Fatalf("pids %v", pids)
	}
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{webBackend(port, s1.server(""), s2.server(api.LBMaint))}}); err != nil {
		t.Fatal(err)
	}
	st := status(t, b, "web")
	if st["s2"].State != api.LBMaint || st["s2"].Weight != 100 {
		t.Fatalf("added s2: %+v", st["s2"])
	}
	if err := b.Set(ctx, "web", "s2", api.LBReady, -1); err != nil {
		t.Fatal(err)
	}
	waitUp(t, b, "s2")
	// A server added ready is DOWN until its checks pass.
	s3 := startBackend(t, "s3")
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{webBackend(port, s1.server(""), s2.server(""), s3.server(api.LBReady))}}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, b, "web")["s3"]; st.State != api.LBReady || st.Health != "DOWN" {
		t.Fatalf("s3 added ready: %+v, want ready and DOWN until checked", st)
	}
	waitUp(t, b, "s3")
	deadline := time.Now().Add(5 * time.Second)
	for get(t, port) != "s2" {
		if time.Now().After(deadline) {
			t.Fatal("the added server gets no request")
		}
	}
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{webBackend(port, s2.server(""))}}); err != nil {
		t.Fatal(err)
	}
	st = status(t, b, "web")
	if _, ok := st["s1"]; ok || len(st) != 1 {
		t.Fatalf("s1 not removed: %+v", st)
	}
	if got := b.Pids(); !sameInts(got, pids) {
		t.Fatalf("haproxy reloaded for a server change: pids %v then %v", pids, got)
	}
	cfg, _ := os.ReadFile(filepath.Join(b.dir, CfgFile))
	if strings.Contains(string(cfg), "server s1 ") || !strings.Contains(string(cfg), "server s2 127.0.0.1:"+strconv.Itoa(s2.port)) {
		t.Fatalf("configuration file not updated:\n%s", cfg)
	}
	for i := 0; i < 5; i++ {
		if got := get(t, port); got != "s2" {
			t.Fatalf("request went to %s", got)
		}
	}
}

// load runs n clients against port until stop is closed and counts
// requests and failures (any non-200 or connection error).
func load(t *testing.T, port, n int, stop chan struct{}) (wait func() (ok, failed int64, firstErr string)) {
	var okN, failN atomic.Int64
	var mu sync.Mutex
	first := ""
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					failN.Add(1)
					mu.Lock()
					if first == "" {
						first = err.Error()
					}
					mu.Unlock()
					continue
				}
				okN.Add(1)
			}
		}()
	}
	return func() (int64, int64, string) {
		wg.Wait()
		return okN.Load(), failN.Load(), first
	}
}

// 20 configuration changes in a row under load (a backend added and
// removed: each one a seamless reload; servers added and removed: at
// runtime): no request fails.
func TestReloadsUnderLoad(t *testing.T) {
	b := managed(t)
	ctx := context.Background()
	s1, s2, s3 := startBackend(t, "s1"), startBackend(t, "s2"), startBackend(t, "s3")
	port, port2 := freePort(t), freePort(t)
	base := webBackend(port, s1.server(""), s2.server(""))
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{base}}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, b, "s1", "s2")
	stop := make(chan struct{})
	wait := load(t, port, 8, stop)
	reloads := 0
	for i := 0; i < 20; i++ {
		before := b.Pids()
		web := base
		if i%4 == 1 { // a server added in maint, then let in
			web = webBackend(port, s1.server(""), s2.server(""), s3.server(api.LBMaint))
		}
		cfg := api.LBConfig{Backends: []api.LBBackend{web}}
		if i%2 == 0 { // a second backend: a reload
			cfg.Backends = append(cfg.Backends, api.LBBackend{Name: "api", Listen: port2, Servers: []api.LBServer{s3.server("")}})
		}
		start := time.Now()
		if err := b.Configure(ctx, cfg); err != nil {
			close(stop)
			wait()
			t.Fatalf("change %d: %v", i, err)
		}
		if !sameInts(before, b.Pids()) {
			reloads++
			t.Logf("change %d: reload in %v", i, time.Since(start).Round(time.Millisecond))
		}
		if i%4 == 1 {
			if _, err := lb.Allow(ctx, b, "web", "s3", -1, 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // let traffic flow between changes
	}
	close(stop)
	ok, failed, first := wait()
	t.Logf("20 changes, %d reloads: %d requests, %d failed %s", reloads, ok+failed, failed, first)
	if reloads < 19 {
		t.Errorf("%d reloads, want at least 19 (every backend change)", reloads)
	}
	if failed != 0 || ok < 200 {
		t.Fatalf("%d of %d requests failed (first: %s)", failed, ok+failed, first)
	}
	// The old processes finish and exit once their connections are done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := processesOf(filepath.Join(b.dir, CfgFile))
		if len(procs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d haproxy processes left after the reloads, want 1: %v", len(procs), procs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A Set survives a reload and a crash of haproxy: weights, maint and
// drain come back.
func TestSetSurvivesReloadAndRestart(t *testing.T) {
	b := managed(t)
	ctx := context.Background()
	s1, s2, s3 := startBackend(t, "s1"), startBackend(t, "s2"), startBackend(t, "s3")
	port := freePort(t)
	web := webBackend(port, s1.server(""), s2.server(""), s3.server(api.LBMaint))
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{web}}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, b, "s1", "s2")
	// s1 weight 33; s2 in maint; s3 (configured in maint) ready at 7,
	// then drained.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Set(ctx, "web", "s1", "", 33))
	must(b.Set(ctx, "web", "s2", api.LBMaint, -1))
	must(b.Set(ctx, "web", "s3", api.LBReady, 7))
	waitUp(t, b, "s3")
	must(b.Set(ctx, "web", "s3", api.LBDrain, -1))
	check := func(when string) {
		t.Helper()
		st := status(t, b, "web")
		if st["s1"].Weight != 33 || st["s1"].State != api.LBReady ||
			st["s2"].State != api.LBMaint || st["s3"].State != api.LBDrain || st["s3"].Weight != 7 {
			t.Fatalf("%s: runtime state lost: s1 %+v s2 %+v s3 %+v", when, st["s1"], st["s2"], st["s3"])
		}
	}
	check("before")
	pids := b.Pids()
	web.Balance = "leastconn" // a backend change: reload
	must(b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{web}}))
	if sameInts(pids, b.Pids()) {
		t.Fatal("no reload for a balance change")
	}
	check("after a reload")
	// The agent restarts (a new Balancer, reading desired.json) and
	// haproxy is killed: the next operation starts it from the desired
	// state, written down by then.
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(filepath.Join(b.dir, DesiredFile))
		if strings.Contains(string(data), `"weight": 33`) && strings.Contains(string(data), `"state": "drain"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired state not written:\n%s", data)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := Open(lb.Options{Dir: b.dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range b.Pids() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(b.Pids()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	check("after haproxy was killed and started again")
	// Requests only reach s1 (s2 maint, s3 drain).
	waitUp(t, b, "s1")
	for i := 0; i < 5; i++ {
		if got := get(t, port); got != "s1" {
			t.Fatalf("request went to %s", got)
		}
	}
}

// Drain waits for a 3 s request in flight, which succeeds; the last ready
// server is refused; Allow waits for rise checks and fails, naming the
// check, for a server that does not listen.
func TestDrainAllow(t *testing.T) {
	b := managed(t)
	ctx := context.Background()
	s1, s2 := startBackend(t, "s1"), startBackend(t, "s2")
	dead := api.LBServer{Name: "dead", Addr: "127.0.0.1", Port: freePort(t), State: api.LBMaint}
	port := freePort(t)
	web := webBackend(port, s1.server(""), s2.server(""), dead)
	if err := b.Configure(ctx, api.LBConfig{Backends: []api.LBBackend{web}}); err != nil {
		t.Fatal(err)
	}
	waitUp(t, b, "s1", "s2")

	type result struct {
		body string
		err  error
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/slow", port))
		if err != nil {
			done <- result{err: err, at: time.Now()}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			err = fmt.Errorf("status %s", resp.Status)
		}
		done <- result{string(body), err, time.Now()}
	}()
	// Find the server holding it.
	busy := ""
	deadline := time.Now().Add(2 * time.Second)
	for busy == "" {
		for n, s := range status(t, b, "web") {
			if s.Sessions > 0 {
				busy = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow request shows on no server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	other := map[string]string{"s1": "s2", "s2": "s1"}[busy]
	out, err := lb.Drain(ctx, b, "web", busy, 10*time.Second)
	drained := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.body != busy {
		t.Fatalf("the request in flight during the drain: %q %v", r.body, r.err)
	}
	if drained.Before(r.at.Add(-50 * time.Millisecond)) {
		t.Fatalf("drain returned %v before the request in flight completed", r.at.Sub(drained))
	}
	if out.TimedOut || !strings.HasPrefix(out.Detail, "drained 1 sessions in ") {
		t.Errorf("drain outcome %+v", out)
	}
	t.Logf("drain: %s", out.Detail)
	if st := status(t, b, "web")[busy]; st.State != api.LBMaint {
		t.Errorf("drained server in %s", st.State)
	}
	// The other one is now the last ready server: refused, unchanged.
	if _, err := lb.Drain(ctx, b, "web", other, time.Second); err == nil || !strings.Contains(err.Error(), "last server") {
		t.Fatalf("draining the last ready server: %v", err)
	}
	if st := status(t, b, "web")[other]; st.State != api.LBReady {
		t.Fatalf("refused drain changed the server: %+v", st)
	}
	// A drain that times out puts the server in maint anyway.
	// Allow: waits for rise (2 checks at 100 ms).
	start := time.Now()
	out, err = lb.Allow(ctx, b, "web", busy, 50, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < 100*time.Millisecond {
		t.Errorf("allow returned after %v: sooner than 2 checks 100 ms apart", took)
	}
	st := status(t, b, "web")[busy]
	if st.Health != "UP" || st.State != api.LBReady || st.Weight != 50 {
		t.Errorf("allowed server %+v", st)
	}
	t.Logf("allow: %s", out.Detail)
	// A server that does not listen: error after the timeout, naming the check.
	start = time.Now()
	_, err = lb.Allow(ctx, b, "web", "dead", -1, 1500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "L4CON") || !strings.Contains(err.Error(), "not UP") {
		t.Fatalf("allow of a dead server: %v", err)
	}
	if time.Since(start) < 1500*time.Millisecond {
		t.Errorf("allow gave up after %v, before its timeout", time.Since(start))
	}
	t.Logf("allow dead: %v", err)
	// Remove: drained without the guard, deleted.
	if _, err := lb.Remove(ctx, b, "web", "dead", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := status(t, b, "web")["dead"]; ok {
		t.Fatal("removed server still there")
	}
	if b.want == nil || len(b.want.Backends[0].Servers) != 2 {
		t.Fatalf("removed server still in the desired state: %+v", b.want)
	}
}

// An external (hand-configured) haproxy: runtime operations only, and the
// state file written after each change keeps them across its own reload.
func TestExternalStateFileSurvivesReload(t *testing.T) {
	needHAProxy(t)
	ctx := context.Background()
	dir, err := os.MkdirTemp("/tmp", "hA-ext-")
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := startBackend(t, "s1"), startBackend(t, "s2")
	port := freePort(t)
	sock, state, cfgPath, pid := filepath.Join(dir, "admin.sock"), filepath.Join(dir, "state"), filepath.Join(dir, "h.cfg"), filepath.Join(dir, "h.pid")
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin expose-fd listeners
    server-state-file %s
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    load-server-state-from-file global
frontend fe
    bind 127.0.0.1:%d
    default_backend web
backend web
    option httpchk GET /
    server s1 127.0.0.1:%d check inter 100
    server s2 127.0.0.1:%d check inter 100
`, sock, state, port, s1.port, s2.port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range processesOf(cfgPath) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		os.RemoveAll(dir)
	})
	if err := run(ctx, "-D", "-f", cfgPath, "-p", pid); err != nil {
		t.Fatal(err)
	}
	b, err := Open(lb.Options{Socket: sock, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Configure(ctx, api.LBConfig{}); err == nil || !strings.Contains(err.Error(), "configured by hand") {
		t.Fatalf("configure of an external haproxy: %v", err)
	}
	if err := b.Set(ctx, "web", "s1", api.LBDrain, 42); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(state)
	if !strings.Contains(string(data), " web ") || !strings.Contains(string(data), " s1 ") {
		t.Fatalf("state file not written:\n%s", data)
	}
	// The user's own seamless reload.
	old, _ := os.ReadFile(pid)
	if err := run(ctx, "-D", "-f", cfgPath, "-p", pid, "-x", sock, "-sf", strings.TrimSpace(string(old))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, _ := os.ReadFile(pid)
		out, err := b.c.Run(ctx, "show info")
		if err == nil && len(now) > 0 && string(now) != string(old) && strings.Contains(out, "Pid: "+strings.TrimSpace(string(now))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reloaded haproxy does not answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := status(t, b, "web")
	if st["s1"].State != api.LBDrain || st["s1"].Weight != 42 || st["s2"].State != api.LBReady {
		t.Fatalf("after the reload: s1 %+v s2 %+v", st["s1"], st["s2"])
	}
}
