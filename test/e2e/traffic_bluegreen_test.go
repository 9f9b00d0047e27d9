package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Blue/green against a real haproxy that gantry does not configure (a
// group's --lb HOST/BACKEND --lb-socket): two original hosts in the group,
// two replacement hosts (color=green) that haproxy.cfg lists `disabled`,
// and the tiny HTTP app of traffic_inplace_test.go started by the
// bundle's hooks. Under 8 clients of bench/loadgen (a second process) and
// a probe that records which host answered each of its requests:
//
//   - v2 goes blue/green in 50 % steps every 2 s and the originals are
//     kept; `gantry rollback` during the keep period moves every new
//     request back to the originals (measured, < 1 s);
//   - v3 goes blue/green all at once with a 3 s keep period that runs
//     out: the group becomes the replacement hosts.
//
// No request may fail in either run.

// probeAnswer is one request of the probe.
type probeAnswer struct {
	start, end time.Time
	backend    string
	body       string
	err        string
}

// probe sends GET / through the load balancer one request after the other
// (one keep-alive connection; haproxy picks a server for every request)
// and records every answer, so that the test can tell from when on only
// some hosts answer.
type probe struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	log  []probeAnswer
}

func startProbe(url string) *probe {
	p := &probe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			a := probeAnswer{start: time.Now()}
			resp, err := c.Get(url)
			if err != nil {
				a.err = err.Error()
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a.backend, a.body = resp.Header.Get("X-Backend"), strings.TrimSpace(string(b))
				if resp.StatusCode != http.StatusOK {
					a.err = fmt.Sprintf("status %d: %s", resp.StatusCode, a.body)
				}
			}
			a.end = time.Now()
			p.mu.Lock()
			p.log = append(p.log, a)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *probe) end() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// since returns the answers to the requests started at or after t.
func (p *probe) since(t time.Time) []probeAnswer {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.log, t, func(a probeAnswer, t time.Time) int { return a.start.Compare(t) })
	return slices.Clone(p.log[i:])
}

// failures lists the probe's failed requests.
func (p *probe) failures() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, a := range p.log {
		if a.err != "" {
			out = append(out, a.start.Format("15:04:05.000")+" "+a.err)
		}
	}
	return out
}

// switchedTo returns the start of the first request after which every
// answer (at least n of them) came from the hosts in to: the instant
// from which all new requests go there. ok is false while fewer than n
// requests make up that run.
func switchedTo(as []probeAnswer, to []string, n int) (time.Time, bool) {
	i := len(as)
	for i > 0 && as[i-1].err == "" && slices.Contains(to, as[i-1].backend) {
		i--
	}
	if len(as)-i < n {
		return time.Time{}, false
	}
	return as[i].start, true
}

// loadAfter waits for a loadgen summary written after t (requests in flight
// at t are 3 ms long: 200 ms later they are counted).
func loadAfter(t *testing.T, l *loadRun, at time.Time) loadSummary {
	t.Helper()
	var s loadSummary
	eventually(t, 10*time.Second, "a loadgen summary after "+at.Format("15:04:05.000"), func() (bool, string) {
		var err error
		s, err = l.snapshot()
		if err != nil {
			return false, err.Error()
		}
		return s.EndedAt.After(at.Add(200 * time.Millisecond)), s.EndedAt.Format("15:04:05.000")
	})
	return s
}

// backendDelta is how many answers each host gave between two summaries.
func backendDelta(a, b loadSummary, hosts []string) map[string]int64 {
	d := map[string]int64{}
	for _, h := range hosts {
		d[h] = b.Backends[h] - a.Backends[h]
	}
	return d
}

// lbStates is each server's state (and health) in `gantry lb show`.
func (c *cluster) lbStates(app, group string) (map[string]string, error) {
	v, err := c.groupLB(app, group)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, s := range v.Servers {
		m[s.Name] = s.State
	}
	return m, nil
}

