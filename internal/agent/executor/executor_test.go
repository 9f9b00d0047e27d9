package executor

import (
	"bytes"
	"context"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	state := data[i+2]
	return state == 'Z' || state == 'X'
}

// waitGone polls until pid is gone or the deadline passes.
func waitGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPID polls for a pid written by a script into path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatalf("bad pid file %q: %v", data, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file %s not written", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func killGroup(t *testing.T, pid int) {
	t.Cleanup(func() {
		if pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
}

func TestRunExitCodesAndOutput(t *testing.T) {
	tests := []struct {
		name           string
		script         string
		code           int
		stdout, stderr string
	}{
		{"success", "echo hello", 0, "hello\n", ""},
		{"empty script", "", 0, "", ""},
		{"exit code and stderr", "echo out; echo oops >&2; exit 3", 3, "out\n", "oops\n"},
		{"quotes are script text, not arguments", `x='it'"'"'s'; echo "$x \$HOME \"q\" ; rm -rf /nonexistent-gantry"`, 0, "it's $HOME \"q\" ; rm -rf /nonexistent-gantry\n", ""},
		{"multi-line", "set -e\necho one\nfalse\necho never", 1, "one\n", ""},
		{"killed by own signal", "echo before; kill -TERM $$; echo after", 128 + int(syscall.SIGTERM), "before\n", ""},
		{"stdin is empty", "cat; echo done", 0, "done\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := Run(context.Background(), Spec{Script: tt.script, Timeout: time.Minute}, nil)
			if res.Err != "" {
				t.Fatalf("Err = %q", res.Err)
			}
			if res.ExitCode != tt.code {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, tt.code)
			}
			if string(res.Stdout) != tt.stdout || string(res.Stderr) != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q and %q", res.Stdout, res.Stderr, tt.stdout, tt.stderr)
			}
			if res.TimedOut || res.Canceled || res.StdoutTruncated || res.StderrTruncated {
				t.Errorf("unexpected flags: %+v", res)
			}
			if res.PID <= 0 {
				t.Errorf("PID = %d", res.PID)
			}
			if res.Started.Before(start) || res.Finished.Before(res.Started) {
				t.Errorf("bad times: start %v finished %v", res.Started, res.Finished)
			}
		})
	}
}

func TestScriptFromMemory(t *testing.T) {
	dir := t.TempDir()
	script := "cat \"$0\"\necho \"$0\"\n"
	res := Run(context.Background(), Spec{Script: script, Dir: dir}, nil)
	if res.Err != "" || res.ExitCode != 0 {
		t.Fatalf("run failed: %+v", res)
	}
	rest, ok := strings.CutPrefix(string(res.Stdout), script)
	if !ok {
		t.Fatalf("the shell did not read the script verbatim; output %q", res.Stdout)
	}
	if rest != "/dev/fd/3\n" {
		t.Errorf("script path %q, want /dev/fd/3 (an in-memory file)", rest)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("running a script wrote files: %v", ents)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("GANTRY_TEST_SECRET", "hunter2")
	script := `echo "secret=${GANTRY_TEST_SECRET-unset}"
echo "foo=$FOO"
echo "path=$PATH"
echo "home=$HOME"
echo "shell=$SHELL"
env | cut -d= -f1 | sort | tr '\n' ' '
`
	res := Run(context.Background(), Spec{
		Script: script,
		Env:    []string{"FOO=bar=baz", "PATH=/opt/gantry/bin:/usr/bin:/bin"},
	}, nil)
	if res.Err != "" || res.ExitCode != 0 {
		t.Fatalf("run failed: %+v stderr %s", res, res.Stderr)
	}
	lines := strings.Split(string(res.Stdout), "\n")
	want := []string{"secret=unset", "foo=bar=baz", "path=/opt/gantry/bin:/usr/bin:/bin"}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("line %d = %q, want %q", i, lines[i], w)
		}
	}
	if u, err := user.Current(); err == nil && lines[3] != "home="+u.HomeDir {
		t.Errorf("%q, want home=%s", lines[3], u.HomeDir)
	}
	if lines[4] != "shell=/bin/sh" {
		t.Errorf("%q, want shell=/bin/sh", lines[4])
	}
	allowed := []string{"PATH", "HOME", "SHELL", "USER", "LOGNAME", "FOO", "PWD", "OLDPWD"}
	for _, name := range strings.Fields(lines[5]) {
		if !slices.Contains(allowed, name) {
			t.Errorf("unexpected variable %s in the script's environment", name)
		}
	}
}

