package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// The in-place traffic events against a real haproxy that gantry does not
// configure (a group's --lb HOST/BACKEND --lb-socket): a server, an agent
// on the load balancer's "machine" and two app hosts whose hooks start a
// tiny HTTP app; 8 clients send requests through haproxy during a
// OneAtATime deployment, and none may fail.

const haproxyBin = "/usr/sbin/haproxy"

// trafficApp is the tiny HTTP app the bundle's hooks run: GET / answers
// "<host> <version>" after a short pause (so that requests are in flight
// when a host is drained), GET /slow after 3 s, GET /health answers 200;
// SIGTERM shuts it down gracefully.
const trafficApp = `package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "", "")
	host := flag.String("host", "", "")
	version := flag.String("version", "", "")
	pidfile := flag.String("pidfile", "", "")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second)
		w.Header().Set("X-Backend", *host)
		fmt.Fprintf(w, "%s %s slow\n", *host, *version)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Millisecond)
		w.Header().Set("X-Backend", *host)
		fmt.Fprintf(w, "%s %s\n", *host, *version)
	})
	srv := &http.Server{Addr: *addr, Handler: mux}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		panic(err)
	}
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// buildTrafficApp compiles trafficApp into dir/app.
func buildTrafficApp(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(trafficApp), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module trafficapp\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test app: %v\n%s", err, out)
	}
	return bin
}

// trafficBundle is a revision of the app: ApplicationStart starts it on the
// host's port (app/ports), ApplicationStop (of the previous revision)
// stops it and waits until it is gone, ValidateService waits for its
// health; the traffic hooks trace themselves.
func trafficBundle(dir, appBin, version string, ports map[string]int) map[string]string {
	var pl strings.Builder
	for h, p := range ports {
		fmt.Fprintf(&pl, "%s %d\n", h, p)
	}
	port := `PORT=$(awk -v h="$GANTRY_HOST_NAME" '$1==h {print $2}' app/ports); [ -n "$PORT" ] || { echo "no port for $GANTRY_HOST_NAME"; exit 1; }`
	pid := fmt.Sprintf(`PIDF='%s'/"$GANTRY_HOST_NAME.pid"`, dir)
	trace := fmt.Sprintf(`echo "$LIFECYCLE_EVENT %s" >> '%s'/"trace-$GANTRY_HOST_NAME"`, version, dir)
	hooks := []hook{
		{event: "BeforeBlockTraffic", script: trace},
		{event: "AfterBlockTraffic", script: trace},
		{event: "ApplicationStop", script: trace + "\n" + pid + `
if [ -f "$PIDF" ]; then
	p=$(cat "$PIDF")
	kill "$p" 2>/dev/null || true
	i=0
	while kill -0 "$p" 2>/dev/null; do i=$((i+1)); [ $i -lt 200 ] || { echo "app $p did not stop"; exit 1; }; sleep 0.05; done
	rm -f "$PIDF"
	echo "stopped $p"
fi`},
		{event: "ApplicationStart", script: trace + "\n" + port + "\n" + pid + fmt.Sprintf(`
rm -f "$PIDF"
setsid '%s' -addr "127.0.0.1:$PORT" -host "$GANTRY_HOST_NAME" -version %s -pidfile "$PIDF" </dev/null >>'%s'/"app-$GANTRY_HOST_NAME.log" 2>&1 &
echo "started on $PORT"`, appBin, version, dir)},
		{event: "ValidateService", script: trace + "\n" + port + `
