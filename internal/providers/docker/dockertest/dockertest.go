// Package dockertest builds small test images and cleans up after tests
// that use the machine's Docker engine. Nothing is ever pulled (no registry
// is reachable): images are built `FROM scratch` through the Engine API's
// build endpoint, from Debian's static busybox (`apt-get install
// busybox-static`) plus the files and binaries a test needs. No docker CLI
// is needed. The daemon is the one $DOCKER_HOST names, else
// unix:///var/run/docker.sock.
//
// Tag test images gantry-test-<what>:dev.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/providers/docker/engine"
)

// BusyboxPath is where Debian's busybox-static puts the static busybox.
const BusyboxPath = "/bin/busybox"

// LabelTest marks the containers Run starts (value "run"), so that a test
// can clean up after an interrupted run.
const LabelTest = "gantry.test"

// Applets are the busybox applets linked in /bin of every image.
//
// Beware: the wget of Debian 12's busybox-static (1.35) crashes with -T;
// bound it with the timeout applet instead (timeout 5 wget ...).
var Applets = []string{
	"sh", "ls", "cat", "echo", "wget", "nc", "sleep", "kill", "ps", "mkdir", "rm", "cp", "mv",
	"grep", "sed", "awk", "env", "id", "hostname", "httpd", "chmod", "touch", "test", "[",
	"printf", "head", "tail", "date", "true", "false", "setsid", "nohup", "seq", "tr", "wc",
	"sort", "cut", "ip", "ifconfig",
	"timeout", "ln", "basename", "dirname", "xargs", "find", "tee", "uname", "stat", "tar",
	"gzip", "sha256sum", "md5sum", "which", "netstat", "expr", "readlink", "pidof", "uptime",
}

// File is one file of an image.
type File struct {
	// Source is a file on this machine to copy (symbolic links followed).
	// When empty, the file holds Data.
	Source string
	// Data is the file's content when Source is empty.
	Data []byte
	// Mode is the permission bits (default: Source's, or 0644 for Data).
	Mode fs.FileMode
	// Link makes the entry a symbolic link to Link instead of a file.
	Link string
	// Dir makes the entry a directory (Mode default 0755).
	Dir bool
}

// Spec describes a test image.
type Spec struct {
	// Tag names the image: gantry-test-<what>:dev.
	Tag string
	// Files are added by absolute path in the image; they win over the
	// busybox applet links of the same path.
	Files map[string]File
	// Binaries are dynamically linked programs on this machine (e.g.
	// /usr/sbin/haproxy), added at the same path with every library ldd
	// lists and the dynamic loader. Static ones are added as they are.
	Binaries []string
	// Cmd is the image's default command (default ["/bin/sh"]).
	Cmd []string
}

// Client returns a client of the default daemon ($DOCKER_HOST, else the
// unix socket).
func Client() (*engine.Client, error) { return engine.New("") }

// Require returns a client of the daemon for a test that needs Docker. With
// -short the test is skipped; without, a daemon that does not answer fails
// the test with a message saying what to do.
func Require(t testing.TB) *engine.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Docker engine: skipped with -short")
	}
	c, err := Client()
	if err != nil {
		t.Fatalf("this test needs a Docker engine: %v (run go test -short to skip it)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("this test needs a Docker engine (API %s): %v\n(or run go test -short to skip it)", engine.APIVersion, err)
	}
	return c
}

// CheckBusybox returns an error saying how to install busybox-static when
// /bin/busybox is missing or not static.
func CheckBusybox() error {
	const how = "install it with: apt-get install busybox-static"
	f, err := elf.Open(BusyboxPath)
	if err != nil {
		return fmt.Errorf("test images need a static %s (%v); %s", BusyboxPath, err, how)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("test images need a static %s, and this one is dynamically linked (package busybox, not busybox-static?); %s", BusyboxPath, how)
		}
	}
	return nil
}

// BuildImage builds tag FROM scratch with busybox, its applet links and
// files (by absolute path in the image).
func BuildImage(ctx context.Context, tag string, files map[string]File) error {
	return Build(ctx, Spec{Tag: tag, Files: files})
}

// BuildImageWithBinaries builds tag as BuildImage does, plus the given
// dynamically linked binaries with their libraries and loader.
func BuildImageWithBinaries(ctx context.Context, tag string, bins []string) error {
	return Build(ctx, Spec{Tag: tag, Binaries: bins})
}

// Build builds the image s describes on the default daemon.
func Build(ctx context.Context, s Spec) error {
	c, err := Client()
	if err != nil {
		return err
	}
	defer c.Close()
	return BuildWith(ctx, c, s)
}

