package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/lb"
	_ "github.com/gantry-dev/gantry/internal/lb/haproxy" // the default driver
	"github.com/gantry-dev/gantry/internal/protocol"
)

// DefaultLBDriver is the driver of an LBCommand that names none.
const DefaultLBDriver = "haproxy"

// Default waits of LB commands without TimeoutMillis.
const (
	defaultDrainTimeout = 30 * time.Second
	defaultAllowTimeout = 60 * time.Second
)

var lbOps = []string{protocol.LBConfigure, protocol.LBStatus, protocol.LBSet, protocol.LBWeights, protocol.LBDrain, protocol.LBAllow, protocol.LBRemove}

// balancers holds the load balancers opened so far, by driver, socket,
// state file and directory: every command on one load balancer shares its
// Balancer, hence its lock (lb.Lock) and its driver's state.
var balancers sync.Map

// onLB runs a load balancer command (already verified) and answers the
// request with a protocol.LBResult. LB commands set states, so they are
// idempotent and not journaled; a repeat runs again.
func (a *Agent) onLB(m *nats.Msg, cmd protocol.Command, refusal string) {
	go func() {
		var res protocol.LBResult
		if refusal != "" {
			res.Error = refusal
		} else {
			a.log.Info("load balancer command", "id", cmd.ID, "op", cmd.LB.Op, "backend", cmd.LB.Backend, "server", cmd.LB.Server)
			res = RunLB(context.Background(), a.cfg.DataDir, *cmd.LB)
			if res.Error != "" {
				a.log.Warn("load balancer command failed", "id", cmd.ID, "op", cmd.LB.Op, "err", res.Error)
			}
		}
		b, _ := json.Marshal(res)
		if m.Reply == "" {
			a.log.Warn("load balancer command without a reply subject: result dropped", "id", cmd.ID)
			return
		}
		if err := m.Respond(b); err != nil {
			a.log.Warn("load balancer command: cannot answer", "id", cmd.ID, "err", err)
		}
	}()
}

// RunLB runs one load balancer operation on this host, whose agent keeps
// its managed load balancers under dataDir/lb/<driver>, and reports it.
func RunLB(ctx context.Context, dataDir string, c protocol.LBCommand) protocol.LBResult {
	start := time.Now()
	res, err := runLB(ctx, dataDir, c)
	if err != nil {
		res.Error = err.Error()
	}
	res.ElapsedMillis = time.Since(start).Milliseconds()
	return res
}

func runLB(ctx context.Context, dataDir string, c protocol.LBCommand) (protocol.LBResult, error) {
	var res protocol.LBResult
	driver := c.Driver
	if driver == "" {
		driver = DefaultLBDriver
	}
	if !contains(lbOps, c.Op) {
		return res, fmt.Errorf("unknown load balancer op %q (valid: %s)", c.Op, strings.Join(lbOps, ", "))
	}
	switch c.Op {
	case protocol.LBSet, protocol.LBDrain, protocol.LBAllow, protocol.LBRemove:
		if c.Backend == "" || c.Server == "" {
			return res, fmt.Errorf("lb %s needs a backend and a server", c.Op)
		}
	case protocol.LBWeights:
		if c.Backend == "" || len(c.Weights) == 0 {
			return res, errors.New("lb weights needs a backend and weights")
		}
	case protocol.LBConfigure:
		if c.Config == nil {
			return res, errors.New("lb configure needs a config")
		}
	}
	opts := lb.Options{Socket: c.Socket, StateFile: c.StateFile}
	if c.Socket == "" {
		if dataDir == "" {
			return res, errors.New("this agent has no data directory for a managed load balancer")
		}
		opts.Dir = filepath.Join(dataDir, "lb", driver)
	}
	key := strings.Join([]string{driver, opts.Socket, opts.StateFile, opts.Dir}, "\x00")
	var b lb.Balancer
	if v, ok := balancers.Load(key); ok {
		b = v.(lb.Balancer)
	} else {
		opened, err := lb.Open(driver, opts)
		if err != nil {
			return res, err
		}
		v, _ := balancers.LoadOrStore(key, opened)
		b = v.(lb.Balancer)
	}
	timeout := func(def time.Duration) time.Duration {
		if c.TimeoutMillis > 0 {
			return time.Duration(c.TimeoutMillis) * time.Millisecond
		}
		return def
	}
	var out lb.Outcome
	var err error
	switch c.Op {
	case protocol.LBConfigure:
		unlock := lb.Lock(b)
		err = b.Configure(ctx, *c.Config)
		unlock()
		if err == nil {
			out.Detail = fmt.Sprintf("configured %d backends", len(c.Config.Backends))
		}
	case protocol.LBStatus:
	case protocol.LBSet:
		unlock := lb.Lock(b)
		err = b.Set(ctx, c.Backend, c.Server, c.State, c.Weight)
		unlock()
	case protocol.LBWeights:
		out, err = lb.Weights(ctx, b, c.Backend, c.Weights)
	case protocol.LBDrain:
		if c.State == api.LBDrain {
			out, err = lb.DrainKeep(ctx, b, c.Backend, c.Server, c.Weight, timeout(defaultDrainTimeout))
		} else {
			out, err = lb.Drain(ctx, b, c.Backend, c.Server, timeout(defaultDrainTimeout))
		}
	case protocol.LBAllow:
		out, err = lb.Allow(ctx, b, c.Backend, c.Server, c.Weight, timeout(defaultAllowTimeout))
	case protocol.LBRemove:
		out, err = lb.Remove(ctx, b, c.Backend, c.Server, timeout(defaultDrainTimeout))
	}
	res.Detail, res.TimedOut = out.Detail, out.TimedOut
	// The backend after the operation (also after a failure: what is).
	if servers, serr := b.Status(ctx, c.Backend); serr == nil {
		res.Servers = servers
	} else if err == nil {
		err = serr
	}
	return res, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
