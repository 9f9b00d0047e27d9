package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// envLine is what every hook of TestDeployEventOrder records about its
// environment.
const envLine = `echo "$LIFECYCLE_EVENT|$DEPLOYMENT_ID|$APPLICATION_NAME|$DEPLOYMENT_GROUP_NAME|$DEPLOYMENT_GROUP_ID|$GANTRY_REVISION|$GANTRY_HOST_NAME|$GANTRY_HOST_ID" >> '%s'/"$GANTRY_HOST_NAME"`

// Two deployments to two hosts: the hooks run in CodeDeploy's order, the
// second deployment's ApplicationStop runs the previous revision's script,
// the files of the new revision replace the old ones (a file the new one
// lacks is removed), and hooks get the deployment's identity in their
// environment.
func TestDeployEventOrder(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"web-1": "role=web", "web-2": "role=web", "db-1": "role=db"})
	c.gantry("app", "create", "shop").ok(t)
	g := c.createGroup("shop", "web", "--selector", "role=web")
	traces, envs := t.TempDir(), t.TempDir()
	revision := func(tag string, content map[string]string) string {
		extra := map[string]string{}
		for _, ev := range hookEvents {
			extra[ev] = fmt.Sprintf(envLine, envs)
		}
		return c.push("shop", bundle("/srv/shop", content, tracedHooks(traces, tag, extra)...))
	}
	v1 := revision("v1", map[string]string{"version.txt": "v1\n", "only-v1.txt": "old\n", "sub/page.html": "page v1\n"})
	v2 := revision("v2", map[string]string{"version.txt": "v2\n", "sub/page.html": "page v2\n"})

	d1 := c.deployWait(0, "deploy", "shop", "web", "--revision", v1)
	d2 := c.deployWait(0, "deploy", "shop", "web", "--revision", v2)

	hosts := []string{"web-1", "web-2"}
	for _, d := range []api.Deployment{d1, d2} {
		if d.State != api.DeploySucceeded || d.Kind != "deploy" || d.GroupID != g.ID || len(d.Hosts) != 2 {
			t.Fatalf("deployment %s: state %s kind %s group %s, %d hosts: %+v", d.ID, d.State, d.Kind, d.GroupID, len(d.Hosts), d)
		}
	}
	if d1.Revision != v1 || d2.Revision != v2 {
		t.Errorf("revisions: %s %s, want %s %s", d1.Revision, d2.Revision, v1, v2)
	}
	if got := c.group("shop", "web").Revision; got != v2 {
		t.Errorf("group revision %q, want %s", got, v2)
	}

	// What each host's hooks did, in order: ApplicationStop of the second
	// deployment is v1's script (it stops what v1 started).
	wantTrace := []string{
		"BeforeInstall v1", "AfterInstall v1", "ApplicationStart v1", "ValidateService v1",
		"ApplicationStop v1", "BeforeInstall v2", "AfterInstall v2", "ApplicationStart v2", "ValidateService v2",
	}
	for _, h := range hosts {
		if got := readLines(t, filepath.Join(traces, h)); !slices.Equal(got, wantTrace) {
			t.Errorf("%s: hooks ran\n  %q\nwant\n  %q", h, got, wantTrace)
		}
	}
	if got := readLines(t, filepath.Join(traces, "db-1")); got != nil {
		t.Errorf("db-1 is not in the group but ran hooks: %q", got)
	}

	// The events as the server recorded them, per host, in CodeDeploy's
	// order from Start to End.
	all := []string{"Start", "ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService", "End"}
	for i, d := range []api.Deployment{d1, d2} {
		for _, h := range hosts {
			dh := hostsByName(d)[h]
			var want []string
			for _, ev := range all {
				st := "succeeded"
				if i == 0 && ev == "ApplicationStop" {
					st = "skipped" // the host's first deployment: no previous revision
				}
				want = append(want, ev+" "+st)
			}
			if got := eventStates(dh); !slices.Equal(got, want) {
				t.Errorf("%s on %s: events\n  %q\nwant\n  %q", d.ID, h, got, want)
			}
			if dh.State != api.HostDeploySucceeded || dh.Batch == 0 || dh.StartedAt == nil || dh.FinishedAt == nil {
				t.Errorf("%s on %s: %+v", d.ID, h, dh)
			}
			// Events are in time order.
			var last time.Time
			for _, e := range dh.Events {
				if e.State == "skipped" {
					continue
				}
				if e.StartedAt == nil || e.FinishedAt == nil || e.StartedAt.Before(last) || e.FinishedAt.Before(*e.StartedAt) {
					t.Errorf("%s on %s: event %s times out of order: %+v", d.ID, h, e.Name, e)
					continue
				}
				last = *e.FinishedAt
			}
			wantPrev := ""
			if i == 1 {
				wantPrev = v1
			}
			if dh.PreviousRevision != wantPrev {
				t.Errorf("%s on %s: previous revision %q, want %q", d.ID, h, dh.PreviousRevision, wantPrev)
			}
		}
	}
	// OneAtATime (the default) with 2 hosts: one per batch.
	if b := batches(d2); !(b["web-1"] == 1 && b["web-2"] == 2) || d2.Config != "OneAtATime" || d2.MinHealthy != 1 {
		t.Errorf("second deployment: config %s min %d batches %v, want OneAtATime, 1, web-1:1 web-2:2", d2.Config, d2.MinHealthy, b)
	}

	// The hooks' environment.
	for _, h := range hosts {
		id := hostsByName(d1)[h].HostID
		var want []string
		for i, d := range []api.Deployment{d1, d2} {
			for _, ev := range hookEvents {
				if i == 0 && ev == "ApplicationStop" {
					continue
				}
				want = append(want, strings.Join([]string{ev, d.ID, "shop", "web", g.ID, d.Revision, h, id}, "|"))
			}
		}
		if got := readLines(t, filepath.Join(envs, h)); !slices.Equal(got, want) {
			t.Errorf("%s: hook environment\n  %q\nwant\n  %q", h, got, want)
		}
	}

	// The files: v2's content; v1's file that v2 lacks is gone.
	for _, h := range hosts {
		if got, _ := c.installedFile(h, "/srv/shop/version.txt"); got != "v2\n" {
			t.Errorf("%s: version.txt = %q, want v2", h, got)
		}
		if got, _ := c.installedFile(h, "/srv/shop/sub/page.html"); got != "page v2\n" {
			t.Errorf("%s: sub/page.html = %q, want page v2", h, got)
		}
		if got, ok := c.installedFile(h, "/srv/shop/only-v1.txt"); ok {
			t.Errorf("%s: only-v1.txt, installed by v1 but not in v2, is still there: %q", h, got)
		}
	}
	if _, ok := c.installedFile("db-1", "/srv/shop/version.txt"); ok {
		t.Errorf("db-1 is not in the group but got the files")
	}
}

