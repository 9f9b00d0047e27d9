// Package lb is the load balancer a gantry agent drives for the server:
// one small interface, Balancer, that a driver implements for one kind of
// load balancer (package lb/haproxy for HAProxy), and the operations gantry
// builds on it (drain, allow, remove), which are the same for every kind.
//
// Adding a kind (nginx, Envoy, a cloud load balancer): write a package
// with a type that implements Balancer and register it by name with
// Register in an init function; the agent finds it by
// protocol.LBCommand.Driver. See docs/design/traffic.md.
package lb

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/gantry-dev/gantry/api"
)

// Balancer is one load balancer, as a driver controls it. Every change it
// makes takes effect at once and is also written down, so that a restart
// or reload of the load balancer never undoes it.
type Balancer interface {
	// Configure makes a load balancer that gantry manages serve cfg:
	// servers missing are added in their given State, servers no longer
	// in cfg are deleted, the state and weight of servers already there
	// are kept; it starts the load balancer, or reloads it without
	// dropping a connection, when the backends themselves changed.
	Configure(ctx context.Context, cfg api.LBConfig) error
	// Set changes one server's weight (when weight >= 0) and admin state
	// (when state is not "").
	Set(ctx context.Context, backend, server, state string, weight int) error
	// ForceDown marks a server's health down, so that it is UP again only
	// after the load balancer's own checks pass rise times in a row.
	ForceDown(ctx context.Context, backend, server string) error
	// Status reports the servers of backend ("" for every backend).
	Status(ctx context.Context, backend string) ([]api.LBServerStatus, error)
	// Remove deletes a server (already drained and in maint).
	Remove(ctx context.Context, backend, server string) error
}

// Options locate one load balancer for a driver.
type Options struct {
	// Dir is the directory a driver keeps a load balancer it manages in
	// (configuration, runtime socket, state): the agent's
	// <data dir>/lb/<driver>. Unused for an external one.
	Dir string
	// Socket is the runtime interface of a load balancer gantry does not
	// configure (api.LBTarget.Socket); "" for a managed one.
	Socket string
	// StateFile is where an external load balancer's server state is
	// written after every change (api.LBTarget.StateFile); may be "".
	StateFile string
}

// Opener returns the Balancer that opts name. It must be cheap and must
// not start anything: a managed load balancer starts at Configure.
type Opener func(opts Options) (Balancer, error)

var (
	regMu   sync.Mutex
	drivers = map[string]Opener{}
)

// Register makes a driver available by name (protocol.LBCommand.Driver).
// Drivers call it from an init function; a second registration of a name
// panics.
func Register(name string, open Opener) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("lb: driver registered twice: " + name)
	}
	drivers[name] = open
}

// Drivers lists the registered drivers' names, sorted.
func Drivers() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open returns the Balancer of the named driver for opts; an unknown name
// is an error that lists the registered drivers.
func Open(driver string, opts Options) (Balancer, error) {
	regMu.Lock()
	open, ok := drivers[driver]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown load balancer driver %q (valid: %s)", driver, strings.Join(Drivers(), ", "))
	}
	return open(opts)
}
