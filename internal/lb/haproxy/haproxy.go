package haproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/lb"
)

// Name is the driver's name (protocol.LBCommand.Driver).
const Name = "haproxy"

func init() { lb.Register(Name, func(o lb.Options) (lb.Balancer, error) { return Open(o) }) }

// Files of a managed haproxy, in its directory.
const (
	CfgFile     = "haproxy.cfg"
	PidFile     = "haproxy.pid"
	SocketFile  = "admin.sock"
	DesiredFile = "desired.json"
	StateFile   = "server-state"
)

// maxSocketPath is the longest unix socket path the kernel takes
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// Balancer is one HAProxy: managed (gantry writes its configuration and
// runs it) or external (hand-configured, driven through its socket only).
type Balancer struct {
	c         Client
	stateFile string // external: where `show servers state` goes after changes

	// managed only
	dir  string
	mu   sync.Mutex
	want *api.LBConfig // desired state, loaded lazily from DesiredFile
	// gen counts changes of want (under mu); written is the generation
	// in desired.json (under wmu, which serializes its writes); syncReq
	// wakes the background writer.
	gen, written uint64
	wmu          sync.Mutex
	syncReq      chan struct{}
	syncOnce     sync.Once
}

var _ lb.Balancer = (*Balancer)(nil)

