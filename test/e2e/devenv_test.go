package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/agent/agentenv"
)

// Dev-mode agents start with a scrubbed environment: nothing of the
// server's environment (its admin token, database URL, any other secret)
// reaches them, so a job cannot read it from /proc/$PPID/environ.
func TestDevAgentsScrubbedEnvironment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev server")
	}
	dir := t.TempDir()
	const (
		adminToken = "gat_e2escrubbedenvironment0123456789"
		secret     = "e2e-server-only-secret"
	)
	p := start(t, []string{"GANTRY_ADMIN_TOKEN=" + adminToken, "E2E_SERVER_SECRET=" + secret},
		"server", "--dev", "--data-dir", filepath.Join(dir, "data"), "--listen", freeAddr(t), "--nats-listen", freeAddr(t))
	eventually(t, 20*time.Second, "dev banner", func() (bool, string) {
		if p.exited() {
			t.Fatalf("dev server exited: %v\n%s", p.err, p.out)
		}
		return strings.Contains(p.out.String(), "gantry dev server ready"), ""
	})
	agents := childProcs(t, p.cmd.Process.Pid, " agent ")
	if len(agents) != 3 {
		t.Fatalf("found %d dev agent processes under the server (pid %d), want 3", len(agents), p.cmd.Process.Pid)
	}
	for _, pid := range agents {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			t.Fatalf("read agent %d environment: %v", pid, err)
		}
		for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
			if strings.Contains(kv, adminToken) || strings.Contains(kv, secret) {
				t.Errorf("dev agent %d inherited the server's %q", pid, kv)
			}
			// Nothing beyond the minimal set (and a join token on first start).
			if k, _, _ := strings.Cut(kv, "="); !slices.Contains(agentenv.Kept, k) && k != "GANTRY_JOIN_TOKEN" {
				t.Errorf("dev agent %d has %q, beyond the minimal environment", pid, kv)
			}
		}
		if !strings.Contains(string(b), "PATH=") {
			t.Errorf("dev agent %d has no PATH: %q", pid, b)
		}
	}
}

// childProcs returns the pids of pid's children whose command line
// contains substr.
func childProcs(t *testing.T, pid int, substr string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after ")".
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat)[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), substr) {
			out = append(out, child)
		}
	}
	return out
}