func TestInvalidEnvIsNotStarted(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	for _, kv := range []string{"NOEQUALS", "=value", "A=b\x00c"} {
		res := Run(context.Background(), Spec{Script: "touch " + marker, Env: []string{kv}}, nil)
		if !strings.Contains(res.Err, "invalid environment entry") || res.PID != 0 || res.ExitCode != -1 {
			t.Errorf("Env %q: got %+v, want an invalid environment entry error", kv, res)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("script ran despite an invalid environment")
	}
}

func TestWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	wantDefault := "/"
	if u, err := user.Current(); err == nil {
		if fi, err := os.Stat(u.HomeDir); err == nil && fi.IsDir() {
			wantDefault = u.HomeDir
		}
	}
	tests := []struct {
		name, dir, want string
	}{
		{"explicit", dir, dir},
		{"default is home", "", wantDefault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Run(context.Background(), Spec{Script: "pwd -P", Dir: tt.dir}, nil)
			want, _ := filepath.EvalSymlinks(tt.want)
			if got := strings.TrimSpace(string(res.Stdout)); got != want {
				t.Errorf("pwd = %q, want %q (%+v)", got, want, res)
			}
		})
	}
	res := Run(context.Background(), Spec{Script: "true", Dir: filepath.Join(dir, "missing")}, nil)
	if res.Err == "" || res.ExitCode != -1 {
		t.Errorf("missing Dir: want Err, got %+v", res)
	}
}

func TestOutputCap(t *testing.T) {
	tests := []struct {
		name      string
		n         int // bytes of 'a' written to stdout
		cap       int
		truncated bool
	}{
		{"below cap", 999, 1000, false},
		{"exactly cap", 1000, 1000, false},
		{"over cap", 5000, 1000, true},
		{"far over cap, many writes", 300000, 4096, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			streamed := map[string][]byte{}
			script := "head -c " + strconv.Itoa(tt.n) + " /dev/zero | tr '\\0' a; echo err >&2"
			res := Run(context.Background(), Spec{Script: script, OutputCap: tt.cap}, func(s string, p []byte) {
				mu.Lock()
				streamed[s] = append(streamed[s], p...)
				mu.Unlock()
			})
			if res.Err != "" || res.ExitCode != 0 {
				t.Fatalf("run failed: %+v", res)
			}
			want := strings.Repeat("a", min(tt.n, tt.cap))
			if tt.truncated {
				want += "\n[gantry: output truncated at " + strconv.Itoa(tt.cap) + " bytes]\n"
			}
			if string(res.Stdout) != want {
				t.Errorf("Stdout has %d bytes (%q...), want %d", len(res.Stdout), res.Stdout[max(0, len(res.Stdout)-50):], len(want))
			}
			if res.StdoutTruncated != tt.truncated {
				t.Errorf("StdoutTruncated = %v, want %v", res.StdoutTruncated, tt.truncated)
			}
			if string(res.Stderr) != "err\n" || res.StderrTruncated {
				t.Errorf("stderr %q truncated=%v", res.Stderr, res.StderrTruncated)
			}
			if !bytes.Equal(streamed[Stdout], res.Stdout) || !bytes.Equal(streamed[Stderr], res.Stderr) {
				t.Errorf("streamed output differs from the Result: %d/%d bytes", len(streamed[Stdout]), len(streamed[Stderr]))
			}
		})
	}
}

func TestDefaultOutputCap(t *testing.T) {
	res := Run(context.Background(), Spec{Script: "head -c 1100000 /dev/zero"}, nil)
	if !res.StdoutTruncated || len(res.Stdout) != DefaultOutputCap+len(TruncationMarker(DefaultOutputCap)) {
		t.Fatalf("truncated=%v len=%d", res.StdoutTruncated, len(res.Stdout))
	}
}

func TestOutputIsStreamedLive(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// The script only succeeds if the test saw "first" while the script was
	// still running (it then creates the gate file).
	script := `echo first
i=0
while [ ! -e "$GATE" ]; do
	i=$((i+1))
	if [ $i -gt 200 ]; then echo "gate never opened" >&2; exit 1; fi
	sleep 0.05
done
echo second`
	var calls []string
	res := Run(context.Background(), Spec{Script: script, Env: []string{"GATE=" + gate}}, func(s string, p []byte) {
		calls = append(calls, s+":"+string(p))
		if strings.Contains(string(p), "first") {
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Error(err)
			}
		}
	})
	if res.ExitCode != 0 || string(res.Stdout) != "first\nsecond\n" {
		t.Fatalf("exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if len(calls) < 2 || calls[0] != "stdout:first\n" {
		t.Errorf("callback calls = %q, want separate chunks starting with first", calls)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := `sleep 30 &
echo $! > "$PIDFILE"
echo waiting
sleep 30
echo never`
	start := time.Now()
	res := Run(context.Background(), Spec{Script: script, Timeout: 500 * time.Millisecond, Env: []string{"PIDFILE=" + pidFile}}, nil)
	killGroup(t, res.PID)
	elapsed := time.Since(start)
	if !res.TimedOut || res.Canceled || res.ExitCode != -1 || res.Err != "" {
		t.Fatalf("got %+v, want TimedOut with ExitCode -1", res)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	if string(res.Stdout) != "waiting\n" {
		t.Errorf("stdout %q", res.Stdout)
	}
	waitGone(t, readPID(t, pidFile), 5*time.Second)
}

func TestContextDeadlineCountsAsTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := Run(ctx, Spec{Script: "sleep 30"}, nil)
	killGroup(t, res.PID)
	if !res.TimedOut || res.Canceled || res.ExitCode != -1 {
		t.Fatalf("got %+v, want TimedOut", res)
	}
}

func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := `sh -c 'sleep 30 & echo $! > "$PIDFILE"; wait' &
sleep 30 &
while [ ! -s "$PIDFILE" ]; do sleep 0.01; done
echo ready
wait`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := Run(ctx, Spec{Script: script, Env: []string{"PIDFILE=" + pidFile}}, func(s string, p []byte) {
		if strings.Contains(string(p), "ready") {
			cancel() // the grandchild has written its pid by now
		}
	})
	killGroup(t, res.PID)
	if !res.Canceled || res.TimedOut || res.ExitCode != -1 {
		t.Fatalf("got %+v, want Canceled with ExitCode -1", res)
	}
	waitGone(t, readPID(t, pidFile), 5*time.Second)
}

