// Command fleet is the fleet-scale benchmark: one `gantry server` (a child
// process) and N emulated agents in this process (agent.Run with NoExec, each
// with its own data directory, enrolled identity and NATS connection), then
// the time of `gantry run --selector role=emu -o json -- true` on all of them,
// end to end through a real CLI process, and the server's memory.
//
// Each agent holds 2 file descriptors; when the hard RLIMIT_NOFILE cannot be
// raised enough (no CAP_SYS_RESOURCE), the agents that do not fit run in
// re-executed copies of this program (see agents.go), and it says so.
//
// Run it by hand from the repository root (it is not a test):
//
//	go run ./bench/fleet -agents 1000 -runs 3
//	go run ./bench/fleet -agents 10000 -runs 3
//
// Progress goes to stderr; the last line of stdout is
//
//	fleet: N agents, job to all in <best>s (median <m>s), server RSS peak <X> MiB (goal: < 5 s, < 1 GiB)
//
// Everything is bounded: setup (start, enrollment, all online) by -timeout,
// each job by -run-timeout. The server is killed and the temporary
// directories removed on every exit path (including Ctrl-C).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/pki"
)

const adminToken = "fleet-bench-admin-token-0123456789"

type options struct {
	agents      int
	runs        int
	concurrency int
	bin         string
	heartbeat   time.Duration
	timeout     time.Duration
	runTimeout  time.Duration
	agentDir    string
	keep        bool
	cpuProfile  string
	serverLog   string
	procs       int
	serverEnv   []string
	// deploy, when set, times `gantry deploy --wait` of a bundleMB bundle
	// with this deployment config instead of `gantry run`.
	deploy   string
	bundleMB int
	// plain runs the server with --tls=false (the figures before TLS).
	plain bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serverSubcommand {
		os.Exit(profiledServer(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == agentsSubcommand {
		os.Exit(agentsMain(os.Args[2:]))
	}
	var o options
	flag.IntVar(&o.agents, "agents", 10000, "number of emulated agents")
	flag.IntVar(&o.runs, "runs", 3, "number of timed jobs")
	flag.IntVar(&o.concurrency, "concurrency", 64, "enrollments in flight at once")
	flag.StringVar(&o.bin, "bin", "", "gantry binary to use (default: build ./cmd/gantry into the temp dir)")
	flag.DurationVar(&o.heartbeat, "heartbeat", 5*time.Second, "server --heartbeat")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "limit for setup: server start, enrollment, all agents online")
	flag.DurationVar(&o.runTimeout, "run-timeout", 5*time.Minute, "limit for each timed job")
	flag.StringVar(&o.agentDir, "agent-dir", defaultAgentDir(), "parent of the agents' data dirs (default /dev/shm: see README)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (server log, data) after the run")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the emulated agents) during the timed jobs")
	flag.StringVar(&serverProfile, "server-cpuprofile", "", "run the server as this program re-executed (same code as `gantry server`) and write its CPU profile during the timed jobs to this file")
	flag.StringVar(&o.serverLog, "server-log-level", "info", "server --log-level")
	flag.Func("server-env", "extra `K=V` in the server's environment, e.g. GOMEMLIMIT=800MiB (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want K=V")
		}
		o.serverEnv = append(o.serverEnv, v)
		return nil
	})
	flag.StringVar(&o.deploy, "deploy", "", "time a deployment with this `config` (OneAtATime, HalfAtATime, AllAtOnce, 75%) instead of a job")
	flag.IntVar(&o.bundleMB, "bundle-mb", 5, "bundle size in MiB (random, incompressible) with -deploy")
	flag.BoolVar(&execAgents, "exec", false, "agents run commands for real (full deployment lifecycle with hooks and install) instead of NoExec")
	flag.BoolVar(&o.plain, "plain", false, "run the server without TLS (--tls=false; agents and CLI --insecure), to compare with the default TLS")
	flag.IntVar(&o.procs, "procs", 0, "processes holding the agents (0 = this one only, unless RLIMIT_NOFILE forces more)")
	flag.Parse()
	if serverProfile != "" {
		serverProfile, _ = filepath.Abs(serverProfile)
	}
	if o.agents < 1 || o.runs < 1 || o.concurrency < 1 {
		fmt.Fprintln(os.Stderr, "fleet: -agents, -runs and -concurrency must be at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	line, err := run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleet: FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

func defaultAgentDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && syscall.Access("/dev/shm", 2) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[fleet %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// bench holds what run sets up, for cleanup.
type bench struct {
	o         options
	deploys   []deployStats // -deploy: figures of each timed deployment
	dir       string        // temp dir: binary, server data, logs
	agentsDir string
	bin       string
	url       string
	// caFP is the server CA's fingerprint ("" with -plain); httpc trusts
	// only that CA.
	caFP       string
	httpc      *http.Client
	server     *exec.Cmd
	serverDone chan struct{}
	serverLog  *os.File

	stopAgents context.CancelFunc
	agentsWG   sync.WaitGroup
	workers    []*worker
	stopping   atomic.Bool

	failMu  sync.Mutex
	failErr error
	failed  chan struct{}
}

func (b *bench) fail(err error) {
	b.failMu.Lock()
	defer b.failMu.Unlock()
	if b.failErr == nil {
		b.failErr = err
		close(b.failed)
	}
}

func (b *bench) failure() error {
	b.failMu.Lock()
	defer b.failMu.Unlock()
	return b.failErr
}

func run(ctx context.Context, o options) (line string, err error) {
	b := &bench{o: o, failed: make(chan struct{})}
	defer b.cleanup(&err)

	if b.dir, err = os.MkdirTemp("", "gantry-fleet-"); err != nil {
		return "", err
	}
	if b.agentsDir, err = os.MkdirTemp(o.agentDir, "gantry-fleet-agents-"); err != nil {
		return "", fmt.Errorf("-agent-dir: %w", err)
	}
	if err := raiseNoFile(o.agents); err != nil {
		return "", err
	}
	if b.bin, err = buildOrTake(ctx, o.bin, b.dir); err != nil {
		return "", err
	}

	setup, cancelSetup := context.WithTimeout(ctx, o.timeout)
	defer cancelSetup()
	setupStart := time.Now()
	if err := b.startServer(setup); err != nil {
		return "", err
	}
	tok, err := b.joinToken(setup)
	if err != nil {
		return "", err
	}
	enrollTook, err := b.startAgents(setup, tok)
	if err != nil {
		return "", b.explain(setup, "enrollment", err)
	}
	onlineTook, err := b.waitOnline(setup)
	if err != nil {
		return "", b.explain(setup, "waiting for agents online", err)
	}
	idle := readMem(b.server.Process.Pid)
	logf("setup done in %s: enrolled %d in %s (%.0f/s), all online %s later; server RSS %d MiB (peak %d MiB), %d threads",
		round(time.Since(setupStart)), o.agents, round(enrollTook), float64(o.agents)/enrollTook.Seconds(), round(onlineTook),
		idle.rss>>20, idle.hwm>>20, idle.threads)
	logf("server Go memory, all agents idle: %s", b.goMem(ctx))

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return "", err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return "", err
		}
		defer func() { pprof.StopCPUProfile(); f.Close(); logf("bench CPU profile: %s", o.cpuProfile) }()
	}
	if serverProfile != "" {
		_ = b.server.Process.Signal(syscall.SIGUSR2) // start the server's CPU profile
	}
	logf("load average before the runs: %s (%d CPUs; other work on the machine skews the figures)", loadAvg(), runtime.NumCPU())
	if o.deploy != "" {
		if err := b.setupDeploy(ctx); err != nil {
			return "", b.explain(ctx, "deployment setup", err)
		}
	}
	var times []time.Duration
	for r := 1; r <= o.runs; r++ {
		timed := b.timedRun
		if o.deploy != "" {
			timed = b.timedDeploy
		}
		d, err := timed(ctx, r)
		if err != nil {
			return "", b.explain(ctx, fmt.Sprintf("run %d", r), err)
		}
		times = append(times, d)
	}
	if serverProfile != "" {
		// The profiled server writes its profiles on SIGUSR1 (see profiledServer).
		_ = b.server.Process.Signal(syscall.SIGUSR1)
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(serverProfile + ".heap"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		logf("server CPU profile: %s (heap: %s.heap)", serverProfile, serverProfile)
	}
	mem := readMem(b.server.Process.Pid)
	logf("server Go memory after the runs: %s", b.goMem(ctx))
	sorted := append([]time.Duration(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	med := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		med = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	var runs []string
	for _, t := range times {
		runs = append(runs, fmt.Sprintf("%.2fs", t.Seconds()))
	}
	fmt.Printf("runs: %s\n", strings.Join(runs, " "))
	fmt.Printf("server: RSS now %d MiB, peak (VmHWM) %d MiB, %d threads; setup %s (enroll %s, online +%s)\n",
		mem.rss>>20, mem.hwm>>20, mem.threads, round(time.Since(setupStart)-sum(times)), round(enrollTook), round(onlineTook))
	if o.deploy != "" {
		return b.deploySummary(sorted[0], med, mem.hwm>>20), nil
	}
	return fmt.Sprintf("fleet: %d agents, job to all in %.2fs (median %.2fs), server RSS peak %d MiB (goal: < 5 s, < 1 GiB)",
		o.agents, sorted[0].Seconds(), med.Seconds(), mem.hwm>>20), nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sum(ds []time.Duration) (t time.Duration) {
	for _, d := range ds {
		t += d
	}
	return t
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

// explain adds the first agent failure and the end of the server log to err.
func (b *bench) explain(ctx context.Context, what string, err error) error {
	if f := b.failure(); f != nil && !errors.Is(err, f) {
		err = fmt.Errorf("%w (first agent failure: %v)", err, f)
	}
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: gave up after the time limit (-timeout %s / -run-timeout %s): %w", what, b.o.timeout, b.o.runTimeout, err)
	} else {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%w\n--- last lines of the server log (%s):\n%s", err, b.serverLogPath(), tailFile(b.serverLogPath(), 15))
}

func (b *bench) serverLogPath() string { return filepath.Join(b.dir, "server.log") }

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanup stops the agents and the server and removes the temp dirs.
func (b *bench) cleanup(errp *error) {
	b.stopping.Store(true)
	b.stopWorkers()
	if b.stopAgents != nil {
		b.stopAgents()
		done := make(chan struct{})
		go func() { b.agentsWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			logf("warning: agents still stopping after 30s; exiting anyway")
		}
	}
	if b.server != nil && b.server.Process != nil {
		_ = b.server.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.serverDone:
		case <-time.After(15 * time.Second):
			logf("server did not stop on SIGTERM in 15s: killing it")
			_ = syscall.Kill(-b.server.Process.Pid, syscall.SIGKILL)
			<-b.serverDone
		}
	}
	if b.serverLog != nil {
		b.serverLog.Close()
	}
	if b.o.keep {
		logf("kept %s (server log, data) and %s (agents)", b.dir, b.agentsDir)
		return
	}
	// The agents' dirs may be large and in RAM (/dev/shm): always removed
	// unless -keep. The temp dir (server log, run output) is kept on failure.
	if b.agentsDir != "" {
		os.RemoveAll(b.agentsDir)
	}
	if *errp != nil && b.dir != "" {
		logf("kept %s (server log, run output) for the failure", b.dir)
		return
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// raiseNoFile lifts RLIMIT_NOFILE for this process and its children (the
// server): each agent holds a NATS socket and a journal lock here, and the
// server a socket per agent.
func raiseNoFile(agents int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	want := uint64(4*agents + 4096)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > n {
			want = n
		}
	}
	if want < lim.Max {
		want = lim.Max
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err != nil {
		// No CAP_SYS_RESOURCE: take the hard limit (startAgents spreads
		// the agents over more processes if it is too low).
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
		}
		want = lim.Max
	}
	logf("RLIMIT_NOFILE = %d", want)
	return nil
}

// repoRoot finds the directory of the gantry go.mod from the working dir.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/gantry-dev/gantry\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the gantry repository (or pass -bin)")
		}
		dir = parent
	}
}

func buildOrTake(ctx context.Context, bin, dir string) (string, error) {
	if bin != "" {
		if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("-bin %s: not an executable file", bin)
		}
		return filepath.Abs(bin)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "gantry")
	rev, _ := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	mod, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--", "cmd", "internal", "api").Output()
	logf("building %s at %s (%d files modified under cmd/ internal/ api/)", out, bytes.TrimSpace(rev), bytes.Count(mod, []byte("\n")))
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", out, "./cmd/gantry")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gantry: %v\n%s", err, b)
	}
	return out, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (b *bench) startServer(ctx context.Context) error {
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	natsAddr, err := freePort()
	if err != nil {
		return err
	}
	b.url = "https://" + httpAddr
	args := []string{"server", "--data-dir", filepath.Join(b.dir, "server"), "--listen", httpAddr,
		"--nats-listen", natsAddr, "--heartbeat", b.o.heartbeat.String(), "--log-level", b.o.serverLog}
	b.httpc = &http.Client{}
	if b.o.plain {
		b.url = "http://" + httpAddr
		args = append(args, "--tls=false")
	}
	bin := b.bin
	if serverProfile != "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		bin, args[0] = self, serverSubcommand
		args = append(args, "--cpuprofile", serverProfile)
	}
	if b.serverLog, err = os.Create(b.serverLogPath()); err != nil {
		return err
	}
	b.server = exec.Command(bin, args...)
	b.server.Env = append(append(os.Environ(), "GANTRY_ADMIN_TOKEN="+adminToken), b.o.serverEnv...)
	b.server.Stdout, b.server.Stderr = b.serverLog, b.serverLog
	b.server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.server.Start(); err != nil {
		b.server = nil
		return fmt.Errorf("start server: %w", err)
	}
	b.serverDone = make(chan struct{})
	go func() { _ = b.server.Wait(); close(b.serverDone) }()
	logf("server pid %d on %s (nats %s), log %s %v", b.server.Process.Pid, b.url, natsAddr, b.serverLogPath(), b.o.serverEnv)
	for {
		select {
		case <-b.serverDone:
			return fmt.Errorf("server exited at start:\n%s", tailFile(b.serverLogPath(), 20))
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if !b.o.plain && b.caFP == "" {
			pem, err := os.ReadFile(filepath.Join(b.dir, "server", pki.CACertFile))
			if err != nil {
				continue // not made yet
			}
			ca, err := pki.ParseCertPEM(pem)
			if err != nil {
				return fmt.Errorf("server CA: %w", err)
			}
			b.caFP = api.Fingerprint(ca.Raw)
			b.httpc = &http.Client{Transport: api.PinnedTransport(api.Pin{Fingerprint: b.caFP, PinnedBy: "the bench"}, b.url)}
			logf("server CA %s", b.caFP)
		}
		if resp, err := b.httpc.Get(b.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
}

// cli runs the gantry CLI against the server.
func (b *bench) cli(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	if b.o.plain {
		args = append([]string{"--insecure"}, args...)
	}
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "GANTRY_SERVER="+b.url, "GANTRY_TOKEN="+adminToken, "GANTRY_CA_FINGERPRINT="+b.caFP, "GANTRY_CONFIG="+filepath.Join(b.dir, "cli.json"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

func (b *bench) joinToken(ctx context.Context) (string, error) {
	out, errb, err := b.cli(ctx, "token", "create", "--uses", strconv.Itoa(b.o.agents), "--ttl", "6h", "--labels", "role=emu", "-o", "json")
	if err != nil {
		return "", fmt.Errorf("token create: %v: %s", err, errb)
	}
	var jt api.JoinToken
	if err := json.Unmarshal(out, &jt); err != nil || jt.Token == "" {
		return "", fmt.Errorf("token create output %q: %v", out, err)
	}
	return jt.Token, nil
}

// hostStates polls GET /api/v1/hosts for the emulated hosts.
func (b *bench) hostStates(ctx context.Context) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/api/v1/hosts?selector=role%3Demu", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := b.httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET /api/v1/hosts: %s: %s", resp.Status, body)
	}
	var hosts []struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hosts); err != nil {
		return nil, err
	}
	st := map[string]int{"total": len(hosts)}
	for _, h := range hosts {
		st[h.Status]++
	}
	return st, nil
}

func (b *bench) waitOnline(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		st, err := b.hostStates(ctx)
		if err != nil {
			return 0, err
		}
		logf("online %d/%d (hosts listed %d)", st[api.HostOnline], b.o.agents, st["total"])
		if st[api.HostOnline] == b.o.agents {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d/%d online: %w", st[api.HostOnline], b.o.agents, ctx.Err())
		case <-b.failed:
			return 0, b.failure()
		case <-b.serverDone:
			return 0, errors.New("the server exited")
		case <-time.After(2 * time.Second):
		}
	}
}

