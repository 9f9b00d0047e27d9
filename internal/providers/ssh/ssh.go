// Package ssh is the "ssh" provider: it onboards existing hosts by
// installing and starting the gantry agent over SSH, and touches nothing
// else on them (their applications, packages and users stay as they are).
//
// A machine is a host (address, port, user) and an agent directory
// (agent_dir, default /opt/gantry-agent) that belongs to gantry: Create
// uploads the agent binary there (streamed to `cat` over the session's
// standard input into a temporary file, then chmod and an atomic mv),
// writes agent.env (mode 0600) with the join token — sent over standard
// input, never on a command line — and starts the agent:
//
//   - where systemd runs and the user is root: a unit
//     gantry-agent-<name>.service (EnvironmentFile=agent.env,
//     Restart=always), enabled and started;
//   - otherwise: <agent_dir>/supervise.sh, a small POSIX sh supervisor
//     started detached (setsid nohup, output to <agent_dir>/agent.log) that
//     restarts the agent 2 s after it exits and writes its pid to
//     <agent_dir>/supervisor.pid.
//
// Delete stops that unit or supervisor and the agent (every process whose
// argument list names <agent_dir>/gantry or <agent_dir>/supervise.sh) and
// removes the agent directory, and nothing else. The directory carries a
// marker file (.gantry-agent): a directory without it is never reused nor
// removed, so that a mistyped agent_dir cannot delete someone's data.
//
// Host keys are always verified: host_key pins a fingerprint, otherwise
// the known_hosts file decides (an unknown host is an error that says how
// to pin it). Authentication is by a private key file and/or ssh-agent.
//
// The machine id is "user@address:port|agent_dir". Read and Delete get only
// the id, so the connection settings a machine set itself (its own
// private_key_file, known_hosts or host_key) are remembered by id in the
// provider's data directory (machines/*.json, mode 0600; paths and
// fingerprints only, no secret) and in memory. They are kept after Delete,
// so that a repeated Delete or Read still connects, and replaced by the
// next Create of the same id.
//
// Hosts have no labels, so List finds nothing (it returns nil): a host an
// interrupted apply onboarded is found again by its id when the apply is
// repeated, since Create on a host whose agent directory gantry made
// reinstalls the agent in place. Networks are not supported; size (cpus,
// memory) is not applied to an existing host.
//
// Every remote command is a constant POSIX sh script whose values are
// positional parameters, each validated and shell-quoted by one function
// (see quote.go); the remote login shell must be POSIX-like.
package ssh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/atomicfile"
	"github.com/gantry-dev/gantry/internal/provider"
)

// Type is the provider's type name in HCL: provider "ssh" "NAME".
const Type = "ssh"

// Defaults of the provider block.
const (
	// DefaultUser is the user gantry logs in as.
	DefaultUser = "root"
	// DefaultPort is the SSH port.
	DefaultPort = 22
	// DefaultAgentDir is the agent's directory on the host.
	DefaultAgentDir = "/opt/gantry-agent"
)

// configDocs documents the attributes of the provider block.
var configDocs = map[string]string{
	"user":             `user to log in as (default "root"); the agent runs as this user`,
	"port":             "SSH port (default 22)",
	"private_key_file": "path on the server of an unencrypted private key (ed25519, RSA, ECDSA; \"~/\" allowed); for a passphrase-protected key use ssh-agent",
	"known_hosts":      "known_hosts file that verifies host keys when host_key is not set (default ~/.ssh/known_hosts of the server's user)",
	"host_key":         `pinned host key fingerprint as ssh-keygen -lf prints it ("SHA256:…"); overrides known_hosts`,
	"use_agent":        `"true" to authenticate with ssh-agent (SSH_AUTH_SOCK), also with private_key_file; "false" never; default: the agent when SSH_AUTH_SOCK is set and no private_key_file is given`,
	"agent_dir":        `directory on the host that gantry owns for the agent: binary, agent.env, data (default "/opt/gantry-agent"); removed when the machine is deleted`,
	"server_url":       "gantry server URL as the hosts reach it (default: the server's own URL, which must then not be a loopback address)",
	"bus_url":          "bus (NATS) URL as the hosts reach it, passed to the agent as --bus-url (default: the URL the server gives at enrollment)",
}

