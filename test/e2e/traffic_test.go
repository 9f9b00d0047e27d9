package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// The traffic tests of issue "Traffic control": examples/shop on real
// Docker machines behind real haproxy, driven through the CLI as a user
// would, each scenario under bench/loadgen running as a second process
// with 8 keep-alive clients against the environment's url. Unless a
// scenario says otherwise it must end with 0 failed requests (no non-2xx,
// no connection error).
//
// loadgen runs at -rate 400 (total): enough requests in every scenario
// (thousands) to see a failure rate of one in a thousand, while leaving the
// 2 cores of the test machine to the containers, agents and server whose
// timing is under test (unthrottled, 8 clients take a whole core and
// the deployments' own health checks start to time out). bench/traffic
// runs the same scenarios at full speed with >= 10,000 requests each.

// loadClients is the number of concurrent loadgen clients (>= 8: the issue).
const loadClients = 8

// loadRate is loadgen's total request rate in the tests.
const loadRate = "400"

// TestLoadgenCounts: the load generator counts what it must: every
// request, every non-2xx by status, every connection error by kind, and
// the answers per backend header. Without it a "0 failed" below would
// prove nothing. (No Docker: an in-test server.)
func TestLoadgenCounts(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		switch {
		case i%10 == 0:
			w.Header().Set("X-Backend", "b")
			http.Error(w, "injected", http.StatusServiceUnavailable)
		case i%25 == 1 && i > 1:
			// A connection cut without an answer.
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST
			}
			conn.Close()
		default:
			w.Header().Set("X-Backend", "a")
			io.WriteString(w, "ok\n")
		}
	}))
	defer srv.Close()
	// A refused connection: a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/"
	l.Close()

	run := func(url string, args ...string) loadSummary {
		lg := &loadRun{t: t, out: filepath.Join(t.TempDir(), "s.json"), log: &syncBuffer{}, done: make(chan struct{})}
		return lg.runToEnd(t, append([]string{"-url", url, "-c", "8", "-out", lg.out}, args...)...)
	}
	s := run(srv.URL+"/", "-duration", "1s")
	t.Logf("loadgen against a faulty server: %s", s)
	if s.Requests < 100 || s.Requests != s.OK+s.Failed {
		t.Fatalf("requests %d, ok %d, failed %d: want >= 100 and ok+failed = requests", s.Requests, s.OK, s.Failed)
	}
	if got := s.Status["503"]; got == 0 || got != s.FailuresByBackend["b"] {
		t.Errorf("503s counted %d, failures of backend b %d: want the same, > 0", got, s.FailuresByBackend["b"])
	}
	cut := int64(0)
	for _, v := range s.Errors {
		cut += v
	}
	// One request in 25 is cut: each must be a failure, not silently
	// retried by the transport (see loadgen's doc).
	if cut < s.Requests/30 || s.Failed != s.Status["503"]+cut {
		t.Errorf("failed %d = 503s %d + errors %v of %d requests: want every cut connection (1 in 25) counted as an error", s.Failed, s.Status["503"], s.Errors, s.Requests)
	}
	if s.Backends["a"] == 0 || s.Backends["a"] != s.Status["200"] {
		t.Errorf("backend a answered %d, 200s %d: want the same", s.Backends["a"], s.Status["200"])
	}
	if len(s.Timeline) < 1 || s.Latency.P99 <= 0 {
		t.Errorf("timeline %v, p99 %v", s.Timeline, s.Latency.P99)
	}

	// -retry: the transport may retry on a new connection, as browsers do;
	// counted apart, not failed.
	s = run(srv.URL+"/", "-duration", "500ms", "-retry")
	if s.Retried == 0 || s.Errors["reset"] > s.Retried {
		t.Errorf("-retry: retried %d, errors %v: want the cut requests retried", s.Retried, s.Errors)
	}

	s = run(refused, "-duration", "300ms", "-new-conn", "-rate", "100")
	if s.Failed == 0 || s.Errors["refused"] != s.Failed || s.OK != 0 {
		t.Errorf("against a closed port: failed %d, errors %v: want every request a refused connection", s.Failed, s.Errors)
	}
	if s.Requests > 50 {
		t.Errorf("-rate 100 for 0.3 s made %d requests, want about 30", s.Requests)
	}

	// -stop FILE ends it; bad flags exit 2.
	stopFile := filepath.Join(t.TempDir(), "stop")
	lg := &loadRun{t: t, out: filepath.Join(t.TempDir(), "s.json"), log: &syncBuffer{}, done: make(chan struct{})}
	go func() {
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); {
			if st, err := lg.snapshot(); err == nil && st.Requests > 0 {
				os.WriteFile(stopFile, nil, 0o644)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if s := lg.runToEnd(t, "-url", srv.URL+"/", "-c", "8", "-rate", "50", "-out", lg.out, "-stop", stopFile); s.Requests == 0 || s.Running {
		t.Errorf("-stop: %s", s)
	}
	// The stop file is still there: a new run refuses it (it would end at once).
	for _, bad := range [][]string{{}, {"-url", "ftp://x"}, {"-url", srv.URL, "-c", "0"}, {"-url", srv.URL, "-stop", stopFile}} {
		out, err := execOutput(loadgenBin(t), bad...)
		if code := exitCode(err); code != 2 {
			t.Errorf("loadgen %v: exit %d, want 2\n%s", bad, code, out)
		}
	}
}

// TestTrafficShop runs the traffic scenarios on one examples/shop
// environment (2 web machines behind haproxy), in an order where they do
// not interfere: rolling deployments OneAtATime and HalfAtATime, a
// request in flight for 3 s during a deployment, scale 2 → 6 → 2, 20 load
// balancer changes in a row (backends added and removed), a bad canary, a
// good canary, a canary without traffic, then blue/green deployments
// (envBlueGreen: linear steps and a rollback, all at once, and from the
// definition's deploy block). TestTrafficBlueGreen runs blue/green on
// hand-onboarded hosts.
func TestTrafficShop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gantry server and examples/shop on the Docker engine (db, 2–6 web, haproxy lb containers) under bench/loadgen; skipped with -short")
	}
	requireDocker(t)
	buildShop(t)
	loadgenBin(t)
	env := randomEnv()
	removeEnvLater(t, env)
	c := newCluster(t, clusterOpts{})
	dir := shopDir(t)
	const wait = 4 * time.Minute
	group := env + "-web"
	c.gantry("app", "create", "shop").ok(t)
	c.pushShop("v1", 0)

	began := time.Now()
	c.gantryWithin(wait, "up", dir, "--env", env, "--var", "web_count=2", "--timeout", "3m").ok(t)
	url := c.envURL(env)
	// up returns once the web machines are in the load balancer: both are
	// ready and UP by haproxy's own checks right away (gantry lb show).
	servers, err := c.lbShow(env, "web")
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, s := range servers {
		if s.State == api.LBReady && s.Health == "UP" {
			ready++
		}
	}
	if ready != 2 {
		t.Fatalf("after up: %d web servers ready and UP in the load balancer, want 2: %+v", ready, servers)
	}
	webIPs := func() []string { return machineIPs(machines(c.env(env), "web")) }
	waitBackends(t, 60*time.Second, url, "the url serves the 2 web machines", webIPs)
	t.Logf("up: 2 web machines serving in %.1f s", time.Since(began).Seconds())

	// deploy runs a deployment of the newest revision under load and
	// checks: 0 failed requests, the deployment succeeded, every web
	// machine was drained and let in again, and the url serves only the
	// new version.
	deploy := func(t *testing.T, version, config string) {
		c := c.withT(t)
		c.waitIdle(group)
		c.pushShop(version, 0)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		d := c.deployWait(0, "deploy", "shop", group, "--config", config)
		took := time.Since(began)
		s := lg.stop()
		t.Logf("deploy %s %s: %s in %.1f s; load: %s\ntraffic changes:\n%s", version, config, d.State, took.Seconds(), s, trafficChanges(d))
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed during the %s deployment:\n%s", s.Failed, s.Requests, config, s.failures())
		}
		checkDrainedAndAllowed(t, d, machines(c.env(env), "web"))
		servesOnly(t, url, version, 20)
	}
	t.Run("RollingOneAtATime", func(t *testing.T) { deploy(t, "v2", "OneAtATime") })
	t.Run("RollingHalfAtATime", func(t *testing.T) { deploy(t, "v3", "HalfAtATime") })
	t.Run("InFlightRequestDrained", func(t *testing.T) { inFlightDrain(t, c.withT(t), env, url, group) })

	t.Run("Scale2To6To2", func(t *testing.T) {
		c := c.withT(t)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		c.gantryWithin(wait, "scale", "--env", env, "web=6", "--timeout", "3m").ok(t)
		waitBackends(t, 60*time.Second, url, "the url serves the 6 web machines", webIPs)
		out := time.Since(began)
		began = time.Now()
		c.gantryWithin(wait, "scale", "--env", env, "web=2", "--timeout", "3m").ok(t)
		waitBackends(t, 60*time.Second, url, "the url serves the 2 remaining web machines", webIPs)
		in := time.Since(began)
		s := lg.stop()
		t.Logf("scale 2 → 6 in %.1f s, 6 → 2 in %.1f s; load: %s", out.Seconds(), in.Seconds(), s)
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed while scaling 2 → 6 → 2:\n%s", s.Failed, s.Requests, s.failures())
		}
		if len(s.Backends) < 6 {
			t.Errorf("loadgen saw %d backends, want the 6 of the scaled-out group: %v", len(s.Backends), s.Backends)
		}
	})

	// 20 load balancer changes in a row: 10 backends added and 10 removed,
	// by scaling 2 → 7 → 2 twice (five machines join or leave at once:
	// 2 → 4 → 2 five times took 82 s, 2 → 3 → 2 ten times about twice
	// that).
	t.Run("TwentyLBChanges", func(t *testing.T) {
		c := c.withT(t)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		var times []string
		for i := range 4 {
			n := 7 - 5*(i%2) // 7, 2, 7, 2
			t0 := time.Now()
			c.gantryWithin(wait, "scale", "--env", env, fmt.Sprintf("web=%d", n), "--timeout", "3m").ok(t)
			waitBackends(t, 60*time.Second, url, fmt.Sprintf("scale %d: the url serves the %d web machines", i+1, n), webIPs)
			times = append(times, fmt.Sprintf("%.1f", time.Since(t0).Seconds()))
		}
		s := lg.stop()
		t.Logf("20 load balancer changes (scale 2 → 7 → 2 twice) in %.1f s (each scale, s: %s); load: %s", time.Since(began).Seconds(), strings.Join(times, " "), s)
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed over 20 load balancer changes:\n%s", s.Failed, s.Requests, s.failures())
		}
		if len(s.Backends) < 7 {
			t.Errorf("loadgen saw %d backends, want the 7 of the scaled-out group: %v", len(s.Backends), s.Backends)
		}
	})

	t.Run("CanaryBadRolledBack", func(t *testing.T) { badCanary(t, c.withT(t), env, url, group) })

	// A good canary under load passes its analyses and is promoted: the
	// analysis above failed the bad one for its errors, not always.
	t.Run("CanaryGoodPromoted", func(t *testing.T) {
		c := c.withT(t)
		c.waitIdle(group)
		rev := c.pushShop("v6", 0)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		// --max-latency-ratio 3: the response times of 8 clients on a
		// loaded 2-core machine vary; this test is about errors.
		d := c.deployWait(0, "deploy", "shop", group, "--strategy", "canary", "--canary-steps", "10:4s,50:4s",
			"--analysis-interval", "2s", "--max-error-rate", "0.05", "--max-latency-ratio", "3")
		took := time.Since(began)
		s := lg.stop()
		t.Logf("good canary: %s in %.1f s; load: %s\ntraffic changes:\n%s", d.State, took.Seconds(), s, trafficChanges(d))
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed during a good canary:\n%s", s.Failed, s.Requests, s.failures())
		}
		passed := 0
		if d.Traffic != nil {
			for i, a := range d.Traffic.Analyses {
				t.Logf("analysis %d: step %d weight %d%%: canary %d/%d, stable %d/%d: %s %s", i, a.Step, a.Weight, a.CanaryErrors, a.CanaryRequests, a.StableErrors, a.StableRequests, a.Verdict, a.Reason)
				if a.Verdict == "fail" {
					t.Errorf("analysis %d of a good canary failed: %s", i, a.Reason)
				}
				if a.Verdict == "pass" {
					passed++
				}
			}
		}
		if passed == 0 {
			t.Errorf("a good canary under load was promoted without a passed analysis")
		}
		if got := c.group("shop", group).Revision; got != rev {
			t.Errorf("group revision after the promoted canary: %s, want %s", got, rev)
		}
		servesOnly(t, url, "v6", 20)
	})

	t.Run("CanaryNoTrafficNotPromoted", func(t *testing.T) {
		c := c.withT(t)
		c.waitIdle(group)
		before := c.group("shop", group).Revision
		rev := c.pushShop("v7", 0)
		// No load: nothing but haproxy's own health checks reaches the canary.
		began := time.Now()
		r := c.gantryWithin(wait, "deploy", "shop", group, "--strategy", "canary", "--canary-steps", "10:6s",
			"--analysis-interval", "2s", "--on-no-data", "wait", "--wait", "-o", "json")
		t.Logf("canary without traffic: exit %d after %.1f s\n%s", r.code, time.Since(began).Seconds(), r.stderr)
		if r.code != 1 {
			t.Fatalf("a canary without traffic: exit %d, want 1 (not promoted)", r.code)
		}
		var d api.Deployment
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID == "" {
			t.Fatalf("deploy -o json: %v\n%s", err, r.stdout)
		}
		d = c.deployment(d.ID)
		t.Logf("deployment %s: %s (%s)\ntraffic changes:\n%s", d.ID, d.State, d.Error, trafficChanges(d))
		all := strings.ToLower(d.Error + r.stderr)
		if d.Traffic != nil {
			b, _ := json.Marshal(d.Traffic.Analyses)
			all += strings.ToLower(string(b))
		}
		if d.State == api.DeploySucceeded || !strings.Contains(strings.ReplaceAll(all, "_", " "), "no data") {
			t.Errorf("canary without traffic: state %s, error %q: want it not promoted, failing with \"no data\"", d.State, d.Error)
		}
		if d.Traffic != nil && d.Traffic.Phase == "promoted" {
			t.Errorf("canary without traffic: phase %q", d.Traffic.Phase)
		}
		if got := c.group("shop", group).Revision; got == rev || got != before {
			t.Errorf("group revision after the failed canary: %s, want still %s (not %s)", got, before, rev)
		}
	})

	t.Run("BlueGreen", func(t *testing.T) { envBlueGreen(t, c, env, url, group) })
}