i=0
until curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 200 ] || { echo "not healthy on $PORT"; exit 1; }; sleep 0.05; done
echo "healthy on $PORT"`},
		{event: "BeforeAllowTraffic", script: trace},
		{event: "AfterAllowTraffic", script: trace},
	}
	return bundle("/opt/trapp", map[string]string{"ports": pl.String(), "VERSION": version + "\n"}, hooks...)
}

// haproxyProc is a hand-configured haproxy run by the test.
type haproxyProc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{}
	cfg    string
	socket string
	state  string
}

// startHaproxy writes dir/haproxy.cfg (a stats socket at level admin, a
// server-state-file, one backend "web" whose servers are named after the
// hosts, checked every 200 ms, rise 2) and runs haproxy in the foreground
// as a child of the test. retries 0 and no redispatch: a request sent to a
// server that is not listening fails, so that the test sees it. The
// servers named in disabled start in maintenance (`disabled`), as a
// blue/green replacement fleet waits.
func startHaproxy(t *testing.T, dir string, listen string, servers map[string]int, disabled ...string) *haproxyProc {
	t.Helper()
	h := &haproxyProc{out: &syncBuffer{}, done: make(chan struct{}), cfg: filepath.Join(dir, "haproxy.cfg"),
		socket: filepath.Join(dir, "admin.sock"), state: filepath.Join(dir, "server-state")}
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin expose-fd listeners
    server-state-file %s

defaults
    mode http
    load-server-state-from-file global
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 0

frontend fe
    bind %s
    default_backend web

backend web
    balance roundrobin
    option httpchk GET /health
    default-server inter 200ms fall 2 rise 2
`, h.socket, h.state, listen)
	for _, name := range sortedKeys(servers) {
		opt := ""
		if slices.Contains(disabled, name) {
			opt = " disabled"
		}
		fmt.Fprintf(&b, "    server %s 127.0.0.1:%d check%s\n", name, servers[name], opt)
	}
	if err := os.WriteFile(h.cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-f", h.cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	h.cmd = exec.Command(haproxyBin, "-db", "-f", h.cfg)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	go func() { h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
		}
	})
	eventually(t, 10*time.Second, "haproxy listens", func() (bool, string) {
		select {
		case <-h.done:
			t.Fatalf("haproxy exited: %v\n%s", h.cmd.ProcessState, h.out)
		default:
		}
		c, err := net.DialTimeout("unix", h.socket, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		l, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return false, err.Error()
		}
		l.Close()
		return true, ""
	})
	return h
}

// clientLoad is n goroutines sending GET / through the load balancer in a
// loop, counting every non-200 answer and every error.
type clientLoad struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	requests atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	samples  []string
	backends map[string]int64
}

func startClients(url string, n int) *clientLoad {
	l := &clientLoad{stop: make(chan struct{}), backends: map[string]int64{}}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				l.requests.Add(1)
				if err != nil {
					l.fail(time.Now().Format("15:04:05.000") + " " + err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					first, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
					l.fail(fmt.Sprintf("%s status %d: %s", time.Now().Format("15:04:05.000"), resp.StatusCode, first))
					continue
				}
				l.mu.Lock()
				l.backends[resp.Header.Get("X-Backend")]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *clientLoad) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.samples) < 5 {
		l.samples = append(l.samples, s)
	}
	l.mu.Unlock()
}

