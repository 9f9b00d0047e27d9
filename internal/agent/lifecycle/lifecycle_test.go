package lifecycle

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/bundle"
)

// file is one file of a test bundle.
type file struct {
	body string
	mode fs.FileMode
}

// pack builds a bundle from files (path -> file) and returns its path.
func pack(t *testing.T, files map[string]file) string {
	t.Helper()
	src := t.TempDir()
	for name, f := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, []byte(f.body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "bundle.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := bundle.Pack(src, out); err != nil {
		t.Fatal(err)
	}
	return out.Name()
}

// env is a test's setup: a runner installing into a temporary root, and a
// trace file hooks append to.
type env struct {
	t      *testing.T
	runner *Runner
	trace  string
	prev   *Installed
	n      int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{t: t, runner: &Runner{Root: t.TempDir(), DestRoot: t.TempDir()},
		trace: filepath.Join(t.TempDir(), "trace")}
}

// deploy runs a step for the bundle and chains Previous on success.
func (e *env) deploy(bundlePath string, traffic bool) (Result, []EventReport) {
	e.t.Helper()
	e.n++
	var reports []EventReport
	res, err := e.runner.Run(context.Background(), Step{
		DeploymentID: fmt.Sprintf("d-%d", e.n), Application: "web", GroupName: "prod", GroupID: "g-1",
		Revision: fmt.Sprintf("r%d", e.n), BundlePath: bundlePath, Previous: e.prev,
		TrafficControl: traffic, Env: []string{"GANTRY_TRACE=" + e.trace, "GANTRY_EXTRA=x y"},
	}, func(r EventReport) { reports = append(reports, r) })
	if err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	if res.Succeeded {
		inst := res.Installed
		e.prev = &inst
	}
	return res, reports
}

func (e *env) readTrace() []string {
	e.t.Helper()
	b, err := os.ReadFile(e.trace)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (e *env) dest(p string) string { return e.runner.host(p) }

const traceScript = `echo "%s $LIFECYCLE_EVENT $DEPLOYMENT_ID" >> "$GANTRY_TRACE"` + "\n"

// traceBundle is a revision whose every script event appends
// "<rev> <event> <deployment>" to the trace; its ApplicationStop writes
// "<rev>-stop-marker ...".
func traceBundle(t *testing.T, rev string) string {
	var hooks strings.Builder
	for _, ev := range appspec.ScriptEvents() {
		loc := "hooks/trace.sh"
		if ev == appspec.EventApplicationStop {
			loc = "hooks/stop.sh"
		}
		fmt.Fprintf(&hooks, "  %s:\n    - location: %s\n      timeout: 60\n", ev, loc)
	}
	return pack(t, map[string]file{
		"appspec.yml":    {body: "version: 0.0\nos: linux\nhooks:\n" + hooks.String()},
		"hooks/trace.sh": {body: fmt.Sprintf(traceScript, rev), mode: 0o755},
		"hooks/stop.sh":  {body: fmt.Sprintf(traceScript, rev+"-stop-marker"), mode: 0o755},
	})
}

func TestEventOrder(t *testing.T) {
	for _, traffic := range []bool{false, true} {
		t.Run("traffic="+strconv.FormatBool(traffic), func(t *testing.T) {
			e := newEnv(t)
			res, reps := e.deploy(traceBundle(t, "rev1"), traffic)
			if !res.Succeeded {
				t.Fatalf("first deployment failed: %+v", res)
			}
			want := []string{"rev1 BeforeInstall d-1", "rev1 AfterInstall d-1", "rev1 ApplicationStart d-1", "rev1 ValidateService d-1"}
			if traffic {
				want = append(want, "rev1 BeforeAllowTraffic d-1", "rev1 AfterAllowTraffic d-1")
			}
			if got := e.readTrace(); !slices.Equal(got, want) {
				t.Errorf("first deployment trace:\n got %q\nwant %q", got, want)
			}
			// Every event is reported, in order; the previous-revision ones skipped.
			var final []string
			for _, r := range reps {
				if r.State != StateRunning {
					final = append(final, r.Event+":"+r.State)
				}
			}
			var wantFinal []string
			for _, ev := range appspec.InPlaceEvents(traffic) {
				st := StateSucceeded
				if ev.FromPreviousRevision {
					st = StateSkipped
				}
				wantFinal = append(wantFinal, ev.Name+":"+st)
			}
			if !slices.Equal(final, wantFinal) {
				t.Errorf("reports:\n got %q\nwant %q", final, wantFinal)
			}

			os.Remove(e.trace)
			res, _ = e.deploy(traceBundle(t, "rev2"), traffic)
			if !res.Succeeded {
				t.Fatalf("second deployment failed: %+v", res)
			}
			want = nil
			if traffic {
				want = append(want, "rev1 BeforeBlockTraffic d-2", "rev1 AfterBlockTraffic d-2")
			}
			want = append(want, "rev1-stop-marker ApplicationStop d-2",
				"rev2 BeforeInstall d-2", "rev2 AfterInstall d-2", "rev2 ApplicationStart d-2", "rev2 ValidateService d-2")
			if traffic {
				want = append(want, "rev2 BeforeAllowTraffic d-2", "rev2 AfterAllowTraffic d-2")
			}
			if got := e.readTrace(); !slices.Equal(got, want) {
				t.Errorf("second deployment trace:\n got %q\nwant %q", got, want)
			}
			if res.Installed.Revision != "r2" || !strings.HasPrefix(filepath.Base(res.Installed.Dir), "r2-") ||
				!strings.Contains(string(res.Installed.AppSpec), "version: 0.0") {
				t.Errorf("Installed = %+v", res.Installed)
			}
		})
	}
}

func TestHookEnvironment(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "env")
	script := `{ echo "event=$LIFECYCLE_EVENT"; echo "deployment=$DEPLOYMENT_ID"; echo "app=$APPLICATION_NAME"
echo "group=$DEPLOYMENT_GROUP_NAME"; echo "groupid=$DEPLOYMENT_GROUP_ID"; echo "extra=$GANTRY_EXTRA"
echo "script=$0"; echo "pwd=$(pwd)"; } > ` + out + "\n"
	res, _ := e.deploy(pack(t, map[string]file{
		"appspec.yml": {body: "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: env.sh\n"},
		"env.sh":      {body: script, mode: 0o755},
	}), false)
	if !res.Succeeded {
		t.Fatalf("failed: %+v", res)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dir := res.Installed.Dir
	for _, want := range []string{"event=AfterInstall", "deployment=d-1", "app=web", "group=prod", "groupid=g-1",
		"extra=x y", "script=" + filepath.Join(dir, "env.sh"), "pwd=" + dir} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("environment lacks %q:\n%s", want, b)
		}
	}
}