// The deployment configurations with one failing host, on 6 hosts h1..h6
// (all healthy after v1, so they are deployed in name order). Expected
// outcomes, worked out by hand from CodeDeploy's rules (minimum healthy
// hosts; a batch is as large as possible without the healthy count falling
// below the minimum; a deployment that cannot start a pending host fails;
// success needs one host succeeded and healthy >= minimum):
//
//	config       min  fails  batches h1..h6     state      rollback     final content h1..h6
//	OneAtATime   5    h2     1 2 - - - -        failed     v1 to h1,h2  v1 v1 v1 v1 v1 v1
//	             after h2 fails healthy = 5 (h1, h3..h6): starting h3 would make 4 < 5, so h3..h6 are skipped.
//	             The rollback (OneAtATime, 2 hosts, min 1) deploys the unhealthy h2 first: h2 batch 1, h1 batch 2.
//	OneAtATimeLast 5  h6     1 2 3 4 5 6        succeeded  -            v2 everywhere
//	             CodeDeploy's quirk: only the last host failed, healthy = 5 >= 5.
//	HalfAtATime  3    h2     1 1 1 2 2 3        succeeded  -            v2 everywhere
//	             batch 1 costs 3 (6-3); h2 fails so healthy = 5: budget 2 -> h4,h5; then 5 again -> h6.
//	HalfAtATime  3    h1-h3  1 1 1 - - -        failed     v1 to h1-h3  v1 everywhere
//	             healthy = 3 after batch 1, starting h4 would make 2 < 3. The rollback (HalfAtATime, 3 hosts,
//	             min 2) starts with 0 healthy: its hosts are all unhealthy, cost nothing, and go in one batch.
//	AllAtOnce    0    h3     1 1 1 1 1 1        succeeded  -            v2 everywhere
//	66%          4    h1     1 1 2 3 4 5        succeeded  -            v2 everywhere
//	             ceil(6*0.66) = 4: budget 2 -> h1,h2; h1 fails so healthy = 5, budget 1 per batch.
//	"4"          4    h1,h2  1 1 - - - -        failed     v1 to h1,h2  v1 everywhere
//	             A minimum of 4 cannot fit the rollback's 2 hosts: it falls back to OneAtATime (min 1);
//	             both hosts are unhealthy, so both go in batch 1.
//
// A failed host keeps v2's files (Install ran before ValidateService failed).
func TestDeployConfigsWithFailingHost(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	agents := map[string]string{}
	for i := 1; i <= 6; i++ {
		agents[fmt.Sprintf("h%d", i)] = "tier=cfg"
	}
	c.deployAgentsOnline(agents)
	type want struct {
		batches    []int  // h1..h6; 0 = skipped
		state      string // of the deployment
		rollback   bool
		rbBatches  map[string]int // the rollback's hosts and batches
		rbConfig   string
		finalV2    []bool // h1..h6: v2's content (else v1's)
		minHealthy int
	}
	cases := []struct {
		name, config string
		fails        []string
		want         want
	}{
		{"OneAtATime", "OneAtATime", []string{"h2"}, want{batches: []int{1, 2, 0, 0, 0, 0}, state: api.DeployFailed, rollback: true,
			rbBatches: map[string]int{"h2": 1, "h1": 2}, rbConfig: "OneAtATime", finalV2: []bool{false, false, false, false, false, false}, minHealthy: 5}},
		{"OneAtATimeLastHost", "OneAtATime", []string{"h6"}, want{batches: []int{1, 2, 3, 4, 5, 6}, state: api.DeploySucceeded,
			finalV2: []bool{true, true, true, true, true, true}, minHealthy: 5}},
		{"HalfAtATime", "HalfAtATime", []string{"h2"}, want{batches: []int{1, 1, 1, 2, 2, 3}, state: api.DeploySucceeded,
			finalV2: []bool{true, true, true, true, true, true}, minHealthy: 3}},
		{"HalfAtATimeFirstBatchFails", "HalfAtATime", []string{"h1", "h2", "h3"}, want{batches: []int{1, 1, 1, 0, 0, 0}, state: api.DeployFailed, rollback: true,
			rbBatches: map[string]int{"h1": 1, "h2": 1, "h3": 1}, rbConfig: "HalfAtATime", finalV2: []bool{false, false, false, false, false, false}, minHealthy: 3}},
		{"AllAtOnce", "AllAtOnce", []string{"h3"}, want{batches: []int{1, 1, 1, 1, 1, 1}, state: api.DeploySucceeded,
			finalV2: []bool{true, true, true, true, true, true}, minHealthy: 0}},
		{"Min66Percent", "66%", []string{"h1"}, want{batches: []int{1, 1, 2, 3, 4, 5}, state: api.DeploySucceeded,
			finalV2: []bool{true, true, true, true, true, true}, minHealthy: 4}},
		{"Min4Hosts", "4", []string{"h1", "h2"}, want{batches: []int{1, 1, 0, 0, 0, 0}, state: api.DeployFailed, rollback: true,
			rbBatches: map[string]int{"h1": 1, "h2": 1}, rbConfig: "OneAtATime", finalV2: []bool{false, false, false, false, false, false}, minHealthy: 4}},
	}
	for i, tc := range cases {
		app := fmt.Sprintf("cfg%d", i)
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := c.withT(t)
			c.gantry("app", "create", app).ok(t)
			flags := []string{"--selector", "tier=cfg", "--config", tc.config}
			if tc.config[0] >= '0' && tc.config[0] <= '9' {
				flags = []string{"--selector", "tier=cfg", "--min-healthy", tc.config}
			}
			c.createGroup(app, "g", flags...)
			dest := "/srv/" + app
			v1 := c.push(app, bundle(dest, map[string]string{"version.txt": "v1\n"}, hook{event: "ValidateService", script: "true"}))
			v2 := c.push(app, bundle(dest, map[string]string{"version.txt": "v2\n"},
				hook{event: "ValidateService", script: fmt.Sprintf(`case "$GANTRY_HOST_NAME" in %s) echo "not valid on $GANTRY_HOST_NAME"; exit 7;; esac`, strings.Join(tc.fails, "|"))}))
			// v1 everywhere, at once to save time.
			d1 := c.deployWait(0, "deploy", app, "g", "--revision", v1, "--config", "AllAtOnce")
			if n := d1.Counts[api.HostDeploySucceeded]; d1.State != api.DeploySucceeded || len(d1.Hosts) != 6 {
				t.Fatalf("v1: %s, %d succeeded, %d hosts", d1.State, n, len(d1.Hosts))
			}

			wantCode := 0
			if tc.want.state != api.DeploySucceeded {
				wantCode = 1
			}
			d := c.deployWait(wantCode, "deploy", app, "g", "--revision", v2)
			if d.State != tc.want.state || d.Config != tc.config || d.MinHealthy != tc.want.minHealthy {
				t.Errorf("state %s config %s min %d, want %s %s %d (error %q)", d.State, d.Config, d.MinHealthy, tc.want.state, tc.config, tc.want.minHealthy, d.Error)
			}
			st, b := states(d), batches(d)
			maxBatch := 0
			for i, wb := range tc.want.batches {
				h := fmt.Sprintf("h%d", i+1)
				wantState := api.HostDeploySucceeded
				switch {
				case wb == 0:
					wantState = api.HostDeploySkipped
				case slices.Contains(tc.fails, h):
					wantState = api.HostDeployFailed
				}
				if st[h] != wantState || b[h] != wb {
					t.Errorf("%s: state %s batch %d, want %s batch %d", h, st[h], b[h], wantState, wb)
				}
				maxBatch = max(maxBatch, wb)
			}
			if d.Batch != maxBatch {
				t.Errorf("deployment batch %d, want %d", d.Batch, maxBatch)
			}
			// The failing hosts' event and error.
			for _, f := range tc.fails {
				fh := c.deploymentHost(d.ID, f)
				ev, _ := event(fh, "ValidateService")
				if fh.Event != "ValidateService" || ev.State != "failed" || ev.ExitCode != 7 ||
					!strings.Contains(fh.Error, "exited with status 7") || !strings.Contains(ev.LogTail, "not valid on "+f) {
					t.Errorf("%s: event %s error %q; ValidateService %+v", f, fh.Event, fh.Error, ev)
				}
				if end, _ := event(fh, "End"); end.State != "skipped" {
					t.Errorf("%s: End is %q after a failed ValidateService, want skipped", f, end.State)
				}
			}

			// The rollback.
			if !tc.want.rollback {
				if d.RolledBackBy != "" {
					t.Errorf("rolled back by %s, want no rollback", d.RolledBackBy)
				}
				if g := c.group(app, "g"); g.Revision != v2 {
					t.Errorf("group revision %s, want v2 %s", g.Revision, v2)
				}
			} else {
				if d.RolledBackBy == "" {
					t.Fatalf("no rollback of the failed deployment: %+v", d)
				}
				rb := c.waitDeployment(d.RolledBackBy, 30*time.Second)
				if rb.Kind != "rollback" || rb.RollbackOf != d.ID || rb.Revision != v1 || rb.State != api.DeploySucceeded {
					t.Errorf("rollback %s: kind %s of %s revision %s state %s (error %q), want a succeeded rollback of %s to %s",
						rb.ID, rb.Kind, rb.RollbackOf, rb.Revision, rb.State, rb.Error, d.ID, v1)
				}
				if got := batches(rb); !mapsEqual(got, tc.want.rbBatches) || rb.Config != tc.want.rbConfig {
					t.Errorf("rollback config %s hosts and batches %v, want %s %v", rb.Config, got, tc.want.rbConfig, tc.want.rbBatches)
				}
				if g := c.group(app, "g"); g.Revision != v1 {
					t.Errorf("group revision %s, want v1 %s", g.Revision, v1)
				}
			}

			// What each host runs now.
			for i, v2 := range tc.want.finalV2 {
				h := fmt.Sprintf("h%d", i+1)
				want := "v1\n"
				if v2 {
					want = "v2\n"
				}
				if got, _ := c.installedFile(h, dest+"/version.txt"); got != want {
					t.Errorf("%s: version.txt = %q, want %q", h, got, want)
				}
			}
		})
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Hooks that fail or misbehave: a timeout kills the script and everything
// it started; a daemon that keeps stdout open does not hold the event up;
// an unknown runas user fails the event with a message naming the user.
func TestDeployHookFailures(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"solo": "role=solo"})
	c.gantry("app", "create", "hooks").ok(t)
	c.createGroup("hooks", "g", "--selector", "role=solo", "--no-auto-rollback")
	// Each scenario installs its own file: a failed deployment leaves its
	// files, which the next revision may not overwrite (DISALLOW).
	dest := "/srv/hooks"

	t.Run("Timeout", func(t *testing.T) {
		c := c.withT(t)
		m := marker()
		killLater(t, m) // only if the test fails
		rev := c.push("hooks", bundle(dest, map[string]string{"timeout.txt": "timeout\n"},
			hook{event: "ApplicationStart", timeout: 2, script: "echo going to sleep\nsleep 30 " + m + "\necho woke up"}))
		begin := time.Now()
		d := c.deployWait(1, "deploy", "hooks", "g", "--revision", rev)
		took := time.Since(begin)
		if took > 15*time.Second {
			t.Errorf("the deployment took %s with a 2 s hook timeout", took)
		}
		h := c.deploymentHost(d.ID, "solo")
		ev, _ := event(h, "ApplicationStart")
		if d.State != api.DeployFailed || h.State != api.HostDeployFailed || h.Event != "ApplicationStart" || ev.State != "failed" || ev.ExitCode != -1 {
			t.Errorf("deployment %s host %s event %s; ApplicationStart %+v", d.State, h.State, h.Event, ev)
		}
		if want := "script scripts/ApplicationStart.sh: killed after its timeout of 2s"; ev.Error != want || !strings.Contains(h.Error, want) {
			t.Errorf("errors: event %q host %q, want %q", ev.Error, h.Error, want)
		}
		if !strings.Contains(ev.LogTail, "going to sleep") || strings.Contains(ev.LogTail, "woke up") {
			t.Errorf("log tail %q", ev.LogTail)
		}
		if dur := ev.FinishedAt.Sub(*ev.StartedAt); dur < 2*time.Second || dur > 10*time.Second {
			t.Errorf("ApplicationStart ran %s, want about 2 s", dur)
		}
		if v, _ := event(h, "ValidateService"); v.State != "skipped" {
			t.Errorf("ValidateService after the failure: %+v", v)
		}
		eventually(t, 5*time.Second, "the hook's sleep is killed", func() (bool, string) {
			pids := pgrep(t, m)
			return len(pids) == 0, fmt.Sprint(pids)
		})
	})

	t.Run("RunAsUnknownUser", func(t *testing.T) {
		c := c.withT(t)
		rev := c.push("hooks", bundle(dest, map[string]string{"runas.txt": "runas\n"},
			hook{event: "BeforeInstall", runas: "no-such-user-xyz", script: "echo should not run"}))
		d := c.deployWait(1, "deploy", "hooks", "g", "--revision", rev)
		h := c.deploymentHost(d.ID, "solo")
		ev, _ := event(h, "BeforeInstall")
		want := `script scripts/BeforeInstall.sh: user "no-such-user-xyz" does not exist on this host`
		if d.State != api.DeployFailed || h.Event != "BeforeInstall" || ev.State != "failed" || ev.Error != want || !strings.Contains(h.Error, want) {
			t.Errorf("deployment %s host event %s error %q; BeforeInstall %+v; want error %q", d.State, h.Event, h.Error, ev, want)
		}
		if strings.Contains(ev.LogTail, "should not run") {
			t.Errorf("the script ran: %q", ev.LogTail)
		}
		if ins, _ := event(h, "Install"); ins.State != "skipped" {
			t.Errorf("Install after the failure: %+v", ins)
		}
		if !strings.Contains(d.Error, "automatic rollback is off") {
			t.Errorf("deployment error %q does not say why there is no rollback", d.Error)
		}
	})

	t.Run("DaemonHoldsStdout", func(t *testing.T) {
		c := c.withT(t)
		m := marker()
		killLater(t, m)
		rev := c.push("hooks", bundle(dest, map[string]string{"daemon.txt": "daemon\n"},
			hook{event: "ApplicationStart", script: "(sleep 300 " + m + " &)\necho daemon started"}))
		begin := time.Now()
		d := c.deployWait(0, "deploy", "hooks", "g", "--revision", rev)
		if took := time.Since(begin); took > 10*time.Second {
			t.Errorf("the deployment took %s: the daemon held the hook up", took)
		}
		h := c.deploymentHost(d.ID, "solo")
		ev, _ := event(h, "ApplicationStart")
		if d.State != api.DeploySucceeded || ev.State != "succeeded" || !strings.Contains(ev.LogTail, "daemon started") {
			t.Errorf("deployment %s (%s); ApplicationStart %+v", d.State, d.Error, ev)
		}
		if dur := ev.FinishedAt.Sub(*ev.StartedAt); dur > 5*time.Second {
			t.Errorf("ApplicationStart took %s", dur)
		}
		// The daemon is left running, as a daemon should be.
		if pids := pgrep(t, m); len(pids) != 1 {
			t.Errorf("daemon processes: %v, want 1 still running", pids)
		}
		if got, _ := c.installedFile("solo", dest+"/daemon.txt"); got != "daemon\n" {
			t.Errorf("installed %q", got)
		}
	})
}

