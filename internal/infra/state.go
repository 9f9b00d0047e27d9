package infra

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/infra/config"
)

// Resource kinds in the state.
const (
	KindNetwork = "network"
	KindMachine = "machine"
	// KindGroup is a group's own record: its scripts, health check and
	// deployment group (not infrastructure).
	KindGroup = "group"
)

// State is what gantry made for one environment instance, as recorded
// after every step of an apply (the store keeps it as JSON, with a serial
// that every write moves on).
type State struct {
	Env       string               `json:"env"`
	Resources map[string]*Resource `json:"resources"`
	// Outputs are the outputs evaluated at the end of the last apply (JSON
	// values).
	Outputs map[string]json.RawMessage `json:"outputs,omitempty"`
	// Scale holds counts set by `gantry scale`, by group: they win over the
	// definition's count until an apply from a definition replaces them.
	Scale map[string]int `json:"scale,omitempty"`
	// Source is the directory the definition was last applied from (as
	// the client named it, absolute), "" if unknown.
	Source string `json:"source,omitempty"`
	// Replacing holds, by group, the replacement fleet of a blue/green
	// deployment in progress (fleet.go).
	Replacing map[string]*Replacement `json:"replacing,omitempty"`

	// byGroup indexes the machines by group; nil until needed, and reset by
	// every change of Resources (changed).
	byGroup map[string][]*Resource
}

// changed drops the indexes after Resources changed.
func (s *State) changed() { s.byGroup = nil }

// Resource is one recorded resource.
type Resource struct {
	Address string `json:"address"` // network.app, group.web[0], group.web, host.legacy
	Kind    string `json:"kind"`
	// Group and Index place a machine ("web", 0); a host block's machine
	// has its name as Group and index 0.
	Group string `json:"group,omitempty"`
	Index int    `json:"index,omitempty"`
	// Provider is "TYPE.NAME"; ID is the provider's id.
	Provider string `json:"provider,omitempty"`
	ID       string `json:"id,omitempty"`
	// Name is the machine's host name or the network's name.
	Name string `json:"name,omitempty"`
	// IP is a machine's address; Subnet and Gateway a network's.
	IP      string `json:"ip,omitempty"`
	Subnet  string `json:"subnet,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// Attrs are the applied values of the attributes that plans compare.
	Attrs map[string]string `json:"attrs,omitempty"`
	// Group records (KindGroup) keep what the lifecycle needs.
	Spec *GroupRecord `json:"spec,omitempty"`
	// Host is true for a host block's machine.
	Host      bool      `json:"host,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// GroupRecord is what the lifecycle of a group's machines needs.
type GroupRecord struct {
	Setup            string           `json:"setup,omitempty"`
	Configure        string           `json:"configure,omitempty"`
	Shutdown         string           `json:"shutdown,omitempty"`
	SetupTimeout     int              `json:"setup_timeout,omitempty"`
	ConfigureTimeout int              `json:"configure_timeout,omitempty"`
	ShutdownTimeout  int              `json:"shutdown_timeout,omitempty"`
	HealthCheck      *api.HealthCheck `json:"health_check,omitempty"`
	// App, DeployGroup, Revision and Config: the group's deployment (App ""
	// for none). DeployGroup is the deployment group's name in App.
	App         string `json:"app,omitempty"`
	DeployGroup string `json:"deploy_group,omitempty"`
	Revision    string `json:"revision,omitempty"`
	Config      string `json:"config,omitempty"`
	Host        bool   `json:"host,omitempty"`
	// Strategy, Canary and BlueGreen are the deploy block's strategy
	// (api.Strategy*, "" for in-place) and its canary and blue_green
	// settings, passed to the deployments the environment starts.
	Strategy  string             `json:"strategy,omitempty"`
	Canary    *api.CanarySpec    `json:"canary,omitempty"`
	BlueGreen *api.BlueGreenSpec `json:"blue_green,omitempty"`
	// RevisionSetAt is when an apply set Revision (zero in states written
	// before it was recorded). A deployment of the group made by hand
	// after it wins until an apply changes Revision again (see
	// wantedRevision).
	RevisionSetAt time.Time `json:"revision_set_at,omitzero"`
	// LoadBalancer makes the group's machine the load balancer of group
	// LoadBalancer.Target (nil for none).
	LoadBalancer *config.LBSpec `json:"load_balancer,omitempty"`
}

func newState(env string) *State {
	return &State{Env: env, Resources: map[string]*Resource{}}
}

func decodeState(env string, b []byte) (*State, error) {
	st := newState(env)
	if len(b) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state of environment %s is not readable: %w", env, err)
	}
	if st.Resources == nil {
		st.Resources = map[string]*Resource{}
	}
	return st, nil
}

func (s *State) clone() *State {
	b, _ := json.Marshal(s)
	c, _ := decodeState(s.Env, b)
	return c
}

// machines returns the machines of a group (or host block), by index.
func (s *State) machines(group string) []*Resource {
	if s.byGroup == nil {
		s.byGroup = map[string][]*Resource{}
		for _, r := range s.Resources {
			if r.Kind == KindMachine {
				s.byGroup[r.Group] = append(s.byGroup[r.Group], r)
			}
		}
		for _, rs := range s.byGroup {
			sort.Slice(rs, func(i, j int) bool { return rs[i].Index < rs[j].Index })
		}
	}
	return s.byGroup[group]
}

// allMachines returns every machine, in address order.
func (s *State) allMachines() []*Resource {
	var out []*Resource
	for _, r := range s.Resources {
		if r.Kind == KindMachine {
			out = append(out, r)
		}
	}
	sortResources(out)
	return out
}

// machineAddress is "group.web[2]" or, for a host block, "host.legacy[0]"
// (the block's address itself names its record, as for groups).
func machineAddress(group string, index int, host bool) string {
	kind := "group."
	if host {
		kind = "host."
	}
	return kind + group + "[" + strconv.Itoa(index) + "]"
}

// machineName is the host name of a group's machine (the language's
// naming, which plans and expressions see) or of a host block's.
func machineName(env, group string, index int, host bool) string {
	if host {
		return env + "-" + group
	}
	return config.MachineName(env, group, index)
}

// lessAddress orders addresses by kind, then name, then index as a number.
func lessAddress(a, b string) bool {
	an, ai := splitIndex(a)
	bn, bi := splitIndex(b)
	if an != bn {
		return an < bn
	}
	return ai < bi
}

func splitIndex(a string) (string, int) {
	i := strings.IndexByte(a, '[')
	if i < 0 || !strings.HasSuffix(a, "]") {
		return a, -1
	}
	n, err := strconv.Atoi(a[i+1 : len(a)-1])
	if err != nil {
		return a, -1
	}
	return a[:i], n
}

func sortResources(rs []*Resource) {
	sort.Slice(rs, func(i, j int) bool { return lessAddress(rs[i].Address, rs[j].Address) })
}
