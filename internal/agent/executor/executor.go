// Package executor runs a user's shell script, or a program file, on the
// agent's host.
//
// A script (Spec.Script, the jobs' case) is written to an anonymous
// in-memory file (memfd) passed to the shell as file descriptor 3 and run
// as "/bin/sh /dev/fd/3": the script text never appears on a command line,
// nothing is written to disk, and nothing is left behind.
//
// A program file (Spec.Program, the deployment hooks' case) is executed by
// the kernel as CodeDeploy's agent does: its "#!" line picks the
// interpreter, which gets the file's absolute path as $0; a file without
// one (the kernel answers ENOEXEC) is run as "/bin/sh FILE", as shells do.
// No shell text is built in either case.
//
// The process runs in its own process group, with a minimal environment,
// optionally as another user, and its output is both streamed to a
// callback and kept (up to a cap) in the Result.
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultOutputCap is the number of bytes per stream kept in a Result when
// Spec.OutputCap is not positive.
const DefaultOutputCap = 1 << 20

// PipeGrace is how long Run waits, after the script's shell has exited, for
// background processes it started to close stdout and stderr. After that
// the pipes are closed and Run returns; such processes keep running, and
// their later writes fail (EPIPE).
const PipeGrace = 2 * time.Second

// DefaultPath is the PATH scripts get unless Spec.Env sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Stream names passed to the output callback.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Spec describes one script run.
type Spec struct {
	// Script is the shell script, run by /bin/sh. Ignored when Program is
	// set.
	Script string
	// Program, if set, is the absolute path of a file to execute instead
	// of Script, without arguments: the kernel runs it (a "#!" line picks
	// the interpreter, which gets Program as $0), and a file the kernel
	// cannot execute as such (no "#!" line: ENOEXEC) is run as
	// "/bin/sh Program". The file must be executable by the user it runs
	// as. Empty (the default) runs Script.
	Program string
	// Timeout bounds the run; zero or negative means no limit other than
	// the context.
	Timeout time.Duration
	// User, if set, is the user name (or numeric uid) to run as. Running as
	// a user other than the agent's own requires the agent to be root.
	User string
	// Env is appended to the base environment (PATH, HOME, USER, LOGNAME,
	// SHELL); later entries win. Entries must be KEY=VALUE. Nothing from
	// the agent's own environment is passed on.
	Env []string
	// Dir is the working directory; empty means the user's home directory
	// if it exists, else "/".
	Dir string
	// OutputCap is the number of bytes per stream kept in the Result (and
	// passed to the callback); DefaultOutputCap if not positive.
	OutputCap int
}

// Result is the outcome of a run.
type Result struct {
	// ExitCode is the shell's exit status. A shell killed by a signal it
	// did not receive from Run reports 128+signal, as shells do (137 for
	// SIGKILL). It is -1 when Run killed the process group (TimedOut or
	// Canceled) and when the script did not start (Err set).
	ExitCode int
	// Stdout and Stderr hold at most Spec.OutputCap bytes of each stream,
	// followed by a truncation marker (see TruncationMarker) when more was
	// written.
	Stdout, Stderr []byte
	// StdoutTruncated and StderrTruncated report that output was dropped.
	StdoutTruncated, StderrTruncated bool
	// TimedOut reports that the process group was killed because
	// Spec.Timeout or the context's deadline passed.
	TimedOut bool
	// Canceled reports that the process group was killed because the
	// context was canceled (other than by its deadline).
	Canceled bool
	// Err says why the script could not be started (unknown user, agent
	// not root, bad environment entry, unusable directories, ...). When it
	// is set no script process ran.
	Err string
	// PID is the process id of the shell, which is also the id of its
	// process group; 0 if it did not start.
	PID int
	// Started and Finished bracket the run.
	Started, Finished time.Time
}

// TruncationMarker returns the text appended to a stream kept in a Result
// that was cut at limit bytes.
func TruncationMarker(limit int) string {
	return fmt.Sprintf("\n[gantry: output truncated at %d bytes]\n", limit)
}

