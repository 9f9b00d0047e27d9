package lifecycle

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/agent/executor"
)

// The agent's copies of a revision are private: Root, the application's
// directory and the revisions are 0700, even when an older agent made them
// 0755, although a file the appspec's permissions install 0600 is 0644 in
// the copy.
func TestKeptRevisionsArePrivate(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "deployments")
	if err := os.MkdirAll(filepath.Join(root, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.runner.Root = root
	const secret = "password=hunter2\n"
	spec := `version: 0.0
os: linux
files:
  - source: app
    destination: /etc/web
permissions:
  - object: /etc/web/secret.conf
    mode: "0600"
`
	for i := 0; i < 2; i++ { // the previous revision's copy is checked too
		res, _ := e.deploy(pack(t, map[string]file{
			"appspec.yml":     {body: spec},
			"app/secret.conf": {body: secret, mode: 0o644},
		}), false)
		if !res.Succeeded {
			t.Fatalf("deploy %d: %+v", i, res)
		}
	}
	if fi, err := os.Stat(e.dest("/etc/web/secret.conf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("installed file: %v %v, want mode 0600", fi, err)
	}
	dirs := []string{root, filepath.Join(root, "web")}
	revs, _ := filepath.Glob(filepath.Join(root, "web", "r*-*"))
	if len(revs) != 2 {
		t.Fatalf("revision directories %v, want 2", revs)
	}
	for _, d := range append(dirs, revs...) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want mode 0700", d, fi, err)
		}
	}
	// The copy keeps the bundle's mode: only its directories keep it private
	// (test/e2e checks every copy under an agent's data directory).
	if fi, err := os.Stat(filepath.Join(e.prev.Dir, "app", "secret.conf")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the revision's copy: %v %v, want mode 0644 as in the bundle", fi, err)
	}
}

// A hook file without the executable bit is made executable in the
// agent's copy and executed: its "#!" line picks the interpreter.
func TestHookExecutedByShebang(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "out")
	script := "#!/bin/bash\na=(one two)\nif [[ ${a[1]} == two ]]; then echo \"bash $0\" > " + out + "; fi\n"
	res, _ := e.deploy(pack(t, map[string]file{
		"appspec.yml":   {body: "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: hooks/b.sh\n"},
		"hooks/b.sh":    {body: script, mode: 0o644},
		"hooks/data.sh": {body: "unused", mode: 0o600},
	}), false)
	if !res.Succeeded {
		t.Fatalf("failed: %+v", res)
	}
	hook := filepath.Join(res.Installed.Dir, "hooks", "b.sh")
	if b, err := os.ReadFile(out); err != nil || string(b) != "bash "+hook+"\n" {
		t.Fatalf("hook output %q %v, want %q", b, err, "bash "+hook+"\n")
	}
	if fi, err := os.Stat(hook); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("hook in the agent's copy: %v %v, want mode 0755", fi, err)
	}
	// Only the hooks run are touched.
	if fi, err := os.Stat(filepath.Join(res.Installed.Dir, "hooks", "data.sh")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("other file: %v %v, want mode 0600", fi, err)
	}
}

// A hook with runas reaches its script and its revision although the
// revision is private: its user, and no other, gets ACL entries on the way.
func TestRunAsReachesPrivateRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("runs hooks as other users (needs root)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test runs hooks as user nobody: it needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("this test needs the user nobody: %v", err)
	}
	if _, err := user.Lookup("daemon"); err != nil {
		t.Fatalf("this test needs the user daemon: %v", err)
	}
	base := t.TempDir() // 0700, as is its parent: Traverse opens them to nobody
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.runner.Root = filepath.Join(base, "deployments")
	e.runner.Traverse = []string{filepath.Dir(base), base}
	script := "#!/bin/sh\nid -u > " + out + "/uid\ncat data.txt > " + out + "/data\n"
	res, _ := e.deploy(pack(t, map[string]file{
		"appspec.yml":  {body: "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: hooks/who.sh\n      runas: nobody\n"},
		"hooks/who.sh": {body: script, mode: 0o644},
		"data.txt":     {body: "shared\n"},
	}), false)
	if !res.Succeeded {
		t.Fatalf("failed: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(out, "uid")); err != nil || strings.TrimSpace(string(b)) != nobody.Uid {
		t.Errorf("the hook ran as uid %q (%v), want nobody's %s", b, err, nobody.Uid)
	}
	if b, err := os.ReadFile(filepath.Join(out, "data")); err != nil || string(b) != "shared\n" {
		t.Errorf("the hook read %q (%v) from its revision", b, err)
	}
	// Another user, even with the directories above Root open to all,
	// cannot read the revision.
	for _, d := range e.runner.Traverse {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	r := executor.Run(context.Background(), executor.Spec{Script: `cat "$F"`, User: "daemon",
		Env: []string{"F=" + filepath.Join(res.Installed.Dir, "data.txt")}}, nil)
	if r.Err != "" || r.ExitCode == 0 {
		t.Errorf("user daemon read the private revision: %+v (stdout %q)", r, r.Stdout)
	}
	r = executor.Run(context.Background(), executor.Spec{Script: `cat "$F"`, User: "nobody",
		Env: []string{"F=" + filepath.Join(res.Installed.Dir, "data.txt")}}, nil)
	if r.Err != "" || r.ExitCode != 0 {
		t.Errorf("nobody (the runas user) cannot read its revision: %+v (stderr %q)", r, r.Stderr)
	}
	// The application's next step, without runas, takes the access back.
	if res2, _ := e.deploy(pack(t, map[string]file{"appspec.yml": {body: "version: 0.0\nos: linux\n"}}), false); !res2.Succeeded {
		t.Fatalf("second deployment failed: %+v", res2)
	}
	r = executor.Run(context.Background(), executor.Spec{Script: `cat "$F"`, User: "nobody",
		Env: []string{"F=" + filepath.Join(res.Installed.Dir, "data.txt")}}, nil)
	if r.Err != "" || r.ExitCode == 0 {
		t.Errorf("nobody still reads the earlier revision after the next step: %+v", r)
	}
}