// Open returns the HAProxy that o names: external when o.Socket is set,
// else the one managed in o.Dir. It starts nothing.
func Open(o lb.Options) (*Balancer, error) {
	if o.Socket != "" {
		if !filepath.IsAbs(o.Socket) {
			return nil, fmt.Errorf("haproxy: socket %q must be an absolute path", o.Socket)
		}
		if o.StateFile != "" && !filepath.IsAbs(o.StateFile) {
			return nil, fmt.Errorf("haproxy: state_file %q must be an absolute path", o.StateFile)
		}
		return &Balancer{c: Client{Socket: o.Socket}, stateFile: o.StateFile}, nil
	}
	if o.Dir == "" {
		return nil, errors.New("haproxy: a managed load balancer needs a directory (the agent's data dir)")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	return &Balancer{c: Client{Socket: socketPath(dir)}, dir: dir}, nil
}

// socketPath is dir/admin.sock, or, when that is too long for a unix
// socket, a short path under /run (root) or the temporary directory
// named by a hash of dir.
func socketPath(dir string) string {
	p := filepath.Join(dir, SocketFile)
	if len(p) <= maxSocketPath {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	base := os.TempDir()
	if os.Geteuid() == 0 {
		if st, err := os.Stat("/run"); err == nil && st.IsDir() {
			base = "/run"
		}
	}
	return filepath.Join(base, "gantry-lb-"+hex.EncodeToString(sum[:8])+".sock")
}

// Managed reports whether gantry configures this HAProxy.
func (b *Balancer) Managed() bool { return b.dir != "" }

// Socket is the runtime API socket's path.
func (b *Balancer) Socket() string { return b.c.Socket }

// Client is the runtime API client.
func (b *Balancer) Client() *Client { return &b.c }

func (b *Balancer) path(name string) string { return filepath.Join(b.dir, name) }

// Status implements lb.Balancer.
func (b *Balancer) Status(ctx context.Context, backend string) ([]api.LBServerStatus, error) {
	if err := b.ensure(ctx); err != nil {
		return nil, err
	}
	snap, err := b.c.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if backend == "" {
		return snap.Servers, nil
	}
	if !contains(snap.Backends, backend) {
		return nil, fmt.Errorf("haproxy has no backend %q (backends: %s)", backend, strings.Join(snap.Backends, ", "))
	}
	out := []api.LBServerStatus{}
	for _, s := range snap.Servers {
		if s.Backend == backend {
			out = append(out, s)
		}
	}
	return out, nil
}

// Set implements lb.Balancer. The change is written down (the desired
// state of a managed HAProxy, the state file of an external one) before
// Set returns.
func (b *Balancer) Set(ctx context.Context, backend, server, state string, weight int) error {
	if state != "" {
		if err := checkState(state); err != nil {
			return err
		}
	}
	if weight > 256 {
		return fmt.Errorf("weight %d: from 0 to 256", weight)
	}
	if err := b.ensure(ctx); err != nil {
		return err
	}
	var cmds []string
	if weight >= 0 {
		cmds = append(cmds, fmt.Sprintf("set server %s/%s weight %d", backend, server, weight))
	}
	if state != "" {
		cmds = append(cmds, fmt.Sprintf("set server %s/%s state %s", backend, server, state))
	}
	if len(cmds) == 0 {
		return nil
	}
	// Under b.mu: a change must not reach an old process during a reload.
	b.lockManaged()
	defer b.unlockManaged()
	if err := b.c.Exec(ctx, strings.Join(cmds, ";")); err != nil {
		return err
	}
	return b.persistLocked(ctx, func(s *api.LBServer) {
		if weight >= 0 {
			s.Weight = weight
		}
		if state != "" {
			s.State = state
		}
	}, backend, server)
}

// ForceDown implements lb.Balancer. HAProxy ignores a health change of a
// server in maint (and a server leaving maint keeps the health it had), so
// a server in maint is put in drain first: it still gets no new traffic.
func (b *Balancer) ForceDown(ctx context.Context, backend, server string) error {
	if err := b.ensure(ctx); err != nil {
		return err
	}
	name := backend + "/" + server
	states, _, err := b.c.ServersState(ctx)
	if err != nil {
		return err
	}
	s, ok := states[name]
	if !ok {
		return fmt.Errorf("haproxy has no server %s", name)
	}
	cmd := "set server " + name + " health down"
	if s.Admin() == api.LBMaint {
		cmd = "set server " + name + " state drain;" + cmd
	}
	b.lockManaged()
	defer b.unlockManaged()
	return b.c.Exec(ctx, cmd)
}

// lockManaged takes b.mu for a managed HAProxy (whose reloads hold it).
func (b *Balancer) lockManaged() {
	if b.Managed() {
		b.mu.Lock()
	}
}

func (b *Balancer) unlockManaged() {
	if b.Managed() {
		b.mu.Unlock()
	}
}

// Remove implements lb.Balancer: `del server` (the server must be in maint
// without sessions). A managed HAProxy's configuration forgets it too; an
// external one gets it back from its own configuration at its next reload.
func (b *Balancer) Remove(ctx context.Context, backend, server string) error {
	if err := b.ensure(ctx); err != nil {
		return err
	}
	b.lockManaged()
	defer b.unlockManaged()
	if err := b.del(ctx, backend, server); err != nil {
		return err
	}
	if !b.Managed() {
		return b.dumpState(ctx)
	}
	want, err := b.desired()
	if err != nil || want == nil {
		return err
	}
	for i := range want.Backends {
		if want.Backends[i].Name == backend {
			want.Backends[i].Servers = without(want.Backends[i].Servers, server)
		}
	}
	return b.saveLocked(*want)
}

func (b *Balancer) del(ctx context.Context, backend, server string) error {
	out, err := b.c.Run(ctx, fmt.Sprintf("del server %s/%s", backend, server))
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Server deleted") {
		return fmt.Errorf("haproxy refused to delete %s/%s: %s", backend, server, oneLine(out))
	}
	return nil
}

// persistLocked records a runtime change: in a managed HAProxy's desired
// state (b.mu held), or an external one's state file.
func (b *Balancer) persistLocked(ctx context.Context, change func(*api.LBServer), backend, server string) error {
	if !b.Managed() {
		return b.dumpState(ctx)
	}
	want, err := b.desired()
	if err != nil || want == nil {
		return err
	}
	for i := range want.Backends {
		if want.Backends[i].Name != backend {
			continue
		}
		for j := range want.Backends[i].Servers {
			if want.Backends[i].Servers[j].Name == server {
				change(&want.Backends[i].Servers[j])
			}
		}
	}
	return b.saveFastLocked(*want)
}

// dumpState writes `show servers state` to the state file (external: when
// one was given; managed: always), for load-server-state-from-file.
func (b *Balancer) dumpState(ctx context.Context) error {
	path := b.stateFile
	if b.Managed() {
		path = b.path(StateFile)
	}
	if path == "" {
		return nil
	}
	_, out, err := b.c.ServersState(ctx)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(out), 0o600); err != nil {
		return fmt.Errorf("haproxy state_file: %w", err)
	}
	return nil
}

