package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagSuggestions: a mistyped flag suggests the closest one, and
// Terraform's single-dash -auto-approve suggests --auto-approve; both are
// usage errors (exit 2) that never reach the server.
func TestFlagSuggestions(t *testing.T) {
	f := newFakeServer(t)
	cases := []struct {
		args  []string
		wants []string
	}{
		{[]string{"run", "--selecter", "role=web", "--", "true"}, []string{"unknown flag: --selecter (did you mean --selector?)", "Run 'gantry run --help'"}},
		{[]string{"apply", "-auto-approve"}, []string{"unknown shorthand flag 'a' in -auto-approve: did you mean --auto-approve?"}},
		{[]string{"destroy", "--env", "dev", "-auto-approve"}, []string{"unknown shorthand flag 'a' in -auto-approve: did you mean --auto-approve?"}},
		{[]string{"plan", "--env", "dev", "-detailed-exitcode"}, []string{"did you mean --detailed-exitcode?"}},
		{[]string{"hosts", "ls", "--servr", "x"}, []string{"unknown flag: --servr (did you mean --server?)"}},
		{[]string{"plan", "--env", "dev", "-out", "p.json"}, []string{`(-out was read as -o ut: did you mean --out?)`}},
		{[]string{"hosts", "ls", "--zzzzzzzz"}, []string{"unknown flag: --zzzzzzzz\n"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := f.gantry(t, nil, tc.args...)
			r.expect(t, 2, tc.wants...)
			if strings.Contains(tc.args[len(tc.args)-1], "zzz") && strings.Contains(r.stderr, "did you mean") {
				t.Errorf("no flag is close to --zzzzzzzz, yet: %s", r.stderr)
			}
		})
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("flag errors must not reach the server; it saw %d requests", n)
	}
}

// TestAutoApproveAccepted: every command that changes something accepts
// --auto-approve (those that never ask ignore it).
func TestAutoApproveAccepted(t *testing.T) {
	f := newFakeServer(t)
	for _, args := range [][]string{
		{"hosts", "rm"}, {"token", "rm"}, {"schedule", "rm"}, {"app", "rm"}, {"group", "rm"}, {"env", "rm"},
		{"app", "create"}, {"group", "update"}, {"deployments", "stop"}, {"hosts", "label"},
		{"deploy"}, {"rollback"}, {"push"}, {"scale"},
	} {
		r := f.gantry(t, nil, append(args, "--auto-approve")...)
		if strings.Contains(r.stderr, "unknown flag") || r.code != 2 {
			t.Errorf("gantry %s --auto-approve: exit %d, want the missing argument's usage error:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	r := f.gantry(t, nil, "hosts", "ls", "--auto-approve")
	r.expect(t, 2, "unknown flag: --auto-approve")
}

func TestClosestName(t *testing.T) {
	names := []string{"selector", "server", "env", "auto-approve", "output"}
	for typed, want := range map[string]string{"selecter": "selector", "auto-aprove": "auto-approve", "auto-approve": "auto-approve", "outptu": "output", "nothing-like-it": "", "srver": "server"} {
		if got := closestName(typed, names); got != want {
			t.Errorf("closestName(%q) = %q, want %q", typed, got, want)
		}
	}
}

// TestRootHelpGroups: the root help lists commands under their groups and
// its description covers deployments and environments.
func TestRootHelpGroups(t *testing.T) {
	r := (*fakeServer)(nil).gantry(t, nil, "--help")
	r.expect(t, 0, "Fleet:", "Deployments:", "Environments:", "Server and setup:", "deployment groups", "environments from HCL")
	out := r.stdout
	order := []string{"Fleet:", "hosts", "Deployments:", "deploy ", "Environments:", "destroy", "Server and setup:", "server "}
	pos := 0
	for _, s := range order {
		i := strings.Index(out[pos:], s)
		if i < 0 {
			t.Fatalf("root help: %q not found after offset %d:\n%s", s, pos, out)
		}
		pos += i
	}
	if strings.Contains(out, "Additional Commands:") {
		t.Errorf("a command has no group:\n%s", out)
	}
}

// TestEnvArgConflicts: env show and env outputs take --env or the
// positional name; both and different is a usage error.
func TestEnvArgConflicts(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "env", "show", "dev", "--env", "prod")
	r.expect(t, 2, `environment given twice: --env prod and argument "dev"`)
	r = f.gantry(t, nil, "env", "show")
	r.expect(t, 2, "--env is required")
	r = f.gantry(t, nil, "env", "outputs", "dev", "url", "--env", "prod")
	r.expect(t, 2, `environment given twice: --env prod and argument "dev"`)
	if n := f.requestCount(); n != 0 {
		t.Errorf("usage errors must not reach the server; it saw %d requests", n)
	}
}

// TestScaleDestroyDirArgs: scale and destroy accept a DIR; a missing
// directory or a DIR without GROUP=N is a usage error.
func TestScaleDestroyDirArgs(t *testing.T) {
	f := newFakeServer(t)
	dir := t.TempDir()
	r := f.gantry(t, nil, "scale", "--env", "dev")
	r.expect(t, 2, "missing GROUP=N argument (e.g. web=4)")
	r = f.gantry(t, nil, "scale", dir, "--env", "dev")
	r.expect(t, 2, "missing GROUP=N argument after the directory")
	r = f.gantry(t, nil, "scale", filepath.Join(dir, "nope"), "--env", "dev", "web=2")
	r.expect(t, 2, "definition directory", "nope")
	r = f.gantry(t, nil, "destroy", filepath.Join(dir, "nope"), "--env", "dev")
	r.expect(t, 2, "definition directory", "nope")
	r = f.gantry(t, nil, "destroy", dir, "--env", "dev")
	r.expect(t, 2, "has no *.hcl file")
	r = f.gantry(t, nil, "destroy", "a", "b", "--env", "dev")
	r.expect(t, 2, `unexpected argument "b"`)
	if n := f.requestCount(); n != 0 {
		t.Errorf("usage errors must not reach the server; it saw %d requests", n)
	}
}

// TestWarnEnvFile: a definition with envs/ but no envs/NAME.hcl gets a
// warning naming the file and the ones that exist; none without envs/.
func TestWarnEnvFile(t *testing.T) {
	dir := t.TempDir()
	var errb bytes.Buffer
	a := newApp(&bytes.Buffer{}, &errb, func(string) string { return "" })
	a.warnEnvFile(dir, "stagign")
	if errb.Len() != 0 {
		t.Fatalf("warning without envs/: %s", errb.String())
	}
	if err := os.MkdirAll(filepath.Join(dir, "envs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"dev", "staging"} {
		if err := os.WriteFile(filepath.Join(dir, "envs", n+".hcl"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a.warnEnvFile(dir, "staging")
	if errb.Len() != 0 {
		t.Fatalf("warning for an existing file: %s", errb.String())
	}
	a.warnEnvFile(dir, "stagign")
	want := "Warning: " + filepath.Join(dir, "envs", "stagign.hcl") + ` does not exist: environment "stagign" gets the variables' defaults and --var values only (variable files for: dev, staging)`
	if strings.TrimSpace(errb.String()) != want {
		t.Errorf("warning:\n got %s\nwant %s", errb.String(), want)
	}
}