func TestCanceledBeforeStart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Run(ctx, Spec{Script: "touch ran", Dir: dir}, nil)
	if res.Err == "" || res.PID != 0 {
		t.Fatalf("got %+v, want not started", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("script ran with a canceled context")
	}
}

func TestDaemonHoldingPipesDoesNotHang(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"background sleep", `sleep 30 & echo $! > "$PIDFILE"; echo started; echo note >&2`},
		{"daemon holding stderr only", `sleep 30 >/dev/null & echo $! > "$PIDFILE"; echo started; echo note >&2`},
		{"daemon in a subshell", `(sleep 30 & echo $! > "$PIDFILE") ; echo started; echo note >&2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "daemon.pid")
			start := time.Now()
			res := Run(context.Background(), Spec{Script: tt.script, Timeout: time.Minute, Env: []string{"PIDFILE=" + pidFile}}, nil)
			killGroup(t, res.PID)
			elapsed := time.Since(start)
			if elapsed > 10*time.Second {
				t.Fatalf("Run took %v with a daemon holding the pipes", elapsed)
			}
			if res.ExitCode != 0 || res.TimedOut || res.Err != "" {
				t.Errorf("got %+v, want a clean exit", res)
			}
			if string(res.Stdout) != "started\n" || string(res.Stderr) != "note\n" {
				t.Errorf("stdout %q stderr %q", res.Stdout, res.Stderr)
			}
			// A normal exit leaves background processes alone.
			if pid := readPID(t, pidFile); processGone(pid) {
				t.Errorf("daemon %d was killed after a normal exit", pid)
			}
		})
	}
}

func TestMissingUser(t *testing.T) {
	dir := t.TempDir()
	const name = "gantry-test-no-such-user"
	res := Run(context.Background(), Spec{Script: "touch " + filepath.Join(dir, "ran"), User: name}, nil)
	if want := `user "gantry-test-no-such-user" does not exist on this host`; res.Err != want {
		t.Fatalf("Err = %q, want %q", res.Err, want)
	}
	if res.PID != 0 || res.ExitCode != -1 {
		t.Errorf("got %+v, want no process", res)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files were created: %v", ents)
	}
}

func TestNeedCredential(t *testing.T) {
	tests := []struct {
		name   string
		euid   int
		target uint32
		need   bool
		errSub string
	}{
		{"root to user", 0, 65534, true, ""},
		{"root to root", 0, 0, false, ""},
		{"user to self", 1000, 1000, false, ""},
		{"user to other", 1000, 1001, false, "must run as root to use --user"},
		{"user to root", 1000, 0, false, "must run as root to use --user"},
	}
	for _, tt := range tests {
		need, msg := needCredential(tt.euid, tt.target, "x")
		if need != tt.need || (tt.errSub == "") != (msg == "") || !strings.Contains(msg, tt.errSub) {
			t.Errorf("%s: needCredential = %v, %q; want %v, %q", tt.name, need, msg, tt.need, tt.errSub)
		}
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	script := `id -u; id -g; echo "$HOME|$USER|$LOGNAME"; pwd`
	for _, name := range []string{"nobody", u.Uid} {
		t.Run(name, func(t *testing.T) {
			res := Run(context.Background(), Spec{Script: script, User: name}, nil)
			if res.Err != "" || res.ExitCode != 0 {
				t.Fatalf("got %+v stderr %s", res, res.Stderr)
			}
			want := strings.Join([]string{u.Uid, u.Gid, u.HomeDir + "|nobody|nobody", "/"}, "\n") + "\n"
			if string(res.Stdout) != want {
				t.Errorf("stdout %q, want %q", res.Stdout, want)
			}
		})
	}
	t.Run("root as root needs no switch", func(t *testing.T) {
		res := Run(context.Background(), Spec{Script: "id -u", User: "root"}, nil)
		if res.Err != "" || string(res.Stdout) != "0\n" {
			t.Errorf("got %+v", res)
		}
	})
}
