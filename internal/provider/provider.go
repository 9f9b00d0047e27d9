// Package provider is the small interface between the environments engine
// (internal/infra) and the infrastructure that machines and networks live
// on: Docker, agent processes on the server's machine, hosts reached over
// SSH. Each provider is one package under internal/providers/ that
// registers a Factory under its type name; the composition root imports the
// built-in ones.
//
// A provider is stateless apart from what it can read back: the engine
// keeps the state (what exists, with the provider's ids) in the store, and
// refreshes it with Read before every plan, so that a resource deleted
// behind gantry's back shows as drift. Every object a provider creates
// carries the labels gantry.env, gantry.group and gantry.resource (where
// the infrastructure has labels), so that List can find what an apply
// interrupted by a crash left behind.
package provider

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Labels every provider puts on what it creates (where the infrastructure
// has labels), so that users find them (`docker ps --filter
// label=gantry.env=prod`) and List finds orphans.
const (
	LabelEnv      = "gantry.env"      // the environment instance, e.g. "staging"
	LabelGroup    = "gantry.group"    // the group (machines) or "" (networks)
	LabelResource = "gantry.resource" // the resource address, e.g. "group.web[2]"
)

// ErrNotSupported is returned (wrapped) by a provider for a kind of
// resource it does not have (e.g. networks on ssh).
var ErrNotSupported = errors.New("not supported by this provider")

// Agent is what a new machine needs to run the gantry agent and enroll.
type Agent struct {
	// Binary is the path, on the server's machine, of a static gantry
	// binary to run as the agent (the server's own executable by default).
	Binary string
	// ServerURL is the gantry server's HTTP URL as the server sees it
	// (e.g. https://127.0.0.1:7070). A provider whose machines cannot reach
	// that address (containers) makes it reachable and passes the agent
	// the address that works from the machine.
	ServerURL string
	// BusURL is the NATS URL agents connect to, as the server sees it.
	BusURL string
	// JoinToken enrolls the agent (single use, short-lived). Providers
	// pass it in the environment or a 0600 file, never on a command line.
	// It ends with the server CA's fingerprint, which the agent checks
	// before it sends the token: TLS passes through TCP forwarders, and
	// host names are not checked against gantry's own CA.
	JoinToken string
	// Name is the host's name in the inventory (= Machine.Name).
	Name string
	// Insecure is set when the server runs without TLS (--tls=false): the
	// agent must then be started with --insecure to accept its plain URLs.
	Insecure bool
}

// Machine is the desired spec of one machine.
type Machine struct {
	// Env, Group and Resource are the values of the gantry.* labels.
	Env, Group, Resource string
	// Name is the machine's name: its host name in the inventory and, where
	// the infrastructure names things, the container or VM name. Unique
	// per server: "<env>-<group>-<index>".
	Name string
	// Image is the machine image (docker: an image reference available
	// locally or pullable). "" where the provider has no images.
	Image string
	// CPUs (fractions allowed) and MemoryMB limit the machine; 0 = no limit.
	CPUs     float64
	MemoryMB int64
	// Networks are the provider ids of the networks to attach, in order
	// (the first gives Address).
	Networks []string
	// Labels are the group's labels (the gantry.* labels are added by the
	// provider from Env, Group and Resource).
	Labels map[string]string
	// Attrs are provider-specific settings from the configuration (ssh:
	// address, port, user, ...), already evaluated.
	Attrs map[string]string
	// Agent starts the gantry agent on the machine.
	Agent Agent
}

// MachineState is what a provider reports of a machine.
type MachineState struct {
	// ID is the provider's id (container id, process id, ssh target).
	ID string
	// Address is the machine's address on its first network (or its only
	// one): what `group.web.hosts[0].address` gives.
	Address string
	// Addresses are the machine's addresses by network id.
	Addresses map[string]string
	// Running is false for a machine that exists but is stopped.
	Running bool
}

// Network is the desired spec of one network.
type Network struct {
	Env, Resource string
	// Name is the network's name: "<env>-<network>".
	Name string
	// Attrs are provider-specific settings (docker: subnet, internal).
	Attrs map[string]string
}

// NetworkState is what a provider reports of a network.
type NetworkState struct {
	ID      string
	Subnet  string
	Gateway string
}

// Found is an object a provider found carrying gantry's labels.
type Found struct {
	Kind     string // "machine" or "network"
	ID       string
	Resource string // the gantry.resource label
}

// Provider creates, reads, changes and deletes machines and networks. All
// methods are safe for concurrent use. Read methods return exists=false,
// err=nil for an object that is gone. Delete methods succeed for an object
// that is already gone.
type Provider interface {
	CreateNetwork(ctx context.Context, n Network) (NetworkState, error)
	ReadNetwork(ctx context.Context, id string) (st NetworkState, exists bool, err error)
	DeleteNetwork(ctx context.Context, id string) error

	CreateMachine(ctx context.Context, m Machine) (MachineState, error)
	ReadMachine(ctx context.Context, id string) (st MachineState, exists bool, err error)
	// UpdateMachine changes in place what UpdatableInPlace allows (size).
	UpdateMachine(ctx context.Context, id string, m Machine) error
	DeleteMachine(ctx context.Context, id string) error

	// List returns what carries gantry.env=env, to find objects an
	// interrupted apply created but did not record.
	List(ctx context.Context, env string) ([]Found, error)
}

// Info describes a provider type to the engine.
type Info struct {
	// Type is the provider's type name in HCL: provider "TYPE" "NAME".
	Type string
	// Doc is one line for `gantry plan --help` and docs.
	Doc string
	// Networks reports that the provider has networks (docker); networks
	// on others are refused with a diagnostic.
	Networks bool
	// Images reports that machines take an image.
	Images bool
	// InPlace lists the machine attributes UpdateMachine can change
	// ("cpus", "memory"); any other change replaces the machine.
	InPlace []string
	// Config lists the attributes the provider block accepts, with docs
	// (for diagnostics: an unknown attribute is an error naming these).
	Config map[string]string
	// MachineAttrs lists the provider-specific attributes a group or host
	// accepts (ssh: address, port, user...), with docs.
	MachineAttrs map[string]string
}

// Env is what a provider instance gets from the server.
type Env struct {
	// DataDir is a directory of the server's own for this provider
	// instance (local: agent data directories).
	DataDir string
}

// Factory makes a provider instance from its evaluated configuration (the
// attributes of its provider block, as strings).
type Factory struct {
	Info Info
	New  func(config map[string]string, env Env) (Provider, error)
}

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a provider type available. It panics on a duplicate, as
// it is called from init functions.
func Register(f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[f.Info.Type]; dup {
		panic("provider: duplicate type " + f.Info.Type)
	}
	factories[f.Info.Type] = f
}

// Lookup returns the factory of a provider type.
func Lookup(typ string) (Factory, error) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := factories[typ]
	if !ok {
		return Factory{}, fmt.Errorf("unknown provider type %q (known: %v)", typ, typesLocked())
	}
	return f, nil
}

// Types lists the registered provider types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	return typesLocked()
}

func typesLocked() []string {
	out := make([]string, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
