package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/providers/docker/engine"
)

// defaultNetwork is the engine's network of containers given none.
const defaultNetwork = "bridge"

// containerInspect is the part of GET /containers/{id}/json the provider
// reads.
type containerInspect struct {
	ID     string `json:"Id"`
	Name   string
	Args   []string
	Config struct {
		Hostname   string
		Image      string
		Entrypoint []string
		Cmd        []string
		Env        []string
		Labels     map[string]string
	}
	State struct {
		Running    bool
		Restarting bool
		Status     string
	}
	HostConfig struct {
		NanoCpus   int64
		Memory     int64
		MemorySwap int64
	}
	NetworkSettings struct {
		Networks map[string]endpoint
	}
}

// endpoint is a container's attachment to one network.
type endpoint struct {
	NetworkID   string
	IPAddress   string
	IPPrefixLen int
	Gateway     string
}

// networkIDs returns the machine's network ids in the spec's order.
func (c *containerInspect) networkIDs() []string {
	v := c.Config.Labels[LabelNetworks]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// endpointOf finds the container's endpoint on the network id (a full or
// short id, or a name).
func (c *containerInspect) endpointOf(id string) (endpoint, bool) {
	if ep, ok := c.NetworkSettings.Networks[id]; ok {
		return ep, true
	}
	for _, ep := range c.NetworkSettings.Networks {
		if ep.NetworkID == id || (len(id) >= 12 && strings.HasPrefix(ep.NetworkID, id)) {
			return ep, true
		}
	}
	return endpoint{}, false
}

// state is what the provider reports of an inspected container.
func (c *containerInspect) state() provider.MachineState {
	st := provider.MachineState{ID: c.ID, Running: c.State.Running, Addresses: map[string]string{}}
	seen := map[string]bool{}
	for _, id := range c.networkIDs() {
		ep, ok := c.endpointOf(id)
		if !ok {
			continue
		}
		seen[ep.NetworkID] = true
		if ep.IPAddress != "" {
			st.Addresses[id] = ep.IPAddress
			if st.Address == "" {
				st.Address = ep.IPAddress
			}
		}
	}
	names := make([]string, 0, len(c.NetworkSettings.Networks))
	for name := range c.NetworkSettings.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := c.NetworkSettings.Networks[name]
		if seen[ep.NetworkID] || ep.IPAddress == "" {
			continue
		}
		st.Addresses[ep.NetworkID] = ep.IPAddress
	}
	if st.Address == "" && len(c.networkIDs()) == 0 {
		// No networks in the spec: the default bridge (or whatever there is).
		if ep, ok := c.NetworkSettings.Networks[defaultNetwork]; ok && ep.IPAddress != "" {
			st.Address = ep.IPAddress
		} else if len(names) > 0 {
			st.Address = c.NetworkSettings.Networks[names[0]].IPAddress
		}
	}
	return st
}

