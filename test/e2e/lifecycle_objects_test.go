package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store/postgres/pgtest"
)

// wantRefused checks that a CLI run exited 1 with every fragment in its
// output.
func wantRefused(t *testing.T, r result, frags ...string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("gantry %s: exit %d, want 1 (refused)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	}
	for _, f := range frags {
		if !strings.Contains(r.stdout+r.stderr, f) {
			t.Errorf("gantry %s: output lacks %q:\n%s%s", strings.Join(r.args, " "), f, r.stdout, r.stderr)
		}
	}
}

// decodeJSON unmarshals a CLI run's stdout (one JSON value) or fails.
func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	r.ok(t)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("gantry %s -o json: %v\n%s", strings.Join(r.args, " "), err, r.stdout)
	}
}

// TestLifecycleObjects takes every object through its whole life with the
// CLI, against a real server and agents: app, group (create, deploy,
// update, remove), schedule (create, update, remove), environment (up,
// refusals while it lives, destroy, env rm) and its per-machine join
// tokens (hidden from token ls, voided by destroy).
func TestLifecycleObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, agents and an environment")
	}
	lifecycleObjects(t, newCluster(t, clusterOpts{}))
}

// TestLifecycleObjectsPostgres is TestLifecycleObjects on a
// PostgreSQL-backed server (the removals are multi-table transactions).
func TestLifecycleObjectsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server, agents and an environment")
	}
	lifecycleObjects(t, newCluster(t, clusterOpts{database: pgtest.FreshSchema(t)}))
}

