package e2e

// TestReadme runs the documentation's shell blocks verbatim, in order, the
// way a new user pastes them into a fresh clone: README.md, then
// examples/shop/README.md, against a fresh `make dev` server on the
// default ports (7070 and 7422), Docker parts included.
//
// The convention (keep the READMEs and this runner in step):
//
//   - Only blocks fenced as ```sh run; illustrations that cannot run here
//     (another machine, placeholders) are fenced ```text.
//   - Each command (a line; a line ending in `\` continues; a heredoc runs
//     to its terminator) runs in one persistent bash session, so `export`,
//     `cd` and `x=$(…)` carry over. Its standard input is /dev/null.
//   - A command must exit 0, unless its comment says `exit N` (at its end,
//     or followed by a comma, period or semicolon).
//   - Each "double-quoted" text in a command's comment is a prediction: the
//     command's output (stdout and stderr) must contain it; `…` inside the
//     quotes stands for any text on the same line. A comment containing
//     `prints nothing` predicts empty output.
//   - `make dev` and `bin/gantry server --dev` are started in the
//     background (the "In one terminal" step); the runner waits for the
//     banner. A later server command first stops the running one with
//     SIGINT, as Ctrl-C would. A command whose comment says `from the
//     banner` is replaced by the banner's `export` line.
//   - `make test` is not run (it runs this test). `apt-get install P…` is
//     skipped when `dpkg -s` finds every package installed, run otherwise.
//
// The repository's files (`git ls-files`, untracked but not ignored ones
// included) are copied to a temporary directory first, so `make dev`'s
// bin/ and gantry-data/ land there; the Go build cache is the user's. At
// the end everything is stopped: the server (and with it its agents), the
// bash session, and the containers and networks of the environments the
// READMEs named (`docker rm -f` by label gantry.env).

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eDir is the e2e run's temporary directory (TestMain's): the gantry
// binaries, and the README runner's copy of the repository.
var e2eDir string

// docStep is one command of a documentation file.
type docStep struct {
	file    string
	section string
	line    int
	cmd     string // the text given to bash (heredoc bodies included)
	comment string // the comments of the command's own lines
}

func (s docStep) where() string {
	return fmt.Sprintf("%s:%d (section %q)", s.file, s.line, s.section)
}

var (
	heredocRe    = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?`)
	exitRe       = regexp.MustCompile(`\bexit (\d+)\s*(?:$|[,.;])`)
	quotedRe     = regexp.MustCompile(`"([^"]+)"`)
	serverCmdRe  = regexp.MustCompile(`^(make dev|(\./)?bin/gantry server --dev)$`)
	aptInstallRe = regexp.MustCompile(`^(sudo )?apt-get install (-y )?([a-z0-9.+ -]+)$`)
)

// parseDocSteps returns the commands of the ```sh blocks of a Markdown
// file, in order.
func parseDocSteps(t *testing.T, path, name string) []docStep {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var steps []docStep
	section := "(top)"
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") {
			section = strings.TrimSpace(strings.TrimLeft(l, "#"))
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		lang := strings.TrimSpace(strings.TrimPrefix(l, "```"))
		j := i + 1
		for j < len(lines) && !strings.HasPrefix(lines[j], "```") {
			j++
		}
		if lang == "sh" {
			steps = append(steps, splitCommands(name, section, i+2, lines[i+1:j])...)
		}
		i = j
	}
	return steps
}

// splitCommands splits a block's lines (the first is line first of the
// file) into commands.
func splitCommands(file, section string, first int, lines []string) []docStep {
	var steps []docStep
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		s := docStep{file: file, section: section, line: first + i}
		var text, comments []string
		for {
			code, comment := splitComment(lines[i])
			text = append(text, lines[i])
			if comment != "" {
				comments = append(comments, comment)
			}
			if m := heredocRe.FindStringSubmatch(code); m != nil {
				for i+1 < len(lines) {
					i++
					text = append(text, lines[i])
					if strings.TrimSpace(lines[i]) == m[1] {
						break
					}
				}
			}
			if strings.HasSuffix(strings.TrimRight(code, " \t"), "\\") && i+1 < len(lines) {
				i++
				continue
			}
			break
		}
		s.cmd = strings.Join(text, "\n")
		s.comment = strings.Join(comments, " ")
		steps = append(steps, s)
	}
	return steps
}

