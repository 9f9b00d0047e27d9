package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// envBlueGreen: blue/green deployments of an environment's group
// (examples/shop's web, 2 machines behind haproxy), under load. The
// environment makes the replacement fleet itself.
//
// First, linear steps (50 % every 3 s) and a rollback during the keep
// period: the traffic goes back to the original machines in under a
// second, the replacement machines are removed, the group keeps its
// machines (same names) and the url serves the old version. Then one that
// succeeds with keep_original 0, the server killed (kill -9) while the
// replacement machines are set up: the original machines are removed and
// the group is the replacement machines. Then the same from the
// definition's deploy block. All with 0 failed requests.
//
// root is the test's cluster (not a subtest's copy): the server restarted
// by a subtest must outlive it.
func envBlueGreen(t *testing.T, root *cluster, env, url, group string) {
	c := root.withT(t)
	webNames := func() []string {
		var out []string
		for _, m := range machines(c.env(env), "web") {
			out = append(out, m.Name)
		}
		slices.Sort(out)
		return out
	}
	webIPs := func() []string { return machineIPs(machines(c.env(env), "web")) }

	t.Run("LinearThenRollback", func(t *testing.T) {
		c := c.withT(t)
		c.waitIdle(group)
		old := c.group("shop", group).Revision
		oldVersion := versionServed(t, url)
		originals := webNames()
		c.pushShop("v8", 0)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		r := c.gantry("deploy", "shop", group, "--strategy", "blue-green", "--shift-step", "50", "--shift-interval", "3s", "--keep-original", "5m", "-o", "json")
		r.ok(t)
		var d api.Deployment
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID == "" {
			t.Fatalf("deploy -o json: %v\n%s", err, r.stdout)
		}
		if d.Traffic == nil || d.Traffic.Phase != "provisioning" || !d.Traffic.ManagedFleet || !slices.Equal(d.Traffic.Original, originals) {
			t.Fatalf("a blue/green deployment of an environment group starts provisioning with the group's machines as originals %v: %+v", originals, d.Traffic)
		}
		// Every phase in order, polled: provisioning, deploying, shifting, kept.
		var seen []string
		eventually(t, 4*time.Minute, "the blue/green deployment keeps the originals", func() (bool, string) {
			d = c.deployment(d.ID)
			if d.Traffic != nil && (len(seen) == 0 || seen[len(seen)-1] != d.Traffic.Phase) {
				seen = append(seen, d.Traffic.Phase)
			}
			return d.Traffic != nil && d.Traffic.Phase == "kept" || api.DeployDone(d.State), fmt.Sprintf("state %s, phases %v, status %q", d.State, seen, d.Traffic.Status)
		})
		kept := time.Since(began)
		if d.State != api.DeployRunning {
			t.Fatalf("deployment %s ended %s before its keep period: %s\n%s", d.ID, d.State, d.Error, trafficChanges(d))
		}
		repl := d.Traffic.Replacement
		if len(repl) != 2 || slices.ContainsFunc(repl, func(n string) bool { return slices.Contains(originals, n) }) {
			t.Fatalf("replacement machines %v: want 2 new machines besides the originals %v", repl, originals)
		}
		if got := webNames(); len(got) != 4 {
			t.Errorf("web machines during the keep period: %v, want the 2 originals and the 2 replacements", got)
		}
		// env show says which fleet each machine is in.
		for _, m := range machines(c.env(env), "web") {
			want := "original"
			if slices.Contains(repl, m.Name) {
				want = "replacement"
			}
			if m.Fleet != want || m.FleetDeployment != d.ID {
				t.Errorf("env show during the keep period: %s is %q of %q, want %q of %s", m.Name, m.Fleet, m.FleetDeployment, want, d.ID)
			}
		}
		// The traffic moved in two steps of 50 %: a change at 50 % before the one at 100 %.
		if !strings.Contains(trafficChanges(d), "50% to the replacement hosts") {
			t.Errorf("no 50%% step recorded:\n%s", trafficChanges(d))
		}
		servesOnly(t, url, "v8", 20)
		// The environment cannot be scaled meanwhile: it says by what.
		if r := c.gantry("scale", "--env", env, "web=3"); r.code == 0 || !strings.Contains(r.stderr, "blue/green deployment") || !strings.Contains(r.stderr, d.ID) {
			t.Errorf("gantry scale during a blue/green deployment: exit %d\n%s\nwant refused, naming deployment %s", r.code, r.stderr, d.ID)
		}

		began = time.Now()
		rb := c.gantry("rollback", "shop", group, "-o", "json")
		rb.ok(t)
		waitServes(t, url, oldVersion)
		back := time.Since(began)
		d = c.deployWait(1, "deployments", "show", d.ID)
		s := lg.stop()
		t.Logf("blue/green v8 (50%% every 3s): kept after %.1f s (phases %v); rollback: the url served %s again %.0f ms after the command; deployment %s: %s\nload: %s\ntraffic changes:\n%s",
			kept.Seconds(), seen, oldVersion, float64(back.Microseconds())/1000, d.ID, d.Error, s, trafficChanges(d))
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed during the blue/green deployment and its rollback:\n%s", s.Failed, s.Requests, s.failures())
		}
		if !slices.Contains(seen, "provisioning") || !slices.Contains(seen, "shifting") {
			t.Errorf("phases seen %v: want provisioning, deploying, shifting, kept", seen)
		}
		if d.State != api.DeployFailed || !strings.Contains(d.Error, "rolled back") {
			t.Errorf("deployment after the rollback: %s %q, want failed, rolled back", d.State, d.Error)
		}
		if ms := backMillis(d); ms < 0 || ms >= 1000 {
			t.Errorf("the traffic went back to the originals in %d ms (recorded), want < 1000", ms)
		}
		if got := webNames(); !slices.Equal(got, originals) {
			t.Errorf("web machines after the rollback: %v, want the originals %v (the replacement machines removed)", got, originals)
		}
		if got := c.group("shop", group).Revision; got != old {
			t.Errorf("group revision after the rollback: %s, want still %s", got, old)
		}
		waitBackends(t, 60*time.Second, url, "the url serves the 2 original web machines", webIPs)
		servesOnly(t, url, oldVersion, 20)
	})

	// All at once, nothing kept, and the server killed (kill -9) while
	// the replacement machines are being set up: the restarted server
	// goes on from what it stored, the load balancer serves throughout,
	// and the group ends as the replacement machines.
	t.Run("AllAtOnceServerKilled", func(t *testing.T) {
		c := c.withT(t)
		c.waitIdle(group)
		originals := webNames()
		rev := c.pushShop("v9", 0)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		r := c.gantry("deploy", "shop", group, "--strategy", "blue-green", "--keep-original", "0s", "-o", "json")
		r.ok(t)
		var d api.Deployment
		if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ID == "" {
			t.Fatalf("deploy -o json: %v\n%s", err, r.stdout)
		}
		var status string
		eventually(t, 2*time.Minute, "the replacement machines are being set up", func() (bool, string) {
			d = c.deployment(d.ID)
			if d.Traffic != nil {
				status = d.Traffic.Status
			}
			return d.Traffic != nil && d.Traffic.Phase == "provisioning" && strings.HasPrefix(status, "waiting for"),
				fmt.Sprintf("state %s, status %q", d.State, status)
		})
		root.server.kill()
		root.startServer()
		d = c.deployWait(0, "deployments", "show", d.ID)
		took := time.Since(began)
		s := lg.stop()
		t.Logf("blue/green v9 all at once, keep 0, server killed at %q: %s in %.1f s; swap %s; load: %s\ntraffic changes:\n%s", status, d.State, took.Seconds(), swapTime(d), s, trafficChanges(d))
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed during the blue/green deployment:\n%s", s.Failed, s.Requests, s.failures())
		}
		for _, oh := range d.Traffic.OriginalHosts {
			if oh.State != api.HostDeploySucceeded || !slices.ContainsFunc(oh.Events, func(ev api.LifecycleEvent) bool { return ev.Name == "BlockTraffic" && ev.State == "succeeded" }) {
				t.Errorf("original %s: %s %q, events %+v: want its block-traffic events succeeded", oh.HostName, oh.State, oh.Error, oh.Events)
			}
		}
		if len(d.Traffic.OriginalHosts) != len(originals) {
			t.Errorf("original host steps %+v, want one for each of %v", d.Traffic.OriginalHosts, originals)
		}
		got := webNames()
		if len(got) != 2 || slices.ContainsFunc(got, func(n string) bool { return slices.Contains(originals, n) }) || !slices.Equal(got, d.Traffic.Replacement) {
			t.Errorf("web machines after the blue/green deployment: %v, want its 2 replacement machines %v (originals %v removed)", got, d.Traffic.Replacement, originals)
		}
		if g := c.group("shop", group).Revision; g != rev {
			t.Errorf("group revision: %s, want %s", g, rev)
		}
		waitBackends(t, 60*time.Second, url, "the url serves the 2 replacement web machines", webIPs)
		servesOnly(t, url, "v9", 20)
	})

	// The deploy block's strategy = "blue_green": an apply that changes
	// the group's revision makes the environment deploy it blue/green (all
	// at once, originals removed at once with keep_original = "0s").
	t.Run("FromDefinition", func(t *testing.T) {
		c := c.withT(t)
		c.waitIdle(group)
		originals := webNames()
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(shopDir(t))); err != nil {
			t.Fatal(err)
		}
		mainHCL := filepath.Join(dir, "main.hcl")
		b, err := os.ReadFile(mainHCL)
		if err != nil {
			t.Fatal(err)
		}
		const cfg = `config = "HalfAtATime"`
		bg := strings.Replace(string(b), cfg, cfg+"\n    strategy = \"blue_green\"\n    blue_green {\n      keep_original = \"0s\"\n    }", 1)
		if bg == string(b) {
			t.Fatalf("examples/shop/main.hcl has no %s to add a strategy after", cfg)
		}
		if err := os.WriteFile(mainHCL, []byte(bg), 0o644); err != nil {
			t.Fatal(err)
		}
		rev := c.pushShop("v10", 0)
		lg := startLoad(t, url, loadClients, "-rate", loadRate)
		began := time.Now()
		c.gantryWithin(4*time.Minute, "apply", dir, "--env", env, "--var", "web_count=2", "--auto-approve").ok(t)
		var d api.Deployment
		eventually(t, 4*time.Minute, "the environment's deployment of "+rev+" ends", func() (bool, string) {
			for _, x := range c.deploymentsOf("shop") {
				if x.Group == group && x.Revision == rev {
					d = x
					return api.DeployDone(d.State), "state " + d.State
				}
			}
			return false, "no deployment of " + rev + " yet"
		})
		took := time.Since(began)
		d = c.deployment(d.ID)
		s := lg.stop()
		t.Logf("apply with strategy = \"blue_green\": deployment %s (%s) %s in %.1f s after the apply began; load: %s\ntraffic changes:\n%s", d.ID, d.Description, d.State, took.Seconds(), s, trafficChanges(d))
		if d.State != api.DeploySucceeded || d.Strategy != api.StrategyBlueGreen || d.Traffic == nil || !d.Traffic.ManagedFleet || !strings.HasPrefix(d.Description, "environment ") {
			t.Fatalf("the environment's deployment of %s: %s, strategy %s, description %q, error %q: want a succeeded blue/green deployment the environment made", rev, d.State, d.Strategy, d.Description, d.Error)
		}
		if s.Failed != 0 {
			t.Errorf("%d of %d requests failed during the environment's blue/green deployment:\n%s", s.Failed, s.Requests, s.failures())
		}
		eventually(t, time.Minute, "the group is the replacement machines", func() (bool, string) {
			got := webNames()
			return slices.Equal(got, d.Traffic.Replacement) && !slices.ContainsFunc(got, func(n string) bool { return slices.Contains(originals, n) }),
				fmt.Sprintf("web machines %v, replacements %v, originals %v", got, d.Traffic.Replacement, originals)
		})
		servesOnly(t, url, "v10", 20)
	})
}

