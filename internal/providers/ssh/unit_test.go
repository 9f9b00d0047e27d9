package ssh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// systemd-analyze checks the rendered unit where it is installed (it needs
// no running systemd).
func TestRenderUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if testing.Short() {
			t.Skip("no systemd-analyze; skipped with -short")
		}
		t.Fatal("this test needs systemd-analyze: apt-get install -y systemd (make test installs it)")
	}
	dir := t.TempDir()
	if err := checkAgentDir(dir); err != nil {
		t.Skipf("temp dir unusable as agent_dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gantry"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.env"), []byte("GANTRY_JOIN_TOKEN='gjt_x'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text, err := renderUnit("test-web-0", dir, []string{"agent", "--server", "http://10.0.0.1:7070/a%20b?$x", "--name", "test-web-0", "--data-dir", dir + "/data"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), unitName("test-web-0"))
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", file).CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("systemd-analyze verify: %v:\n%s\n%s", err, out, text)
	}
}

// The systemd branch of the scripts, run locally with a systemctl that
// records its arguments (the test host has no systemd).
func TestSystemdScripts(t *testing.T) {
	bin := t.TempDir()
	log := filepath.Join(bin, "systemctl.log")
	fake := "#!/bin/sh\necho \"$*\" >> " + quote(log) + "\nexit 0\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "agent")
	// Unique: delete removes /etc/systemd/system/UNIT, which must not exist.
	unit := unitName("test-" + randomHex(8))
	run := func(script string, args ...string) string {
		t.Helper()
		line, err := remoteCommand(script, args...)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-c", line)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	run(prepareScript, dir, "test-web-0")
	run(systemdStartScript, dir, unit, "test-web-0")
	if got := string(mustRead(t, filepath.Join(dir, markerFile))); got != "mode=systemd\nname=test-web-0\nunit="+unit+"\n" {
		t.Errorf("marker = %q", got)
	}
	if got := run(readScript, dir); got != "state=running\n" {
		t.Errorf("read = %q", got)
	}
	run(deleteScript, dir)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir after delete: %v", err)
	}
	want := strings.Join([]string{
		"daemon-reload", "enable --quiet " + unit, "restart " + unit, "is-active --quiet " + unit, // start
		"is-active --quiet " + unit,                  // read
		"disable --now " + unit, "daemon-reload", "", // delete
	}, "\n")
	if got := string(mustRead(t, log)); got != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", got, want)
	}
}
