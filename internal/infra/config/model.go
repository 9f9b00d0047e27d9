package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/diag"
)

// Kinds of resource blocks.
const (
	KindNetwork = "network"
	KindGroup   = "group"
	KindHost    = "host"
	KindOutput  = "output"
)

// Definition is a loaded environment definition: the blocks of every
// *.hcl file of a directory, with variables resolved and locals evaluated,
// for one environment instance. Group, host, network and output bodies stay
// expressions: they may refer to values only known once other resources
// exist (`group.db.hosts[0].address`), so the engine evaluates each one
// when it gets to it (Eval*), with what is known then.
type Definition struct {
	// Env is the environment instance's name (--env).
	Env string
	// Files are the sources read (name relative to the directory -> bytes),
	// for diagnostics with snippets.
	Files map[string][]byte
	// Vars are the resolved input variables (defaults, the env's variables
	// file envs/<env>.hcl, then --var), by name.
	Vars map[string]cty.Value
	// Locals are the evaluated locals, by name.
	Locals map[string]cty.Value
	// Providers by "TYPE.NAME".
	Providers map[string]*Provider
	// Networks, Groups, Hosts and Outputs by name.
	Networks map[string]*Block
	Groups   map[string]*Block
	Hosts    map[string]*Block
	Outputs  map[string]*Block

	// Dir is the definition directory, as given to Load: file() and
	// templatefile() read below it.
	Dir string
	// Variables are the variable declarations, by name, with where each
	// value came from.
	Variables map[string]*Variable

	funcs   map[string]function.Function // the functions of every expression
	order   []*Block                     // networks, groups, hosts, dependencies first
	sources map[string]*diag.Source      // Files, for snippets
	planned *World                       // PlanWorld, computed once
	base    map[string]cty.Value         // var, local and env objects
}

// Variable is a variable block and the value it got.
type Variable struct {
	// Name is the variable's name (var.NAME).
	Name string
	// Type is the declared type constraint (cty.DynamicPseudoType when the
	// block has no type: a --var value is then a string).
	Type cty.Type
	// Default is the default value, cty.NilVal for a required variable.
	Default cty.Value
	// Description is the description attribute ("" when none).
	Description string
	// Source says where the value came from: "default", the variables file
	// ("envs/prod.hcl") or "--var".
	Source string
	// DefRange is the block header's range.
	DefRange hcl.Range
}

// Provider is a provider block, evaluated (its attributes may use var.,
// local. and functions only).
type Provider struct {
	Type, Name string
	// Config is the block's attributes as strings.
	Config map[string]string
	Range  hcl.Range
}

// Key is "TYPE.NAME".
func (p *Provider) Key() string { return p.Type + "." + p.Name }

// Block is a network, group, host or output block, not yet evaluated.
type Block struct {
	Kind, Name string
	// Provider is the "TYPE.NAME" its provider attribute names ("" for
	// outputs).
	Provider string
	// DependsOn are the addresses ("group.db", "network.app") of explicit
	// depends_on entries and of every reference in the block's
	// expressions (implicit dependencies), deduplicated and sorted.
	DependsOn []string
	// Body is the block's remaining content, evaluated by Eval*.
	Body hcl.Body
	// DefRange is the block header's range (for diagnostics).
	DefRange hcl.Range

	// Count is a group's count attribute, evaluated when the definition is
	// loaded (it may use var., local. and env. only; default 1); 1 for a
	// host, 0 for networks and outputs.
	Count int
	// Networks are the names of the networks a group's networks attribute
	// lists, in order.
	Networks []string
	// Description is an output's description ("" when none).
	Description string
	// File is the definition file the block is in (relative to Dir).
	File string

	// LBTarget is the group a load_balancer block's target names ("" for
	// none), resolved by Load.
	LBTarget string

	body       *hclsyntax.Body
	field      string // `group "web"`, for diagnostics
	countKnown bool   // false when count could not be evaluated (Load failed)
}

// Address is "KIND.NAME" (e.g. "group.web").
func (b *Block) Address() string { return b.Kind + "." + b.Name }