func TestInstallFilesAndCleanup(t *testing.T) {
	e := newEnv(t)
	spec := `version: 0.0
os: linux
files:
  - source: app
    destination: /opt/app
  - source: config/c.conf
    destination: /etc/web
permissions:
  - object: /opt/app
    pattern: "*.txt"
    except: [keep.txt]
    type: [file]
    mode: "0600"
`
	rev1 := pack(t, map[string]file{
		"appspec.yml":     {body: spec},
		"app/a.txt":       {body: "a1"},
		"app/keep.txt":    {body: "k"},
		"app/old.txt":     {body: "old"},
		"app/bin/run.sh":  {body: "#!/bin/sh\n", mode: 0o755},
		"config/c.conf":   {body: "c1"},
		"config/skip.txt": {body: "not installed"},
	})
	res, _ := e.deploy(rev1, false)
	if !res.Succeeded {
		t.Fatalf("rev1 failed: %+v", res)
	}
	wantFiles := []string{"/etc/web/c.conf", "/opt/app/a.txt", "/opt/app/bin/run.sh", "/opt/app/keep.txt", "/opt/app/old.txt"}
	if !slices.Equal(res.Installed.InstalledFiles, wantFiles) {
		t.Errorf("InstalledFiles = %q, want %q", res.Installed.InstalledFiles, wantFiles)
	}
	checks := []struct {
		path string
		body string
		mode fs.FileMode
	}{
		{"/opt/app/a.txt", "a1", 0o600},
		{"/opt/app/keep.txt", "k", 0o644},
		{"/opt/app/old.txt", "old", 0o600},
		{"/opt/app/bin/run.sh", "#!/bin/sh\n", 0o755},
		{"/etc/web/c.conf", "c1", 0o644},
	}
	for _, c := range checks {
		b, err := os.ReadFile(e.dest(c.path))
		if err != nil || string(b) != c.body {
			t.Errorf("%s: %q, %v; want %q", c.path, b, err, c.body)
			continue
		}
		if fi, _ := os.Stat(e.dest(c.path)); fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.mode)
		}
	}
	if _, err := os.Stat(e.dest("/etc/web/skip.txt")); !os.IsNotExist(err) {
		t.Errorf("skip.txt installed: %v", err)
	}

	// rev2 drops old.txt; DISALLOW (the default) accepts files rev1 installed.
	rev2 := pack(t, map[string]file{
		"appspec.yml":    {body: spec},
		"app/a.txt":      {body: "a2"},
		"app/keep.txt":   {body: "k"},
		"app/bin/run.sh": {body: "#!/bin/sh\n", mode: 0o755},
		"config/c.conf":  {body: "c2"},
	})
	res, _ = e.deploy(rev2, false)
	if !res.Succeeded {
		t.Fatalf("rev2 failed: %+v", res)
	}
	if _, err := os.Stat(e.dest("/opt/app/old.txt")); !os.IsNotExist(err) {
		t.Errorf("old.txt, installed by rev1 only, still there: %v", err)
	}
	for p, want := range map[string]string{"/opt/app/a.txt": "a2", "/etc/web/c.conf": "c2"} {
		if b, _ := os.ReadFile(e.dest(p)); string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
}