// CreateMachine creates a container that runs the agent, attaches it to
// the networks in order, copies the agent binary in and starts it. A
// container left half-made by a failure is removed.
func (d *Docker) CreateMachine(ctx context.Context, m provider.Machine) (provider.MachineState, error) {
	what := fmt.Sprintf("container %q", m.Name)
	if err := validateMachine(m); err != nil {
		return provider.MachineState{}, err
	}
	if err := d.checkImage(ctx, m.Image); err != nil {
		return provider.MachineState{}, wrap(err, "create %s", what)
	}
	gwNet := defaultNetwork
	if len(m.Networks) > 0 {
		gwNet = m.Networks[0]
	}
	n, ok, err := d.inspectNetwork(ctx, gwNet)
	if err != nil {
		return provider.MachineState{}, err
	}
	if !ok {
		return provider.MachineState{}, fmt.Errorf("docker: create %s: network %q not found", what, gwNet)
	}
	for _, id := range m.Networks[min(1, len(m.Networks)):] {
		if _, ok, err := d.inspectNetwork(ctx, id); err != nil {
			return provider.MachineState{}, err
		} else if !ok {
			return provider.MachineState{}, fmt.Errorf("docker: create %s: network %q not found", what, id)
		}
	}
	agent := m.Agent
	if agent.Name == "" {
		agent.Name = m.Name
	}
	srvURL, busURL, targets, err := d.agentEndpoints(n, agent)
	if err != nil {
		return provider.MachineState{}, fmt.Errorf("docker: create %s: %w", what, err)
	}

	labels := map[string]string{}
	for k, v := range m.Labels {
		labels[LabelPrefix+k] = v
	}
	labels[provider.LabelEnv] = m.Env
	labels[provider.LabelGroup] = m.Group
	labels[provider.LabelResource] = m.Resource
	labels[LabelNetworks] = strings.Join(m.Networks, ",")
	labels[LabelForward] = strings.Join(targets, ",")

	entry := []string{AgentPath, "agent", "--server", srvURL}
	if busURL != "" {
		entry = append(entry, "--bus-url", busURL)
	}
	entry = append(entry, "--name", agent.Name, "--data-dir", AgentDataDir)
	if agent.Insecure {
		entry = append(entry, "--insecure")
	}
	var env []string
	if agent.JoinToken != "" {
		env = append(env, "GANTRY_JOIN_TOKEN="+agent.JoinToken)
	}

	type restartPolicy struct{ Name string }
	type hostConfig struct {
		NanoCpus      int64 `json:",omitempty"`
		Memory        int64 `json:",omitempty"`
		MemorySwap    int64 `json:",omitempty"`
		RestartPolicy restartPolicy
		NetworkMode   string `json:",omitempty"`
	}
	type networkingConfig struct {
		EndpointsConfig map[string]struct{} `json:",omitempty"`
	}
	req := struct {
		Hostname         string
		Image            string
		Entrypoint       []string
		Env              []string
		Labels           map[string]string
		HostConfig       hostConfig
		NetworkingConfig networkingConfig
	}{
		Hostname:   m.Name,
		Image:      m.Image,
		Entrypoint: entry,
		Env:        env,
		Labels:     labels,
		HostConfig: hostConfig{
			NanoCpus:      nanoCPUs(m.CPUs),
			Memory:        m.MemoryMB << 20,
			RestartPolicy: restartPolicy{Name: "unless-stopped"},
		},
	}
	if m.MemoryMB > 0 {
		req.HostConfig.MemorySwap = m.MemoryMB << 20 // no swap beyond the limit
	}
	if len(m.Networks) > 0 {
		req.HostConfig.NetworkMode = m.Networks[0]
		req.NetworkingConfig.EndpointsConfig = map[string]struct{}{m.Networks[0]: {}}
	}

	cctx, cancel := context.WithTimeout(ctx, createTimeout)
	var created struct {
		ID string `json:"Id"`
	}
	err = d.c.Do(cctx, http.MethodPost, "/containers/create", url.Values{"name": {m.Name}}, req, &created)
	cancel()
	switch {
	case err == nil:
	case engine.IsConflict(err):
		return provider.MachineState{}, fmt.Errorf("docker: create %s: the name is in use (delete that container or choose another name): %w", what, err)
	case engine.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "no such image"):
		return provider.MachineState{}, fmt.Errorf("docker: create %s: %w", what, imageMissing(m.Image))
	default:
		return provider.MachineState{}, wrap(err, "create %s", what)
	}

	st, err := d.finishMachine(ctx, created.ID, m, agent.Binary)
	if err != nil {
		rctx, cancel := detached(ctx, removeTimeout)
		defer cancel()
		_ = d.removeContainer(rctx, created.ID)
		return provider.MachineState{}, wrap(err, "create %s", what)
	}
	return st, nil
}