// timedRun times one job on every emulated agent, through the CLI.
func (b *bench) timedRun(ctx context.Context, r int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.runTimeout)
	defer cancel()
	srvCPU0, selfCPU0 := procCPU(b.server.Process.Pid), selfCPU()+b.workersCPU()
	t0 := time.Now()
	out, errb, err := b.cli(ctx, "run", "--selector", "role=emu", "-o", "json", "--", "true")
	took := time.Since(t0)
	srvCPU, benchCPU := procCPU(b.server.Process.Pid)-srvCPU0, selfCPU()+b.workersCPU()-selfCPU0
	outFile := filepath.Join(b.dir, fmt.Sprintf("run-%d.json", r))
	_ = os.WriteFile(outFile, out, 0o600)
	if err != nil {
		return 0, fmt.Errorf("gantry run: %v after %s\nstderr: %s\nstdout (%d bytes) in %s", err, round(took), tail(errb, 2000), len(out), outFile)
	}
	var job api.Job
	if err := json.Unmarshal(out, &job); err != nil {
		return 0, fmt.Errorf("gantry run -o json: %v (output in %s)", err, outFile)
	}
	counts := map[string]int{}
	for _, x := range job.Executions {
		counts[x.State]++
	}
	if len(job.Executions) != b.o.agents || counts[api.ExecSucceeded] != b.o.agents {
		return 0, fmt.Errorf("job %s: %d executions %v, want %d succeeded (output in %s)", job.ID, len(job.Executions), counts, b.o.agents, outFile)
	}
	p := phases(t0, job)
	mem := readMem(b.server.Process.Pid)
	// The CLI says so on stderr when the server dropped its event stream
	// (the watcher fell behind) and it had to reconnect, with backoff.
	reconnects := strings.Count(string(errb), "reconnecting")
	logf("run %d/%d: %.3fs — %s; CLI stream reconnects %d; CPU: server %.2fs, agents %.2fs; server RSS %d MiB",
		r, b.o.runs, took.Seconds(), p, reconnects, srvCPU.Seconds(), benchCPU.Seconds(), mem.rss>>20)
	if len(errb) > 0 {
		_ = os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("run-%d.stderr", r)), errb, 0o600)
	}
	fmt.Printf("run %d: %.3fs\n", r, took.Seconds())
	return took, nil
}