func (l *clientLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// slowAnswer is the answer to a slow request.
type slowAnswer struct {
	end     time.Time
	backend string
	body    string
	err     error
}

// slowRequests sends two slow requests through the load balancer (one to
// each server, by round robin) and waits until both are in flight.
func (c *cluster) slowRequests(url, app, group string) <-chan slowAnswer {
	c.t.Helper()
	slow := make(chan slowAnswer, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(url)
			if err != nil {
				slow <- slowAnswer{end: time.Now(), err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			slow <- slowAnswer{end: time.Now(), backend: resp.Header.Get("X-Backend"), body: strings.TrimSpace(string(b)), err: err}
		}()
	}
	eventually(c.t, 5*time.Second, "a slow request in flight on each server", func() (bool, string) {
		v, err := c.groupLB(app, group)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range v.Servers {
			if s.Sessions > 0 {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%+v", v.Servers)
	})
	return slow
}

// groupLB runs `gantry lb show --app APP --group GROUP -o json`.
func (c *cluster) groupLB(app, group string) (api.LBView, error) {
	c.t.Helper()
	r := c.gantry("lb", "show", "--app", app, "--group", group, "-o", "json")
	var v api.LBView
	if r.code != 0 {
		return v, fmt.Errorf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		return v, fmt.Errorf("%v: %s", err, r.stdout)
	}
	return v, nil
}

// waitServing waits until the named servers are ready and UP.
func (c *cluster) waitServing(app, group string, names ...string) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, "servers "+strings.Join(names, ", ")+" ready and UP", func() (bool, string) {
		v, err := c.groupLB(app, group)
		if err != nil {
			return false, err.Error()
		}
		got := readyServers(v.Servers)
		return slices.Equal(got, names), fmt.Sprintf("%+v", v.Servers)
	})
}

func TestTrafficInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a server, 3 agents, haproxy and an app on loopback")
	}
	if _, err := os.Stat(haproxyBin); err != nil {
		t.Fatalf("this test needs haproxy at %s (Debian: apt-get install haproxy): %v", haproxyBin, err)
	}
	c := newCluster(t, clusterOpts{})
	dir := filepath.Join(c.dir, "tr") // under the cluster's directory: its cleanup kills the apps
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appBin := buildTrafficApp(t, dir)
	ports := map[string]int{}
	for _, h := range []string{"app-1", "app-2"} {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		ports[h], _ = strconv.Atoi(p)
	}
	lbAddr := freeAddr(t)
	hp := startHaproxy(t, dir, lbAddr, ports)

	c.deployAgentsOnline(map[string]string{"lbhost": "role=lb", "app-1": "role=web", "app-2": "role=web"})
	c.gantry("app", "create", "shop").ok(t)
	g := c.createGroup("shop", "web", "--selector", "role=web", "--lb", "lbhost/web", "--lb-socket", hp.socket,
		"--lb-state-file", hp.state, "--drain-timeout", "10s")
	if g.LoadBalancer == nil || g.LoadBalancer.Host != "lbhost" || g.LoadBalancer.Backend != "web" || g.LoadBalancer.Socket != hp.socket ||
		g.LoadBalancer.DrainTimeoutSeconds != 10 {
		t.Fatalf("group's load balancer: %+v", g.LoadBalancer)
	}

	// v1: the first deployment. No app runs yet, so both servers are
	// DOWN: draining them is allowed (they serve nothing), and each is let
	// in once haproxy's checks find it UP.
	c.push("shop", trafficBundle(dir, appBin, "v1", ports))
	d1 := c.deployWait(0, "deploy", "shop", "web")
	if d1.State != api.DeploySucceeded {
		t.Fatalf("v1 deployment %s: %s\n%s", d1.ID, d1.Error, trafficChanges(d1))
	}
	c.waitServing("shop", "web", "app-1", "app-2")

	// v2 under load.
	load := startClients("http://"+lbAddr+"/", 8)
	eventually(t, 10*time.Second, "clients get answers from both hosts", func() (bool, string) {
		load.mu.Lock()
		defer load.mu.Unlock()
		return load.backends["app-1"] > 20 && load.backends["app-2"] > 20, fmt.Sprint(load.backends)
	})
	c.push("shop", trafficBundle(dir, appBin, "v2", ports))
	before := load.requests.Load()
	start := time.Now()
	d2 := c.deployWait(0, "deploy", "shop", "web", "--config", "OneAtATime")
	took := time.Since(start)
	during := load.requests.Load() - before
	// A little more load after the deployment: both hosts serve v2.
	time.Sleep(500 * time.Millisecond)
	load.end()
	t.Logf("v2 deployment %s took %s; %d requests during it, %d in all, %d failed; by backend %v",
		d2.ID, took.Round(time.Millisecond), during, load.requests.Load(), load.failed.Load(), load.backends)
	t.Logf("load balancer changes:\n%s", trafficChanges(d2))
	if d2.State != api.DeploySucceeded {
		t.Fatalf("v2 deployment %s: %s\n%s", d2.ID, d2.Error, trafficChanges(d2))
	}
	if n := load.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the deployment; first ones:\n  %s\nhaproxy:\n%s", n, load.requests.Load(),
			strings.Join(load.samples, "\n  "), hp.out)
	}
	if during < 100 {
		t.Errorf("only %d requests during the deployment: the load did not run", during)
	}

	// Each host was drained at BlockTraffic and let in at AllowTraffic, one
	// host after the other (OneAtATime), and the changes are stored.
	if d2.Strategy != api.StrategyInPlace {
		t.Errorf("strategy %q, want %q", d2.Strategy, api.StrategyInPlace)
	}
	if d2.Traffic == nil {
		t.Fatal("the deployment has no traffic side")
	}
	var seq []string
	for _, ch := range d2.Traffic.Changes {
		if ch.Error != "" || ch.Backend != "web" || ch.LoadBalancerID != "lbhost" || ch.DeploymentID != d2.ID || ch.At.IsZero() {
			t.Errorf("change %+v", ch)
		}
		seq = append(seq, ch.Server+" "+ch.Action)
		switch ch.Action {
		case api.LBDrain:
			if !strings.HasPrefix(ch.Detail, "drained ") {
				t.Errorf("drain of %s: detail %q, want \"drained N sessions in T\"", ch.Server, ch.Detail)
			}
		case api.LBReady:
			if !strings.Contains(ch.Detail, "UP") {
				t.Errorf("allow of %s: detail %q, want it UP", ch.Server, ch.Detail)
			}
		}
	}
	want := []string{"app-1 drain", "app-1 ready", "app-2 drain", "app-2 ready"}
	if !slices.Equal(seq, want) {
		t.Errorf("changes %q, want %q", seq, want)
	}
	for _, h := range []string{"app-1", "app-2"} {
		dh := c.deploymentHost(d2.ID, h)
		var names []string
		for _, ev := range dh.Events {
			names = append(names, ev.Name)
			if (ev.Name == "BlockTraffic" || ev.Name == "AllowTraffic") && (ev.State != "succeeded" || ev.LogTail == "") {
				t.Errorf("%s %s: %s, log %q", h, ev.Name, ev.State, ev.LogTail)
			}
		}
		wantEvents := []string{"Start", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic", "ApplicationStop", "DownloadBundle",
			"BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End"}
		if !slices.Equal(names, wantEvents) {
			t.Errorf("%s events %q, want %q", h, names, wantEvents)
		}
		trace := readLines(t, filepath.Join(dir, "trace-"+h))
		wantTrace := []string{"BeforeBlockTraffic v1", "AfterBlockTraffic v1", "ApplicationStop v1", "ApplicationStart v2", "ValidateService v2",
			"BeforeAllowTraffic v2", "AfterAllowTraffic v2"}
		if got := trace[len(trace)-len(wantTrace):]; !slices.Equal(got, wantTrace) {
			t.Errorf("%s hooks of v2 %q, want %q", h, got, wantTrace)
		}
	}
	// Both serve v2, ready and UP; `deployments show` lists the changes.
	c.waitServing("shop", "web", "app-1", "app-2")
	for _, h := range []string{"app-1", "app-2"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[h]))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(b)) != h+" v2" {
			t.Errorf("%s answers %q, want %q", h, b, h+" v2")
		}
	}
	r := c.gantry("deployments", "show", d2.ID)
	r.ok(t)
	for _, w := range []string{"Load balancer changes:", "app-1: drained ", "app-2: UP"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("deployments show lacks %q:\n%s", w, r.stdout)
		}
	}

	// A request in flight for 3 s: app-1's drain waits for it to end, and
	// its ApplicationStop starts only after it completed.
	slow := c.slowRequests("http://"+lbAddr+"/slow", "shop", "web")
	c.push("shop", trafficBundle(dir, appBin, "v2s", ports))
	ds := c.deployWait(0, "deploy", "shop", "web")
	var slowEnd time.Time
	for range 2 {
		a := <-slow
		if a.err != nil || !strings.HasSuffix(a.body, " v2 slow") {
			t.Errorf("slow request: %q, %v", a.body, a.err)
		}
		if a.backend == "app-1" {
			slowEnd = a.end
		}
	}
	if slowEnd.IsZero() {
		t.Fatal("no slow request was answered by app-1")
	}
	var drain api.TrafficChange
	for _, ch := range ds.Traffic.Changes {
		if ch.Server == "app-1" && ch.Action == api.LBDrain {
			drain = ch
		}
	}
	if !strings.HasPrefix(drain.Detail, "drained 1 sessions") || drain.ElapsedMillis < 1000 {
		t.Errorf("app-1's drain did not wait for its slow request: %+v", drain)
	}
	stop, ok := event(c.deploymentHost(ds.ID, "app-1"), "ApplicationStop")
	if !ok || stop.StartedAt == nil || stop.StartedAt.Before(slowEnd.Add(-50*time.Millisecond)) {
		t.Errorf("app-1's ApplicationStop started at %v, before its slow request ended at %v", stop.StartedAt, slowEnd)
	}
	t.Logf("slow request answered at %s; app-1 %s; ApplicationStop at %s", slowEnd.Format("15:04:05.000"), drain.Detail, stop.StartedAt.Local().Format("15:04:05.000"))

	// kill -9 of the server while app-1 is being drained: the agent asks
	// again, the restarted server drains it again, and the deployment goes
	// on without a failed request.
	slow = c.slowRequests("http://"+lbAddr+"/slow", "shop", "web")
	c.push("shop", trafficBundle(dir, appBin, "v2k", ports))
	id := c.deployNoWait("deploy", "shop", "web")
	eventually(t, 15*time.Second, "app-1 being drained", func() (bool, string) {
		v, err := c.groupLB("shop", "web")
		if err != nil {
			return false, err.Error()
		}
		for _, s := range v.Servers {
			if s.Name == "app-1" {
				return s.State == api.LBDrain, s.State
			}
		}
		return false, fmt.Sprintf("%+v", v.Servers)
	})
	c.server.kill()
	c.startServer()
	dk := c.waitDeployment(id, 2*time.Minute)
	t.Logf("after a kill -9 of the server during app-1's drain: deployment %s %s\n%s", id, dk.State, trafficChanges(dk))
	if dk.State != api.DeploySucceeded {
		t.Fatalf("deployment %s after the server's kill -9: %s %s\n%s", id, dk.State, dk.Error, trafficChanges(dk))
	}
	for range 2 {
		if a := <-slow; a.err != nil || !strings.HasSuffix(a.body, " v2s slow") {
			t.Errorf("slow request across the server's kill -9: %q, %v", a.body, a.err)
		}
	}
	seq = nil
	for _, ch := range dk.Traffic.Changes {
		seq = append(seq, ch.Server+" "+ch.Action)
	}
	if !slices.Equal(seq, want) {
		t.Errorf("changes across the server's kill -9 %q, want %q", seq, want)
	}
	c.waitServing("shop", "web", "app-1", "app-2")

	// A drain that would leave the backend without a server is refused:
	// with app-2 put in maintenance by hand, app-1 is the last server, so
	// its BlockTraffic fails, its application is not stopped, and the
	// deployment fails by its rules (OneAtATime cannot go on to app-2).
	c.gantry("group", "update", "shop", "web", "--no-auto-rollback").ok(t)
	hp.command(t, "set server web/app-2 state maint")
	c.push("shop", trafficBundle(dir, appBin, "v3", ports))
	r = c.gantry("deploy", "shop", "web", "--wait")
	if r.code != 1 {
		t.Fatalf("deploy with app-1 the last server: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("gantry deploy --wait, app-1 the last server:\n%s%s", r.stdout, r.stderr)
	for _, w := range []string{"app-1: drain failed:", "is the last server of backend", "BlockTraffic"} {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("deploy --wait output lacks %q:\n%s%s", w, r.stdout, r.stderr)
		}
	}
	d3 := c.deploymentsOf("shop")[0]
	d3 = c.deployment(d3.ID)
	hs := hostsByName(d3)
	if d3.State != api.DeployFailed || hs["app-1"].State != api.HostDeployFailed || hs["app-2"].State != api.HostDeploySkipped ||
		!strings.Contains(hs["app-1"].Error, "last server of backend") {
		t.Fatalf("refused drain: deployment %s, hosts %+v", d3.State, hs)
	}
	if ev, ok := event(c.deploymentHost(d3.ID, "app-1"), "ApplicationStop"); !ok || ev.State != "skipped" {
		t.Errorf("ApplicationStop after a refused BlockTraffic: %+v", ev)
	}
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports["app-1"])); err != nil {
		t.Errorf("app-1 was stopped after its drain was refused: %v", err)
	} else {
		resp.Body.Close()
	}
	hp.command(t, "set server web/app-2 state ready")
	c.waitServing("shop", "web", "app-1", "app-2")
	// gantry's changes were written to the server-state-file, so that a
	// reload of this haproxy keeps them.
	if b, err := os.ReadFile(hp.state); err != nil || !strings.Contains(string(b), "app-1") || !strings.Contains(string(b), "app-2") {
		t.Errorf("server-state-file %s after the deployments: %v\n%s", hp.state, err, b)
	}

	// The control: the same deployment without traffic control (the group
	// taken out from behind its load balancer) fails requests, which is
	// what the load above would have seen had the drains not happened.
	c.gantry("group", "update", "shop", "web", "--no-lb").ok(t)
	load = startClients("http://"+lbAddr+"/", 8)
	eventually(t, 10*time.Second, "clients get answers", func() (bool, string) {
		return load.requests.Load() > 200, fmt.Sprint(load.requests.Load())
	})
	d4 := c.deployWait(0, "deploy", "shop", "web", "--config", "OneAtATime")
	load.end()
	t.Logf("without traffic control: deployment %s %s, %d of %d requests failed; first ones:\n  %s", d4.ID, d4.State, load.failed.Load(), load.requests.Load(),
		strings.Join(load.samples, "\n  "))
	if d4.Traffic != nil && len(d4.Traffic.Changes) > 0 {
		t.Errorf("a deployment without a load balancer changed it:\n%s", trafficChanges(d4))
	}
	if load.failed.Load() == 0 {
		t.Errorf("no request failed during a deployment without traffic control: the load would not see a missing drain")
	}
}

// command sends one command to haproxy's runtime API and returns the
// answer.
func (h *haproxyProc) command(t *testing.T, cmd string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", h.socket, 5*time.Second)
	if err != nil {
		t.Fatalf("haproxy socket: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		t.Fatalf("haproxy %q: %v", cmd, err)
	}
	b, _ := io.ReadAll(conn)
	if s := strings.TrimSpace(string(b)); s != "" {
		t.Logf("haproxy %q: %s", cmd, s)
	}
	return string(b)
}
