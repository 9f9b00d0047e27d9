// Package traffic is the server's side of load balancers: the one way
// gantry changes or reads a load balancer. Controller.Do sends a signed
// protocol.CmdLB command to the gantry agent on the load balancer's
// machine and waits for its protocol.LBResult; the agent drives the load
// balancer (package lb). Deployments (drain, allow, weights), environments
// (configure, join, leave) and `gantry lb show` all go through it.
package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
)

// Hosts resolves load balancer machines by their gantry host name.
type Hosts interface {
	// GetHostByName finds a host that is not revoked (store.ErrNotFound
	// otherwise).
	GetHostByName(ctx context.Context, name string) (store.HostRecord, error)
}

// Presence says whether a host's agent is connected.
type Presence interface {
	HostOnline(hostID string) bool
}

// Requester sends a command to its host (cmd.HostID) and returns the
// agent's answer: the server signs it and makes a bus request on the
// host's command subject. It returns when the answer comes or ctx ends.
type Requester interface {
	Request(ctx context.Context, cmd protocol.Command) ([]byte, error)
}

// RequesterFunc is a function that is a Requester.
type RequesterFunc func(ctx context.Context, cmd protocol.Command) ([]byte, error)

// Request calls f.
func (f RequesterFunc) Request(ctx context.Context, cmd protocol.Command) ([]byte, error) {
	return f(ctx, cmd)
}

// Timing bounds of a command.
const (
	// DefaultTimeout is the wait of an operation without TimeoutMillis
	// (status, set, weights, configure).
	DefaultTimeout = 15 * time.Second
	// Margin is added to an operation's own timeout for the command's
	// expiry and the server's wait: the agent answers after its own wait
	// ends, plus the time to reach the load balancer and back.
	Margin = 10 * time.Second
)

// ErrOffline means the load balancer's machine has no connected agent.
var ErrOffline = errors.New("load balancer host is offline")

// ErrRefused wraps an error the agent answered (LBResult.Error): the load
// balancer refused or failed the operation (e.g. a drain of the last ready
// server), as opposed to the command not getting there.
var ErrRefused = errors.New("load balancer refused")

// Controller sends load balancer commands to the agents that drive them.
type Controller struct {
	hosts Hosts
	pres  Presence
	req   Requester
	now   func() time.Time
}

// New makes a Controller.
func New(hosts Hosts, pres Presence, req Requester) *Controller {
	return &Controller{hosts: hosts, pres: pres, req: req, now: time.Now}
}

// Do runs cmd on the load balancer of the gantry host named lbHostName
// and returns its result. The host must be enrolled and online. An
// operation the load balancer refused or failed is an error wrapping
// ErrRefused, returned with the result (Detail, Servers, TimedOut are
// still set). The wait is cmd.TimeoutMillis (or DefaultTimeout) plus
// Margin, or less if ctx ends first.
func (c *Controller) Do(ctx context.Context, lbHostName string, cmd protocol.LBCommand) (protocol.LBResult, error) {
	if lbHostName == "" {
		return protocol.LBResult{}, errors.New("load balancer host: no host name given")
	}
	if cmd.Op == "" {
		return protocol.LBResult{}, errors.New("load balancer command: op is empty")
	}
	if cmd.Driver == "" {
		cmd.Driver = "haproxy"
	}
	h, err := c.hosts.GetHostByName(ctx, lbHostName)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return protocol.LBResult{}, fmt.Errorf("load balancer host %q %w: enroll a gantry agent on that machine (list hosts with: gantry hosts ls)", lbHostName, store.ErrNotFound)
		}
		return protocol.LBResult{}, fmt.Errorf("load balancer host %q: %w", lbHostName, err)
	}
	if !c.pres.HostOnline(h.ID) {
		return protocol.LBResult{}, fmt.Errorf("%w: %s (%s) has no connected agent, so gantry cannot %s its load balancer", ErrOffline, lbHostName, h.ID, cmd.Op)
	}
	wait := DefaultTimeout
	if cmd.TimeoutMillis > 0 {
		wait = time.Duration(cmd.TimeoutMillis) * time.Millisecond
	}
	wait += Margin
	now := c.now().UTC()
	lb := cmd
	pc := protocol.Command{ID: ids.New("lb"), HostID: h.ID, Kind: protocol.CmdLB, IssuedAt: now, ExpiresAt: now.Add(wait), LB: &lb}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	b, err := c.req.Request(rctx, pc)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return protocol.LBResult{}, fmt.Errorf("load balancer on %s: no answer to %s within %s: %w", lbHostName, cmd.Op, wait, err)
		}
		return protocol.LBResult{}, fmt.Errorf("load balancer on %s: %s: %w", lbHostName, cmd.Op, err)
	}
	var res protocol.LBResult
	if err := json.Unmarshal(b, &res); err != nil {
		return protocol.LBResult{}, fmt.Errorf("load balancer on %s: unreadable answer to %s: %w", lbHostName, cmd.Op, err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("%w: %s on %s: %s", ErrRefused, cmd.Op, lbHostName, res.Error)
	}
	return res, nil
}

// Command returns the command of op for the load balancer of a deployment
// group (t): its driver, socket, state file and backend, no weight change.
func Command(t api.LBTarget, op string) protocol.LBCommand {
	return protocol.LBCommand{Driver: t.Driver, Socket: t.Socket, StateFile: t.StateFile, Op: op, Backend: t.Backend, Weight: -1}
}

// View reports the servers of a group's load balancer backend (GET
// /api/v1/apps/{app}/groups/{group}/lb).
func (c *Controller) View(ctx context.Context, t api.LBTarget) (api.LBView, error) {
	res, err := c.Do(ctx, t.Host, Command(t, protocol.LBStatus))
	if err != nil {
		return api.LBView{}, err
	}
	driver := t.Driver
	if driver == "" {
		driver = "haproxy"
	}
	servers := res.Servers
	if servers == nil {
		servers = []api.LBServerStatus{}
	}
	return api.LBView{Host: t.Host, Driver: driver, Servers: servers}, nil
}
