package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/agent"
)

// agentsSubcommand re-executes this program as a host of emulated agents
// [from, to], when one process cannot hold them all (see agentsPerProcess).
const agentsSubcommand = "__agents"

// fdsPerAgent: an emulated agent holds its NATS socket and its journal's
// lock file open for its whole life.
const fdsPerAgent = 2

// fdReserve is left for everything else in a process (runtime, HTTP, files).
const fdReserve = 512

// agentsPerProcess is how many agents one process can hold within its
// RLIMIT_NOFILE.
func agentsPerProcess() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000
	}
	return max(1, (int(lim.Cur)-fdReserve)/fdsPerAgent)
}

func agentName(i int) string { return fmt.Sprintf("emu-%05d", i) }

func emuFacts(name string) func() api.Facts {
	return func() api.Facts {
		return api.Facts{Hostname: name, OS: "linux", Kernel: "6.1.0-emu", Arch: "amd64", CPUs: 2,
			MemoryBytes: 4 << 30, Addresses: []string{"127.0.0.1"}, AgentVersion: "bench-emu"}
	}
}

// hostAgents enrolls agents from..to (at most conc enrollments at once,
// enrollment bounded by ctx) and runs each with agent.Run until agentCtx
// ends. It returns when all are launched; onEnrolled is called per agent,
// onFail on the first errors.
func hostAgents(ctx, agentCtx context.Context, wg *sync.WaitGroup, url, tok, dir string, from, to, conc int,
	stopped <-chan struct{}, onEnrolled func(), onFail func(error)) {
	// Each emulated agent enrolls over a TLS connection of its own (its
	// client pins the CA from the token), as a real host does.
	sem := make(chan struct{}, conc)
	for i := from; i <= to; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		case <-stopped:
			return
		}
		name := agentName(i)
		cfg := agent.Config{
			// The token pins role=emu (and the server's CA); -plain: http://.
			Server: url, JoinToken: tok, Name: name, Insecure: strings.HasPrefix(url, "http://"),
			DataDir: filepath.Join(dir, name), Version: "bench-emu",
			Log: slog.New(slog.DiscardHandler), Facts: emuFacts(name), NoExec: !execAgents,
		}
		if execAgents {
			cfg.DestRoot = filepath.Join(dir, name, "root")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := agent.Enroll(ctx, cfg)
			<-sem
			if err != nil {
				onFail(fmt.Errorf("agent %s: %w", name, err))
				return
			}
			onEnrolled()
			// The identity is on disk now: Run loads it, connects and serves.
			if err := agent.Run(agentCtx, cfg); err != nil && agentCtx.Err() == nil {
				onFail(fmt.Errorf("agent %s stopped: %w", name, err))
			}
		}()
	}
}

// worker is an agents subprocess.
type worker struct {
	from, to int
	cmd      *exec.Cmd
	done     chan struct{}
	enrolled atomic.Int64
}