// waitStates waits until the load balancer's servers are in the given
// states.
func (c *cluster) waitStates(app, group string, d time.Duration, want map[string]string) {
	c.t.Helper()
	eventually(c.t, d, fmt.Sprintf("load balancer states %v", want), func() (bool, string) {
		got, err := c.lbStates(app, group)
		if err != nil {
			return false, err.Error()
		}
		for k, v := range want {
			if got[k] != v {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
}

// lastAllowTraffic is when the last of the hosts' AllowTraffic ended.
func (c *cluster) lastAllowTraffic(id string, hosts []string) time.Time {
	c.t.Helper()
	var last time.Time
	for _, h := range hosts {
		ev, ok := event(c.deploymentHost(id, h), "AllowTraffic")
		if !ok || ev.State != "succeeded" || ev.FinishedAt == nil {
			c.t.Fatalf("%s's AllowTraffic in %s: %+v", h, id, ev)
		}
		if ev.FinishedAt.After(last) {
			last = *ev.FinishedAt
		}
	}
	return last
}

// keptAt is when the deployment's load balancer changes of the keep
// period (originals drained, replacements at full weight) were all made:
// the swap's end.
func keptAt(d api.Deployment) time.Time {
	var at time.Time
	for _, ch := range d.Traffic.Changes {
		if strings.Contains(ch.Detail, "all the traffic to the replacement") || strings.Contains(ch.Detail, "original kept") {
			at = ch.At
		}
	}
	return at
}

// raisedFirst checks that the replacements' weights were raised to take
// all the traffic before the originals' were cut to 0: a load balancer
// applies one server after the other, and the other order leaves every
// server at weight 0 for a moment (haproxy answers 503).
func raisedFirst(d api.Deployment, repl, orig []string) error {
	lastUp, firstCut := -1, -1
	for i, ch := range d.Traffic.Changes {
		if ch.Action != "weight" || !strings.Contains(ch.Detail, "all the traffic") {
			continue
		}
		switch {
		case slices.Contains(repl, ch.Server) && ch.Weight > 0:
			lastUp = i
		case slices.Contains(orig, ch.Server) && ch.Weight == 0 && firstCut < 0:
			firstCut = i
		}
	}
	if lastUp < 0 || firstCut < 0 || lastUp > firstCut {
		return fmt.Errorf("the replacements' weights were not all raised (change %d) before the originals' were cut to 0 (change %d):\n%s", lastUp, firstCut, trafficChanges(d))
	}
	return nil
}

func TestTrafficBlueGreen(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a server, 5 agents, haproxy with 4 servers, 4 app processes and bench/loadgen (8 clients) on loopback")
	}
	if _, err := os.Stat(haproxyBin); err != nil {
		t.Fatalf("this test needs haproxy at %s (Debian: apt-get install haproxy): %v", haproxyBin, err)
	}
	began := time.Now()
	c := newCluster(t, clusterOpts{})
	dir := filepath.Join(c.dir, "bg") // under the cluster's directory: its cleanup kills the apps
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appBin := buildTrafficApp(t, dir)
	blue, green := []string{"app-1", "app-2"}, []string{"app-3", "app-4"}
	ports := map[string]int{}
	for _, h := range append(slices.Clone(blue), green...) {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		ports[h], _ = strconv.Atoi(p)
	}
	lbAddr := freeAddr(t)
	url := "http://" + lbAddr + "/"
	hp := startHaproxy(t, dir, lbAddr, ports, green...)

	c.deployAgentsOnline(map[string]string{"lbhost": "role=lb", "app-1": "role=web", "app-2": "role=web",
		"app-3": "color=green", "app-4": "color=green"})
	c.gantry("app", "create", "shop").ok(t)
	c.createGroup("shop", "web", "--selector", "role=web", "--lb", "lbhost/web", "--lb-socket", hp.socket,
		"--lb-state-file", hp.state, "--drain-timeout", "10s")

	// v1 in place on the originals; the replacements wait in maint.
	c.push("shop", trafficBundle(dir, appBin, "v1", ports))
	d1 := c.deployWait(0, "deploy", "shop", "web")
	if d1.State != api.DeploySucceeded {
		t.Fatalf("v1 deployment %s: %s\n%s", d1.ID, d1.Error, trafficChanges(d1))
	}
	c.waitServing("shop", "web", blue...)
	c.waitStates("shop", "web", 5*time.Second, map[string]string{"app-3": api.LBMaint, "app-4": api.LBMaint})

	load := startLoad(t, url, 8)
	pr := startProbe(url)
	defer pr.end()

	// Run 1: v2 in two 50 % steps, originals kept for 1 min, rolled back
	// during the keep period.
	c.push("shop", trafficBundle(dir, appBin, "v2", ports))
	id := c.deployNoWait("deploy", "shop", "web", "--strategy", "blue-green", "--replacement-selector", "color=green",
		"--shift-step", "50", "--shift-interval", "2s", "--keep-original", "1m")
	var half time.Time
	eventually(t, 60*time.Second, "deployment "+id+" at 50 %", func() (bool, string) {
		d := c.deployment(id)
		if api.DeployDone(d.State) {
			t.Fatalf("blue/green deployment %s ended %s before its traffic moved: %s\n%s", id, d.State, d.Error, trafficChanges(d))
		}
		if d.Traffic != nil && d.Traffic.Weight >= 50 && d.Traffic.Phase != "deploying" {
			half = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("%s %+v", d.State, d.Traffic)
	})
	// Halfway, both fleets answer.
	eventually(t, 10*time.Second, "answers from both fleets at 50 %", func() (bool, string) {
		by := map[string]int{}
		for _, a := range pr.since(half) {
			by[a.backend]++
		}
		return by["app-1"] > 0 && by["app-3"] > 0, fmt.Sprint(by)
	})
	c.waitStates("shop", "web", 20*time.Second, map[string]string{"app-1": api.LBDrain, "app-2": api.LBDrain,
		"app-3": api.LBReady, "app-4": api.LBReady})
	kept := c.deployment(id)
	if kept.State != api.DeployRunning || kept.Traffic == nil || kept.Traffic.Phase != "kept" {
		t.Fatalf("after the shift: %s %+v", kept.State, kept.Traffic)
	}
	if got := strings.Join(kept.Traffic.Replacement, ","); got != "app-3,app-4" {
		t.Errorf("replacement hosts %q, want app-3,app-4", got)
	}
	if got := strings.Join(kept.Traffic.Original, ","); got != "app-1,app-2" {
		t.Errorf("original hosts %q, want app-1,app-2", got)
	}
	if err := raisedFirst(kept, green, blue); err != nil {
		t.Errorf("run 1: %v", err)
	}
	allowed := c.lastAllowTraffic(id, green)
	swapped := keptAt(kept)
	swap := swapped.Sub(allowed)
	t.Logf("run 1: swap complete %s after the replacement fleet was healthy (last AllowTraffic %s, keep changes made %s; steps 50%% every 2s)",
		swap.Round(time.Millisecond), allowed.Local().Format("15:04:05.000"), swapped.Local().Format("15:04:05.000"))
	if swap <= 0 || swap > 5*time.Second {
		t.Errorf("swap took %s after the replacement fleet was healthy, want (0, 5s] with 2 steps of 2s", swap)
	}
	// During the keep period only the replacements answer, and they
	// answer v2.
	keepFrom := time.Now()
	s1 := loadAfter(t, load, keepFrom)
	eventually(t, 10*time.Second, "1 s of load during the keep period", func() (bool, string) {
		s, err := load.snapshot()
		if err != nil {
			return false, err.Error()
		}
		return s.EndedAt.Sub(s1.EndedAt) >= time.Second && s.Requests-s1.Requests >= 200, fmt.Sprint(s.Requests - s1.Requests)
	})
	s2, _ := load.snapshot()
	delta := backendDelta(s1, s2, append(slices.Clone(blue), green...))
	t.Logf("run 1, keep period: answers by host over %.1f s: %v", s2.EndedAt.Sub(s1.EndedAt).Seconds(), delta)
	if delta["app-1"] != 0 || delta["app-2"] != 0 || delta["app-3"] == 0 || delta["app-4"] == 0 {
		t.Errorf("during the keep period the originals answered (or a replacement did not): %v", delta)
	}
	for _, a := range pr.since(keepFrom) {
		if a.err == "" && a.body != a.backend+" v2" {
			t.Errorf("during the keep period %s answered %q, want %q", a.backend, a.body, a.backend+" v2")
			break
		}
	}

	// gantry rollback during the keep period: every new request goes to
	// the originals within a second.
	asked := time.Now()
	rb := c.gantry("rollback", "shop", "web")
	rb.ok(t)
	cliTook := time.Since(asked)
	if got := strings.TrimSpace(rb.stdout); got != id {
		t.Errorf("gantry rollback printed %q, want the blue/green deployment %s", got, id)
	}
	if !strings.Contains(rb.stderr, "the traffic goes back to the original hosts (nothing is redeployed)") {
		t.Errorf("gantry rollback during keep says: %q, want that the traffic goes back to the original hosts", rb.stderr)
	}
	var back time.Time
	eventually(t, 10*time.Second, "the probe's requests all answered by the originals", func() (bool, string) {
		as := pr.since(asked)
		var ok bool
		back, ok = switchedTo(as, blue, 100)
		return ok, fmt.Sprintf("%d requests since the rollback", len(as))
	})
	rollback := back.Sub(asked)
	var fromRepl int
	for _, a := range pr.since(asked) {
		if slices.Contains(green, a.backend) {
			fromRepl++
		}
	}
	t.Logf("run 1: rollback during keep: every new request answered by the originals %s after `gantry rollback` began (the CLI took %s; %d probe requests answered by the replacements meanwhile)",
		rollback.Round(time.Millisecond), cliTook.Round(time.Millisecond), fromRepl)
	if rollback >= time.Second {
		t.Errorf("rollback took %s, want < 1s", rollback)
	}
	d2 := c.waitDeployment(id, 20*time.Second)
	t.Logf("run 1: deployment %s %s: %s\n%s", id, d2.State, d2.Error, trafficChanges(d2))
	if d2.State != api.DeployFailed || d2.Traffic == nil || d2.Traffic.Phase != "aborted" || d2.RolledBackBy != "" ||
		!strings.Contains(d2.Error, "original hosts") {
		t.Errorf("after the rollback: %s phase %+v rolled back by %q: %s", d2.State, d2.Traffic, d2.RolledBackBy, d2.Error)
	}
	c.waitStates("shop", "web", 5*time.Second, map[string]string{"app-1": api.LBReady, "app-2": api.LBReady,
		"app-3": api.LBMaint, "app-4": api.LBMaint})
	// The loadgen clients too get only the originals' answers now, v1.
	s3 := loadAfter(t, load, back)
	eventually(t, 10*time.Second, "1 s of load after the rollback", func() (bool, string) {
		s, err := load.snapshot()
		if err != nil {
			return false, err.Error()
		}
		return s.EndedAt.Sub(s3.EndedAt) >= time.Second && s.Requests-s3.Requests >= 200, fmt.Sprint(s.Requests - s3.Requests)
	})
	s4, _ := load.snapshot()
	delta = backendDelta(s3, s4, append(slices.Clone(blue), green...))
	t.Logf("run 1, after the rollback: answers by host over %.1f s: %v", s4.EndedAt.Sub(s3.EndedAt).Seconds(), delta)
	if delta["app-3"] != 0 || delta["app-4"] != 0 || delta["app-1"] == 0 || delta["app-2"] == 0 {
		t.Errorf("after the rollback the replacements answered (or an original did not): %v", delta)
	}
	for _, a := range pr.since(back) {
		if a.err == "" && a.body != a.backend+" v1" {
			t.Errorf("after the rollback %s answered %q, want %q", a.backend, a.body, a.backend+" v1")
			break
		}
	}
	// Nothing was redeployed: the originals ran no hook of v2, the group
	// keeps its hosts and revision.
	for _, h := range blue {
		for _, l := range readLines(t, filepath.Join(dir, "trace-"+h)) {
			if strings.HasSuffix(l, " v2") {
				t.Errorf("original %s ran %q", h, l)
			}
		}
	}
	if g := c.group("shop", "web"); g.Selector != "role=web" || g.Revision != d1.Revision {
		t.Errorf("group after the rollback: selector %q revision %q, want role=web %s", g.Selector, g.Revision, d1.Revision)
	}

	// Run 2: v3 all at once, kept 3 s, then the replacements are the group.
	c.waitIdle("web")
	c.push("shop", trafficBundle(dir, appBin, "v3", ports))
	d3 := c.deployWait(0, "deploy", "shop", "web", "--strategy", "blue-green", "--replacement-selector", "color=green",
		"--keep-original", "3s")
	t.Logf("run 2: deployment %s %s\n%s", d3.ID, d3.State, trafficChanges(d3))
	if d3.State != api.DeploySucceeded || d3.Traffic == nil || d3.Traffic.Phase != "done" {
		t.Fatalf("run 2: %s phase %+v: %s", d3.State, d3.Traffic, d3.Error)
	}
	swap = keptAt(d3).Sub(c.lastAllowTraffic(d3.ID, green))
	t.Logf("run 2: swap complete %s after the replacement fleet was healthy (all at once)", swap.Round(time.Millisecond))
	if swap <= 0 || swap > 5*time.Second {
		t.Errorf("run 2: swap took %s after the replacement fleet was healthy, want (0, 5s]", swap)
	}
	if d3.FinishedAt == nil || d3.FinishedAt.Sub(keptAt(d3)) < 3*time.Second {
		t.Errorf("run 2 ended at %v, less than the 3 s keep period after the swap (%v)", d3.FinishedAt, keptAt(d3))
	}
	if err := raisedFirst(d3, green, blue); err != nil {
		t.Errorf("run 2: %v", err)
	}
	for _, h := range green {
		var names []string
		for _, ev := range c.deploymentHost(d3.ID, h).Events {
			names = append(names, ev.Name)
		}
		want := []string{"ValidateService", "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic", "End"}
		if len(names) < len(want) || !slices.Equal(names[len(names)-len(want):], want) {
			t.Errorf("replacement %s's events %q, want them to end with %q", h, names, want)
		}
		trace := readLines(t, filepath.Join(dir, "trace-"+h))
		if !slices.Contains(trace, "BeforeAllowTraffic v3") || !slices.Contains(trace, "AfterAllowTraffic v3") {
			t.Errorf("replacement %s's traffic hooks of v3 did not run: %q", h, trace)
		}
	}
	// The originals ran their block-traffic events (CodeDeploy's
	// blue/green order: after the replacements were let in), with the
	// hooks of the revision they have: v1, in run 1 and again in run 2.
	var lastAllow time.Time
	for _, h := range green {
		for _, ev := range c.deploymentHost(d3.ID, h).Events {
			if ev.Name == "AfterAllowTraffic" && ev.FinishedAt != nil && ev.FinishedAt.After(lastAllow) {
				lastAllow = *ev.FinishedAt
			}
		}
	}
	if len(d3.Traffic.OriginalHosts) != len(blue) {
		t.Errorf("run 2: original host steps %+v, want one for each of %v", d3.Traffic.OriginalHosts, blue)
	}
	for _, oh := range d3.Traffic.OriginalHosts {
		var names []string
		var before *time.Time
		for _, ev := range oh.Events {
			names = append(names, ev.Name)
			if ev.Name == "BeforeBlockTraffic" {
				before = ev.StartedAt
			}
		}
		want := []string{"Start", "BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic", "End"}
		if oh.State != api.HostDeploySucceeded || !slices.Equal(names, want) {
			t.Errorf("run 2: original %s: %s, events %q (%s), want succeeded, %q", oh.HostName, oh.State, names, oh.Error, want)
		}
		if before == nil || before.Before(lastAllow) {
			t.Errorf("run 2: original %s began BeforeBlockTraffic at %v, before the replacements' last AfterAllowTraffic ended (%v)", oh.HostName, before, lastAllow)
		}
		trace := readLines(t, filepath.Join(dir, "trace-"+oh.HostName))
		for _, hook := range []string{"BeforeBlockTraffic v1", "AfterBlockTraffic v1"} {
			if n := countOf(trace, hook); n != 2 {
				t.Errorf("original %s ran %q %d times, want 2 (runs 1 and 2): %q", oh.HostName, hook, n, trace)
			}
		}
	}
	if g := c.group("shop", "web"); g.Selector != "color=green" || g.Revision != d3.Revision {
		t.Errorf("group after run 2: selector %q revision %q, want color=green %s", g.Selector, g.Revision, d3.Revision)
	}
	c.waitStates("shop", "web", 5*time.Second, map[string]string{"app-1": api.LBMaint, "app-2": api.LBMaint,
		"app-3": api.LBReady, "app-4": api.LBReady})
	done := time.Now()
	eventually(t, 10*time.Second, "answers after run 2", func() (bool, string) {
		n := len(pr.since(done))
		return n >= 50, fmt.Sprint(n)
	})
	for _, a := range pr.since(done) {
		if a.err == "" && (!slices.Contains(green, a.backend) || a.body != a.backend+" v3") {
			t.Errorf("after run 2 %s answered %q, want a replacement host's v3", a.backend, a.body)
			break
		}
	}

	sum := load.stop()
	pr.end()
	pf := pr.failures()
	t.Logf("load: %s; by host %v; probe: %d requests, %d failed", sum, sum.Backends, len(pr.since(time.Time{})), len(pf))
	if sum.Failed != 0 {
		t.Errorf("%d of %d loadgen requests failed:\n%shaproxy:\n%s", sum.Failed, sum.Requests, sum.failures(), hp.out)
	}
	if len(pf) != 0 {
		t.Errorf("%d probe requests failed: %q", len(pf), pf[:min(5, len(pf))])
	}
	t.Logf("TestTrafficBlueGreen took %s", time.Since(began).Round(100*time.Millisecond))
}

// countOf counts the lines equal to s.
func countOf(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}