// The group's health check runs after ValidateService: an HTTP check that
// passes lets hosts succeed; a command check that does not pass within its
// timeout fails the host on the event HealthCheck, and a rollback follows.
func TestDeployHealthGate(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"h1": "role=hc", "h2": "role=hc"})
	allEvents := func(last string) []string {
		return []string{"Start", "ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService", "HealthCheck", last}
	}

	t.Run("HTTPPasses", func(t *testing.T) {
		c := c.withT(t)
		var hits atomicInt
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				hits.add(1)
				return
			}
			http.NotFound(w, r)
		}))
		defer srv.Close()
		c.gantry("app", "create", "hweb").ok(t)
		c.createGroup("hweb", "g", "--selector", "role=hc", "--health-http", srv.URL+"/healthz", "--health-timeout", "5s")
		rev := c.push("hweb", bundle("/srv/hweb", map[string]string{"v": "1\n"}, hook{event: "ValidateService", script: "true"}))
		d := c.deployWait(0, "deploy", "hweb", "g", "--revision", rev)
		for _, h := range d.Hosts {
			var names []string
			for _, e := range h.Events {
				names = append(names, e.Name)
			}
			hc, _ := event(h, "HealthCheck")
			if !slices.Equal(names, allEvents("End")) || hc.State != "succeeded" || h.State != api.HostDeploySucceeded {
				t.Errorf("%s: %s, events %q", h.HostName, h.State, eventStates(h))
			}
		}
		if n := hits.get(); n < 2 {
			t.Errorf("the health URL was fetched %d times, want at least once per host", n)
		}
	})

	t.Run("CommandFails", func(t *testing.T) {
		c := c.withT(t)
		flag := filepath.Join(t.TempDir(), "healthy")
		c.gantry("app", "create", "hcmd").ok(t)
		c.createGroup("hcmd", "g", "--selector", "role=hc", "--health-command", "test -f "+flag, "--health-timeout", "2s")
		v1 := c.push("hcmd", bundle("/srv/hcmd", map[string]string{"v": "v1\n"}, hook{event: "ApplicationStart", script: "touch '" + flag + "'"}))
		v2 := c.push("hcmd", bundle("/srv/hcmd", map[string]string{"v": "v2\n"}, hook{event: "ApplicationStart", script: "rm -f '" + flag + "'"}))
		c.deployWait(0, "deploy", "hcmd", "g", "--revision", v1)
		d := c.deployWait(1, "deploy", "hcmd", "g", "--revision", v2)
		// OneAtATime: h1 fails its health check, so h2 is never started.
		if st := states(d); d.State != api.DeployFailed || st["h1"] != api.HostDeployFailed || st["h2"] != api.HostDeploySkipped {
			t.Fatalf("deployment %s, hosts %v (%s)", d.State, st, d.Error)
		}
		h := c.deploymentHost(d.ID, "h1")
		var names []string
		for _, e := range h.Events {
			names = append(names, e.Name)
		}
		hc, _ := event(h, "HealthCheck")
		vs, _ := event(h, "ValidateService")
		if !slices.Equal(names, allEvents("End")) || h.Event != "HealthCheck" || hc.State != "failed" || vs.State != "succeeded" {
			t.Errorf("h1: event %s, events %q", h.Event, eventStates(h))
		}
		if !strings.Contains(hc.Error, "health check did not pass within 2s") || !strings.Contains(hc.Error, "test") || !strings.Contains(h.Error, "HealthCheck") {
			t.Errorf("h1: health check error %q, host error %q", hc.Error, h.Error)
		}
		if dur := hc.FinishedAt.Sub(*hc.StartedAt); dur < 2*time.Second || dur > 8*time.Second {
			t.Errorf("the health check ran %s with a timeout of 2 s", dur)
		}
		if d.RolledBackBy == "" {
			t.Fatalf("no rollback: %s", d.Error)
		}
		rb := c.waitDeployment(d.RolledBackBy, 30*time.Second)
		if rb.Kind != "rollback" || rb.RollbackOf != d.ID || rb.Revision != v1 || rb.State != api.DeploySucceeded || len(rb.Hosts) != 1 || rb.Hosts[0].HostName != "h1" {
			t.Errorf("rollback %s: kind %s of %s, revision %s, %s, hosts %v (%s)", rb.ID, rb.Kind, rb.RollbackOf, rb.Revision, rb.State, states(rb), rb.Error)
		}
		if hc, _ := event(rb.Hosts[0], "HealthCheck"); hc.State != "succeeded" {
			t.Errorf("rollback health check: %+v", hc)
		}
		for _, h := range []string{"h1", "h2"} {
			if got, _ := c.installedFile(h, "/srv/hcmd/v"); got != "v1\n" {
				t.Errorf("%s runs %q, want v1", h, got)
			}
		}
	})
}