// GroupSpec is an evaluated group or host block. A host block gives a
// GroupSpec with Count 1 and Host true.
type GroupSpec struct {
	Name string
	// Host is true for a host block (an existing machine).
	Host bool
	// Provider is "TYPE.NAME".
	Provider string
	// Image is the machine image ("" for a host or where the provider has
	// none).
	Image string
	// CPUs and MemoryMB are the size block (0 = no limit). memory accepts a
	// number of MiB or a string with a unit ("512MiB", "1GiB").
	CPUs     float64
	MemoryMB int64
	// Count is the number of machines (default 1; 0 allowed).
	Count int
	// Networks are network names (from `networks = [network.app]`).
	Networks []string
	// Labels are the group's host labels (the gantry.* labels are added).
	Labels map[string]string
	// Setup, Configure and Shutdown are the lifecycle scripts ("" = none);
	// their timeouts (setup_timeout, configure_timeout, shutdown_timeout:
	// seconds or a duration string) default to 600, 300 and 120 seconds.
	Setup, Configure, Shutdown                      string
	SetupTimeout, ConfigureTimeout, ShutdownTimeout int
	// HealthCheck is the health_check block (http, expect_status, tcp,
	// command, timeout, interval), nil for none.
	HealthCheck *api.HealthCheck
	// Deploy is the deploy block, nil for none.
	Deploy *DeploySpec
	// LoadBalancer is the load_balancer block: this group's machine is
	// the load balancer of another group (nil for none).
	LoadBalancer *LBSpec
	// Attrs are the provider-specific attributes (provider.Info
	// MachineAttrs), as strings.
	Attrs map[string]string
	// Unknown names the attributes whose value is not known yet (they refer
	// to a resource that is still to be created): "labels", "setup",
	// "attrs.address", ... Plan shows them as (known after apply).
	Unknown map[string]bool
}

// NetworkSpec is an evaluated network block.
type NetworkSpec struct {
	// Name is the network block's name.
	Name string
	// Provider is "TYPE.NAME".
	Provider string
	// Attrs are the block's other attributes (provider-specific: docker
	// subnet, internal, ...), as strings.
	Attrs map[string]string
	// Unknown names the attributes ("attrs.subnet") whose value is not
	// known yet; their Attrs entry is missing.
	Unknown map[string]bool
}

// DeploySpec is a group's deploy block.
type DeploySpec struct {
	// App is the application (gantry app create).
	App string
	// Revision is a revision id; "" = the application's newest.
	Revision string
	// Config is the deployment configuration (default OneAtATime).
	Config string
	// Strategy is api.StrategyInPlace ("" reads as in-place),
	// api.StrategyCanary or api.StrategyBlueGreen (written "blue_green" or
	// "blue-green"): how the environment deploys a new revision to the
	// group (the group needs a load balancer for canary and blue-green).
	Strategy string
	// Canary is the canary block (steps and analysis); nil for the
	// defaults or without canary.
	Canary *api.CanarySpec
	// BlueGreen is the blue_green block (traffic shift and how long the
	// original machines are kept), as written: the deployment applies the
	// defaults (all at once, 30s between steps, keep 5m). nil for the
	// defaults or without blue_green. keep_original = "0s" sets NoKeep.
	BlueGreen *api.BlueGreenSpec
}

// LBSpec is a group's load_balancer block: the group's machine balances
// the requests to port Listen over the machines of group Target.
type LBSpec struct {
	// Target is the balanced group's name (target = group.web).
	Target string `json:"target"`
	// Listen is the port the load balancer listens on (default 80); Port
	// the target machines' application port.
	Listen int `json:"listen"`
	Port   int `json:"port"`
	// Balance is roundrobin (default), leastconn, first or random.
	Balance string `json:"balance"`
	// DrainTimeout caps, in seconds, the wait for a leaving or deployed
	// machine's sessions to end (default 30, 0 to 3600).
	DrainTimeout int `json:"drain_timeout"`
	// Header, if set, is a response header naming the server that
	// answered (e.g. "X-Backend").
	Header string `json:"header,omitempty"`
	// Driver is the kind of load balancer: "haproxy" (the default and the
	// only one so far).
	Driver string `json:"driver"`
	// Check is the load balancer's own health check of the targets.
	Check api.LBCheck `json:"check"`
}

// World is what is known of the environment's resources when a block is
// evaluated. Unknown values (cty.UnknownVal) stand for what is still to be
// created.
type World struct {
	// Groups by name: object {name, count, labels, hosts = list of object
	// {name, index, address, id}}.
	Groups map[string]cty.Value
	// Hosts by name: object {name, address, id}.
	Hosts map[string]cty.Value
	// Networks by name: object {name, id, subnet, gateway}.
	Networks map[string]cty.Value
}
