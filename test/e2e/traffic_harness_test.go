package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Helpers for the traffic tests: the load generator (bench/loadgen) as a
// second process, shop bundles of other versions, and the load balancer as
// `gantry lb show` reports it.

var loadgenBuild struct {
	once sync.Once
	bin  string
	out  []byte
	err  error
}

// loadgenBin builds bench/loadgen into the run's directory once (its
// processes are then found by TestMain's leak check).
func loadgenBin(t *testing.T) string {
	t.Helper()
	loadgenBuild.once.Do(func() {
		loadgenBuild.bin = filepath.Join(e2eDir, "loadgen")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", loadgenBuild.bin, "../../bench/loadgen")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		loadgenBuild.out, loadgenBuild.err = cmd.CombinedOutput()
	})
	if loadgenBuild.err != nil {
		t.Fatalf("go build ./bench/loadgen: %v\n%s", loadgenBuild.err, loadgenBuild.out)
	}
	return loadgenBuild.bin
}

// loadSummary is the part of loadgen's JSON summary the tests read.
type loadSummary struct {
	URL       string            `json:"url"`
	Clients   int               `json:"clients"`
	Running   bool              `json:"running"`
	StartedAt time.Time         `json:"started_at"`
	EndedAt   time.Time         `json:"ended_at"`
	DurationS float64           `json:"duration_s"`
	Requests  int64             `json:"requests"`
	OK        int64             `json:"ok"`
	Failed    int64             `json:"failed"`
	Retried   int64             `json:"retried"`
	FailedPct float64           `json:"failed_pct"`
	PerSecond float64           `json:"per_second"`
	Status    map[string]int64  `json:"status"`
	Errors    map[string]int64  `json:"errors"`
	ErrSample map[string]string `json:"error_sample"`
	Latency   struct {
		P50, P90, P99, Max, Mean float64
	} `json:"latency_ms"`
	Backends          map[string]int64 `json:"backends"`
	FailuresByBackend map[string]int64 `json:"failures_by_backend"`
	Failures          []struct {
		AtMillis int64  `json:"at_ms"`
		Kind     string `json:"kind"`
		Backend  string `json:"backend"`
		Detail   string `json:"detail"`
	} `json:"failures"`
	Timeline []struct {
		T        int     `json:"t"`
		Requests int64   `json:"requests"`
		Failed   int64   `json:"failed"`
		MaxMs    float64 `json:"max_ms"`
	} `json:"timeline"`
}

// String is the one-line report of a run.
func (s loadSummary) String() string {
	return fmt.Sprintf("%d requests in %.1f s (%.0f/s, %d clients), failed %d (%.3f%%), p50 %.1f ms, p99 %.1f ms, max %.0f ms, statuses %v, errors %v, backends %d",
		s.Requests, s.DurationS, s.PerSecond, s.Clients, s.Failed, s.FailedPct, s.Latency.P50, s.Latency.P99, s.Latency.Max, s.Status, s.Errors, len(s.Backends))
}

// failures describes the first failures, for messages.
func (s loadSummary) failures() string {
	var b strings.Builder
	for i, f := range s.Failures {
		if i == 10 {
			fmt.Fprintf(&b, "  … (%d in all)\n", s.Failed)
			break
		}
		fmt.Fprintf(&b, "  at %d ms: %s backend=%q %s\n", f.AtMillis, f.Kind, f.Backend, f.Detail)
	}
	return b.String()
}

// maxInWindow is the most requests made in any w consecutive seconds of
// the timeline.
func (s loadSummary) maxInWindow(w int) int64 {
	var best int64
	for i := range s.Timeline {
		var n int64
		for j := i; j < len(s.Timeline) && j < i+w; j++ {
			n += s.Timeline[j].Requests
		}
		best = max(best, n)
	}
	return best
}

// loadRun is a loadgen process.
type loadRun struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  string // its -out file
	log  *syncBuffer
	done chan struct{}
}

// startLoad starts loadgen against url with c clients (a second process,
// as the issue asks) and waits until it has made some requests.
func startLoad(t *testing.T, url string, clients int, extra ...string) *loadRun {
	t.Helper()
	dir := t.TempDir()
	l := &loadRun{t: t, out: filepath.Join(dir, "summary.json"), log: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"-url", url, "-c", fmt.Sprint(clients), "-out", l.out, "-backend-header", "X-Backend", "-timeout", "15s"}, extra...)
	l.cmd = exec.Command(loadgenBin(t), args...)
	l.cmd.Stdout, l.cmd.Stderr = l.log, l.log
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start loadgen: %v", err)
	}
	go func() { l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
			<-l.done
		}
	})
	eventually(t, 15*time.Second, "loadgen makes its first requests", func() (bool, string) {
		s, err := l.snapshot()
		if err != nil {
			return false, err.Error()
		}
		return s.Requests >= int64(10*clients), fmt.Sprintf("%d requests, failed %d", s.Requests, s.Failed)
	})
	return l
}

// snapshot reads the summary loadgen writes once a second.
func (l *loadRun) snapshot() (loadSummary, error) {
	var s loadSummary
	select {
	case <-l.done:
		if l.cmd.ProcessState != nil && !l.cmd.ProcessState.Success() {
			return s, fmt.Errorf("loadgen exited: %v\n%s", l.cmd.ProcessState, l.log)
		}
	default:
	}
	b, err := os.ReadFile(l.out)
	if errors.Is(err, fs.ErrNotExist) {
		return s, errors.New("no summary yet")
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %v", l.out, err)
	}
	return s, nil
}

