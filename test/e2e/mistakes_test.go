package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/store/postgres/pgtest"
)

// A user's mistake is met with one exact message (the key phrase below),
// the documented exit code (docs/cli.md: 2 = usage: flags, arguments, flag
// values; 1 = the command failed, including the content of a bundle,
// whichever side found the problem), and no internals: no SQL driver text,
// no server temp path. Every hint a message gives ("Create it with: gantry
// …") is followed, and must succeed and lead on: after following it the
// original command is run again, until it succeeds.
func TestUserMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a server and an agent")
	}
	c := newCluster(t, clusterOpts{})
	c.agentsOnline(map[string]string{"m1": "role=m"})
	c.gantry("app", "create", "shop").ok(t)

	good := writeBundle(t, map[string]string{
		"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: start.sh\n      timeout: 30\n",
		"start.sh":    "#!/bin/sh\necho started\n",
	})
	empty := t.TempDir()
	notArchive := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notArchive, []byte("not a bundle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badSpec := writeBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstal:\n    - location: a.sh\n"})
	noScript := writeBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: scripts/missing.sh\n"})
	hostile := hostileTarGz(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\n", "../../escape.txt": "x"})
	badConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(badConfig, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.gantry("group", "create", "shop", "nomatch", "--selector", "role=nothing").ok(t)

	// placeholders in hints, and what the test puts there.
	fill := strings.NewReplacer("SELECTOR", "role=m", "DIR", good)

	for _, tc := range []struct {
		name     string
		args     []string
		env      []string // extra environment
		wantExit int
		want     string // exact key phrase of stderr
		// follow: whether to follow the message's "…with: gantry …" hint
		// (which must succeed): once, or in a chain (run args again after
		// each hint, until args succeeds).
		follow follow
	}{
		{"duplicate app", []string{"app", "create", "shop"}, nil, 1,
			`Error: app "shop" already exists: pick another name, or push to it with: gantry push shop DIR`, once},
		{"bad app name", []string{"app", "create", "Shop!"}, nil, 2, "lower-case", none},
		{"unknown app on deploy", []string{"deploy", "nosuchapp", "prod"}, nil, 1,
			`Error: app "nosuchapp" not found; apps: shop. Create it with: gantry app create nosuchapp`, chain},
		{"unknown app on push", []string{"push", "nosuchapp2", good}, nil, 1,
			`Error: app "nosuchapp2" not found; apps: `, chain},
		{"unknown app on group create", []string{"group", "create", "nosuchapp3", "web", "--selector", "role=m"}, nil, 1,
			`Error: app "nosuchapp3" not found; apps: `, chain},
		{"unknown app on group ls", []string{"group", "ls", "nosuchapp4"}, nil, 1,
			`Error: app "nosuchapp4" not found; apps: `, chain},
		{"unknown app on revisions", []string{"revisions", "nosuchapp5"}, nil, 1,
			`Error: app "nosuchapp5" not found; apps: `, chain},
		{"unknown group", []string{"deploy", "shop", "nosuchgroup"}, nil, 1,
			`Error: group "nosuchgroup" of app "shop" not found; groups of shop: nomatch. Create it with: gantry group create shop nosuchgroup --selector SELECTOR`, chain},
		{"unknown revision", []string{"revisions", "shop", "r-000000000000"}, nil, 1,
			`Error: revision "r-000000000000" of app "shop" not found; revisions of shop (newest first): r-`, chain},
		{"deploy an unknown revision", []string{"deploy", "shop", "nomatch", "--revision", "r-000000000000"}, nil, 1,
			`Error: revision "r-000000000000" of app "shop" not found. List them with: gantry revisions shop`, chain},
		{"group selects no host", []string{"deploy", "shop", "nomatch"}, nil, 1,
			`Error: nothing to deploy: no host matches the selector "role=nothing" of group "nomatch" (hosts enrolled: 1). List them with their labels: gantry hosts ls`, chain},
		{"run selects no host", []string{"run", "--selector", "role=nothing", "--", "true"}, nil, 1,
			`Error: no host matches the selector "role=nothing" (hosts enrolled: 1). List them with their labels: gantry hosts ls`, chain},
		{"unknown host", []string{"hosts", "show", "nosuchhost"}, nil, 1,
			`Error: host "nosuchhost" not found; hosts: m1. List them with: gantry hosts ls`, chain},
		{"label an unknown host", []string{"hosts", "label", "nosuchhost", "a=b"}, nil, 1,
			`Error: host "nosuchhost" not found; hosts: m1. List them with: gantry hosts ls`, chain},
		{"remove an unknown host", []string{"hosts", "rm", "nosuchhost"}, nil, 1,
			`Error: host "nosuchhost" not found; hosts: m1. List them with: gantry hosts ls`, chain},
		{"rollback an unknown group", []string{"rollback", "shop", "nosuchgroup2"}, nil, 1,
			`Error: group "nosuchgroup2" of app "shop" not found; groups of shop: `, none},
		{"stop an unknown deployment", []string{"deployments", "stop", "d-nosuchdeployment"}, nil, 1,
			`Error: deployment "d-nosuchdeployment" not found; recent deployments: d-`, chain},
		{"unknown job", []string{"jobs", "show", "j-nosuchjob"}, nil, 1,
			`Error: job "j-nosuchjob" not found; there are no jobs. List them with: gantry jobs ls`, chain},
		{"unknown deployment", []string{"deployments", "show", "d-nosuchdeployment"}, nil, 1,
			`Error: deployment "d-nosuchdeployment" not found; recent deployments: d-`, chain},
		{"unknown schedule", []string{"schedule", "rm", "s-nosuchschedule"}, nil, 1,
			`Error: schedule "s-nosuchschedule" not found; there are no schedules. List them with: gantry schedule ls`, chain},
		{"unknown API token", []string{"token", "rm", "nosuchtoken"}, nil, 1, `API token "nosuchtoken" not found; API tokens: `, chain},
		{"unknown join token", []string{"token", "rm", "jt-nosuchtoken"}, nil, 1, `join token "jt-nosuchtoken" not found; `, chain},
		{"bad selector", []string{"hosts", "ls", "--selector", "role=web,,zone"}, nil, 2,
			`Error: invalid selector "role=web,,zone": at column 10: expected a label key`, none},
		{"bad selector in run", []string{"run", "--selector", "role in (a", "--", "true"}, nil, 2,
			`Error: invalid selector "role in (a": at column 11: unterminated value list`, none},
		{"bad selector in group create", []string{"group", "create", "shop", "g3", "--selector", "role in (a"}, nil, 2,
			`Error: invalid selector "role in (a": at column 11: unterminated value list`, none},
		{"bad cron", []string{"schedule", "create", "--cron", "bad cron", "--selector", "role=m", "--", "true"}, nil, 2,
			`cron: "bad cron": expected exactly 5 fields, found 2`, none},
		{"push a dir without appspec.yml", []string{"push", "shop", empty}, nil, 1,
			"has no appspec.yml at its root: a bundle is a directory, .tar.gz or .zip with an AWS CodeDeploy appspec.yml at its root", none},
		{"push a file that is not an archive", []string{"push", "shop", notArchive}, nil, 1,
			"notes.txt is not a .tar.gz or .zip file: PATH is a directory, or a .tar.gz or .zip file, with appspec.yml at its root", none},
		{"push a missing path", []string{"push", "shop", filepath.Join(empty, "nope")}, nil, 2, "no such file or directory", none},
		// The same kind of problem (the bundle's content) exits 1 whether
		// the CLI found it (appspec.yml) or the server did (scripts,
		// archive safety).
		{"bad appspec.yml (found by the CLI)", []string{"push", "shop", badSpec}, nil, 1, `did you mean "AfterInstall"`, none},
		{"missing hook script (found by the server)", []string{"push", "shop", noScript}, nil, 1,
			`Error: invalid bundle: appspec.yml: hooks.ApplicationStart[0].location "scripts/missing.sh": not a script in the bundle (no such file)`, none},
		{"unsafe archive (found by the server)", []string{"push", "shop", hostile}, nil, 1, "Error: invalid bundle: unsafe or unreadable bundle: ", none},
		{"empty group selector", []string{"group", "create", "shop", "all", "--selector", ""}, nil, 2,
			"Error: --selector is required: give a label selector such as 'role=web' (a group is the hosts it selects, so it cannot be empty)", none},
		{"bad --config", []string{"group", "create", "shop", "g2", "--selector", "role=m", "--config", "Bogus"}, nil, 2,
			`unknown deployment configuration "Bogus": use OneAtATime, HalfAtATime, AllAtOnce`, none},
		{"--config and --min-healthy", []string{"deploy", "shop", "nomatch", "--config", "AllAtOnce", "--min-healthy", "1"}, nil, 2,
			"Error: --config and --min-healthy are exclusive", none},
		{"bad --timeout", []string{"run", "--selector", "role=m", "--timeout", "5y", "--", "true"}, nil, 2,
			`Error: invalid argument "5y" for "--timeout" flag`, none},
		{"run without a script", []string{"run", "--selector", "role=m"}, nil, 2,
			"Error: missing script: give it after -- (as in: -- uptime) or with --script FILE", none},
		{"run without a selector", []string{"run", "--", "true"}, nil, 2,
			"Error: --selector is required: give a label selector such as 'role=web', or --selector '' for all hosts", none},
		{"unknown command", []string{"hots", "ls"}, nil, 2, `Error: unknown command "hots" for "gantry" (did you mean "hosts"?)`, none},
		{"canary without a load balancer", []string{"deploy", "shop", "nomatch", "--strategy", "canary"}, nil, 1,
			`Error: strategy canary needs a deployment group with a load balancer; group "nomatch" has none: give it one with: gantry group update shop nomatch --lb HOST/BACKEND`, none},
		{"blue-green without a load balancer", []string{"deploy", "shop", "nomatch", "--strategy", "blue-green", "--replacement-selector", "color=green"}, nil, 1,
			`Error: strategy blue-green needs a deployment group with a load balancer; group "nomatch" has none`, none},
		{"bad --canary-steps", []string{"deploy", "shop", "nomatch", "--strategy", "canary", "--canary-steps", "10"}, nil, 2,
			`Error: invalid --canary-steps step 1 "10": want WEIGHT:PAUSE such as 10:30s`, none},
		{"lb show of a group without one", []string{"lb", "show", "--app", "shop", "--group", "nomatch"}, nil, 1,
			"Error: group shop/nomatch has no load balancer. Put it behind one with: gantry group update shop nomatch --lb HOST/BACKEND", none},
		{"lb show of an unknown environment", []string{"lb", "show", "nosuchenv"}, nil, 1, `Error: environment "nosuchenv" not found`, none},
		{"group --lb without a backend", []string{"group", "update", "shop", "nomatch", "--lb", "lbhost"}, nil, 2, "Error: invalid --lb", none},
		{"deploy without arguments", []string{"deploy"}, nil, 2, "Error: missing APP GROUP argument", none},
		{"deploy without a group", []string{"deploy", "shop"}, nil, 2, "Error: missing GROUP argument", none},
		{"wrong --output", []string{"app", "ls", "-o", "yaml"}, nil, 2,
			`Error: invalid argument "yaml" for "-o, --output" flag: must be one of: table, json`, none},
		{"bad --limit", []string{"jobs", "ls", "--limit", "-1"}, nil, 2, "Error: invalid --limit -1: must be 0 or more", none},
		{"label without changes", []string{"hosts", "label", "m1"}, nil, 2, "Error: missing label changes: give KEY=VALUE to set or KEY- to remove", none},
		// Rows for what other parts of the CLI added (flag suggestions,
		// --env everywhere, object removal).
		{"terraform's -auto-approve", []string{"apply", "-auto-approve", "--env", "x"}, nil, 2, "did you mean --auto-approve?", none},
		{"mistyped flag", []string{"hosts", "ls", "--selecter", "role=m"}, nil, 2, "Error: unknown flag: --selecter (did you mean --selector?)", none},
		{"mistyped --env", []string{"env", "show", "--env", "nosuchenv"}, nil, 1, `Error: environment "nosuchenv" not found; there are no environments (gantry up DIR --env nosuchenv creates one)`, none},
		{"app rm of an unknown app", []string{"app", "rm", "nosuchapp9"}, nil, 1, `Error: app "nosuchapp9" not found; apps: `, none},
		{"app rm of an app in use", []string{"app", "rm", "shop"}, nil, 1, `Error: app "shop" is in use by deployment group`, none},
		{"unreadable --script", []string{"run", "--selector", "role=m", "--script", filepath.Join(empty, "nope.sh")}, nil, 2, "Error: --script: ", none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append(c.cliEnv(), tc.env...), tc.args...)
			if r.code != tc.wantExit || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("gantry %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.wantExit, tc.want)
			}
			noInternals(t, r)
			if tc.follow != none {
				followHints(t, c, r, fill, tc.follow)
			}
		})
	}

	// A bad --config file: the global flag that names the CLI's profile.
	t.Run("bad profile file", func(t *testing.T) {
		r := runCLI(t, []string{"GANTRY_CONFIG=" + badConfig, "GANTRY_SERVER=", "GANTRY_TOKEN="}, "app", "ls")
		want := "Error: profile " + badConfig + " is not valid JSON (fix or delete it, then run 'gantry login')"
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("a malformed profile: exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, want)
		}
	})
}