type atomicInt struct {
	mu sync.Mutex
	n  int
}

func (a *atomicInt) add(d int) { a.mu.Lock(); a.n += d; a.mu.Unlock() }
func (a *atomicInt) get() int  { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// A host that joins a group after its revision was deployed gets it by a
// catch-up deployment; a rollback by hand puts the previous revision back
// on every host.
func TestDeployLateHost(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"w1": "role=late", "w2": "role=late"})
	c.gantry("app", "create", "late").ok(t)
	c.createGroup("late", "g", "--selector", "role=late")
	v1 := c.push("late", bundle("/srv/late", map[string]string{"version.txt": "v1\n"}, hook{event: "ApplicationStart", script: "echo start"}))
	v2 := c.push("late", bundle("/srv/late", map[string]string{"version.txt": "v2\n"}, hook{event: "ApplicationStart", script: "echo start"}))
	d1 := c.deployWait(0, "deploy", "late", "g", "--revision", v1)

	c.startDeployAgent("w3", "role=late", c.joinToken("--labels", "role=late"))
	var cu api.Deployment
	eventually(t, 20*time.Second, "a catch-up deployment to w3 succeeds", func() (bool, string) {
		for _, d := range c.deploymentsOf("late") {
			if d.Kind == "catch-up" {
				cu = c.deployment(d.ID)
				return cu.State == api.DeploySucceeded, cu.State
			}
		}
		return false, "no catch-up deployment"
	})
	if cu.Revision != v1 || len(cu.Hosts) != 1 || cu.Hosts[0].HostName != "w3" || cu.Hosts[0].State != api.HostDeploySucceeded || cu.Config != "AllAtOnce" {
		t.Errorf("catch-up %s: revision %s config %s hosts %v", cu.ID, cu.Revision, cu.Config, states(cu))
	}
	if got, _ := c.installedFile("w3", "/srv/late/version.txt"); got != "v1\n" {
		t.Errorf("w3 has %q, want v1", got)
	}
	if ds := c.deploymentsOf("late"); len(ds) != 2 {
		t.Errorf("%d deployments, want the first and one catch-up", len(ds))
	}

	// The next deployment sees w3's revision as v1.
	d2 := c.deployWait(0, "deploy", "late", "g", "--revision", v2, "--config", "AllAtOnce")
	for _, h := range d2.Hosts {
		if h.PreviousRevision != v1 {
			t.Errorf("%s: previous revision %q, want v1 %s", h.HostName, h.PreviousRevision, v1)
		}
	}
	if len(d2.Hosts) != 3 || d2.Counts[api.HostDeploySucceeded] != 3 {
		t.Errorf("v2: %v", states(d2))
	}
	_ = d1

	// A rollback by hand: v1 again, on every host.
	rb := c.deployWait(0, "rollback", "late", "g")
	if rb.Kind != "rollback" || rb.Revision != v1 || rb.State != api.DeploySucceeded || len(rb.Hosts) != 3 {
		t.Errorf("rollback %s: kind %s revision %s state %s hosts %v", rb.ID, rb.Kind, rb.Revision, rb.State, states(rb))
	}
	for _, h := range []string{"w1", "w2", "w3"} {
		if got, _ := c.installedFile(h, "/srv/late/version.txt"); got != "v1\n" {
			t.Errorf("%s has %q after the rollback, want v1", h, got)
		}
	}
	if g := c.group("late", "g"); g.Revision != v1 {
		t.Errorf("group revision %s after the rollback, want %s", g.Revision, v1)
	}
}

