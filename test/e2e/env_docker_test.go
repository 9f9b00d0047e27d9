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

// TestEnvShopOnDocker runs examples/shop on the machine's Docker engine
// through the CLI, as its README does: up with two web machines behind
// haproxy, scale out and in (the load balancer follows by itself through
// the configure event; the removed machines run their shutdown script),
// drift (a container removed behind gantry's back is planned and created
// again), one apply at a time, and destroy leaving nothing behind.
func TestEnvShopOnDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine (containers, images built by examples/shop/build.sh); skipped with -short")
	}
	requireDocker(t)
	buildShop(t)
	env := randomEnv()
	removeEnvLater(t, env) // runs after the server has been killed
	c := newCluster(t, clusterOpts{})
	dir := shopDir(t)
	const wait = 4 * time.Minute // CLI commands that wait for machines
	c.gantry("app", "create", "shop").ok(t)
	c.gantry("push", "shop", filepath.Join(dir, "app", "bundle")).ok(t)

	webIPs := func() []string { return machineIPs(machines(c.env(env), "web")) }
	name := func(group string, i int) string { return fmt.Sprintf("%s-%s-%d", env, group, i) }

	// up: db, two web, lb; every machine online; the url serves both web
	// machines, and the page shows the db's answer (web's templatefile
	// setup wrote the db address).
	up := c.gantryWithin(wait, "up", dir, "--env", env, "--var", "web_count=2", "--timeout", "3m")
	up.ok(t)
	e := c.env(env)
	wantNames := []string{name("db", 0), name("lb", 0), name("web", 0), name("web", 1)}
	var gotNames []string
	for _, m := range e.Machines {
		gotNames = append(gotNames, m.Name)
		if m.Phase != api.PhaseOnline {
			t.Errorf("after up, %s (%s) is %s %s", m.Address, m.Name, m.Phase, m.Error)
		}
	}
	slices.Sort(gotNames)
	if !slices.Equal(gotNames, wantNames) {
		t.Fatalf("machines after up: %v, want %v\n%s", gotNames, wantNames, up.stdout)
	}
	if got := envContainers(t, env); !slices.Equal(got, wantNames) {
		t.Fatalf("containers labelled gantry.env=%s: %v, want %v", env, got, wantNames)
	}
	url := c.envURL(env)
	waitBackends(t, 60*time.Second, url, "the url serves the 2 web machines", webIPs)
	db := machines(e, "db")[0]
	if body := fetch(url); !strings.Contains(body, fmt.Sprintf("(db %s: hello from %s)", db.IP, db.Name)) {
		t.Errorf("the shop page does not show the db's greeting: %q", body)
	}

	// scale out: 4 backends with nothing else to do.
	c.gantryWithin(wait, "scale", "--env", env, "web=4", "--timeout", "3m").ok(t)
	if got := len(machines(c.env(env), "web")); got != 4 {
		t.Fatalf("web machines after scale web=4: %d", got)
	}
	waitBackends(t, 60*time.Second, url, "the url serves the 4 web machines", webIPs)
	removed := machines(c.env(env), "web")[2:]

	// scale in: web[2] and web[3] run their shutdown script and go away;
	// the url serves exactly the two that remain.
	c.gantryWithin(wait, "scale", "--env", env, "web=2", "--timeout", "3m").ok(t)
	eventually(t, 60*time.Second, "a succeeded shutdown run for each removed machine", func() (bool, string) {
		e := c.env(env)
		var missing []string
		for _, m := range removed {
			found := false
			for _, r := range e.Events {
				if r.Event == "shutdown" && r.State == "succeeded" && (slices.Contains(r.Hosts, m.Name) || m.HostID != "" && slices.Contains(r.Hosts, m.HostID)) {
					found = true
				}
			}
			if !found {
				missing = append(missing, m.Name)
			}
		}
		b, _ := json.Marshal(e.Events)
		return len(missing) == 0, fmt.Sprintf("no succeeded shutdown for %v; events %s", missing, b)
	})
	// The runs are jobs: the script's output is in them.
	for _, r := range c.env(env).Events {
		if r.Event != "shutdown" || r.State != "succeeded" || len(r.Hosts) != 1 {
			continue
		}
		for _, x := range c.job(r.ID).Executions {
			if !strings.Contains(x.Stdout, "shutdown "+x.HostName+"\n") {
				t.Errorf("shutdown run %s on %s printed %q, want \"shutdown %s\"", r.ID, x.HostName, x.Stdout, x.HostName)
			}
		}
	}
	eventually(t, 60*time.Second, "4 containers: db, lb, 2 web", func() (bool, string) {
		got := envContainers(t, env)
		return slices.Equal(got, wantNames), fmt.Sprint(got)
	})
	remaining := webIPs()
	if len(remaining) != 2 {
		t.Fatalf("web machines after scale web=2: %v", remaining)
	}
	waitBackends(t, 60*time.Second, url, "the url serves exactly the 2 remaining web machines", func() []string { return remaining })

	// drift: a web container removed behind gantry's back is planned as a
	// create with the reason, and apply brings it back.
	victim := machines(c.env(env), "web")[1]
	dockerCLI(t, "rm", "-f", victim.Name)
	plan := c.gantry("plan", dir, "--env", env, "--var", "web_count=2")
	plan.ok(t)
	planJSON := c.gantry("plan", dir, "--env", env, "--var", "web_count=2", "-o", "json")
	planJSON.ok(t)
	var p api.Plan
	if err := json.Unmarshal([]byte(planJSON.stdout), &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, planJSON.stdout)
	}
	var change *api.PlanChange
	for i := range p.Changes {
		if p.Changes[i].Address == victim.Address {
			change = &p.Changes[i]
		}
	}
	if change == nil || change.Action != api.ActionCreate || change.Reason == "" {
		t.Fatalf("plan after docker rm -f %s: want a create of %s with a reason, got %+v\n%s", victim.Name, victim.Address, change, planJSON.stdout)
	}
	shown := false
	for _, line := range strings.Split(plan.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "+" && f[1] == victim.Address && strings.Contains(line, change.Reason) {
			shown = true
		}
	}
	if !shown {
		t.Errorf("plan does not show \"+ %s (%s)\":\n%s", victim.Address, change.Reason, plan.stdout)
	}
	c.gantryWithin(wait, "apply", dir, "--env", env, "--var", "web_count=2", "--auto-approve").ok(t)
	eventually(t, 60*time.Second, "container "+victim.Name+" exists again", func() (bool, string) {
		return containerExists(victim.Name), ""
	})
	waitBackends(t, 90*time.Second, url, "the url serves 2 web machines again", func() []string {
		ips := webIPs()
		if len(ips) != 2 {
			return []string{fmt.Sprintf("(2 web machines, have %v)", ips)}
		}
		return ips
	})

	// One apply at a time: two applies of a change that adds a web machine,
	// started together. One takes the lock and applies; the other fails at
	// once, naming the lock and its holder (the winner's "user@host (pid
	// N)"), while the winner is still applying. (Started together rather
	// than one after the other: each packs the definition directory, which
	// takes about as long as the apply itself.)
	applies := [2]*proc{}
	ended := [2]chan time.Time{make(chan time.Time, 1), make(chan time.Time, 1)}
	for i := range applies {
		applies[i] = start(t, c.cliEnv(), "apply", dir, "--env", env, "--var", "web_count=3", "--auto-approve")
	}
	for i, p := range applies {
		go func() { <-p.done; ended[i] <- time.Now() }()
	}
	codes := [2]int{applies[0].exitCode(wait), applies[1].exitCode(wait)}
	at := [2]time.Time{<-ended[0], <-ended[1]}
	if (codes[0] == 0) == (codes[1] == 0) {
		t.Fatalf("two concurrent applies: exit %d and %d, want one success and one failure:\n--- first:\n%s\n--- second:\n%s",
			codes[0], codes[1], applies[0].out, applies[1].out)
	}
	winner, loser := 0, 1
	if codes[0] != 0 {
		winner, loser = 1, 0
	}
	msg := applies[loser].out.String()
	holder := fmt.Sprintf("(pid %d)", applies[winner].cmd.Process.Pid)
	if !strings.Contains(strings.ToLower(msg), "lock") || !strings.Contains(msg, holder) {
		t.Errorf("the refused apply's message does not name the lock and its holder %s:\n%s", holder, msg)
	}
	if !at[loser].Before(at[winner]) {
		t.Errorf("the refused apply ended %s after the one that applied: it should fail at once without --lock-timeout", at[loser].Sub(at[winner]))
	}
	if !strings.Contains(applies[winner].out.String(), "group.web[2]") {
		t.Errorf("the apply that won does not show group.web[2]:\n%s", applies[winner].out)
	}
	waitBackends(t, 90*time.Second, url, "the url serves the 3 web machines", func() []string {
		ips := webIPs()
		if len(ips) != 3 {
			return []string{fmt.Sprintf("(3 web machines, have %v)", ips)}
		}
		return ips
	})

	// destroy: nothing labelled with the environment is left.
	c.gantryWithin(wait, "destroy", "--env", env, "--auto-approve").ok(t)
	eventually(t, 60*time.Second, "no container and no network labelled gantry.env="+env, func() (bool, string) {
		cs, ns := envContainers(t, env), envNetworks(t, env)
		return len(cs) == 0 && len(ns) == 0, fmt.Sprintf("containers %v, networks %v", cs, ns)
	})
}