// startAgents enrolls every agent (at most -concurrency at once overall) and
// starts it, in this process, plus as many agent-host subprocesses as the
// file descriptor limit requires; it returns once all are enrolled.
func (b *bench) startAgents(ctx context.Context, tok string) (time.Duration, error) {
	per := agentsPerProcess()
	procs := (b.o.agents + per - 1) / per
	if b.o.procs > 0 {
		if b.o.procs < procs {
			return 0, fmt.Errorf("-procs %d: RLIMIT_NOFILE allows %d agents per process, %d agents need %d processes", b.o.procs, per, b.o.agents, procs)
		}
		procs = b.o.procs
	}
	share := (b.o.agents + procs - 1) / procs
	conc := max(1, b.o.concurrency/procs)
	if procs > 1 {
		logf("RLIMIT_NOFILE allows %d agents per process (%d fds each; the hard limit cannot be raised without CAP_SYS_RESOURCE): running %d agents in this process and %d more in %d subprocess(es) of this program",
			per, fdsPerAgent, share, b.o.agents-share, procs-1)
	}
	var agentCtx context.Context
	agentCtx, b.stopAgents = context.WithCancel(context.Background())
	var local atomic.Int64
	start := time.Now()
	for p := 1; p < procs; p++ {
		from, to := p*share+1, min((p+1)*share, b.o.agents)
		if from > to {
			break
		}
		if err := b.startWorker(tok, from, to, conc); err != nil {
			return 0, err
		}
	}
	go hostAgents(ctx, agentCtx, &b.agentsWG, b.url, tok, b.agentsDir, 1, min(share, b.o.agents), conc,
		b.failed, func() { local.Add(1) }, b.fail)
	enrolled := func() int64 {
		n := local.Load()
		for _, w := range b.workers {
			n += w.enrolled.Load()
		}
		return n
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		n := enrolled()
		if n == int64(b.o.agents) {
			logf("enrolled %d/%d in %s", n, b.o.agents, round(time.Since(start)))
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%d/%d enrolled: %w", n, b.o.agents, ctx.Err())
		case <-b.failed:
			return 0, b.failure()
		case <-b.serverDone:
			return 0, errors.New("the server exited")
		case <-tick.C:
			logf("enrolled %d/%d (%.0f/s)", n, b.o.agents, float64(n)/time.Since(start).Seconds())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *bench) startWorker(tok string, from, to, conc int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	w := &worker{from: from, to: to, done: make(chan struct{})}
	logPath := filepath.Join(b.dir, fmt.Sprintf("agents-%05d-%05d.log", from, to))
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	w.cmd = exec.Command(self, agentsSubcommand, "-server", b.url, "-dir", b.agentsDir,
		"-from", strconv.Itoa(from), "-to", strconv.Itoa(to), "-concurrency", strconv.Itoa(conc))
	w.cmd.Env = append(os.Environ(), "GANTRY_JOIN_TOKEN="+tok, fmt.Sprintf("GANTRY_BENCH_EXEC=%t", execAgents))
	w.cmd.Stderr = lf
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		lf.Close()
		return err
	}
	if err := w.cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start agents subprocess: %w", err)
	}
	b.workers = append(b.workers, w)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			verb, arg, _ := strings.Cut(sc.Text(), " ")
			switch verb {
			case "enrolled":
				n, _ := strconv.ParseInt(arg, 10, 64)
				w.enrolled.Store(n)
			case "fail":
				b.fail(errors.New(arg))
			}
		}
		err := w.cmd.Wait()
		lf.Close()
		close(w.done)
		if b.stopAgents != nil && !b.stopping.Load() {
			b.fail(fmt.Errorf("agents subprocess %d-%d exited: %v (log %s)", from, to, err, logPath))
		}
	}()
	logf("agents %s..%s in subprocess pid %d (log %s)", agentName(from), agentName(to), w.cmd.Process.Pid, logPath)
	return nil
}

// stopWorkers stops the agent subprocesses (SIGTERM, then SIGKILL).
func (b *bench) stopWorkers() {
	for _, w := range b.workers {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range b.workers {
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			logf("agents subprocess %d did not stop in 30s: killing it", w.cmd.Process.Pid)
			_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-w.done
		}
	}
}

// workersCPU is the CPU time of the agent subprocesses.
func (b *bench) workersCPU() (t time.Duration) {
	for _, w := range b.workers {
		t += procCPU(w.cmd.Process.Pid)
	}
	return t
}

// agentsMain is the agents subprocess: it reports "enrolled N" and
// "fail MESSAGE" lines on stdout and runs until SIGTERM.
func agentsMain(args []string) int {
	fs := flag.NewFlagSet(agentsSubcommand, flag.ContinueOnError)
	url := fs.String("server", "", "")
	dir := fs.String("dir", "", "")
	from := fs.Int("from", 1, "")
	to := fs.Int("to", 1, "")
	conc := fs.Int("concurrency", 32, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	execAgents = os.Getenv("GANTRY_BENCH_EXEC") == "true"
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var (
		mu       sync.Mutex // stdout
		enrolled atomic.Int64
		failOnce sync.Once
		failed   = make(chan struct{})
		wg       sync.WaitGroup
	)
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	onFail := func(err error) {
		failOnce.Do(func() {
			say("fail %s", strings.ReplaceAll(err.Error(), "\n", " "))
			close(failed)
		})
	}
	go hostAgents(ctx, ctx, &wg, *url, os.Getenv("GANTRY_JOIN_TOKEN"), *dir, *from, *to, *conc, failed,
		func() { enrolled.Add(1) }, onFail)
	last := int64(-1)
	for {
		if n := enrolled.Load(); n != last {
			say("enrolled %d", n)
			last = n
		}
		select {
		case <-ctx.Done():
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
			}
			return 0
		case <-time.After(250 * time.Millisecond):
		}
	}
}