// goMem summarizes the server's Go memory from its /metrics.
func (b *bench) goMem(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := b.httpc.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	want := []struct{ metric, label string }{
		{"go_goroutines", "goroutines"},
		{"go_memstats_stack_inuse_bytes", "stacks"},
		{"go_memstats_heap_inuse_bytes", "heap in use"},
		{"go_memstats_heap_idle_bytes", "heap idle"},
		{"go_memstats_heap_released_bytes", "released"},
		{"go_memstats_next_gc_bytes", "next GC"},
		{"go_memstats_sys_bytes", "sys"},
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && !strings.HasPrefix(name, "#") {
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				got[name] = v
			}
		}
	}
	var parts []string
	for _, w := range want {
		v, ok := got[w.metric]
		switch {
		case !ok:
		case w.metric == "go_goroutines":
			parts = append(parts, fmt.Sprintf("%s %.0f", w.label, v))
		default:
			parts = append(parts, fmt.Sprintf("%s %.0f MiB", w.label, v/(1<<20)))
		}
	}
	return strings.Join(parts, ", ")
}

// phases splits a run with the job's own timestamps (one clock: all on this
// machine): CLI start → job stored → first/last agent start → last agent
// result → job finished (all results stored) → CLI exit.
func phases(t0 time.Time, j api.Job) string {
	var firstStart, lastStart, lastFinish time.Time
	var starts []time.Time
	for _, x := range j.Executions {
		if x.StartedAt != nil {
			starts = append(starts, *x.StartedAt)
			if firstStart.IsZero() || x.StartedAt.Before(firstStart) {
				firstStart = *x.StartedAt
			}
			if x.StartedAt.After(lastStart) {
				lastStart = *x.StartedAt
			}
		}
		if x.FinishedAt != nil && x.FinishedAt.After(lastFinish) {
			lastFinish = *x.FinishedAt
		}
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "?"
		}
		return fmt.Sprintf("%.3fs", t.Sub(t0).Seconds())
	}
	fin := time.Time{}
	if j.FinishedAt != nil {
		fin = *j.FinishedAt
	}
	p50 := time.Time{}
	if len(starts) > 0 {
		sort.Slice(starts, func(a, b int) bool { return starts[a].Before(starts[b]) })
		p50 = starts[len(starts)/2]
	}
	return fmt.Sprintf("job created at %s, agents started %s..%s (median %s), last agent result %s, job finished %s, CLI exit %.3fs",
		at(j.CreatedAt), at(firstStart), at(lastStart), at(p50), at(lastFinish), at(fin), time.Since(t0).Seconds())
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type memInfo struct {
	rss, hwm uint64 // bytes
	threads  int
}

// readMem reads VmRSS, VmHWM and Threads from /proc/<pid>/status.
func readMem(pid int) memInfo {
	var m memInfo
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n << 10
		case "VmHWM":
			m.hwm = n << 10
		case "Threads":
			m.threads = int(n)
		}
	}
	return m
}

// procCPU is the user+system CPU time of pid (from /proc/<pid>/stat).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses).
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