// machineDocs documents the attributes of a group or host block.
var machineDocs = map[string]string{
	"address":          "host name or IP address of the host (required)",
	"port":             "SSH port (default: the provider's)",
	"user":             "user to log in as (default: the provider's)",
	"private_key_file": "private key for this host (default: the provider's)",
	"known_hosts":      "known_hosts file for this host (default: the provider's); setting it ignores the provider's host_key",
	"host_key":         `pinned host key fingerprint of this host ("SHA256:…")`,
	"agent_dir":        "agent directory on this host (default: the provider's)",
}

func init() {
	provider.Register(provider.Factory{
		Info: provider.Info{
			Type:         Type,
			Doc:          "existing hosts reached over SSH: installs and runs the gantry agent, touches nothing else",
			Networks:     false,
			Images:       false,
			Config:       configDocs,
			MachineAttrs: machineDocs,
		},
		New: func(config map[string]string, env provider.Env) (provider.Provider, error) {
			return New(config, env)
		},
	})
}

var _ provider.Provider = (*Provider)(nil)

// Provider is an ssh provider instance. It is safe for concurrent use:
// every call opens its own connection.
type Provider struct {
	base      settings
	serverURL string
	busURL    string
	dataDir   string

	mu       sync.Mutex
	machines map[string]map[string]string // id -> the machine's own connection attributes

	connectTimeout time.Duration
	// onCommand, when set, sees every remote command line (tests).
	onCommand func(string)
}

// settings are what a connection and an install need.
type settings struct {
	address, user        string
	port                 int
	keyFile, knownHosts  string
	hostKey, useAgent    string
	agentDir             string
	hostKeyFromMachine   bool
	knownHostFromMachine bool
}

// id is "user@address:port|agent_dir".
func (s settings) id() string {
	return s.user + "@" + net.JoinHostPort(s.address, strconv.Itoa(s.port)) + "|" + s.agentDir
}

// recordedAttrs are the machine attributes not in the id that Read and
// Delete need.
var recordedAttrs = []string{"private_key_file", "known_hosts", "host_key"}