// BuildWith builds the image s describes on the daemon of c.
func BuildWith(ctx context.Context, c *engine.Client, s Spec) error {
	if s.Tag == "" {
		return errors.New("dockertest: build: no tag")
	}
	if err := CheckBusybox(); err != nil {
		return err
	}
	files := map[string]File{
		BusyboxPath:    {Source: BusyboxPath, Mode: 0o755},
		"/tmp":         {Dir: true, Mode: 0o777 | fs.ModeSticky},
		"/root":        {Dir: true, Mode: 0o700},
		"/var/lib":     {Dir: true},
		"/usr/bin/env": {Link: BusyboxPath},
		"/etc/passwd":  {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		"/etc/group":   {Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, a := range Applets {
		files["/bin/"+a] = File{Link: "busybox"}
	}
	for _, b := range s.Binaries {
		deps, err := libraries(ctx, b)
		if err != nil {
			return fmt.Errorf("dockertest: build %s: %w", s.Tag, err)
		}
		for _, p := range append([]string{b}, deps...) {
			files[p] = File{Source: p}
		}
	}
	for p, f := range s.Files {
		files[p] = f
	}
	cmd := s.Cmd
	if len(cmd) == 0 {
		cmd = []string{"/bin/sh"}
	}
	cmdJSON, _ := json.Marshal(cmd)
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nCMD " + string(cmdJSON) + "\n"

	var ctxTar bytes.Buffer
	if err := writeContext(&ctxTar, dockerfile, files); err != nil {
		return fmt.Errorf("dockertest: build %s: %w", s.Tag, err)
	}
	q := url.Values{"t": {s.Tag}, "rm": {"1"}, "forcerm": {"1"}, "pull": {"0"}}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	resp, err := c.Stream(bctx, http.MethodPost, "/build", q, "application/x-tar", &ctxTar)
	if err != nil {
		return fmt.Errorf("dockertest: build %s: %w", s.Tag, err)
	}
	defer resp.Body.Close()
	var log strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("dockertest: build %s: read progress: %w", s.Tag, err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			return fmt.Errorf("dockertest: build %s: %s\n%s", s.Tag, msg.Error, log.String())
		}
	}
	return nil
}

// libraries returns the shared libraries and loader ldd lists for bin
// (none for a static binary).
func libraries(ctx context.Context, bin string) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", bin, err)
	}
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	f.Close()
	if !dynamic {
		return nil, nil
	}
	out, err := exec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	var libs []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[1] == "=>":
			if fields[2] == "not" {
				return nil, fmt.Errorf("ldd %s: %s not found", bin, fields[0])
			}
			if strings.HasPrefix(fields[2], "/") {
				libs = append(libs, fields[2])
			}
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			libs = append(libs, fields[0]) // the loader
		}
	}
	return libs, nil
}