func TestFileExistsBehavior(t *testing.T) {
	tests := []struct {
		behavior  string // "" for the default
		ok        bool
		content   string
		installed bool
	}{
		{"", false, "host", false},
		{"DISALLOW", false, "host", false},
		{"OVERWRITE", true, "bundle", true},
		{"RETAIN", true, "host", false},
	}
	for _, tt := range tests {
		t.Run("behavior="+tt.behavior, func(t *testing.T) {
			e := newEnv(t)
			target := e.dest("/srv/x/f.txt")
			os.MkdirAll(filepath.Dir(target), 0o755)
			if err := os.WriteFile(target, []byte("host"), 0o644); err != nil {
				t.Fatal(err)
			}
			spec := "version: 0.0\nos: linux\nfiles:\n  - source: f.txt\n    destination: /srv/x\n" +
				"  - source: g.txt\n    destination: /srv/x\n"
			if tt.behavior != "" {
				spec += "file_exists_behavior: " + tt.behavior + "\n"
			}
			res, reps := e.deploy(pack(t, map[string]file{
				"appspec.yml": {body: spec}, "f.txt": {body: "bundle"}, "g.txt": {body: "g"},
			}), false)
			if res.Succeeded != tt.ok {
				t.Fatalf("Succeeded = %v, want %v (%+v)", res.Succeeded, tt.ok, res)
			}
			if !tt.ok {
				if res.FailedEvent != appspec.EventInstall || !strings.Contains(res.Error, "DISALLOW") ||
					!strings.Contains(res.Error, "/srv/x/f.txt") {
					t.Errorf("failure = %q: %q", res.FailedEvent, res.Error)
				}
				if _, err := os.Stat(e.dest("/srv/x/g.txt")); !os.IsNotExist(err) {
					t.Errorf("g.txt installed despite the conflict")
				}
				if last := reps[len(reps)-1]; last.Event != appspec.EventEnd || last.State != StateSkipped {
					t.Errorf("last report = %+v", last)
				}
			}
			if b, _ := os.ReadFile(target); string(b) != tt.content {
				t.Errorf("content = %q, want %q", b, tt.content)
			}
			if tt.ok && slices.Contains(res.Installed.InstalledFiles, "/srv/x/f.txt") != tt.installed {
				t.Errorf("InstalledFiles = %q", res.Installed.InstalledFiles)
			}
		})
	}
}

func TestHookOutcomes(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "daemon.pid")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	tests := []struct {
		name     string
		event    string
		hook     string // extra hook keys
		script   string
		mode     fs.FileMode
		ok       bool
		errHas   string
		exitCode int
		tailHas  string
	}{
		{name: "validate fails", event: "ValidateService", script: "echo checking; echo unhealthy >&2; exit 3\n",
			errHas: "exited with status 3", exitCode: 3, tailHas: "unhealthy"},
		{name: "timeout", event: "ApplicationStart", hook: "      timeout: 1\n", script: "echo started; exec sleep 30\n",
			errHas: "killed after its timeout of 1s", exitCode: -1, tailHas: "started"},
		{name: "daemon holding stdout", event: "ApplicationStart", script: "sleep 30 &\necho $! > " + pidFile + "\necho up\n",
			ok: true, tailHas: "up"},
		{name: "missing runas user", event: "BeforeInstall", hook: "      runas: gantry-no-such-user\n", script: "exit 0\n",
			errHas: `user "gantry-no-such-user" does not exist`, exitCode: -1},
		{name: "non-executable script", event: "AfterInstall", script: "echo ran-anyway\n", mode: 0o644,
			ok: true, tailHas: "ran-anyway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			mode := tt.mode
			if mode == 0 {
				mode = 0o755
			}
			b := pack(t, map[string]file{
				"appspec.yml": {body: "version: 0.0\nos: linux\nhooks:\n  " + tt.event + ":\n    - location: s.sh\n" + tt.hook},
				"s.sh":        {body: tt.script, mode: mode},
			})
			start := time.Now()
			res, reps := e.deploy(b, false)
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("step took %v", d)
			}
			if res.Succeeded != tt.ok {
				t.Fatalf("Succeeded = %v, want %v: %+v", res.Succeeded, tt.ok, res)
			}
			var rep EventReport
			after := false
			for _, r := range reps {
				if r.Event == tt.event && r.State != StateRunning {
					rep = r
				}
				if after && r.State != StateSkipped {
					t.Errorf("event after the failure not skipped: %+v", r)
				}
				if !tt.ok && r.Event == tt.event && r.State == StateFailed {
					after = true
				}
			}
			if !tt.ok {
				if res.FailedEvent != tt.event || rep.State != StateFailed || !strings.Contains(rep.Error, tt.errHas) ||
					rep.ExitCode != tt.exitCode || res.Error != rep.Error {
					t.Errorf("result %+v, report %+v; want error containing %q, exit %d", res, rep, tt.errHas, tt.exitCode)
				}
				if !after {
					t.Errorf("no failed report for %s", tt.event)
				}
			} else if rep.State != StateSucceeded {
				t.Errorf("report = %+v", rep)
			}
			if !strings.Contains(rep.LogTail, tt.tailHas) {
				t.Errorf("LogTail = %q, want it to contain %q", rep.LogTail, tt.tailHas)
			}
		})
	}
}