// versionServed is the version the url answers ("v7" of "shop v7 …").
func versionServed(t *testing.T, url string) string {
	t.Helper()
	resp, err := lbClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var app, version string
	if _, err := fmt.Fscan(resp.Body, &app, &version); err != nil || app != "shop" {
		t.Fatalf("GET %s: %v %q", url, err, app)
	}
	return version
}

// waitServes polls the url until it serves only version (5 in a row).
func waitServes(t *testing.T, url, version string) {
	t.Helper()
	eventually(t, 10*time.Second, "the url serves "+version, func() (bool, string) {
		for range 5 {
			resp, err := lbClient.Get(url)
			if err != nil {
				return false, err.Error()
			}
			var app, v string
			_, _ = fmt.Fscan(resp.Body, &app, &v)
			resp.Body.Close()
			if v != version {
				return false, "served " + v
			}
		}
		return true, ""
	})
}

// backMillis is how long a blue/green rollback took to move the traffic
// back, from its deployment's error ("… in 41ms"); -1 if not found.
func backMillis(d api.Deployment) int64 {
	i := strings.Index(d.Error, " in ")
	if i < 0 {
		return -1
	}
	rest := d.Error[i+4:]
	if j := strings.IndexAny(rest, ";, "); j >= 0 {
		rest = rest[:j]
	}
	dur, err := time.ParseDuration(rest)
	if err != nil {
		return -1
	}
	return dur.Milliseconds()
}

// swapTime is the time from the first traffic change that gave the
// replacement hosts traffic to the last one of the move.
func swapTime(d api.Deployment) string {
	if d.Traffic == nil {
		return "-"
	}
	var first, last time.Time
	for _, c := range d.Traffic.Changes {
		if strings.Contains(c.Detail, "to the replacement hosts") {
			if first.IsZero() {
				first = c.At
			}
			last = c.At
		}
	}
	if first.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(last.Sub(first).Microseconds())/1000)
}