// splitComment splits a shell line into its code and its comment (without
// the '#'), minding quotes.
func splitComment(l string) (code, comment string) {
	var q byte
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			q = c
		case c == '#' && (i == 0 || l[i-1] == ' ' || l[i-1] == '\t'):
			return l[:i], strings.TrimSpace(l[i+1:])
		}
	}
	return l, ""
}

// check returns what is wrong with a command's result, or "".
func (s docStep) check(out string, code int) string {
	want := 0
	if m := exitRe.FindStringSubmatch(s.comment); m != nil {
		want, _ = strconv.Atoi(m[1])
	}
	var problems []string
	if code != want {
		problems = append(problems, fmt.Sprintf("exit code %d, the text predicts %d", code, want))
	}
	for _, m := range quotedRe.FindAllStringSubmatch(s.comment, -1) {
		if !matchEllipsis(out, m[1]) {
			problems = append(problems, fmt.Sprintf("output lacks the predicted %q", m[1]))
		}
	}
	if strings.Contains(s.comment, "prints nothing") && strings.TrimSpace(out) != "" {
		problems = append(problems, "output is not empty, the text predicts nothing")
	}
	return strings.Join(problems, "; ")
}

// matchEllipsis reports whether some line of out contains pattern, where
// "…" in pattern matches any text.
func matchEllipsis(out, pattern string) bool {
	var parts []string
	for _, p := range strings.Split(pattern, "…") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, p := range parts {
			idx := strings.Index(rest, p)
			if idx < 0 {
				ok = false
				break
			}
			rest = rest[idx+len(p):]
		}
		if ok {
			return true
		}
	}
	return false
}

// shellSession is one bash process that runs commands one at a time.
type shellSession struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	lines    chan string
	sentinel string
}

func newShellSession(t *testing.T, dir string, env []string) *shellSession {
	t.Helper()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	s := &shellSession{sentinel: "__readme_test_done_" + hex.EncodeToString(nonce[:]), lines: make(chan string, 1024)}
	// Commands arrive NUL-terminated on fd 3; their stdin is /dev/null.
	loop := `while IFS= read -r -d '' __cmd <&3; do eval "$__cmd" </dev/null 2>&1; printf '\n%s %d\n' "` + s.sentinel + `" $?; done`
	s.cmd = exec.Command("bash", "--noprofile", "--norc", "-c", loop)
	s.cmd.Dir = dir
	s.cmd.Env = env
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.ExtraFiles = []*os.File{pr}
	s.in = pw
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		pw.Close()
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	})
	return s
}

// run runs one command and returns its output and exit code; ok is false
// when it did not finish within d (or bash died).
func (s *shellSession) run(command string, d time.Duration) (out string, code int, ok bool) {
	if _, err := io.WriteString(s.in, command+"\x00"); err != nil {
		return "bash: " + err.Error(), -1, false
	}
	var b strings.Builder
	timeout := time.After(d)
	for {
		select {
		case l, open := <-s.lines:
			if !open {
				return b.String(), -1, false
			}
			if rest, found := strings.CutPrefix(l, s.sentinel+" "); found {
				code, _ = strconv.Atoi(rest)
				return strings.TrimSuffix(b.String(), "\n"), code, true
			}
			b.WriteString(l + "\n")
		case <-timeout:
			return b.String(), -1, false
		}
	}
}

// bgServer is the "In one terminal" process.
type bgServer struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (p *bgServer) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGINT to the process group (Ctrl-C) and waits; SIGKILL after 30 s.
func (p *bgServer) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// size is the length of the server's output so far.
func (p *bgServer) size() int {
	if p == nil {
		return 0
	}
	return len(p.out.String())
}