// checkDrainedAndAllowed: a deployment's traffic changes drained every web
// machine and let it in again (a 0 above proves nothing if nothing moved).
func checkDrainedAndAllowed(t *testing.T, d api.Deployment, web []api.EnvMachine) {
	t.Helper()
	if d.Traffic == nil {
		t.Errorf("deployment %s has no traffic side: nothing drained the web machines", d.ID)
		return
	}
	for _, m := range web {
		drained, allowed := false, false
		for _, ch := range d.Traffic.Changes {
			if ch.Server != m.Name && ch.Server != m.HostID {
				continue
			}
			drained = drained || ch.Action == api.LBDrain
			allowed = allowed || (drained && ch.Action == api.LBReady)
		}
		if !drained || !allowed {
			t.Errorf("deployment %s: %s drained %v, then ready %v; changes:\n%s", d.ID, m.Name, drained, allowed, trafficChanges(d))
		}
	}
}

// servesOnly samples the url n times (new connections) and wants every
// answer a 200 of that version.
func servesOnly(t *testing.T, url, version string, n int) {
	t.Helper()
	for i := range n {
		resp, err := lbClient.Get(url)
		if err != nil {
			t.Errorf("GET %s #%d: %v", url, i, err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "shop "+version+" ") {
			t.Errorf("GET %s #%d: %s %q, want 200 \"shop %s …\"", url, i, resp.Status, body, version)
			return
		}
	}
}

// machineOf finds the web machine an X-Backend value names (its address,
// address:port or name).
func machineOf(web []api.EnvMachine, backend string) (api.EnvMachine, bool) {
	for _, m := range web {
		if backend == m.IP || backend == m.Name || strings.HasPrefix(backend, m.IP+":") {
			return m, true
		}
	}
	return api.EnvMachine{}, false
}

// inFlightDrain: requests of 3 s in flight when a deployment starts. Each
// one succeeds, and the ApplicationStop of the machine serving it starts
// only after it completed: BlockTraffic waited for it (the drain's change
// says how long).
func inFlightDrain(t *testing.T, c *cluster, env, url, group string) {
	c.waitIdle(group)
	c.pushShop("v4", 0)
	lg := startLoad(t, url, loadClients, "-rate", loadRate)

	// Ten slow requests, each on its own connection, so that both web
	// machines get some (round robin among loadgen's requests; all ten on
	// one machine: 2 in 1024).
	type slowReq struct {
		backend string
		status  int
		err     error
		done    time.Time
	}
	const slowN = 10
	res := make([]slowReq, slowN)
	var wrote, finished sync.WaitGroup
	for i := range slowN {
		wrote.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			once := sync.OnceFunc(wrote.Done)
			defer once()
			req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(url, "/")+"/slow?ms=3000", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { once() },
			}))
			cl := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := cl.Do(req)
			if err != nil {
				res[i] = slowReq{err: err, done: time.Now()}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res[i] = slowReq{backend: resp.Header.Get("X-Backend"), status: resp.StatusCode, done: time.Now()}
		}()
	}
	wrote.Wait() // every slow request is on its way: the deployment starts now
	began := time.Now()
	d := c.deployWait(0, "deploy", "shop", group, "--config", "OneAtATime")
	took := time.Since(began)
	finished.Wait()
	s := lg.stop()
	t.Logf("deploy v4 OneAtATime with %d requests of 3 s in flight: %s in %.1f s; load: %s\ntraffic changes:\n%s", slowN, d.State, took.Seconds(), s, trafficChanges(d))
	if s.Failed != 0 {
		t.Errorf("%d of %d requests failed:\n%s", s.Failed, s.Requests, s.failures())
	}

	web := machines(c.env(env), "web")
	lastDone := map[string]time.Time{} // machine name → its last slow request's end
	for i, r := range res {
		if r.err != nil || r.status != 200 {
			t.Errorf("slow request %d: status %d, error %v: want 200 (a request in flight must finish)", i, r.status, r.err)
			continue
		}
		m, ok := machineOf(web, r.backend)
		if !ok {
			t.Errorf("slow request %d: X-Backend %q is no web machine (%v)", i, r.backend, machineIPs(web))
			continue
		}
		if r.done.After(lastDone[m.Name]) {
			lastDone[m.Name] = r.done
		}
	}
	hosts := hostsByName(d)
	waited := 0
	for name, done := range lastDone {
		h, ok := hosts[name]
		if !ok {
			t.Errorf("the deployment has no host %s (hosts %v)", name, sortedKeys(hosts))
			continue
		}
		stop, okStop := event(h, "ApplicationStop")
		block, okBlock := event(h, "BlockTraffic")
		if !okStop || stop.StartedAt == nil || !okBlock || block.StartedAt == nil {
			t.Errorf("%s: no ApplicationStop or BlockTraffic with a start time: %v", name, eventStates(h))
			continue
		}
		t.Logf("%s: last slow request done %s, BlockTraffic %s → %s, ApplicationStop started %s", name, done.Format("15:04:05.000"),
			block.StartedAt.Format("15:04:05.000"), fmtTime(block.FinishedAt), stop.StartedAt.Format("15:04:05.000"))
		// 100 ms: the client's clock reading comes after haproxy relayed
		// the end of the answer; a drain that did not wait would start
		// ApplicationStop about 3 s earlier.
		if stop.StartedAt.Before(done.Add(-100 * time.Millisecond)) {
			t.Errorf("%s: ApplicationStop started at %s, before its request in flight ended at %s", name, stop.StartedAt.Format("15:04:05.000"), done.Format("15:04:05.000"))
		}
		if block.StartedAt.Before(done.Add(-time.Second)) {
			waited++ // BlockTraffic began while the request still had > 1 s to go
		}
	}
	if waited == 0 {
		t.Errorf("no machine's BlockTraffic began while its slow request was in flight (slow requests on %v): the drain was not tested", sortedKeys(lastDone))
	}
}