// TestEnvDockerImageMissing: an apply that fails on a provider error (an
// image that is not there) says so, records what it did make and nothing
// else, leaves no container gantry cannot find, and the next apply, once
// the definition is fixed, creates only what is missing.
func TestEnvDockerImageMissing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Docker engine; skipped with -short")
	}
	requireDocker(t)
	buildShop(t)
	env := randomEnv()
	removeEnvLater(t, env)
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	write := func(badImage string) {
		def := fmt.Sprintf(`provider "docker" "local" {}
network "n" { provider = provider.docker.local }
group "good" {
  provider = provider.docker.local
  image    = "gantry-shop-base:dev"
  networks = [network.n]
}
group "bad" {
  provider = provider.docker.local
  image    = %q
  networks = [network.n]
}
`, badImage)
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gantry-no-such-image:" + env)
	r := c.gantryWithin(2*time.Minute, "apply", dir, "--env", env, "--auto-approve")
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, `image "gantry-no-such-image:`+env+`" not found locally`) {
		t.Fatalf("apply with a missing image: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e := c.env(env)
	if got := machineNames(e); got != env+"-good-0" {
		t.Fatalf("recorded machines after the failed apply: %q, want only %s-good-0", got, env)
	}
	if got := envContainers(t, env); !slices.Equal(got, []string{env + "-good-0"}) {
		t.Fatalf("containers after the failed apply: %v, want only the good one (nothing unrecorded)", got)
	}
	write("gantry-shop-base:dev")
	r = c.gantry("plan", dir, "--env", env)
	r.ok(t)
	if !strings.Contains(r.stdout, "+   group.bad[0]") || strings.Contains(r.stdout, "group.good[0]") {
		t.Fatalf("plan after the fix must create only bad[0]:\n%s", r.stdout)
	}
	c.gantryWithin(2*time.Minute, "apply", dir, "--env", env, "--auto-approve").ok(t)
	if got := envContainers(t, env); !slices.Equal(got, []string{env + "-bad-0", env + "-good-0"}) {
		t.Fatalf("containers after the second apply: %v", got)
	}
	c.gantryWithin(2*time.Minute, "destroy", "--env", env, "--auto-approve").ok(t)
	if got := envContainers(t, env); len(got) != 0 {
		t.Fatalf("containers after destroy: %v", got)
	}
	if got := envNetworks(t, env); len(got) != 0 {
		t.Fatalf("networks after destroy: %v", got)
	}
}