// since is the last n lines of the server's output after offset from (all
// of it when the server was restarted since).
func (p *bgServer) since(from, n int) string {
	if p == nil {
		return "(no server started)"
	}
	all := p.out.String()
	if from > len(all) {
		from = 0
	}
	ls := strings.Split(strings.TrimRight(all[from:], "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func (p *bgServer) tail(n int) string {
	if p == nil {
		return "(no server started)"
	}
	ls := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// copyRepo copies the repository's files (tracked, and untracked but not
// ignored: what a clone has once they are committed) into dst.
func copyRepo(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", root, err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the work tree
		}
		to := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(src)
			if err := os.Symlink(l, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func portFree(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the README runner needs gantry's default address %s, which is taken (%v): stop what listens there (ss -ltnp 'sport = :%s')", addr, err, addr[strings.LastIndexByte(addr, ':')+1:])
	}
	l.Close()
}

func TestReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the READMEs against a dev server and Docker")
	}
	if err := exec.Command("docker", "version").Run(); err != nil {
		t.Fatalf("the README's Docker sections need a reachable Docker engine (docker version: %v)", err)
	}
	portFree(t, "127.0.0.1:7070")
	portFree(t, "127.0.0.1:7422")

	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The copy lives under the e2e run's directory, so TestMain's leak
	// check sees its processes.
	repo, err := os.MkdirTemp(e2eDir, "readme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(repo) })
	copyRepo(t, root, repo)
	home := filepath.Join(repo, ".home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}

	// A clean environment: nothing of GANTRY_* from outside; a home of its
	// own (no CLI profile), with the user's Go caches.
	env := []string{"HOME=" + home, "LANG=C.UTF-8", "TERM=dumb"}
	for _, k := range []string{"PATH", "TMPDIR", "DOCKER_HOST", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN", "CI"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		v, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(v)))
	}

	var steps []docStep
	steps = append(steps, parseDocSteps(t, filepath.Join(root, "README.md"), "README.md")...)
	steps = append(steps, parseDocSteps(t, filepath.Join(root, "examples/shop/README.md"), "examples/shop/README.md")...)
	if len(steps) < 20 {
		t.Fatalf("found only %d commands in the READMEs' ```sh blocks", len(steps))
	}

	// Every environment the READMEs name: its containers are removed at
	// the end, whatever happened.
	envs := map[string]bool{}
	envRe := regexp.MustCompile(`--env[ =]([a-z0-9-]+)`)
	for _, s := range steps {
		for _, m := range envRe.FindAllStringSubmatch(s.cmd, -1) {
			envs[m[1]] = true
		}
	}

	var srv *bgServer
	t.Cleanup(func() {
		srv.stop()
		killProcsNaming(repo) // local machines' agents, had a destroy not run
		for e := range envs {
			removeDockerEnv(t, e)
		}
	})
	sh := newShellSession(t, repo, env)

	for _, s := range steps {
		cmdText := strings.TrimSpace(stripComment(s.cmd))
		switch {
		case cmdText == "make test":
			t.Logf("%s: skipped %q (it runs this test)", s.where(), cmdText)
			continue
		case aptInstallRe.MatchString(cmdText):
			pkgs := strings.Fields(aptInstallRe.FindStringSubmatch(cmdText)[3])
			if exec.Command("dpkg", append([]string{"-s"}, pkgs...)...).Run() == nil {
				t.Logf("%s: skipped %q (installed)", s.where(), cmdText)
				continue
			}
		case serverCmdRe.MatchString(cmdText):
			srv.stop()
			srv = startBackground(t, s, cmdText, repo, env)
			continue
		case strings.Contains(s.comment, "from the banner"):
			if srv == nil {
				t.Fatalf("%s: a step from the banner, but no server was started before it", s.where())
			}
			s.cmd = bannerExport(t, s, srv)
		}
		t.Logf("%s: $ %s", s.where(), s.cmd)
		start := time.Now()
		logFrom := srv.size()
		out, code, finished := sh.run(s.cmd, 10*time.Minute)
		if !finished {
			t.Fatalf("%s: the command did not finish within 10m (or bash died):\n$ %s\n%s\n--- server log while it ran (tail):\n%s", s.where(), s.cmd, out, srv.since(logFrom, 80))
		}
		if problem := s.check(out, code); problem != "" {
			t.Fatalf("%s: %s\n$ %s\n%s\n--- server log while it ran (tail):\n%s", s.where(), problem, s.cmd, out, srv.since(logFrom, 80))
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Logf("  (%s)", d.Round(time.Second))
		}
	}
}

// stripComment removes the comments of every line of a command.
func stripComment(cmd string) string {
	var ls []string
	for _, l := range strings.Split(cmd, "\n") {
		code, _ := splitComment(l)
		ls = append(ls, code)
	}
	return strings.Join(ls, "\n")
}

// startBackground starts a server command in the repository copy and
// waits for its banner.
func startBackground(t *testing.T, s docStep, cmdText, dir string, env []string) *bgServer {
	t.Helper()
	t.Logf("%s: $ %s   (in the background)", s.where(), cmdText)
	p := &bgServer{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("bash", "--noprofile", "--norc", "-c", cmdText)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: start %q: %v", s.where(), cmdText, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(5 * time.Minute) // make dev builds first
	for !strings.Contains(p.out.String(), "gantry dev server ready") {
		if p.exited() {
			t.Fatalf("%s: %q exited before its banner:\n%s", s.where(), cmdText, p.tail(80))
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("%s: no banner from %q within 5m:\n%s", s.where(), cmdText, p.tail(80))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// bannerExport is the `export …` line of the server's latest banner.
func bannerExport(t *testing.T, s docStep, p *bgServer) string {
	t.Helper()
	var last string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "export GANTRY_SERVER=") {
			last = l
		}
	}
	if last == "" {
		t.Fatalf("%s: the banner has no export line:\n%s", s.where(), p.tail(40))
	}
	return last
}

// removeDockerEnv removes the containers and networks labelled
// gantry.env=env.
func removeDockerEnv(t *testing.T, env string) {
	for _, kind := range []string{"container", "network"} {
		out, err := exec.Command("docker", kind, "ls", "-aq", "--filter", "label=gantry.env="+env).Output()
		if kind == "network" {
			out, err = exec.Command("docker", kind, "ls", "-q", "--filter", "label=gantry.env="+env).Output()
		}
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			continue
		}
		args := append([]string{kind, "rm"}, strings.Fields(string(out))...)
		if kind == "container" {
			args = append([]string{kind, "rm", "-f"}, strings.Fields(string(out))...)
		}
		if b, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
			t.Logf("docker %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

// The runner's own convention: how commands, comments and predictions are
// read (no server; runs with -short too).
func TestReadmeConvention(t *testing.T) {
	lines := []string{
		`# a comment line`,
		`gantry hosts ls   # "db1 … online" "web1"`,
		`gantry run -- 'echo "#not a comment"' # fails: exit 1`,
		`gantry deploy x y --wait   # non-zero exit on failure`,
		`cat > f <<'YAML'`,
		`a: 1  # part of the heredoc`,
		`YAML`,
		`gantry server --listen a \`,
		`  --tls-san b   # prints nothing`,
	}
	steps := splitCommands("X.md", "s", 10, lines)
	if len(steps) != 5 {
		t.Fatalf("%d commands, want 5: %+v", len(steps), steps)
	}
	if steps[0].line != 11 || steps[0].comment != `"db1 … online" "web1"` {
		t.Errorf("step 0: %+v", steps[0])
	}
	if steps[0].check("db1   h-1  online\nweb1 x", 0) != "" || steps[0].check("db1 offline\nweb1", 0) == "" {
		t.Errorf("the ellipsis prediction is not checked line by line")
	}
	if steps[1].comment != "fails: exit 1" || steps[1].check("", 1) != "" || steps[1].check("", 0) == "" {
		t.Errorf("step 1 (exit 1): %+v", steps[1])
	}
	if steps[2].check("", 0) != "" || steps[2].check("", 1) == "" {
		t.Errorf("'exit 1 on failure' must not be read as a predicted exit code")
	}
	if steps[3].cmd != "cat > f <<'YAML'\na: 1  # part of the heredoc\nYAML" || steps[3].comment != "" {
		t.Errorf("heredoc: %q (comment %q)", steps[3].cmd, steps[3].comment)
	}
	if !strings.Contains(steps[4].cmd, "--tls-san b") || steps[4].check("x", 0) == "" || steps[4].check("\n", 0) != "" {
		t.Errorf("continuation / prints nothing: %+v", steps[4])
	}
}