// finishMachine connects the other networks, copies the agent in, starts
// the container and reads it back.
func (d *Docker) finishMachine(ctx context.Context, id string, m provider.Machine, bin string) (provider.MachineState, error) {
	for _, nid := range m.Networks[min(1, len(m.Networks)):] {
		body := struct {
			Container      string
			EndpointConfig struct{}
		}{Container: id}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := d.c.Do(cctx, http.MethodPost, "/networks/"+nid+"/connect", nil, body, nil)
		cancel()
		if err != nil {
			return provider.MachineState{}, cause(err, "connect to network %s", nid)
		}
	}
	if err := d.copyAgent(ctx, id, bin); err != nil {
		return provider.MachineState{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, startTimeout)
	err := d.c.Do(cctx, http.MethodPost, "/containers/"+id+"/start", nil, nil, nil)
	cancel()
	if err != nil {
		return provider.MachineState{}, cause(err, "start")
	}
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var ci containerInspect
	if err := d.c.Do(cctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, &ci); err != nil {
		return provider.MachineState{}, cause(err, "inspect after start")
	}
	return ci.state(), nil
}

func validateMachine(m provider.Machine) error {
	what := fmt.Sprintf("container %q", m.Name)
	switch {
	case m.Name == "":
		return fmt.Errorf("docker: create container: no name")
	case m.Image == "":
		return fmt.Errorf("docker: create %s: no image", what)
	case m.CPUs < 0:
		return fmt.Errorf("docker: create %s: cpus = %g: want 0 (no limit) or more", what, m.CPUs)
	case m.MemoryMB < 0:
		return fmt.Errorf("docker: create %s: memory = %d MB: want 0 (no limit) or more", what, m.MemoryMB)
	case m.Agent.Binary == "":
		return fmt.Errorf("docker: create %s: no agent binary", what)
	case m.Agent.ServerURL == "":
		return fmt.Errorf("docker: create %s: no server URL for the agent", what)
	}
	if err := checkKeys(what, m.Attrs, Info.MachineAttrs); err != nil {
		return err
	}
	for _, n := range m.Networks {
		if n == "" || strings.Contains(n, ",") {
			return fmt.Errorf("docker: create %s: bad network id %q", what, n)
		}
	}
	fi, err := os.Stat(m.Agent.Binary)
	if err != nil {
		return fmt.Errorf("docker: create %s: agent binary: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("docker: create %s: agent binary %s is not a regular file", what, m.Agent.Binary)
	}
	return nil
}

func nanoCPUs(cpus float64) int64 { return int64(cpus*1e9 + 0.5) }

func imageMissing(ref string) error {
	return fmt.Errorf("image %q not found locally: build it or pull it first", ref)
}

// checkImage makes sure the image is in the engine's store: it is never
// pulled.
func (d *Docker) checkImage(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := d.c.Do(ctx, http.MethodGet, "/images/"+ref+"/json", nil, nil, nil)
	var ue *engine.UnreachableError
	switch {
	case err == nil, errors.As(err, &ue):
		return err
	case engine.IsNotFound(err):
		return imageMissing(ref)
	default:
		return fmt.Errorf("inspect image %q: %w", ref, err)
	}
}

// agentEndpoints returns the server and bus URLs the agent uses from
// network n, starting the forwarders they need, and the loopback targets
// forwarded.
func (d *Docker) agentEndpoints(n *networkInspect, a provider.Agent) (srv, bus string, targets []string, err error) {
	sub, gw := n.ipv4()
	gwIP := net.ParseIP(gw)
	if gwIP == nil {
		// No gateway (e.g. a network without IPAM): nothing to forward on.
		return a.ServerURL, a.BusURL, nil, nil
	}
	var subnet *net.IPNet
	if _, subnet, err = net.ParseCIDR(sub); err != nil {
		return "", "", nil, fmt.Errorf("network %s: subnet %q: %w", n.Name, sub, err)
	}
	out := make([]string, 2)
	for i, raw := range []string{a.ServerURL, a.BusURL} {
		u, target, err := agentURL(raw, gwIP)
		if err != nil {
			return "", "", nil, err
		}
		out[i] = u
		if target == "" {
			continue
		}
		if err := d.forwardTo(gwIP, subnet, target); err != nil {
			return "", "", nil, err
		}
		targets = append(targets, target)
	}
	return out[0], out[1], targets, nil
}

// forwardTo makes sure gw:<target's port> forwards to target.
func (d *Docker) forwardTo(gw net.IP, subnet *net.IPNet, target string) error {
	_, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("forward to %q: %w", target, err)
	}
	return d.fwd.forward(net.JoinHostPort(gw.String(), port), target, subnet)
}

// ensureForwarders starts again the forwarders a running machine's agent
// uses (after a server restart, a new provider has none).
func (d *Docker) ensureForwarders(ctx context.Context, ci *containerInspect) error {
	fw := ci.Config.Labels[LabelForward]
	if fw == "" || !ci.State.Running {
		return nil
	}
	gwNet := defaultNetwork
	if ids := ci.networkIDs(); len(ids) > 0 {
		gwNet = ids[0]
	}
	n, ok, err := d.inspectNetwork(ctx, gwNet)
	if err != nil || !ok {
		return err // a network gone under a running container: nothing to forward on
	}
	sub, gw := n.ipv4()
	gwIP := net.ParseIP(gw)
	_, subnet, err := net.ParseCIDR(sub)
	if gwIP == nil || err != nil {
		return nil
	}
	for _, target := range strings.Split(fw, ",") {
		if err := d.forwardTo(gwIP, subnet, target); err != nil {
			return err
		}
	}
	return nil
}

// copyAgent uploads the agent binary to AgentPath in the (created, not yet
// started) container, as a tar stream built on the fly.
func (d *Docker) copyAgent(ctx context.Context, id, bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeAgentTar(pw, f, fi.Size(), fi.ModTime())) }()
	cctx, cancel := context.WithTimeout(ctx, copyTimeout)
	defer cancel()
	resp, err := d.c.Stream(cctx, http.MethodPut, "/containers/"+id+"/archive", url.Values{"path": {"/"}}, "application/x-tar", pr)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if the request ended early
	if err != nil {
		return cause(err, "copy the agent to %s", AgentPath)
	}
	resp.Body.Close()
	return nil
}

