// Package providertest has an in-memory provider for the tests and
// benchmarks of the code above providers (the environments engine). It is
// never registered in the gantry binary.
package providertest

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gantry-dev/gantry/internal/provider"
)

// Memory keeps machines and networks in maps. Fail makes the next
// creation of a machine of that name fail.
type Memory struct {
	mu       sync.Mutex
	seq      atomic.Int64
	Machines map[string]provider.Machine // by id
	Running  map[string]bool
	Networks map[string]provider.Network
	fail     map[string]error
	// Calls counts calls by method name.
	Calls map[string]int
}

var _ provider.Provider = (*Memory)(nil)

// NewMemory returns an empty provider.
func NewMemory() *Memory {
	return &Memory{Machines: map[string]provider.Machine{}, Running: map[string]bool{}, Networks: map[string]provider.Network{}, fail: map[string]error{}, Calls: map[string]int{}}
}

// Register registers a provider type whose every instance is m.
func Register(typ string, m *Memory, info provider.Info) {
	info.Type = typ
	provider.Register(provider.Factory{Info: info, New: func(map[string]string, provider.Env) (provider.Provider, error) { return m, nil }})
}

// Reset forgets every machine and network and restarts the ids.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Machines, m.Running, m.Networks = map[string]provider.Machine{}, map[string]bool{}, map[string]provider.Network{}
	m.fail, m.Calls = map[string]error{}, map[string]int{}
	m.seq.Store(0)
}

// Fail makes creating the machine called name fail with err (once).
func (m *Memory) Fail(name string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail[name] = err
}

// Remove deletes a machine behind the engine's back (drift), by name.
func (m *Memory) Remove(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, x := range m.Machines {
		if x.Name == name {
			delete(m.Machines, id)
			return true
		}
	}
	return false
}

// Names returns the machine names, sorted.
func (m *Memory) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, x := range m.Machines {
		out = append(out, x.Name)
	}
	sort.Strings(out)
	return out
}

// Machine returns a machine by name.
func (m *Memory) Machine(name string) (provider.Machine, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.Machines {
		if x.Name == name {
			return x, true
		}
	}
	return provider.Machine{}, false
}

func (m *Memory) call(name string) {
	m.mu.Lock()
	m.Calls[name]++
	m.mu.Unlock()
}

// addressOf gives a machine an address that depends on its name only, so
// that tests creating machines in parallel see stable addresses.
func addressOf(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	return fmt.Sprintf("10.%d.%d.%d", v>>16&0xff, v>>8&0xff, v&0xff)
}

func (m *Memory) id(prefix string) string { return prefix + "-" + strconv.FormatInt(m.seq.Add(1), 10) }

// CreateNetwork records a network.
func (m *Memory) CreateNetwork(_ context.Context, n provider.Network) (provider.NetworkState, error) {
	m.call("CreateNetwork")
	id := m.id("net")
	m.mu.Lock()
	m.Networks[id] = n
	m.mu.Unlock()
	return provider.NetworkState{ID: id, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"}, nil
}

// ReadNetwork reports a network.
func (m *Memory) ReadNetwork(_ context.Context, id string) (provider.NetworkState, bool, error) {
	m.call("ReadNetwork")
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.Networks[id]
	return provider.NetworkState{ID: id, Subnet: "10.0.0.0/24", Gateway: "10.0.0.1"}, ok, nil
}

// DeleteNetwork forgets a network.
func (m *Memory) DeleteNetwork(_ context.Context, id string) error {
	m.call("DeleteNetwork")
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.Networks, id)
	return nil
}

// CreateMachine records a machine (or fails as told by Fail).
func (m *Memory) CreateMachine(_ context.Context, x provider.Machine) (provider.MachineState, error) {
	m.call("CreateMachine")
	m.mu.Lock()
	defer m.mu.Unlock()
	if err, ok := m.fail[x.Name]; ok {
		delete(m.fail, x.Name)
		return provider.MachineState{}, err
	}
	for _, old := range m.Machines {
		if old.Name == x.Name {
			return provider.MachineState{}, fmt.Errorf("memory: a machine named %s exists", x.Name)
		}
	}
	id := m.id("m")
	m.Machines[id] = x
	m.Running[id] = true
	return provider.MachineState{ID: id, Address: addressOf(x.Name), Running: true}, nil
}

// ReadMachine reports a machine.
func (m *Memory) ReadMachine(_ context.Context, id string) (provider.MachineState, bool, error) {
	m.call("ReadMachine")
	m.mu.Lock()
	defer m.mu.Unlock()
	x, ok := m.Machines[id]
	if !ok {
		return provider.MachineState{}, false, nil
	}
	return provider.MachineState{ID: id, Address: addressOf(x.Name), Running: m.Running[id]}, true, nil
}

// UpdateMachine changes a machine's size.
func (m *Memory) UpdateMachine(_ context.Context, id string, x provider.Machine) error {
	m.call("UpdateMachine")
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.Machines[id]
	if !ok {
		return fmt.Errorf("memory: no machine %s", id)
	}
	old.CPUs, old.MemoryMB = x.CPUs, x.MemoryMB
	m.Machines[id] = old
	return nil
}

// DeleteMachine forgets a machine.
func (m *Memory) DeleteMachine(_ context.Context, id string) error {
	m.call("DeleteMachine")
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.Machines, id)
	delete(m.Running, id)
	return nil
}

// List returns what carries the environment's label.
func (m *Memory) List(_ context.Context, env string) ([]provider.Found, error) {
	m.call("List")
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []provider.Found
	for id, x := range m.Machines {
		if x.Env == env {
			out = append(out, provider.Found{Kind: "machine", ID: id, Resource: x.Resource})
		}
	}
	for id, n := range m.Networks {
		if n.Env == env {
			out = append(out, provider.Found{Kind: "network", ID: id, Resource: n.Resource})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
