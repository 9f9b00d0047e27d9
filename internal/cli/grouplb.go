package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gantry-dev/gantry/api"
)

// lbFlags are the load balancer flags of `group create` and `group
// update`: the load balancer in front of the group's hosts.
type lbFlags struct {
	LB        string // HOST/BACKEND
	Socket    string
	StateFile string
	Drain     time.Duration
	NoLB      bool // update only

	drainSet bool
}

// maxDrain is the longest --drain-timeout (the server's range).
const maxDrain = time.Hour

// define adds --lb, --lb-socket, --lb-state-file and --drain-timeout.
func (l *lbFlags) define(f *pflag.FlagSet) {
	f.StringVar(&l.LB, "lb", "", "put the group behind a load balancer: `HOST/BACKEND`, the gantry host name of the load balancer machine and the haproxy backend whose servers are the group's hosts (named by host name)")
	f.StringVar(&l.Socket, "lb-socket", "", "with --lb: the haproxy runtime API socket `PATH` on the load balancer machine, for an haproxy gantry does not configure")
	f.StringVar(&l.StateFile, "lb-state-file", "", "with --lb and --lb-socket: the haproxy server-state-file `PATH`, rewritten after every change so that a reload keeps it")
	f.DurationVar(&l.Drain, "drain-timeout", 30*time.Second, "with --lb: how long a host's sessions may take to end when it is drained (1s to 1h)")
}

// changed records which flags were given.
func (l *lbFlags) changed(f *pflag.FlagSet) {
	l.drainSet = f.Changed("drain-timeout")
}

// target returns the load balancer the flags describe (nil without
// --lb), or a usage error.
func (l lbFlags) target() (*api.LBTarget, error) {
	if l.LB == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--lb-socket", l.Socket != ""}, {"--lb-state-file", l.StateFile != ""}, {"--drain-timeout", l.drainSet}} {
			if f.set {
				return nil, usageErrorf("%s needs --lb HOST/BACKEND (the load balancer it is about)", f.name)
			}
		}
		return nil, nil
	}
	host, backend, ok := strings.Cut(l.LB, "/")
	if !ok || host == "" || backend == "" || strings.Contains(backend, "/") {
		return nil, usageErrorf("invalid --lb %q: want HOST/BACKEND, e.g. --lb lb1/web (the load balancer's gantry host name, a slash, its haproxy backend)", l.LB)
	}
	if l.StateFile != "" && l.Socket == "" {
		return nil, usageErrorf("--lb-state-file needs --lb-socket: a state file is for an haproxy gantry does not configure")
	}
	t := &api.LBTarget{Host: host, Backend: backend, Socket: l.Socket, StateFile: l.StateFile}
	if l.drainSet {
		if l.Drain < time.Second || l.Drain > maxDrain {
			return nil, usageErrorf("invalid --drain-timeout %s: want 1s to 1h", l.Drain)
		}
		t.DrainTimeoutSeconds = ceilSeconds(l.Drain)
	}
	return t, nil
}

// describeLB renders a group's load balancer in one line.
func describeLB(t *api.LBTarget) string {
	if t == nil {
		return "none"
	}
	s := t.Host + "/" + t.Backend
	var extra []string
	if t.Socket != "" {
		extra = append(extra, "socket "+t.Socket)
	}
	if t.StateFile != "" {
		extra = append(extra, "state file "+t.StateFile)
	}
	drain := 30
	if t.DrainTimeoutSeconds > 0 {
		drain = t.DrainTimeoutSeconds
	}
	extra = append(extra, fmt.Sprintf("drain timeout %s", time.Duration(drain)*time.Second))
	return s + " (" + strings.Join(extra, ", ") + ")"
}