// desired returns the desired state (nil when never configured). b.mu held.
func (b *Balancer) desired() (*api.LBConfig, error) {
	if b.want != nil {
		return b.want, nil
	}
	data, err := os.ReadFile(b.path(DesiredFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg api.LBConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("haproxy: %s: %w", b.path(DesiredFile), err)
	}
	b.want = &cfg
	return b.want, nil
}

// saveLocked writes the desired state durably (Configure, starts,
// removals) before it returns. b.mu held.
func (b *Balancer) saveLocked(cfg api.LBConfig) error {
	b.want = &cfg
	b.gen++
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return b.writeDesired(data, b.gen)
}

// saveFastLocked records the desired state after a runtime change without
// waiting for the disk: a background writer replaces the file (atomically
// and durably) with the latest state, and every start or reload writes it
// too (saveLocked). The running HAProxy holds the change already, and a
// reload carries it over from HAProxy itself (server-state), so only a
// crash of both the agent and HAProxy within that write could lose it;
// waiting for the disk instead made a weight change take tens of
// milliseconds on a busy machine. b.mu held.
func (b *Balancer) saveFastLocked(cfg api.LBConfig) error {
	b.want = &cfg
	b.gen++
	b.syncOnce.Do(func() {
		b.syncReq = make(chan struct{}, 1)
		go b.writer()
	})
	select {
	case b.syncReq <- struct{}{}:
	default:
	}
	return nil
}

// writer writes the desired state after saveFastLocked changed it. It
// holds b.mu only to take a copy, never during the write.
func (b *Balancer) writer() {
	for range b.syncReq {
		b.mu.Lock()
		gen := b.gen
		data, err := json.MarshalIndent(b.want, "", "  ")
		b.mu.Unlock()
		if err == nil {
			_ = b.writeDesired(data, gen) // on failure: again at the next change
		}
	}
}

// writeDesired writes generation gen of the desired state, unless a newer
// one was written already.
func (b *Balancer) writeDesired(data []byte, gen uint64) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if gen <= b.written {
		return nil
	}
	if err := atomicfile.Write(b.path(DesiredFile), data, 0o600); err != nil {
		return err
	}
	b.written = gen
	return nil
}

// ensure makes sure a managed HAProxy runs: one that died (or a machine
// that rebooted) is started again from its desired state. Nothing for an
// external one.
func (b *Balancer) ensure(ctx context.Context) error {
	if !b.Managed() {
		return nil
	}
	if len(b.pids()) > 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pids()) > 0 {
		return nil
	}
	want, err := b.desired()
	if err != nil {
		return err
	}
	if want == nil {
		return errors.New("haproxy is not configured on this host yet (no configure command received)")
	}
	return b.startLocked(ctx, *want, nil)
}

// pids are the processes of the pid file that are alive and run this
// directory's configuration.
func (b *Balancer) pids() []int {
	data, err := os.ReadFile(b.path(PidFile))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), b.path(CfgFile)) {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			out = append(out, pid)
		}
	}
	return out
}

// Binary is the haproxy executable: $GANTRY_HAPROXY, haproxy on PATH, or
// /usr/sbin/haproxy.
func Binary() (string, error) {
	if p := os.Getenv("GANTRY_HAPROXY"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy", nil
	}
	return "", errors.New("haproxy is not installed (apt-get install haproxy), or set GANTRY_HAPROXY to its path")
}

// underSystemd reports whether this process is a systemd unit's (as root),
// whose stop would kill every process of its control group.
func underSystemd() (systemdRun string, ok bool) {
	if os.Getenv("INVOCATION_ID") == "" || os.Geteuid() != 0 {
		return "", false
	}
	if st, err := os.Stat("/run/systemd/system"); err != nil || !st.IsDir() {
		return "", false
	}
	p, err := exec.LookPath("systemd-run")
	return p, err == nil
}