// Run runs spec.Script and waits for it. It never returns before the shell
// has exited; it returns at most PipeGrace later even if background
// processes keep the output pipes open.
//
// On timeout or cancellation of ctx, every process of the script's process
// group (its children and grandchildren, unless they moved to another
// group or session) gets SIGKILL. Background processes still running when
// the shell exits normally are left alone.
//
// onOutput, if not nil, is called with output chunks as they arrive,
// stream being Stdout or Stderr. It receives exactly the bytes that end up
// in the Result, the truncation marker included, and nothing after a
// stream is truncated. Calls are serialized and all happen before Run
// returns; p must not be retained or modified. A slow callback slows the
// script down (its pipe fills up).
func Run(ctx context.Context, spec Spec, onOutput func(stream string, p []byte)) Result {
	res := Result{ExitCode: -1, Started: time.Now()}
	fail := func(format string, args ...any) Result {
		res.Err = fmt.Sprintf(format, args...)
		res.Finished = time.Now()
		return res
	}
	if err := ctx.Err(); err != nil {
		return fail("not started: %v", err)
	}
	limit := spec.OutputCap
	if limit <= 0 {
		limit = DefaultOutputCap
	}

	id, msg := resolveIdentity(spec.User)
	if msg != "" {
		return fail("%s", msg)
	}
	env, msg := buildEnv(id, spec.Env)
	if msg != "" {
		return fail("%s", msg)
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
		if fi, err := os.Stat(id.home); id.home != "" && err == nil && fi.IsDir() {
			dir = id.home
		}
	}
	var mu sync.Mutex
	stdout := &output{mu: &mu, stream: Stdout, limit: limit, onOutput: onOutput}
	stderr := &output{mu: &mu, stream: Stderr, limit: limit, onOutput: onOutput}
	newCmd := func(args ...string) *exec.Cmd {
		cmd := &exec.Cmd{Path: args[0], Args: args, Env: env, Dir: dir, Stdout: stdout, Stderr: stderr}
		// Pdeathsig: if the agent dies, the script's process dies with it
		// rather than go on unseen (its result could never be reported).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: id.cred, Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = PipeGrace
		return cmd
	}
	var cmd *exec.Cmd
	if spec.Program != "" {
		if !filepath.IsAbs(spec.Program) {
			return fail("program %q: not an absolute path", spec.Program)
		}
		cmd = newCmd(spec.Program)
	} else {
		script, err := scriptFile(spec.Script)
		if err != nil {
			return fail("preparing the script: %v", err)
		}
		defer script.Close()
		cmd = newCmd("/bin/sh", "/dev/fd/3")
		cmd.ExtraFiles = []*os.File{script} // fd 3 in the shell
	}

	runCtx := ctx
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}

	res.Started = time.Now()
	err := cmd.Start()
	if spec.Program != "" && errors.Is(err, syscall.ENOEXEC) {
		// No "#!" line: a shell script, as execvp and shells treat it.
		cmd = newCmd("/bin/sh", spec.Program)
		err = cmd.Start()
	}
	if err != nil {
		return fail("%s", startError(cmd, spec.Program, err))
	}
	pid := cmd.Process.Pid
	res.PID = pid

	// The killer signals the whole group, so that grandchildren die too.
	stop := make(chan struct{})
	killed := make(chan error, 1) // the context error that caused a kill, or nil
	go func() {
		select {
		case <-runCtx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			killed <- runCtx.Err()
		case <-stop:
			killed <- nil
		}
	}()
	waitErr := cmd.Wait()
	close(stop)
	killErr := <-killed
	res.Finished = time.Now()

	res.Stdout, res.StdoutTruncated = stdout.buf, stdout.truncated
	res.Stderr, res.StderrTruncated = stderr.buf, stderr.truncated

	st := cmd.ProcessState
	if st == nil {
		// Wait failed before reaping the process; should not happen.
		res.Err = fmt.Sprintf("waiting for the script: %v", waitErr)
		return res
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		res.ExitCode = ws.ExitStatus()
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && killErr != nil:
		res.ExitCode = -1
		if errors.Is(killErr, context.DeadlineExceeded) {
			res.TimedOut = true
		} else {
			res.Canceled = true
		}
	case ws.Signaled():
		res.ExitCode = 128 + int(ws.Signal())
	default:
		res.ExitCode = st.ExitCode()
	}
	return res
}

