package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Hooks run as CodeDeploy's agent runs them: the agent executes the hook
// file (made executable in its own copy), so its "#!" line picks the
// interpreter, with the file's absolute path as $0; a file without one runs
// under /bin/sh. The hooks here are not executable in the bundle.
//
// The revision's copies kept on the host are private: a file the appspec's
// permissions install 0600 has no world-readable copy under the agent's
// data directory.
func TestHooksRunAsCodeDeploy(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatalf("this test needs Debian's python3 (scripts/test-deps.sh installs it): %v", err)
	}
	if _, err := os.Stat("/bin/bash"); err != nil {
		t.Fatalf("this test needs /bin/bash: %v", err)
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{})
	// The join token pins the label (agents may not choose their own).
	c.startDeployAgent("hk", "", c.joinToken("--labels", "role=hk"))
	c.waitHost("hk", api.HostOnline, 15*time.Second)
	c.gantry("app", "create", "hookrun").ok(t)
	c.createGroup("hookrun", "g", "--selector", "role=hk", "--no-auto-rollback")

	out := t.TempDir()
	const secret = "password=hunter2\n"
	files := map[string]string{
		"appspec.yml": `version: 0.0
os: linux
files:
  - source: app
    destination: /srv/hookrun
permissions:
  - object: /srv/hookrun/secret.conf
    mode: "0600"
hooks:
  BeforeInstall:
    - location: scripts/bash.sh
  AfterInstall:
    - location: scripts/python.py
  ApplicationStart:
    - location: scripts/plain.sh
`,
		"app/secret.conf": secret,
		// Under dash the array is a syntax error, `[[` is not found, and
		// `&>` runs ls in the background and truncates amp.txt.
		"scripts/bash.sh": `#!/bin/bash
set -e
arr=(alpha "beta gamma")
[[ ${#arr[@]} -eq 2 && ${arr[1]} == "beta gamma" ]]
echo "bash:${arr[1]}:$0:$(readlink /proc/$$/exe)" > '` + out + `/bash.txt'
ls /nonexistent-gantry-path &> '` + out + `/amp.txt' || true
echo after >> '` + out + `/amp.txt'
`,
		"scripts/python.py": `#!/usr/bin/env python3
import os, sys
with open(os.path.join("` + out + `", "python.txt"), "w") as f:
    f.write("python%d:%s:%s\n" % (sys.version_info[0], os.environ["LIFECYCLE_EVENT"], sys.argv[0]))
`,
		"scripts/plain.sh": `echo "sh:$LIFECYCLE_EVENT:$0:$(readlink /proc/$$/exe)" > '` + out + `/plain.txt'
`,
	}
	src := writeBundle(t, files)
	for name := range files {
		if strings.HasPrefix(name, "scripts/") {
			if err := os.Chmod(filepath.Join(src, name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := c.gantry("push", "hookrun", src, "-o", "json")
	r.ok(t)
	var pushed api.Revision
	if err := json.Unmarshal([]byte(r.stdout), &pushed); err != nil || pushed.ID == "" {
		t.Fatalf("push: %v\n%s", err, r.stdout)
	}
	rev := pushed.ID
	d := c.deployWait(0, "deploy", "hookrun", "g", "--revision", rev)
	if d.State != api.DeploySucceeded {
		t.Fatalf("deployment %s: %s", d.State, d.Error)
	}

	// $0 is the hook's absolute path in the agent's copy of the revision.
	revDir := filepath.Join(c.agentDir("hk"), "deployments", "hookrun", rev+"-")
	read := func(name string) []string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("%s was not written: %v", name, err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), ":")
	}
	checkPath := func(what, p, script string) {
		t.Helper()
		if !strings.HasPrefix(p, revDir) || !strings.HasSuffix(p, "/"+script) {
			t.Errorf("%s hook: $0 = %q, want %s*/%s", what, p, revDir, script)
		}
	}
	if f := read("bash.txt"); len(f) != 4 || f[0] != "bash" || f[1] != "beta gamma" || f[3] != "/usr/bin/bash" {
		t.Errorf("bash hook wrote %q, want bash:beta gamma:<path>:/usr/bin/bash", f)
	} else {
		checkPath("bash", f[2], "scripts/bash.sh")
	}
	// `&>` redirected both streams synchronously: ls's error, then "after".
	if b, _ := os.ReadFile(filepath.Join(out, "amp.txt")); !strings.HasPrefix(string(b), "ls: ") || !strings.HasSuffix(string(b), "\nafter\n") {
		t.Errorf("amp.txt = %q, want ls's error then \"after\" (bash's &>)", b)
	}
	if f := read("python.txt"); len(f) != 3 || f[0] != "python3" || f[1] != "AfterInstall" {
		t.Errorf("python hook wrote %q, want python3:AfterInstall:<path>", f)
	} else {
		checkPath("python", f[2], "scripts/python.py")
	}
	if f := read("plain.txt"); len(f) != 4 || f[0] != "sh" || f[1] != "ApplicationStart" || f[3] != sh {
		t.Errorf("hook without #! wrote %q, want sh:ApplicationStart:<path>:%s", f, sh)
	} else {
		checkPath("plain", f[2], "scripts/plain.sh")
	}

	// The installed secret is 0600, and none of its copies (the agent's
	// revision copy, the bundle) can be read by others: each has a 0700
	// directory (or the file's own mode) in the way below the data dir.
	data := c.agentDir("hk")
	if fi, err := os.Stat(filepath.Join(c.installRoot("hk"), "srv/hookrun/secret.conf")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("installed secret: %v %v, want mode 0600", fi, err)
	}
	copies := 0
	err = filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != secret {
			return nil
		}
		copies++
		if othersCanRead(t, data, p) {
			t.Errorf("%s is readable by others", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if copies < 2 {
		t.Errorf("found %d copies of the secret under %s, want the installed file and the agent's copy at least", copies, data)
	}
}

// othersCanRead reports whether users other than the owner and group can
// read path: it has o+r and every directory below base (excluded) on the
// way to it has o+x.
func othersCanRead(t *testing.T, base, path string) bool {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o004 == 0 {
		return false
	}
	for d := filepath.Dir(path); d != base && strings.HasPrefix(d, base+"/"); d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm()&0o001 == 0 {
			return false
		}
	}
	return true
}