// stop sends SIGTERM, waits for loadgen to write its final summary and
// returns it.
func (l *loadRun) stop() loadSummary {
	l.t.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.t.Fatalf("loadgen did not stop within 30 s of SIGTERM\n%s", l.log)
	}
	s, err := l.snapshot()
	if err != nil || s.Running {
		l.t.Fatalf("loadgen's final summary: %v (running %v)\n%s", err, s.Running, l.log)
	}
	if !strings.Contains(l.log.String(), fmt.Sprintf("requests %d, failed %d", s.Requests, s.Failed)) {
		l.t.Errorf("loadgen's last line does not match its summary (%d requests, %d failed):\n%s", s.Requests, s.Failed, l.log)
	}
	return s
}

// shopBundle copies examples/shop/app/bundle (with the binary build.sh
// put there) into a temporary directory, with VERSION = version and, when
// errorRate > 0, a FAULTS file ("error_rate=R": that share of GET /
// answered 500).
func shopBundle(t *testing.T, version string, errorRate float64) string {
	t.Helper()
	src := filepath.Join(shopDir(t), "app", "bundle")
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy the shop bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "shop")); err != nil {
		t.Fatalf("the shop bundle has no binary (examples/shop/build.sh builds it): %v", err)
	}
	if err := os.WriteFile(filepath.Join(dst, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if errorRate > 0 {
		if err := os.WriteFile(filepath.Join(dst, "FAULTS"), []byte(fmt.Sprintf("error_rate=%g\n", errorRate)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// pushShop pushes a shop bundle of that version (see shopBundle) and
// returns the revision id.
func (c *cluster) pushShop(version string, errorRate float64) string {
	c.t.Helper()
	r := c.gantry("push", "shop", shopBundle(c.t, version, errorRate), "--description", version, "-o", "json")
	r.ok(c.t)
	var rev api.Revision
	if err := json.Unmarshal([]byte(r.stdout), &rev); err != nil || rev.ID == "" {
		c.t.Fatalf("push: %v\n%s", err, r.stdout)
	}
	return rev.ID
}

// lbShow runs `gantry lb show ENV GROUP -o json` and returns the
// servers (an LBView, or a list of them).
func (c *cluster) lbShow(env, group string) ([]api.LBServerStatus, error) {
	c.t.Helper()
	r := c.gantry("lb", "show", env, group, "-o", "json")
	if r.code != 0 {
		return nil, fmt.Errorf("gantry lb show %s %s: exit %d: %s%s", env, group, r.code, r.stdout, r.stderr)
	}
	var v api.LBView
	if err := json.Unmarshal([]byte(r.stdout), &v); err == nil {
		return v.Servers, nil
	}
	var vs []api.LBView
	if err := json.Unmarshal([]byte(r.stdout), &vs); err != nil {
		return nil, fmt.Errorf("gantry lb show -o json: %v\n%s", err, r.stdout)
	}
	var out []api.LBServerStatus
	for _, v := range vs {
		out = append(out, v.Servers...)
	}
	return out, nil
}

// readyServers lists the servers of the load balancer that are ready and
// UP (sorted by name).
func readyServers(ss []api.LBServerStatus) []string {
	var out []string
	for _, s := range ss {
		if s.State == api.LBReady && (s.Health == "" || strings.EqualFold(s.Health, "UP")) {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// trafficChanges lists a deployment's load balancer changes as text.
func trafficChanges(d api.Deployment) string {
	if d.Traffic == nil {
		return "(no traffic side)"
	}
	var b strings.Builder
	for _, ch := range d.Traffic.Changes {
		fmt.Fprintf(&b, "  %s %s/%s %s w=%d %s (%d ms) %s\n", ch.At.Format("15:04:05.000"), ch.Backend, ch.Server, ch.Action, ch.Weight, ch.Detail, ch.ElapsedMillis, ch.Error)
	}
	return b.String()
}

// runToEnd runs loadgen with args until it exits by itself (-duration,
// -stop) and returns its final summary.
func (l *loadRun) runToEnd(t *testing.T, args ...string) loadSummary {
	t.Helper()
	l.cmd = exec.Command(loadgenBin(t), args...)
	l.cmd.Stdout, l.cmd.Stderr = l.log, l.log
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start loadgen: %v", err)
	}
	go func() { l.cmd.Wait(); close(l.done) }()
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.cmd.Process.Kill()
		<-l.done
		t.Fatalf("loadgen %v still running after 30 s\n%s", args, l.log)
	}
	s, err := l.snapshot()
	if err != nil || s.Running {
		t.Fatalf("loadgen %v: final summary: %v (running %v)\n%s", args, err, s.Running, l.log)
	}
	return s
}

// execOutput runs a command and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// exitCode is a command's exit status (0 without error, -1 if it did not
// run).
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// waitIdle waits until no deployment of the shop's group runs (a
// rollback or catch-up started by the previous scenario), and logs what
// it waited for: a new deployment would be refused meanwhile.
func (c *cluster) waitIdle(group string) {
	c.t.Helper()
	began := time.Now()
	var running []string
	eventually(c.t, 2*time.Minute, "no deployment of "+group+" running", func() (bool, string) {
		var now []string
		for _, d := range c.deploymentsOf("shop") {
			if d.Group == group && !api.DeployDone(d.State) {
				now = append(now, fmt.Sprintf("%s (%s %s, strategy %q)", d.ID, d.Kind, d.State, d.Strategy))
			}
		}
		if len(now) > 0 {
			running = now
		}
		return len(now) == 0, strings.Join(now, ", ")
	})
	if len(running) > 0 {
		c.t.Logf("waited %.1f s for %s to end", time.Since(began).Seconds(), strings.Join(running, ", "))
	}
}