// start runs haproxy to start a daemon. Under systemd it runs in a scope
// of its own, so that stopping or restarting the agent's unit (which kills
// the unit's whole control group) leaves the load balancer running.
func start(ctx context.Context, args ...string) error {
	if sr, ok := underSystemd(); ok {
		bin, err := Binary()
		if err != nil {
			return err
		}
		return runBin(ctx, sr, append([]string{"--scope", "--quiet", "--collect", "--description=gantry haproxy", bin}, args...)...)
	}
	return run(ctx, args...)
}

// run runs haproxy with args and returns its output on failure.
func run(ctx context.Context, args ...string) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	return runBin(ctx, bin, args...)
}

func runBin(ctx context.Context, bin string, args ...string) error {
	out, err := os.CreateTemp("", "gantry-haproxy-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, args...)
	// Output to a file, not a pipe: the daemon inherits the descriptors
	// and would hold a pipe open.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
	if err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("haproxy %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errorLines(string(msg))))
	}
	return nil
}

// errorLines keeps haproxy's ALERT lines (or everything without any).
func errorLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "ALERT") {
			keep = append(keep, l)
		}
	}
	if len(keep) == 0 {
		return truncate(s, 2000)
	}
	return truncate(strings.Join(keep, "\n"), 2000)
}

// startLocked writes cfg and starts HAProxy, taking the listening sockets
// over from the running oldPids (a seamless reload, -x) when there are
// any. On failure the previous configuration file is put back. b.mu held.
func (b *Balancer) startLocked(ctx context.Context, cfg api.LBConfig, oldPids []int) error {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return fmt.Errorf("haproxy dir: %w", err)
	}
	cfgPath := b.path(CfgFile)
	prev, prevErr := os.ReadFile(cfgPath)
	text := render(cfg, b.c.Socket, b.path(StateFile))
	if err := atomicfile.Write(cfgPath+".new", []byte(text), 0o600); err != nil {
		return err
	}
	if err := run(ctx, "-c", "-q", "-f", cfgPath+".new"); err != nil {
		return fmt.Errorf("generated configuration refused: %w", err)
	}
	if err := os.Rename(cfgPath+".new", cfgPath); err != nil {
		return err
	}
	restore := func() {
		if prevErr == nil {
			_ = atomicfile.Write(cfgPath, prev, 0o600)
		}
	}
	if len(oldPids) > 0 {
		// Carry every server's runtime state and weight over.
		if err := b.dumpState(ctx); err != nil {
			restore()
			return err
		}
	} else if err := b.removeStateFile(); err != nil {
		return err
	}
	args := []string{"-D", "-f", cfgPath, "-p", b.path(PidFile)}
	if len(oldPids) > 0 {
		args = append(args, "-x", b.c.Socket, "-sf")
		for _, p := range oldPids {
			args = append(args, strconv.Itoa(p))
		}
	}
	if err := start(ctx, args...); err != nil {
		restore()
		return err
	}
	// Wait until the new process answers on the socket.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := b.pids()
		if len(pids) > 0 && !sameInts(pids, oldPids) {
			out, err := b.c.Run(ctx, "show info")
			if err == nil && strings.Contains(out, "\nPid: "+strconv.Itoa(pids[0])+"\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("haproxy started but does not answer on its socket " + b.c.Socket)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.saveLocked(cfg); err != nil {
		return err
	}
	return b.reconcileLocked(ctx, cfg)
}