// Stopping a deployment: no new batch starts and the running hook
// finishes; with --force the running hook is killed at once and its host
// fails.
func TestDeployStop(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"s1": "role=stop", "s2": "role=stop", "s3": "role=stop"})
	c.gantry("app", "create", "stop").ok(t)
	c.createGroup("stop", "g", "--selector", "role=stop", "--config", "OneAtATime")
	traces := t.TempDir()
	revision := func(version string, sleep int, m string) string {
		start := fmt.Sprintf(`echo "start $DEPLOYMENT_ID" >> '%[1]s'/"$GANTRY_HOST_NAME"
sleep %[2]d %[3]s
echo "end $DEPLOYMENT_ID" >> '%[1]s'/"$GANTRY_HOST_NAME"`, traces, sleep, m)
		return c.push("stop", bundle("/srv/stop", map[string]string{version + ".txt": version + "\n"}, hook{event: "ApplicationStart", script: start}))
	}
	// startedOn waits until a deployment's ApplicationStart began on one
	// host and returns that host.
	startedOn := func(id string) string {
		var host string
		eventually(t, 20*time.Second, "ApplicationStart running in "+id, func() (bool, string) {
			for _, h := range []string{"s1", "s2", "s3"} {
				for _, l := range readLines(t, filepath.Join(traces, h)) {
					if l == "start "+id {
						host = h
						return true, ""
					}
				}
			}
			return false, ""
		})
		return host
	}

	// Without --force. (The hook sleeps 5 s: it must be running when the
	// stop comes, and the test waits for it to finish.)
	m1 := marker()
	killLater(t, m1)
	v1 := revision("v1", 5, m1)
	id := c.deployNoWait("deploy", "stop", "g", "--revision", v1)
	first := startedOn(id)
	if first != "s1" { // all healthy, no revision yet: by name
		t.Errorf("the first batch is %s, want s1", first)
	}
	r := c.gantry("deployments", "stop", id)
	r.ok(t)
	if !strings.Contains(r.stdout, "Stop requested for deployment "+id) {
		t.Errorf("stop output: %s", r.stdout)
	}
	if d := c.deployment(id); d.State != api.DeployStopping && d.State != api.DeployStopped {
		t.Errorf("right after the stop: %s", d.State)
	}
	d := c.waitDeployment(id, 30*time.Second)
	if d.State != api.DeployStopped || d.Batch != 1 || !d.StopRequested || d.Force {
		t.Errorf("deployment %s batch %d stop %v force %v (%s)", d.State, d.Batch, d.StopRequested, d.Force, d.Error)
	}
	if st := states(d); st["s1"] != api.HostDeploySucceeded || st["s2"] != api.HostDeploySkipped || st["s3"] != api.HostDeploySkipped {
		t.Errorf("hosts %v, want s1 succeeded (its hooks finished), s2 and s3 skipped", st)
	}
	if got := readLines(t, filepath.Join(traces, "s1")); strings.Join(got, ",") != "start "+id+",end "+id {
		t.Errorf("s1's ApplicationStart: %q, want it to have run to its end", got)
	}
	for _, h := range []string{"s2", "s3"} {
		if got := readLines(t, filepath.Join(traces, h)); got != nil {
			t.Errorf("%s ran hooks after the stop: %q", h, got)
		}
	}

	// With --force, a 20 s hook is killed.
	m2 := marker()
	killLater(t, m2)
	v2 := revision("v2", 20, m2)
	id2 := c.deployNoWait("deploy", "stop", "g", "--revision", v2)
	// s2 and s3 have no revision in the group (they were skipped), so they
	// go first (plan.Order: unhealthy, then unknown revision, then the
	// rest; by name).
	running := startedOn(id2)
	if running != "s2" {
		t.Errorf("the first batch is %s, want s2", running)
	}
	begin := time.Now()
	c.gantry("deployments", "stop", id2, "--force").ok(t)
	d2 := c.waitDeployment(id2, 15*time.Second)
	if took := time.Since(begin); took > 8*time.Second {
		t.Errorf("a forced stop took %s", took)
	}
	if d2.State != api.DeployStopped || d2.Batch != 1 || !d2.Force {
		t.Errorf("deployment %s batch %d force %v (%s)", d2.State, d2.Batch, d2.Force, d2.Error)
	}
	st := states(d2)
	if st[running] != api.HostDeployFailed {
		t.Errorf("%s: %s, want failed", running, st[running])
	}
	for h, s := range st {
		if h != running && s != api.HostDeploySkipped {
			t.Errorf("%s: %s, want skipped", h, s)
		}
	}
	h := c.deploymentHost(id2, running)
	ev, _ := event(h, "ApplicationStart")
	if h.Event != "ApplicationStart" || ev.State != "failed" || !strings.Contains(ev.Error, "canceled") {
		t.Errorf("%s: event %s, ApplicationStart %+v", running, h.Event, ev)
	}
	for _, l := range readLines(t, filepath.Join(traces, running)) {
		if l == "end "+id2 {
			t.Errorf("%s: the killed hook ran to its end", running)
		}
	}
	eventually(t, 5*time.Second, "the killed hook's sleep is gone", func() (bool, string) {
		pids := pgrep(t, m2)
		return len(pids) == 0, fmt.Sprint(pids)
	})
}
