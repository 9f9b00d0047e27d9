package config

import (
	"maps"
	"slices"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// MachineRef is what is known of one machine: a machine of a group, or the
// machine of a host block.
type MachineRef struct {
	// Name is the machine's inventory name (see MachineName).
	Name string
	// Index is the machine's index in its group, from 0.
	Index int
	// Address is the machine's address on its first network and ID its
	// provider id; both are unknown values when Known is false.
	Address, ID string
	// Known is false for a machine that is still to be created.
	Known bool
}

// machineType is the type of one of group.X.hosts.
var machineType = cty.Object(map[string]cty.Type{
	"name": cty.String, "index": cty.Number, "address": cty.String, "id": cty.String,
})

// objectAttrs are the attribute names of the objects of each kind, for
// static checks of references.
var objectAttrs = map[string][]string{
	KindGroup:   {"name", "count", "labels", "hosts"},
	KindHost:    {"name", "address", "id"},
	KindNetwork: {"name", "id", "subnet", "gateway"},
}

// MachineName is the inventory name of machine index (from 0) of a group:
// "<env>-<group>-<index>", e.g. "prod-web-0".
func MachineName(env, group string, index int) string {
	return env + "-" + group + "-" + strconv.Itoa(index)
}

func knownOr(s string, known bool) cty.Value {
	if !known {
		return cty.UnknownVal(cty.String)
	}
	return cty.StringVal(s)
}

func machineValue(m MachineRef) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal(m.Name),
		"index":   cty.NumberIntVal(int64(m.Index)),
		"address": knownOr(m.Address, m.Known),
		"id":      knownOr(m.ID, m.Known),
	})
}

func stringMapValue(m map[string]string) cty.Value {
	if len(m) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	vs := make(map[string]cty.Value, len(m))
	for k, v := range m {
		vs[k] = cty.StringVal(v)
	}
	return cty.MapVal(vs)
}

// GroupValue is the object a group is to expressions (group.NAME): {name,
// count, labels, hosts = list of {name, index, address, id}}, with the
// group's machines in index order. A machine that is not Known has an
// unknown address and id.
func GroupValue(name string, labels map[string]string, ms []MachineRef) cty.Value {
	return groupValue(name, stringMapValue(labels), ms)
}

func groupValue(name string, labels cty.Value, ms []MachineRef) cty.Value {
	hosts := cty.ListValEmpty(machineType)
	if len(ms) > 0 {
		vs := make([]cty.Value, len(ms))
		for i, m := range ms {
			vs[i] = machineValue(m)
		}
		hosts = cty.ListVal(vs)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"name":   cty.StringVal(name),
		"count":  cty.NumberIntVal(int64(len(ms))),
		"labels": labels,
		"hosts":  hosts,
	})
}

// HostValue is the object a host block is to expressions (host.NAME):
// {name, address, id}, where name is the block's name; address and id are
// unknown unless m.Known. m.Name and m.Index are not used.
func HostValue(name string, m MachineRef) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal(name),
		"address": knownOr(m.Address, m.Known),
		"id":      knownOr(m.ID, m.Known),
	})
}

// NetworkValue is the object a network is to expressions (network.NAME):
// {name, id, subnet, gateway}; id, subnet and gateway are unknown unless
// known.
func NetworkValue(name, id, subnet, gateway string, known bool) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"name":    cty.StringVal(name),
		"id":      knownOr(id, known),
		"subnet":  knownOr(subnet, known),
		"gateway": knownOr(gateway, known),
	})
}

// PlanWorld is the world of an environment where nothing exists yet: every
// declared group with its count of machines (names and indexes known,
// addresses and ids unknown), every host and network with unknown
// attributes. A group's labels are known where they do not depend on a
// resource. Load checks every block against it; plans of a fresh
// environment use it. The maps are d's own copies: change them freely.
func PlanWorld(d *Definition) World {
	if d.planned == nil {
		d.planned = d.computePlanWorld()
	}
	return World{
		Groups:   maps.Clone(d.planned.Groups),
		Hosts:    maps.Clone(d.planned.Hosts),
		Networks: maps.Clone(d.planned.Networks),
	}
}

func (d *Definition) computePlanWorld() *World {
	w := &World{
		Groups:   make(map[string]cty.Value, len(d.Groups)),
		Hosts:    make(map[string]cty.Value, len(d.Hosts)),
		Networks: make(map[string]cty.Value, len(d.Networks)),
	}
	// Labels are evaluated with every resource unknown.
	vars := maps.Clone(d.base)
	vars[KindGroup], vars[KindHost], vars[KindNetwork] = cty.DynamicVal, cty.DynamicVal, cty.DynamicVal
	ctx := &hcl.EvalContext{Variables: vars, Functions: d.funcs}
	names := slices.Sorted(maps.Keys(d.Groups))
	values := make([]cty.Value, len(names))
	const chunk = 256
	parallel((len(names)+chunk-1)/chunk, func(c int) {
		for i := c * chunk; i < min(len(names), (c+1)*chunk); i++ {
			values[i] = d.planGroup(d.Groups[names[i]], ctx)
		}
	})
	for i, name := range names {
		w.Groups[name] = values[i]
	}
	for name := range d.Hosts {
		w.Hosts[name] = HostValue(name, MachineRef{})
	}
	for name := range d.Networks {
		w.Networks[name] = NetworkValue(name, "", "", "", false)
	}
	return w
}

// planGroup is group b's value in PlanWorld.
func (d *Definition) planGroup(b *Block, ctx *hcl.EvalContext) cty.Value {
	labels := planLabels(b, ctx)
	if !b.countKnown {
		return cty.ObjectVal(map[string]cty.Value{
			"name":   cty.StringVal(b.Name),
			"count":  cty.UnknownVal(cty.Number),
			"labels": labels,
			"hosts":  cty.UnknownVal(cty.List(machineType)),
		})
	}
	ms := make([]MachineRef, b.Count)
	for i := range ms {
		ms[i] = MachineRef{Name: MachineName(d.Env, b.Name, i), Index: i}
	}
	return groupValue(b.Name, labels, ms)
}

// planLabels evaluates a group's labels where they do not depend on a
// resource; otherwise (or on any error, reported by Eval) they are an
// unknown map.
func planLabels(b *Block, ctx *hcl.EvalContext) cty.Value {
	unknown := cty.UnknownVal(cty.Map(cty.String))
	a, ok := b.body.Attributes["labels"]
	if !ok {
		return cty.MapValEmpty(cty.String)
	}
	v, hd := a.Expr.Value(ctx)
	if hd.HasErrors() || !v.IsWhollyKnown() {
		return unknown
	}
	if v.IsNull() {
		return cty.MapValEmpty(cty.String)
	}
	m, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil || m.IsNull() {
		return unknown
	}
	for _, e := range m.AsValueMap() {
		if e.IsNull() {
			return unknown
		}
	}
	if m.LengthInt() == 0 {
		return cty.MapValEmpty(cty.String)
	}
	return m
}