func lifecycleObjects(t *testing.T, c *cluster) {
	c.deployAgentsOnline(map[string]string{"lc-web": "role=web", "lc-api": "role=api"})

	// App and group: create, push, deploy.
	c.gantry("app", "create", "shop").ok(t)
	rev := c.push("shop", bundle("/srv/shop", map[string]string{"index.html": "v1\n"}))
	c.createGroup("shop", "prod", "--selector", "role=web", "--config", "AllAtOnce")
	d := c.deployWait(0, "deploy", "shop", "prod", "--revision", rev)
	if got := strings.Join(sortedKeys(hostsByName(d)), ","); got != "lc-web" {
		t.Fatalf("first deployment reached %s, want lc-web", got)
	}

	// In use: refused, naming the group and a command that frees it.
	wantRefused(t, c.gantry("app", "rm", "shop"), `app "shop" is in use by deployment group prod`, "'gantry group rm shop prod'", "--force")
	wantRefused(t, c.gantry("app", "rm", "shpo"), `app "shpo" not found`, "shop")

	// group update --selector: only the selector changes, and the next
	// deployment reaches the new host set.
	var g api.DeploymentGroup
	decodeJSON(t, c.gantry("group", "update", "shop", "prod", "--selector", "role=api", "-o", "json"), &g)
	if g.Selector != "role=api" || g.Config != "AllAtOnce" || !g.AutoRollback {
		t.Fatalf("after group update: %+v (want only the selector changed)", g)
	}
	if r := c.gantry("group", "update", "shop", "prod"); r.code != 2 || !strings.Contains(r.stderr, "nothing to change") {
		t.Fatalf("group update without flags: exit %d, want 2 with 'nothing to change'\n%s", r.code, r.stderr)
	}
	d = c.deployWait(0, "deploy", "shop", "prod", "--revision", rev)
	if got := strings.Join(sortedKeys(hostsByName(d)), ","); got != "lc-api" {
		t.Fatalf("deployment after group update reached %s, want lc-api", got)
	}
	if b, ok := c.installedFile("lc-api", "/srv/shop/index.html"); !ok || b != "v1\n" {
		t.Fatalf("lc-api's installed file: %q %v", b, ok)
	}

	// group rm, then app rm needs no --force. A catch-up deployment (a
	// host the update made match) may still run: removal is refused
	// until it ends, so wait for every deployment to be over first.
	eventually(t, 30*time.Second, "every deployment of shop over", func() (bool, string) {
		var ds []api.Deployment
		decodeJSON(t, c.gantry("deployments", "ls", "shop", "-o", "json"), &ds)
		for _, d := range ds {
			if !api.DeployDone(d.State) {
				return false, d.ID + " " + d.State
			}
		}
		return true, ""
	})
	decodeJSON(t, c.gantry("group", "rm", "shop", "prod", "-o", "json"), &g)
	if g.Name != "prod" || g.App != "shop" {
		t.Fatalf("group rm -o json printed %+v, want the removed group", g)
	}
	wantRefused(t, c.gantry("group", "show", "shop", "prod"), `group "prod" of app "shop" not found`)
	var rm api.AppRemoval
	decodeJSON(t, c.gantry("app", "rm", "shop", "-o", "json"), &rm)
	if rm.App.Name != "shop" || rm.Revisions != 1 {
		t.Fatalf("app rm -o json printed %+v", rm)
	}
	var apps []api.Application
	decodeJSON(t, c.gantry("app", "ls", "-o", "json"), &apps)
	if len(apps) != 0 {
		t.Fatalf("apps after app rm: %+v", apps)
	}

	// Schedule: create, update (visible in ls -o json), rm.
	var s api.Schedule
	decodeJSON(t, c.gantry("schedule", "create", "--cron", "0 3 * * *", "--selector", "role=web", "-o", "json", "--", "true"), &s)
	var up api.Schedule
	decodeJSON(t, c.gantry("schedule", "update", s.ID, "--cron", "30 2 * * *", "--selector", "role=api", "--disable", "-o", "json"), &up)
	var scheds []api.Schedule
	decodeJSON(t, c.gantry("schedule", "ls", "-o", "json"), &scheds)
	if len(scheds) != 1 || scheds[0].Cron != "30 2 * * *" || scheds[0].Selector != "role=api" || !scheds[0].Disabled || scheds[0].Script != "true" {
		t.Fatalf("schedule ls after update: %+v", scheds)
	}
	wantRefused(t, c.gantry("schedule", "update", "s-nope", "--enable"), `schedule "s-nope" not found`, s.ID)
	c.gantry("schedule", "rm", s.ID).ok(t)
	decodeJSON(t, c.gantry("schedule", "ls", "-o", "json"), &scheds)
	if len(scheds) != 0 {
		t.Fatalf("schedules after rm: %+v", scheds)
	}

	// Environment: its deploy block makes a group that belongs to it.
	c.gantry("app", "create", "tiny").ok(t)
	tiny := c.push("tiny", bundle("/srv/tiny", map[string]string{"index.html": "tiny\n"}))
	dir := t.TempDir()
	def := "provider \"local\" \"here\" {}\ngroup \"web\" {\n  provider = provider.local.here\n  count    = 1\n  deploy {\n    app      = \"tiny\"\n    revision = \"" + tiny + "\"\n  }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	c.gantryWithin(90*time.Second, "up", dir, "--env", "lc", "--timeout", "60s", "--auto-approve").ok(t)
	e := c.env("lc")
	if len(e.Machines) != 1 {
		t.Fatalf("env lc has machines %+v, want 1", e.Machines)
	}
	machine := e.Machines[0].Name
	dg := e.Groups["web"].DeployGroup
	if dg == "" {
		t.Fatalf("env lc's group web has no deployment group: %+v", e.Groups)
	}
	secret := machineJoinToken(t, machine)

	wantRefused(t, c.gantry("app", "rm", "tiny"), `environment "lc" (group.web)`)
	wantRefused(t, c.gantry("group", "rm", "tiny", dg), `environment "lc" (group.web)`, "gantry destroy --env lc", "--force")
	wantRefused(t, c.gantry("env", "rm", "lc"), "destroy it first: gantry destroy --env lc")
	if r := c.gantry("group", "update", "tiny", dg, "--config", "AllAtOnce"); r.code != 0 || !strings.Contains(r.stderr, `environment "lc" (group.web) made this group`) {
		t.Errorf("group update of the environment's group: exit %d, no note naming the environment\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Per-machine join tokens: internal, hidden unless --all.
	owner := "env:lc/group.web[0]"
	tokens := func(args ...string) []map[string]any {
		var out []map[string]any
		decodeJSON(t, c.gantry(append([]string{"token", "ls", "--join", "-o", "json"}, args...)...), &out)
		return out
	}
	hasOwner := func(ts []map[string]any) bool {
		for _, tok := range ts {
			if tok["owner"] == owner && tok["internal"] == true {
				return true
			}
		}
		return false
	}
	if hasOwner(tokens()) {
		t.Fatalf("token ls shows the per-machine token of %s: %v", owner, tokens())
	}
	if !hasOwner(tokens("--all")) {
		t.Fatalf("token ls --all lacks the per-machine token of %s: %v", owner, tokens("--all"))
	}
	if r := c.gantry("token", "ls", "--join"); !strings.Contains(r.stderr, "internal token") || !strings.Contains(r.stderr, "hidden; --all shows them") {
		t.Errorf("token ls does not say tokens are hidden:\n%s%s", r.stdout, r.stderr)
	}

	// Destroy: the machine's token is gone (not merely used up), the
	// environment's record can go, and show no longer finds it.
	c.gantryWithin(60*time.Second, "destroy", "--env", "lc", "--auto-approve").ok(t)
	if hasOwner(tokens("--all")) {
		t.Fatalf("token ls --all still lists the destroyed machine's token: %v", tokens("--all"))
	}
	if status, msg := enroll(t, c, secret, "lc-intruder"); status != http.StatusUnauthorized || !strings.Contains(msg, "not valid") {
		t.Fatalf("enrolling with the destroyed machine's token: %d %s, want 401 'not valid'", status, msg)
	}
	var erm api.EnvRemoval
	decodeJSON(t, c.gantry("env", "rm", "lc", "-o", "json"), &erm)
	if erm.Name != "lc" {
		t.Fatalf("env rm -o json printed %+v", erm)
	}
	wantRefused(t, c.gantry("env", "show", "lc"), `"lc" not found`)
	// The destroyed environment no longer uses tiny; its old group is an
	// ordinary one now.
	c.gantry("app", "rm", "tiny", "--force").ok(t)
}

// machineJoinToken reads the join token the local provider handed the
// agent of machine name (from its process environment).
func machineJoinToken(t *testing.T, name string) string {
	t.Helper()
	for _, pid := range pgrep(t, "agent --server .*--name "+name+" ") {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("GANTRY_JOIN_TOKEN=")); ok && len(v) > 0 {
				return string(v)
			}
		}
	}
	t.Fatalf("no agent process of machine %s with a GANTRY_JOIN_TOKEN", name)
	return ""
}

// enroll tries to enroll a new agent with a join token and returns the
// status and error message.
func enroll(t *testing.T, c *cluster, token, name string) (int, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	body, _ := json.Marshal(api.EnrollRequest{JoinToken: token, Name: name, NKey: pub})
	resp, err := c.httpClient().Post(c.url+"/api/v1/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}
