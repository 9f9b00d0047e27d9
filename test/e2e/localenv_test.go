package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Agents the local provider starts get a minimal environment, not the
// server's: a job on such a machine finds the admin token neither in its
// own environment nor in its parent's (the agent's) /proc/PID/environ.
func TestLocalAgentEnvironmentIsScrubbed(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	// The server really has the token: the check below means something.
	if env, err := os.ReadFile("/proc/" + strconv.Itoa(c.server.cmd.Process.Pid) + "/environ"); err != nil || !strings.Contains(string(env), c.token) {
		t.Fatalf("the server's environment lacks the admin token (%v): the test would prove nothing", err)
	}
	trace := t.TempDir()
	dir := writeBundle(t, map[string]string{
		"main.hcl": `
variable "trace" { type = string }
provider "local" "here" {}
group "box" {
  provider = provider.local.here
  labels   = { role = "box" }
  setup    = "cat /proc/self/environ > ${var.trace}/self && cat /proc/$PPID/environ > ${var.trace}/parent && cat /proc/$PPID/cmdline > ${var.trace}/parent-cmdline"
}
`,
		"envs/scrub.hcl": "trace = \"" + trace + "\"\n",
	})
	c.gantryWithin(90*time.Second, "up", dir, "--env", "scrub", "--timeout", "60s").ok(t)
	t.Cleanup(func() { c.gantryWithin(60*time.Second, "destroy", "--env", "scrub", "--auto-approve") })

	read := func(name string) []string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(trace, name))
		if err != nil {
			t.Fatalf("the setup script did not write %s: %v", name, err)
		}
		return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	self, parent := read("self"), read("parent")
	// The parent is the machine's agent, and its environment was read.
	if cmd := strings.Join(read("parent-cmdline"), " "); !strings.Contains(cmd, " agent ") || !strings.Contains(cmd, "--name scrub-box-0") {
		t.Fatalf("the job's parent is %q, want the machine's agent", cmd)
	}
	for what, env := range map[string][]string{"the job's own": self, "its parent agent's": parent} {
		for _, kv := range env {
			if strings.Contains(kv, c.token) || strings.HasPrefix(kv, "GANTRY_ADMIN_TOKEN=") {
				t.Errorf("%s environment holds the admin token: %q", what, kv)
			}
		}
	}
	// The agent's environment is the minimal one: nothing but these.
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "LC_ALL": true, "TZ": true, "GANTRY_JOIN_TOKEN": true}
	for _, kv := range parent {
		if k, _, _ := strings.Cut(kv, "="); !allowed[k] {
			t.Errorf("the agent's environment has %q, beyond the minimal set", k)
		}
	}
}