// writeContext writes the build context: the Dockerfile and rootfs/ with
// files (parent directories made 0755).
func writeContext(w io.Writer, dockerfile string, files map[string]File) error {
	entries := map[string]File{}
	for p, f := range files {
		if !path.IsAbs(p) {
			return fmt.Errorf("image path %q is not absolute", p)
		}
		p = path.Clean(p)
		entries[p] = f
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Dir: true}
			}
		}
	}
	// A file given explicitly may have replaced a parent made implicitly.
	for p, f := range files {
		entries[path.Clean(p)] = f
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names) // parents before children
	tw := tar.NewWriter(w)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), ModTime: now}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "rootfs/", Mode: 0o755, ModTime: now}); err != nil {
		return err
	}
	for _, p := range names {
		f := entries[p]
		name := "rootfs" + p
		switch {
		case f.Dir:
			mode := f.Mode
			if mode == 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: tarMode(mode), ModTime: now}); err != nil {
				return err
			}
		case f.Link != "":
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Link, Mode: 0o777, ModTime: now}); err != nil {
				return err
			}
		default:
			data, mode := f.Data, f.Mode
			if f.Source != "" {
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return err
				}
				data = b
				if mode == 0 {
					fi, err := os.Stat(f.Source)
					if err != nil {
						return err
					}
					mode = fi.Mode().Perm()
				}
			}
			if mode == 0 {
				mode = 0o644
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: tarMode(mode), Size: int64(len(data)), ModTime: now}); err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// tarMode turns a file mode into tar's mode bits (with setuid, setgid and
// sticky).
func tarMode(m fs.FileMode) int64 {
	v := int64(m.Perm())
	if m&fs.ModeSticky != 0 || m&0o1000 != 0 {
		v |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	return v
}

// RemoveImage removes an image (and its untagged parents). An image that is
// gone, or still used by a container, is left alone without error.
func RemoveImage(ctx context.Context, c *engine.Client, tag string) error {
	err := c.Do(ctx, http.MethodDelete, "/images/"+tag, nil, nil, nil)
	if err == nil || engine.IsNotFound(err) || engine.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("dockertest: remove image %s: %w", tag, err)
}

// RemoveLabeled removes, by force, the containers and then the networks
// carrying label ("key=value" or "key"), disconnecting what is attached.
func RemoveLabeled(ctx context.Context, c *engine.Client, label string) error {
	var errs []error
	var cs []struct {
		ID string `json:"Id"`
	}
	q := engine.LabelFilter(label)
	q.Set("all", "1")
	if err := c.Do(ctx, http.MethodGet, "/containers/json", q, nil, &cs); err != nil {
		return fmt.Errorf("dockertest: list containers %s: %w", label, err)
	}
	for _, ct := range cs {
		err := c.Do(ctx, http.MethodDelete, "/containers/"+ct.ID, url.Values{"force": {"1"}, "v": {"1"}}, nil, nil)
		if err != nil && !engine.IsNotFound(err) && !strings.Contains(err.Error(), "in progress") {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", ct.ID, err))
		}
	}
	var ns []struct {
		ID         string `json:"Id"`
		Containers map[string]struct{}
	}
	if err := c.Do(ctx, http.MethodGet, "/networks", engine.LabelFilter(label), nil, &ns); err != nil {
		return errors.Join(append(errs, fmt.Errorf("dockertest: list networks %s: %w", label, err))...)
	}
	for _, n := range ns {
		var full struct{ Containers map[string]struct{} }
		if err := c.Do(ctx, http.MethodGet, "/networks/"+n.ID, nil, nil, &full); err == nil {
			for cid := range full.Containers {
				_ = c.Do(ctx, http.MethodPost, "/networks/"+n.ID+"/disconnect", nil,
					map[string]any{"Container": cid, "Force": true}, nil)
			}
		}
		if err := c.Do(ctx, http.MethodDelete, "/networks/"+n.ID, nil, nil, nil); err != nil && !engine.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %.12s: %w", n.ID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("dockertest: clean up %s: %w", label, errors.Join(errs...))
	}
	return nil
}

// Cleanup removes what carries label now and when the test ends (a
// previous run interrupted may have left some behind).
func Cleanup(t testing.TB, c *engine.Client, label string) {
	t.Helper()
	clean := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := RemoveLabeled(ctx, c, label); err != nil {
			t.Errorf("%v", err)
		}
	}
	clean()
	t.Cleanup(clean)
}

// Run runs cmd in a new container of image (on the default bridge),
// waits for it to exit, and returns its output (stdout and stderr
// interleaved) and exit code. The container is removed.
func Run(ctx context.Context, c *engine.Client, image string, cmd ...string) (output string, exit int, err error) {
	var created struct {
		ID string `json:"Id"`
	}
	req := map[string]any{"Image": image, "Cmd": cmd, "Labels": map[string]string{LabelTest: "run"}}
	if err := c.Do(ctx, http.MethodPost, "/containers/create", nil, req, &created); err != nil {
		return "", -1, fmt.Errorf("dockertest: run %v in %s: %w", cmd, image, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = c.Do(rctx, http.MethodDelete, "/containers/"+created.ID, url.Values{"force": {"1"}, "v": {"1"}}, nil, nil)
	}()
	if err := c.Do(ctx, http.MethodPost, "/containers/"+created.ID+"/start", nil, nil, nil); err != nil {
		return "", -1, fmt.Errorf("dockertest: run %v in %s: %w", cmd, image, err)
	}
	var waited struct{ StatusCode int }
	if err := c.Do(ctx, http.MethodPost, "/containers/"+created.ID+"/wait", nil, nil, &waited); err != nil {
		return "", -1, fmt.Errorf("dockertest: run %v in %s: wait: %w", cmd, image, err)
	}
	out, err := Logs(ctx, c, created.ID)
	if err != nil {
		return "", -1, err
	}
	return out, waited.StatusCode, nil
}

// Logs returns a container's output so far (stdout and stderr
// interleaved), for a container without a TTY.
func Logs(ctx context.Context, c *engine.Client, id string) (string, error) {
	resp, err := c.Stream(ctx, http.MethodGet, "/containers/"+id+"/logs", url.Values{"stdout": {"1"}, "stderr": {"1"}}, "", nil)
	if err != nil {
		return "", fmt.Errorf("dockertest: logs of %.12s: %w", id, err)
	}
	defer resp.Body.Close()
	var out strings.Builder
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(resp.Body, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return out.String(), fmt.Errorf("dockertest: logs of %.12s: %w", id, err)
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if _, err := io.CopyN(&out, resp.Body, int64(n)); err != nil {
			return out.String(), fmt.Errorf("dockertest: logs of %.12s: %w", id, err)
		}
	}
	return out.String(), nil
}

// CLI runs the docker command-line client (one minute at most), for tests
// that check what a user sees with it (`docker ps --filter …`), and
// returns its standard output; the error carries its standard error.
func CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