func TestMaxEventTimeout(t *testing.T) {
	e := newEnv(t)
	b := pack(t, map[string]file{
		"appspec.yml": {body: "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n" +
			"    - location: a.sh\n      timeout: 30\n    - location: a.sh\n      timeout: 30\n"},
		"a.sh": {body: "exec sleep 30\n", mode: 0o755},
	})
	res, err := e.runner.Run(context.Background(), Step{DeploymentID: "d", Application: "web", Revision: "r",
		BundlePath: b, MaxEventTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded || res.FailedEvent != appspec.EventApplicationStart || !strings.Contains(res.Error, "ran longer than 1s together") {
		t.Errorf("result = %+v", res)
	}
}

func TestKeepPrunes(t *testing.T) {
	for _, keep := range []int{1, 3} {
		t.Run("keep="+strconv.Itoa(keep), func(t *testing.T) {
			e := newEnv(t)
			e.runner.Keep = keep
			var dirs []string
			for i := 0; i < 5; i++ {
				res, _ := e.deploy(traceBundle(t, "rev"), false)
				if !res.Succeeded {
					t.Fatalf("deployment %d failed: %+v", i, res)
				}
				dirs = append(dirs, res.Installed.Dir)
				// Make the order independent of the clock's resolution.
				ts := time.Unix(int64(1000+i), 0)
				os.Chtimes(res.Installed.Dir, ts, ts)
			}
			entries, err := os.ReadDir(filepath.Join(e.runner.Root, "web"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, en := range entries {
				got = append(got, filepath.Join(e.runner.Root, "web", en.Name()))
			}
			// The current and previous revisions are always kept.
			n := max(keep, 2)
			want := slices.Clone(dirs[len(dirs)-n:])
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("kept %q, want %q", got, want)
			}
		})
	}
}

func TestUnsupportedAndInvalid(t *testing.T) {
	e := newEnv(t)
	res, _ := e.deploy(pack(t, map[string]file{
		"appspec.yml": {body: "version: 0.0\nos: linux\nfiles:\n  - source: a\n    destination: /x\n" +
			"permissions:\n  - object: /x\n    acls: [\"u:root:rw\"]\n"},
		"a/f": {body: "f"},
	}), false)
	if res.Succeeded || res.FailedEvent != appspec.EventInstall || !strings.Contains(res.Error, "acls are not supported yet") {
		t.Errorf("acls: %+v", res)
	}
	res, _ = e.deploy(pack(t, map[string]file{"readme": {body: "no appspec"}}), false)
	if res.Succeeded || res.FailedEvent != appspec.EventDownloadBundle || !strings.Contains(res.Error, "no appspec.yml") {
		t.Errorf("no appspec: %+v", res)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := e.runner.Run(context.Background(), Step{Application: "web", Revision: bad}, nil); err == nil {
			t.Errorf("revision %q accepted", bad)
		}
	}
}

func TestCanceled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := e.runner.Run(ctx, Step{Application: "web", Revision: "r", BundlePath: traceBundle(t, "r")}, nil)
	if err != nil || res.Succeeded || res.FailedEvent != appspec.EventStart || !strings.Contains(res.Error, "canceled") {
		t.Errorf("result %+v, %v", res, err)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, rel string
		want         bool
	}{
		{"**", "a/b/c", true},
		{"*.sh", "bin/x.sh", true},
		{"*.sh", "x.txt", false},
		{"bin/*", "bin/x", true},
		{"bin/*", "bin/x/y", false},
		{"bin/**", "bin/x/y", true},
		{"**/*.log", "a/b/c.log", true},
		{"**/*.log", "c.log", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "b/z", false},
	}
	for _, tt := range tests {
		if got := match(tt.pattern, tt.rel); got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.rel, got, tt.want)
		}
	}
}