// output keeps up to limit bytes of one stream and forwards them.
type output struct {
	mu        *sync.Mutex // shared by both streams: serializes onOutput
	stream    string
	limit     int
	onOutput  func(string, []byte)
	buf       []byte
	truncated bool
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.truncated {
		return len(p), nil // keep draining so the script does not block
	}
	chunk := p
	room := o.limit - len(o.buf)
	if len(chunk) > room {
		chunk = chunk[:room]
	}
	if len(chunk) > 0 {
		o.buf = append(o.buf, chunk...)
		if o.onOutput != nil {
			o.onOutput(o.stream, chunk)
		}
	}
	if len(p) > room {
		o.truncated = true
		marker := []byte(TruncationMarker(o.limit))
		o.buf = append(o.buf, marker...)
		if o.onOutput != nil {
			o.onOutput(o.stream, marker)
		}
	}
	return len(p), nil
}

// identity is who the script runs as.
type identity struct {
	name   string // empty if unknown
	home   string // empty if unknown
	uid    uint32
	gid    uint32
	groups []uint32            // supplementary groups, for cred
	cred   *syscall.Credential // nil: run as the agent itself
}

// resolveIdentity looks up the user to run as. msg is non-empty if the
// script must not be started.
func resolveIdentity(name string) (id identity, msg string) {
	if name == "" {
		id.uid, id.gid = uint32(os.Getuid()), uint32(os.Getgid())
		if u, err := user.Current(); err == nil {
			id.name, id.home = u.Username, u.HomeDir
		}
		return id, ""
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && isDigits(name) {
		u, err = user.LookupId(name)
	}
	if err != nil {
		var unknownID user.UnknownUserIdError
		if errors.As(err, &unknown) || errors.As(err, &unknownID) {
			return id, fmt.Sprintf("user %q does not exist on this host", name)
		}
		return id, fmt.Sprintf("looking up user %q: %v", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return id, fmt.Sprintf("user %q has a non-numeric uid or gid (%s:%s)", name, u.Uid, u.Gid)
	}
	id = identity{name: u.Username, home: u.HomeDir, uid: uint32(uid), gid: uint32(gid)}
	need, msg := needCredential(os.Geteuid(), id.uid, name)
	if msg != "" || !need {
		return id, msg
	}
	gids, err := u.GroupIds()
	if err != nil {
		return id, fmt.Sprintf("looking up the groups of user %q: %v", name, err)
	}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return id, fmt.Sprintf("user %q has a non-numeric group id %q", name, g)
		}
		if !slices.Contains(id.groups, uint32(n)) {
			id.groups = append(id.groups, uint32(n))
		}
	}
	id.cred = &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups}
	return id, ""
}

// needCredential decides whether switching to target is needed (the agent
// runs as a different uid) and allowed (the agent is root).
func needCredential(euid int, target uint32, name string) (bool, string) {
	if euid >= 0 && uint32(euid) == target {
		return false, ""
	}
	if euid != 0 {
		return false, fmt.Sprintf("the agent must run as root to use --user (it runs as uid %d, and user %q is uid %d)", euid, name, target)
	}
	return true, ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// buildEnv returns the base environment followed by extra.
func buildEnv(id identity, extra []string) ([]string, string) {
	home := id.home
	if home == "" {
		home = "/"
	}
	env := []string{"PATH=" + DefaultPath, "HOME=" + home, "SHELL=/bin/sh"}
	if id.name != "" {
		env = append(env, "USER="+id.name, "LOGNAME="+id.name)
	}
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Sprintf("invalid environment entry %q: want KEY=VALUE without NUL bytes", kv)
		}
		env = append(env, kv)
	}
	return env, ""
}

// startError explains why cmd did not start. A program whose "#!"
// interpreter is missing fails with ENOENT although the program exists:
// say so, naming the interpreter line.
func startError(cmd *exec.Cmd, program string, err error) string {
	if program != "" && errors.Is(err, syscall.ENOENT) {
		if line, ok := shebang(program); ok {
			return fmt.Sprintf("could not start %s: its interpreter (%q) was not found", program, line)
		}
	}
	return fmt.Sprintf("could not start %s: %v", cmd.Path, err)
}

// shebang returns the "#!" line of a file, if it has one.
func shebang(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := io.ReadFull(f, buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, "#!") {
		return "", false
	}
	return strings.TrimSpace(line), true
}

// scriptFile returns an in-memory file holding the script. memfd files
// can be reopened through /dev/fd by the shell whatever user it runs as.
func scriptFile(script string) (*os.File, error) {
	fd, err := unix.MemfdCreate("gantry-script", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "gantry-script")
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