// removeStateFile removes the server-state file before a cold start: the
// configuration written from the desired state is then the truth, and
// reconcileLocked applies what it cannot say (drain).
func (b *Balancer) removeStateFile() error {
	err := os.Remove(b.path(StateFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// reconcileLocked sets the runtime state and weight of every server to
// the desired ones where they differ. b.mu held.
func (b *Balancer) reconcileLocked(ctx context.Context, cfg api.LBConfig) error {
	snap, err := b.c.Snapshot(ctx)
	if err != nil {
		return err
	}
	have := map[string]api.LBServerStatus{}
	for _, s := range snap.Servers {
		have[s.Backend+"/"+s.Name] = s
	}
	var cmds []string
	for _, bk := range cfg.Backends {
		for _, s := range bk.Servers {
			h, ok := have[bk.Name+"/"+s.Name]
			if !ok {
				continue
			}
			if h.Weight != s.Weight {
				cmds = append(cmds, fmt.Sprintf("set server %s/%s weight %d", bk.Name, s.Name, s.Weight))
			}
			if h.State != s.State {
				cmds = append(cmds, fmt.Sprintf("set server %s/%s state %s", bk.Name, s.Name, s.State))
			}
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	return b.c.Exec(ctx, strings.Join(cmds, ";"))
}

// Configure implements lb.Balancer for a managed HAProxy: servers missing
// are added at runtime (`add server`, in maint, then their state), servers
// gone are deleted at runtime (drained first), servers present keep their
// runtime state and weight; the configuration file and desired state are
// rewritten; only a change of the backends themselves reloads (seamless,
// -x). A stopped HAProxy is started.
func (b *Balancer) Configure(ctx context.Context, cfg api.LBConfig) error {
	if !b.Managed() {
		return fmt.Errorf("configure is for a load balancer gantry manages; the one at socket %s is configured by hand (only set, weights, drain, allow, remove and status)", b.c.Socket)
	}
	cfg, err := normalize(cfg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old, err := b.desired()
	if err != nil {
		return err
	}
	pids := b.pids()
	// What runs now: the runtime when HAProxy runs, else the desired state.
	cur := map[string]api.LBServer{}
	if len(pids) > 0 {
		snap, err := b.c.Snapshot(ctx)
		if err != nil {
			return err
		}
		for _, s := range snap.Servers {
			cur[s.Backend+"/"+s.Name] = api.LBServer{Name: s.Name, Addr: s.Addr, Port: s.Port, Weight: s.Weight, State: s.State}
		}
	} else if old != nil {
		for _, bk := range old.Backends {
			for _, s := range bk.Servers {
				cur[bk.Name+"/"+s.Name] = s
			}
		}
	}
	// The addresses as configured (HAProxy reports a DNS name resolved).
	configured := map[string]string{}
	if old != nil {
		for _, bk := range old.Backends {
			for _, s := range bk.Servers {
				configured[bk.Name+"/"+s.Name] = s.Addr
			}
		}
	}
	// Servers already there keep their state and weight.
	type key struct{ backend, server string }
	var added []key
	keep := map[string]bool{}
	for i, bk := range cfg.Backends {
		for j, s := range bk.Servers {
			k := bk.Name + "/" + s.Name
			if c, ok := cur[k]; ok && (c.Addr == s.Addr || configured[k] == s.Addr) && c.Port == s.Port {
				cfg.Backends[i].Servers[j].State, cfg.Backends[i].Servers[j].Weight = c.State, c.Weight
				keep[k] = true
			} else {
				added = append(added, key{bk.Name, s.Name})
			}
		}
	}
	if len(pids) == 0 || old == nil || !sameShape(*old, cfg) {
		return b.startLocked(ctx, cfg, pids)
	}
	// Same backends: servers change at runtime, no reload.
	var gone []string
	for k := range cur {
		if !keep[k] {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		bk, srv, _ := strings.Cut(k, "/")
		if err := b.retire(ctx, bk, srv, cur[k].State); err != nil {
			return err
		}
	}
	for _, k := range added {
		if err := b.add(ctx, cfg, k.backend, k.server); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(b.path(CfgFile), []byte(render(cfg, b.c.Socket, b.path(StateFile))), 0o600); err != nil {
		return err
	}
	if err := b.saveLocked(cfg); err != nil {
		return err
	}
	return b.dumpState(ctx)
}

// retire deletes a server Configure no longer has: drained (its sessions
// given up to 30 s), put in maint, deleted.
func (b *Balancer) retire(ctx context.Context, backend, server, state string) error {
	name := backend + "/" + server
	if state != api.LBMaint {
		if err := b.c.Exec(ctx, "set server "+name+" state drain"); err != nil {
			return err
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			snap, err := b.c.Snapshot(ctx)
			if err != nil {
				return err
			}
			busy := false
			for _, s := range snap.Servers {
				if s.Backend == backend && s.Name == server && s.Sessions > 0 {
					busy = true
				}
			}
			if !busy {
				break
			}
			if err := lb.Sleep(ctx, 25*time.Millisecond); err != nil {
				return err
			}
		}
		if err := b.c.Exec(ctx, "set server "+name+" state maint"); err != nil {
			return err
		}
	}
	// Idle connections to it close shortly after maint; retry a while.
	var err error
	for i := 0; i < 100; i++ {
		if err = b.del(ctx, backend, server); err == nil {
			return nil
		}
		if i == 50 {
			_ = b.c.Exec(ctx, "shutdown sessions server "+name)
		}
		if e := lb.Sleep(ctx, 20*time.Millisecond); e != nil {
			return e
		}
	}
	return err
}

// add creates a server at runtime: `add server` (created in maint, every
// parameter explicit: dynamic servers do not inherit default-server),
// `enable health`, then its state, DOWN until its checks pass.
func (b *Balancer) add(ctx context.Context, cfg api.LBConfig, backend, server string) error {
	for _, bk := range cfg.Backends {
		if bk.Name != backend {
			continue
		}
		for _, s := range bk.Servers {
			if s.Name != server {
				continue
			}
			name := backend + "/" + server
			if net.ParseIP(s.Addr) == nil {
				// HAProxy resolves names in the file at start-up, but a
				// dynamic server's only with a resolvers section: resolve
				// it here.
				ips, err := net.DefaultResolver.LookupIP(ctx, "ip", s.Addr)
				if err != nil || len(ips) == 0 {
					return fmt.Errorf("server %s: cannot resolve %s: %v", name, s.Addr, err)
				}
				s.Addr = ips[0].String()
				for _, ip := range ips {
					if ip.To4() != nil {
						s.Addr = ip.String()
						break
					}
				}
			}
			out, err := b.c.Run(ctx, "add server "+name+" "+serverLine(bk, s))
			if err != nil {
				return err
			}
			if !strings.Contains(out, "New server registered") {
				return fmt.Errorf("haproxy refused to add server %s: %s", name, oneLine(out))
			}
			cmds := []string{"enable health " + name}
			if s.State != api.LBMaint {
				// Out of maint a new server would be UP before any check:
				// its health is forced down (which needs it out of maint,
				// drain meanwhile) so that it takes traffic once its
				// checks pass rise times.
				cmds = append(cmds, "set server "+name+" state drain", "set server "+name+" health down")
				if s.State != api.LBDrain {
					cmds = append(cmds, "set server "+name+" state "+s.State)
				}
			}
			return b.c.Exec(ctx, strings.Join(cmds, ";"))
		}
	}
	return nil
}

// Stop stops a managed HAProxy (its current process and the old ones
// still finishing connections after reloads) and removes its socket. Its
// desired state stays, written down: the next operation starts it again.
func (b *Balancer) Stop() error {
	if !b.Managed() {
		return errors.New("haproxy: Stop is for a managed load balancer")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Write the desired state now, so that no background write is left
	// (its directory may be removed next).
	if b.want != nil {
		if data, err := json.MarshalIndent(b.want, "", "  "); err == nil {
			_ = b.writeDesired(data, b.gen)
		}
	}
	for _, pid := range processesOf(b.path(CfgFile)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(b.c.Socket)
	return nil
}

// processesOf lists the processes whose command line names cfgPath.
func processesOf(cfgPath string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for _, a := range args {
			if a == cfgPath {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// Pids are the managed HAProxy's running process ids (the pid file's).
func (b *Balancer) Pids() []int { return b.pids() }

func without(servers []api.LBServer, name string) []api.LBServer {
	out := servers[:0:0]
	for _, s := range servers {
		if s.Name != name {
			out = append(out, s)
		}
	}
	return out
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