// hintRE finds a hint: the command after "with: " (or "with their
// labels: ") at the end of a line.
var hintRE = regexp.MustCompile(`with(?: their labels)?: (gantry [^\n]+)`)

// follow says how far a test follows a message's hints.
type follow int

const (
	none  follow = iota
	once         // run the hint; it must succeed
	chain        // run the hint, then the command again, until it succeeds
)

// followHints follows r's hint, which must succeed. In a chain it then runs
// r's command again: a hint that lists ("List them with: gantry … ls")
// ends there, one that makes something ("Create it …", "Push one …") must
// lead on, until the command succeeds.
func followHints(t *testing.T, c *cluster, r result, fill *strings.Replacer, how follow) {
	t.Helper()
	for step := 0; step < 5; step++ {
		m := hintRE.FindStringSubmatch(r.stderr)
		if m == nil {
			t.Fatalf("gantry %s: no hint to follow in:\n%s", strings.Join(r.args, " "), r.stderr)
		}
		hint := strings.Fields(fill.Replace(m[1]))[1:]
		h := c.gantry(hint...)
		if h.code != 0 {
			t.Fatalf("following the hint %q of `gantry %s`: exit %d\n%s%s", m[1], strings.Join(r.args, " "), h.code, h.stdout, h.stderr)
		}
		noInternals(t, h)
		if how == once || slices.Contains(hint, "ls") || hint[0] == "revisions" {
			return // a listing: it worked, the user reads it
		}
		r = c.gantry(r.args...)
		if r.code == 0 {
			return
		}
		noInternals(t, r)
	}
	t.Fatalf("gantry %s: still failing after following 5 hints:\n%s", strings.Join(r.args, " "), r.stderr)
}

