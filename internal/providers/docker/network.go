package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/providers/docker/engine"
)

// networkInspect is the part of GET /networks/{id} the provider reads.
type networkInspect struct {
	ID     string `json:"Id"`
	Name   string
	Driver string
	IPAM   struct {
		Config []struct {
			Subnet  string
			Gateway string
		}
	}
	Internal   bool
	Options    map[string]string
	Labels     map[string]string
	Containers map[string]struct{ Name string }
}

// ipv4 returns the network's first IPv4 subnet and its gateway. The
// engine reports no gateway for networks created without one (the default
// bridge among them): then it is the bridge interface's address in the
// subnet when the interface is on this machine, else the subnet's first
// address, which the bridge driver takes by default.
func (n *networkInspect) ipv4() (subnet, gateway string) {
	for _, c := range n.IPAM.Config {
		ip, ipn, err := net.ParseCIDR(c.Subnet)
		if err != nil || ip.To4() == nil {
			continue
		}
		gw := c.Gateway
		if gw == "" && n.Driver == "bridge" {
			gw = n.bridgeAddr(ipn)
		}
		return c.Subnet, gw
	}
	if len(n.IPAM.Config) > 0 {
		return n.IPAM.Config[0].Subnet, n.IPAM.Config[0].Gateway
	}
	return "", ""
}

// bridgeAddr returns the address in subnet of the network's bridge
// interface (docker0, br-<id>), or the subnet's first address.
func (n *networkInspect) bridgeAddr(subnet *net.IPNet) string {
	name := n.Options["com.docker.network.bridge.name"]
	if name == "" && len(n.ID) >= 12 {
		name = "br-" + n.ID[:12]
	}
	if ifc, err := net.InterfaceByName(name); err == nil {
		if addrs, err := ifc.Addrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
					return ipn.IP.String()
				}
			}
		}
	}
	return firstHost(subnet).String()
}

func (n *networkInspect) state() provider.NetworkState {
	sub, gw := n.ipv4()
	return provider.NetworkState{ID: n.ID, Subnet: sub, Gateway: gw}
}

// CreateNetwork creates a bridge network named n.Name.
func (d *Docker) CreateNetwork(ctx context.Context, n provider.Network) (provider.NetworkState, error) {
	what := fmt.Sprintf("network %q", n.Name)
	if err := checkKeys(what, n.Attrs, networkAttrs); err != nil {
		return provider.NetworkState{}, err
	}
	if n.Name == "" {
		return provider.NetworkState{}, fmt.Errorf("docker: create network: no name")
	}
	type ipamConfig struct {
		Subnet  string `json:",omitempty"`
		Gateway string `json:",omitempty"`
	}
	req := struct {
		Name           string
		CheckDuplicate bool
		Driver         string
		Internal       bool
		Labels         map[string]string
		IPAM           struct {
			Driver string
			Config []ipamConfig
		}
	}{
		Name:           n.Name,
		CheckDuplicate: true,
		Driver:         "bridge",
		Labels: map[string]string{
			provider.LabelEnv:      n.Env,
			provider.LabelGroup:    "",
			provider.LabelResource: n.Resource,
		},
	}
	req.IPAM.Driver = "default"
	if s, ok := n.Attrs["subnet"]; ok && s != "" {
		_, ipn, err := net.ParseCIDR(s)
		if err != nil {
			return provider.NetworkState{}, fmt.Errorf("docker: %s: subnet %q is not a CIDR (e.g. 10.40.0.0/24): %v", what, s, err)
		}
		// The engine gives the bridge the first address but reports no
		// gateway unless it is asked for one: ask.
		req.IPAM.Config = []ipamConfig{{Subnet: ipn.String(), Gateway: firstHost(ipn).String()}}
	}
	if s, ok := n.Attrs["internal"]; ok && s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return provider.NetworkState{}, fmt.Errorf("docker: %s: internal = %q: want \"true\" or \"false\"", what, s)
		}
		req.Internal = b
	}
	cctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	var resp struct {
		ID string `json:"Id"`
	}
	if err := d.c.Do(cctx, http.MethodPost, "/networks/create", nil, req, &resp); err != nil {
		if engine.IsConflict(err) {
			return provider.NetworkState{}, fmt.Errorf("docker: create %s: a network of that name exists already (delete it or choose another name): %w", what, err)
		}
		return provider.NetworkState{}, wrap(err, "create %s", what)
	}
	st, ok, err := d.ReadNetwork(ctx, resp.ID)
	if err != nil {
		return provider.NetworkState{ID: resp.ID}, err
	}
	if !ok {
		return provider.NetworkState{ID: resp.ID}, fmt.Errorf("docker: create %s: network %s vanished right after creation", what, resp.ID)
	}
	return st, nil
}

// inspectNetwork returns a network, or ok=false when there is none.
func (d *Docker) inspectNetwork(ctx context.Context, id string) (*networkInspect, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var n networkInspect
	if err := d.c.Do(ctx, http.MethodGet, "/networks/"+id, nil, nil, &n); err != nil {
		if engine.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, wrap(err, "inspect network %s", id)
	}
	return &n, true, nil
}

// ReadNetwork returns a network's subnet and gateway (from its IPAM
// configuration), or exists=false when it is gone.
func (d *Docker) ReadNetwork(ctx context.Context, id string) (provider.NetworkState, bool, error) {
	n, ok, err := d.inspectNetwork(ctx, id)
	if err != nil || !ok {
		return provider.NetworkState{}, ok, err
	}
	return n.state(), true, nil
}

// DeleteNetwork disconnects (by force) the containers still attached, then
// removes the network. A network that is gone already is success.
func (d *Docker) DeleteNetwork(ctx context.Context, id string) error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		n, ok, err := d.inspectNetwork(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		for cid := range n.Containers {
			body := struct {
				Container string
				Force     bool
			}{cid, true}
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			err := d.c.Do(cctx, http.MethodPost, "/networks/"+n.ID+"/disconnect", nil, body, nil)
			cancel()
			if err != nil && !engine.IsNotFound(err) {
				return wrap(err, "delete network %q: disconnect container %.12s", n.Name, cid)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err = d.c.Do(cctx, http.MethodDelete, "/networks/"+n.ID, nil, nil, nil)
		cancel()
		if err == nil || engine.IsNotFound(err) {
			return nil
		}
		// 403 "has active endpoints": a container joined meanwhile; again.
		last = wrap(err, "delete network %q", n.Name)
		if ctx.Err() != nil {
			break
		}
	}
	return last
}

// firstHost returns the first host address of an IPv4 network.
func firstHost(n *net.IPNet) net.IP {
	ip := n.IP.To4()
	if ip == nil {
		return n.IP
	}
	out := make(net.IP, 4)
	copy(out, ip.Mask(n.Mask))
	out[3]++
	return out
}