// writeAgentTar writes a tar archive with the directory of AgentPath and
// the agent binary (size bytes from r) at AgentPath, both mode 0755.
func writeAgentTar(w io.Writer, r io.Reader, size int64, mtime time.Time) error {
	tw := tar.NewWriter(w)
	dir := strings.TrimPrefix(AgentPath[:strings.LastIndex(AgentPath, "/")], "/") + "/"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(AgentPath, "/"), Mode: 0o755, Size: size, ModTime: mtime}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	return tw.Close()
}

// inspectContainer returns a container, or ok=false when there is none.
func (d *Docker) inspectContainer(ctx context.Context, id string) (*containerInspect, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var ci containerInspect
	if err := d.c.Do(ctx, http.MethodGet, "/containers/"+id+"/json", nil, nil, &ci); err != nil {
		if engine.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, wrap(err, "inspect container %s", id)
	}
	return &ci, true, nil
}

// ReadMachine returns a container's state, or exists=false when it is
// gone. For a running container it makes sure the forwarders its agent
// uses are up (see the package doc).
func (d *Docker) ReadMachine(ctx context.Context, id string) (provider.MachineState, bool, error) {
	ci, ok, err := d.inspectContainer(ctx, id)
	if err != nil || !ok {
		return provider.MachineState{}, ok, err
	}
	if err := d.ensureForwarders(ctx, ci); err != nil {
		return ci.state(), true, fmt.Errorf("docker: read container %s: %w", strings.TrimPrefix(ci.Name, "/"), err)
	}
	return ci.state(), true, nil
}

// UpdateMachine changes the CPU and memory limits of a container in place.
// A limit of 0 means none: the engine cannot drop a limit, so it is raised
// to the daemon's CPU count or memory size.
func (d *Docker) UpdateMachine(ctx context.Context, id string, m provider.Machine) error {
	if m.CPUs < 0 || m.MemoryMB < 0 {
		return fmt.Errorf("docker: update container %s: cpus and memory must be 0 (no limit) or more", id)
	}
	body := struct {
		NanoCpus   int64 `json:",omitempty"`
		Memory     int64 `json:",omitempty"`
		MemorySwap int64 `json:",omitempty"`
	}{NanoCpus: nanoCPUs(m.CPUs), Memory: m.MemoryMB << 20, MemorySwap: m.MemoryMB << 20}
	if m.CPUs == 0 || m.MemoryMB == 0 {
		var info struct {
			NCPU     int64
			MemTotal int64
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := d.c.Do(cctx, http.MethodGet, "/info", nil, nil, &info)
		cancel()
		if err != nil {
			return wrap(err, "update container %s: read the daemon's size", id)
		}
		if m.CPUs == 0 {
			body.NanoCpus = info.NCPU * 1e9
		}
		if m.MemoryMB == 0 {
			// MemorySwap -1 is refused with cgroup v1 (runc writes the
			// memory limit above the old swap limit first).
			body.Memory, body.MemorySwap = info.MemTotal, info.MemTotal
		}
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := d.c.Do(cctx, http.MethodPost, "/containers/"+id+"/update", nil, body, nil); err != nil {
		if engine.IsNotFound(err) {
			return fmt.Errorf("docker: update container %s: it does not exist: %w", id, err)
		}
		return wrap(err, "update container %s", id)
	}
	return nil
}

// DeleteMachine removes a container by force, with its anonymous volumes.
// A container that is gone already is success.
func (d *Docker) DeleteMachine(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, removeTimeout)
	defer cancel()
	return d.removeContainer(ctx, id)
}

func (d *Docker) removeContainer(ctx context.Context, id string) error {
	err := d.c.Do(ctx, http.MethodDelete, "/containers/"+id, url.Values{"force": {"1"}, "v": {"1"}}, nil, nil)
	switch {
	case err == nil || engine.IsNotFound(err):
		return nil
	case engine.IsConflict(err) && strings.Contains(err.Error(), "in progress"):
		// Someone else is removing it: wait until it is gone.
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			_, ok, ierr := d.inspectContainer(ctx, id)
			if ierr == nil && !ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return wrap(err, "delete container %s", id)
			case <-t.C:
			}
		}
	default:
		return wrap(err, "delete container %s", id)
	}
}