// noInternals fails when a message shows SQL driver text or a server path.
func noInternals(t *testing.T, r result) {
	t.Helper()
	for _, leak := range []string{"constraint failed", "UNIQUE", "SQLSTATE", "(1555)", "sqlite", "pq:", "gantry-push-", "/rev-", "internal error"} {
		if strings.Contains(r.stderr, leak) {
			t.Errorf("gantry %s: stderr shows internals (%q):\n%s", strings.Join(r.args, " "), leak, r.stderr)
		}
	}
}

// The same duplicates on PostgreSQL: its unique violations read as
// SQLite's do, without the driver's text.
func TestUserMistakesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a server and an agent")
	}
	c := newCluster(t, clusterOpts{database: pgtest.FreshSchema(t)})
	c.gantry("app", "create", "shop").ok(t)
	c.gantry("group", "create", "shop", "web", "--selector", "role=web").ok(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"app", "create", "shop"}, `Error: app "shop" already exists: pick another name, or push to it with: gantry push shop DIR`},
		{[]string{"group", "create", "shop", "web", "--selector", "role=web"}, `Error: group "web" of app "shop" already exists: pick another name, or deploy to it with: gantry deploy shop web`},
		{[]string{"deploy", "nosuchapp", "prod"}, `Error: app "nosuchapp" not found; apps: shop. Create it with: gantry app create nosuchapp`},
	} {
		r := c.gantry(tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("gantry %s: exit %d, stderr:\n%s\nwant exit 1 and %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
		noInternals(t, r)
	}
}