func fmtTime(p *time.Time) string {
	if p == nil {
		return "-"
	}
	return p.Format("15:04:05.000")
}

// badCanary: a revision that answers 500 to 20 % of GET / is deployed as a
// canary (10 % then 50 %, analysed every 5 s, at most 5 % errors). The
// first analysis fails it and it is rolled back at once. The requests that
// failed are the canary's 500s only, and fewer than the canary's weight ×
// the requests of one analysis interval (+ 1 s: the analysis reads the
// counters at the interval's end, and the rollback takes effect within a
// second of the verdict).
func badCanary(t *testing.T, c *cluster, env, url, group string) {
	c.waitIdle(group)
	good := c.group("shop", group).Revision
	bad := c.pushShop("v5", 0.2)
	const weight, interval = 10, 5
	lg := startLoad(t, url, loadClients, "-rate", loadRate)
	began := time.Now()
	r := c.gantryWithin(4*time.Minute, "deploy", "shop", group, "--strategy", "canary", "--canary-steps", "10:30s,50:30s",
		"--analysis-interval", fmt.Sprintf("%ds", interval), "--max-error-rate", "0.05", "--on-no-data", "wait", "--wait", "-o", "json")
	took := time.Since(began)
	s := lg.stop()
	t.Logf("bad canary: exit %d after %.1f s; load: %s\n%s", r.code, took.Seconds(), s, r.stderr)
	if r.code != 1 {
		t.Fatalf("a canary answering 500 to 20%% of requests: exit %d, want 1 (rolled back)\n%s", r.code, r.stdout)
	}
	var d api.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID == "" {
		t.Fatalf("deploy -o json: %v\n%s", err, r.stdout)
	}
	d = c.deployment(d.ID)
	t.Logf("deployment %s: %s (%s)\ntraffic changes:\n%s", d.ID, d.State, d.Error, trafficChanges(d))
	if d.State == api.DeploySucceeded || d.Traffic == nil || len(d.Traffic.Analyses) == 0 {
		t.Fatalf("bad canary: state %s, traffic %+v: want a failed deployment with its analyses", d.State, d.Traffic)
	}
	for i, a := range d.Traffic.Analyses {
		t.Logf("analysis %d: step %d weight %d%%: canary %d requests %d errors (%.3f), stable %d/%d: %s %s",
			i, a.Step, a.Weight, a.CanaryRequests, a.CanaryErrors, a.ErrorRate, a.StableRequests, a.StableErrors, a.Verdict, a.Reason)
	}
	if a := d.Traffic.Analyses[0]; a.Verdict != "fail" || a.Step != 0 || len(d.Traffic.Analyses) != 1 {
		t.Errorf("want exactly one analysis, the first, failing at step 0; got %d, the first %s at step %d", len(d.Traffic.Analyses), a.Verdict, a.Step)
	}
	for kind, n := range s.Status {
		if kind != "200" && kind != "500" {
			t.Errorf("%d answers %s during the canary: only the canary's own 500s may fail", n, kind)
		}
	}
	if len(s.Errors) != 0 {
		t.Errorf("connection errors during the canary: %v %v", s.Errors, s.ErrSample)
	}
	perInterval := s.maxInWindow(interval + 1)
	bound := perInterval * weight / 100
	t.Logf("bad canary: %d failed requests of %d; bound: weight %d%% × %d requests in %d s (one interval + 1 s) = %d", s.Failed, s.Requests, weight, perInterval, interval+1, bound)
	if s.Failed == 0 || s.Failed > bound {
		t.Errorf("failed requests %d: want > 0 (the canary got traffic) and <= %d", s.Failed, bound)
	}
	if got := c.group("shop", group).Revision; got != good || got == bad {
		t.Errorf("group revision after the rollback: %s, want %s", got, good)
	}
	// Rolled back: the url answers 200 from the stable version only.
	for i := range 40 {
		resp, err := lbClient.Get(url)
		if err != nil {
			t.Fatalf("after the rollback, GET #%d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.HasPrefix(string(body), "shop v5 ") {
			t.Fatalf("after the rollback, GET #%d: %s %q", i, resp.Status, body)
		}
	}
}