// New makes a provider from the attributes of its block.
func New(config map[string]string, env provider.Env) (*Provider, error) {
	for k := range config {
		if _, ok := configDocs[k]; !ok {
			return nil, fmt.Errorf("ssh provider: unknown attribute %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(configDocs)), ", "))
		}
	}
	s := settings{
		user:     DefaultUser,
		port:     DefaultPort,
		agentDir: DefaultAgentDir,
	}
	if home, err := os.UserHomeDir(); err == nil {
		s.knownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	if err := s.apply(config, false); err != nil {
		return nil, fmt.Errorf("ssh provider: %w", err)
	}
	switch u := config["use_agent"]; u {
	case "", "true", "false":
		s.useAgent = u
	default:
		return nil, fmt.Errorf("ssh provider: use_agent = %q: want \"true\" or \"false\"", u)
	}
	if s.hostKey == "" && s.knownHosts == "" {
		return nil, errors.New("ssh provider: set host_key or known_hosts (no home directory for the default ~/.ssh/known_hosts)")
	}
	p := &Provider{
		base:           s,
		serverURL:      config["server_url"],
		busURL:         config["bus_url"],
		dataDir:        env.DataDir,
		machines:       map[string]map[string]string{},
		connectTimeout: connectTimeout,
	}
	for k, v := range map[string]string{"server_url": p.serverURL, "bus_url": p.busURL} {
		if v == "" {
			continue
		}
		if err := checkURL(v); err != nil {
			return nil, fmt.Errorf("ssh provider: %s: %w", k, err)
		}
	}
	if s.keyFile != "" {
		// Fail at configuration time on a missing or encrypted key.
		if _, err := loadKey(s.keyFile); err != nil {
			return nil, fmt.Errorf("ssh provider: %w", err)
		}
	}
	return p, nil
}

// apply sets the attributes of attrs (a provider block's or a machine's)
// and validates the result.
func (s *settings) apply(attrs map[string]string, machine bool) error {
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		switch k {
		case "address":
			if !machine {
				return errors.New(`address belongs in the group or host block`)
			}
			s.address = v
		case "port":
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("port = %q: want a number from 1 to 65535", v)
			}
			s.port = n
		case "user":
			if v != "" {
				s.user = v
			}
		case "private_key_file":
			if v != "" {
				s.keyFile = expandHome(v)
			}
		case "known_hosts":
			if v != "" {
				s.knownHosts = expandHome(v)
				s.knownHostFromMachine = machine
			}
		case "host_key":
			if v != "" {
				s.hostKey = strings.TrimSpace(v)
				s.hostKeyFromMachine = machine
			}
		case "agent_dir":
			if v != "" {
				s.agentDir = v
			}
		case "use_agent", "server_url", "bus_url":
			if machine {
				return fmt.Errorf("unknown machine attribute %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(machineDocs)), ", "))
			}
		default:
			return fmt.Errorf("unknown machine attribute %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(machineDocs)), ", "))
		}
	}
	// A machine's own known_hosts replaces the provider's pinned key.
	if s.knownHostFromMachine && !s.hostKeyFromMachine {
		s.hostKey = ""
	}
	if !userRE.MatchString(s.user) {
		return fmt.Errorf("user = %q: not a user name", s.user)
	}
	if s.hostKey != "" {
		if err := checkFingerprint(s.hostKey); err != nil {
			return err
		}
	}
	if err := checkAgentDir(s.agentDir); err != nil {
		return err
	}
	if machine {
		if s.address == "" {
			return errors.New("address is required")
		}
		if !addressRE.MatchString(s.address) {
			return fmt.Errorf("address = %q: not a host name or IP address", s.address)
		}
	}
	return nil
}

var (
	userRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
	addressRE = regexp.MustCompile(`^[A-Za-z0-9_.:%]([A-Za-z0-9_.:%-]*)$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$`)
	dirRE     = regexp.MustCompile(`^/[A-Za-z0-9_.,+@=:/-]+$`)
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9_.~+/=:-]+$`)
)

// checkAgentDir accepts an absolute, clean path of at least two
// components without characters that need quoting in a systemd unit.
func checkAgentDir(d string) error {
	if !dirRE.MatchString(d) || path.Clean(d) != d {
		return fmt.Errorf("agent_dir = %q: want an absolute, clean path of letters, digits and _.,+@=:/-", d)
	}
	if strings.Count(d, "/") < 2 {
		return fmt.Errorf("agent_dir = %q: want a directory of gantry's own, at least two levels deep (e.g. %s): it is removed when the machine is deleted", d, DefaultAgentDir)
	}
	return nil
}

// checkURL accepts an absolute URL without control characters.
func checkURL(v string) error {
	if err := checkPrintable(v); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", v)
	}
	return nil
}

// machineSettings are the settings of a machine from its attributes.
func (p *Provider) machineSettings(attrs map[string]string) (settings, error) {
	s := p.base
	if err := s.apply(attrs, true); err != nil {
		return settings{}, err
	}
	return s, nil
}

// idSettings are the settings of the machine with this id.
func (p *Provider) idSettings(id string) (settings, error) {
	target, dir, ok := strings.Cut(id, "|")
	user, hostport, ok2 := strings.Cut(target, "@")
	host, port, err := net.SplitHostPort(hostport)
	if !ok || !ok2 || err != nil {
		return settings{}, fmt.Errorf("ssh provider: machine id %q: want user@address:port|agent_dir", id)
	}
	attrs := map[string]string{"address": host, "port": port, "user": user, "agent_dir": dir}
	for k, v := range p.recorded(id) {
		attrs[k] = v
	}
	s := p.base
	if err := s.apply(attrs, true); err != nil {
		return settings{}, fmt.Errorf("ssh provider: machine id %q: %w", id, err)
	}
	return s, nil
}

// CreateMachine installs and starts the agent on the host m.Attrs names.
func (p *Provider) CreateMachine(ctx context.Context, m provider.Machine) (provider.MachineState, error) {
	fail := func(err error) (provider.MachineState, error) {
		return provider.MachineState{}, fmt.Errorf("ssh provider: machine %s: %w", m.Name, err)
	}
	if len(m.Networks) > 0 {
		return fail(fmt.Errorf("networks: %w", provider.ErrNotSupported))
	}
	s, err := p.machineSettings(m.Attrs)
	if err != nil {
		return fail(err)
	}
	if !nameRE.MatchString(m.Name) {
		return fail(fmt.Errorf("name %q: want letters, digits and _.- (it names the systemd unit)", m.Name))
	}
	agentName := m.Agent.Name
	if agentName == "" {
		agentName = m.Name
	}
	if err := checkPrintable(agentName); err != nil {
		return fail(fmt.Errorf("agent name: %w", err))
	}
	serverURL, err := p.agentServerURL(m.Agent.ServerURL, s.address)
	if err != nil {
		return fail(err)
	}
	if !tokenRE.MatchString(m.Agent.JoinToken) {
		return fail(errors.New("the join token is empty or has characters other than letters, digits and _.~+/=:-"))
	}
	binArch, err := binaryArch(m.Agent.Binary)
	if err != nil {
		return fail(err)
	}

	c, err := p.dial(ctx, s)
	if err != nil {
		return provider.MachineState{}, err
	}
	defer c.Close()

	out, err := c.run(ctx, "probe the host", nil, probeScript)
	if err != nil {
		return provider.MachineState{}, err
	}
	uname, mode, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if err := checkPlatform(uname, binArch, m.Agent.Binary); err != nil {
		return provider.MachineState{}, fmt.Errorf("ssh %s: %w", c.target, err)
	}

	if out, err := c.run(ctx, "prepare "+s.agentDir, nil, prepareScript, s.agentDir, m.Name); err != nil {
		var re *remoteError
		if errors.As(err, &re) && re.status == exitNotOurs {
			return provider.MachineState{}, fmt.Errorf("ssh %s: agent_dir %s exists and was not made by gantry (it has no %s file): choose another agent_dir", c.target, s.agentDir, markerFile)
		}
		if errors.As(err, &re) && re.status == exitOtherMachine {
			return provider.MachineState{}, fmt.Errorf("ssh %s: agent_dir %s is the agent directory of machine %s: give machine %s an agent_dir of its own", c.target, s.agentDir, strings.TrimSpace(out), m.Name)
		}
		return provider.MachineState{}, err
	}
	st, err := p.install(ctx, c, s, m.Name, agentName, serverURL, mode == "systemd", m.Agent)
	if err != nil {
		// Leave nothing half-installed behind (the directory is ours).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, cerr := c.run(cctx, "clean up "+s.agentDir, nil, deleteScript, s.agentDir); cerr != nil {
			err = fmt.Errorf("%w (and cleaning up: %v)", err, cerr)
		}
		return provider.MachineState{}, err
	}
	p.remember(s, m.Attrs)
	return st, nil
}

// install uploads the binary and agent.env, then starts the agent.
func (p *Provider) install(ctx context.Context, c *conn, s settings, name, agentName, serverURL string, systemd bool, a provider.Agent) (provider.MachineState, error) {
	dir := s.agentDir
	bin, err := os.Open(a.Binary)
	if err != nil {
		return provider.MachineState{}, fmt.Errorf("agent binary: %w", err)
	}
	defer bin.Close()
	fi, err := bin.Stat()
	if err != nil {
		return provider.MachineState{}, fmt.Errorf("agent binary: %w", err)
	}
	if err := c.put(ctx, dir+"/gantry", "0755", bin, fi.Size()); err != nil {
		return provider.MachineState{}, err
	}
	env := "GANTRY_JOIN_TOKEN=" + quote(a.JoinToken) + "\n"
	if err := c.put(ctx, dir+"/agent.env", "0600", strings.NewReader(env), int64(len(env))); err != nil {
		return provider.MachineState{}, err
	}

	args := []string{"agent", "--server", serverURL}
	if p.busURL != "" {
		args = append(args, "--bus-url", p.busURL)
	}
	args = append(args, "--name", agentName, "--data-dir", dir+"/data")
	if a.Insecure {
		args = append(args, "--insecure")
	}

	if systemd {
		unit := unitName(name)
		text, err := renderUnit(name, dir, args)
		if err != nil {
			return provider.MachineState{}, err
		}
		if err := c.putString(ctx, unitDir+"/"+unit, "0644", text); err != nil {
			return provider.MachineState{}, err
		}
		if _, err := c.run(ctx, "start "+unit, nil, systemdStartScript, dir, unit, name); err != nil {
			return provider.MachineState{}, err
		}
	} else {
		if _, err := c.run(ctx, "start the agent's supervisor", nil, supervisorStartScript, append([]string{dir, name}, args...)...); err != nil {
			return provider.MachineState{}, err
		}
	}
	return provider.MachineState{ID: s.id(), Address: s.address, Running: true}, nil
}

// put writes size bytes of r to dest on the host with mode, atomically
// (a temporary file in the same directory, then mv).
func (c *conn) put(ctx context.Context, dest, mode string, r io.Reader, size int64) error {
	tmp := path.Dir(dest) + "/.gantry-upload-" + randomHex(8)
	_, err := c.run(ctx, "write "+dest, r, putScript, tmp, dest, mode, strconv.FormatInt(size, 10))
	return err
}

// putString is put for a string.
func (c *conn) putString(ctx context.Context, dest, mode, content string) error {
	return c.put(ctx, dest, mode, strings.NewReader(content), int64(len(content)))
}

// agentServerURL is the server URL the agent gets: server_url, else the
// server's own, which must not be loopback unless the host is too.
func (p *Provider) agentServerURL(own, address string) (string, error) {
	if p.serverURL != "" {
		return p.serverURL, nil
	}
	if own == "" {
		return "", errors.New("no server URL: set server_url in the provider block")
	}
	if err := checkURL(own); err != nil {
		return "", fmt.Errorf("server URL: %w", err)
	}
	u, _ := url.Parse(own)
	if isLoopback(u.Hostname()) && !isLoopback(address) {
		return "", fmt.Errorf("the server's URL %s is a loopback address the host %s cannot reach: set server_url in the provider block to an address the hosts reach", own, address)
	}
	return own, nil
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// binaryArch is the GOARCH of the agent binary (from its ELF header; the
// server's own GOARCH for a file that is not ELF).
func binaryArch(bin string) (string, error) {
	if bin == "" {
		return "", errors.New("no agent binary")
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("agent binary %s is not a regular file", bin)
	}
	f, err := elf.Open(bin)
	if err != nil {
		return runtime.GOARCH, nil
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_386:
		return "386", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	}
	return f.Machine.String(), nil
}

// unameArch maps `uname -m` to GOARCH.
var unameArch = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"aarch64": "arm64", "arm64": "arm64",
	"i386": "386", "i686": "386",
	"armv6l": "arm", "armv7l": "arm",
	"riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x",
}

// checkPlatform checks `uname -sm` against the binary's architecture.
func checkPlatform(uname, binArch, bin string) error {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return fmt.Errorf("uname -sm printed %q", strings.TrimSpace(uname))
	}
	if f[0] != "Linux" {
		return fmt.Errorf("the host runs %s: the gantry agent runs on Linux only", f[0])
	}
	if unameArch[f[1]] != binArch {
		return fmt.Errorf("the host is %s but the agent binary %s is for %s: build gantry for the host (GOOS=linux GOARCH=%s) or onboard only %s hosts", f[1], bin, binArch, orUnknown(unameArch[f[1]]), binArch)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// ReadMachine reports whether the agent directory exists (exists=false
// when it does not) and whether the agent runs. An unreachable host is an
// error, not a deleted machine.
func (p *Provider) ReadMachine(ctx context.Context, id string) (provider.MachineState, bool, error) {
	s, err := p.idSettings(id)
	if err != nil {
		return provider.MachineState{}, false, err
	}
	c, err := p.dial(ctx, s)
	if err != nil {
		return provider.MachineState{}, false, err
	}
	defer c.Close()
	out, err := c.run(ctx, "read the agent's state", nil, readScript, s.agentDir)
	if err != nil {
		return provider.MachineState{}, false, err
	}
	st := provider.MachineState{ID: id, Address: s.address}
	switch strings.TrimSpace(out) {
	case "state=absent":
		return provider.MachineState{}, false, nil
	case "state=running":
		st.Running = true
	case "state=stopped":
	default:
		return provider.MachineState{}, false, fmt.Errorf("ssh %s: read the agent's state: unexpected output %q", c.target, strings.TrimSpace(out))
	}
	return st, true, nil
}

// UpdateMachine changes nothing: an existing host has no size to change
// (Info.InPlace is empty, so any change replaces the machine).
func (p *Provider) UpdateMachine(context.Context, string, provider.Machine) error { return nil }

// DeleteMachine stops the agent (its systemd unit, or its supervisor and
// every agent process) and removes the agent directory; nothing else on
// the host is touched. A machine already gone is success; an unreachable
// host is an error.
func (p *Provider) DeleteMachine(ctx context.Context, id string) error {
	s, err := p.idSettings(id)
	if err != nil {
		return err
	}
	c, err := p.dial(ctx, s)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.run(ctx, "remove the agent in "+s.agentDir, nil, deleteScript, s.agentDir); err != nil {
		var re *remoteError
		if errors.As(err, &re) && re.status == exitNotOurs {
			return fmt.Errorf("ssh %s: refusing to remove %s: it has no %s file, so gantry did not make it", c.target, s.agentDir, markerFile)
		}
		return err
	}
	return nil
}

// List returns nil: hosts carry no labels to find gantry's objects by.
func (p *Provider) List(context.Context, string) ([]provider.Found, error) { return nil, nil }

// CreateNetwork is not supported: hosts keep their own networks.
func (p *Provider) CreateNetwork(context.Context, provider.Network) (provider.NetworkState, error) {
	return provider.NetworkState{}, fmt.Errorf("ssh provider: networks: %w", provider.ErrNotSupported)
}

// ReadNetwork is not supported.
func (p *Provider) ReadNetwork(context.Context, string) (provider.NetworkState, bool, error) {
	return provider.NetworkState{}, false, fmt.Errorf("ssh provider: networks: %w", provider.ErrNotSupported)
}

// DeleteNetwork is not supported.
func (p *Provider) DeleteNetwork(context.Context, string) error {
	return fmt.Errorf("ssh provider: networks: %w", provider.ErrNotSupported)
}

// record is what the data directory keeps of a machine.
type record struct {
	ID    string            `json:"id"`
	Attrs map[string]string `json:"attrs"`
}

func (p *Provider) recordFile(id string) string {
	if p.dataDir == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(p.dataDir, "machines", hex.EncodeToString(sum[:16])+".json")
}

// remember keeps the machine's own connection attributes by id.
func (p *Provider) remember(s settings, attrs map[string]string) {
	own := map[string]string{}
	for _, k := range recordedAttrs {
		if v := attrs[k]; v != "" {
			own[k] = v
		}
	}
	id := s.id()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.machines[id] = own
	file := p.recordFile(id)
	if file == "" {
		return
	}
	if len(own) == 0 {
		os.Remove(file)
		return
	}
	b, _ := json.Marshal(record{ID: id, Attrs: own})
	// Best effort: without the file, Read and Delete use the provider's
	// settings after a restart.
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err == nil {
		_ = atomicfile.Write(file, b, 0o600)
	}
}

// recorded returns the machine's own connection attributes.
func (p *Provider) recorded(id string) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.machines[id]; ok {
		return a
	}
	file := p.recordFile(id)
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var r record
	if json.Unmarshal(b, &r) != nil || r.ID != id {
		return nil
	}
	own := map[string]string{}
	for _, k := range recordedAttrs {
		if v := r.Attrs[k]; v != "" {
			own[k] = v
		}
	}
	p.machines[id] = own
	return own
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
