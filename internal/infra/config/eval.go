package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/validate"
)

// Default lifecycle script timeouts, in seconds.
const (
	DefaultSetupTimeout     = 600
	DefaultConfigureTimeout = 300
	DefaultShutdownTimeout  = 120
)

// Attributes of groups and hosts that Eval does not evaluate: they are
// references resolved by Load.
var refAttrs = map[string]bool{"provider": true, "count": true, "networks": true, "depends_on": true}

// ctxFor is the evaluation context of block b: var, local, env, the
// functions, and the resources b refers to, from w (or, for one w does not
// have, from PlanWorld).
func (d *Definition) ctxFor(b *Block, w World) *hcl.EvalContext {
	vars := maps.Clone(d.base)
	var groups, hosts, networks map[string]cty.Value
	pick := func(into map[string]cty.Value, from, plan map[string]cty.Value, name string) map[string]cty.Value {
		if into == nil {
			into = map[string]cty.Value{}
		}
		if v, ok := from[name]; ok && v != cty.NilVal {
			into[name] = v
		} else if plan != nil {
			into[name] = plan[name]
		}
		return into
	}
	plan := d.planned
	if plan == nil {
		plan = &World{}
	}
	for _, dep := range b.DependsOn {
		kind, name, _ := strings.Cut(dep, ".")
		switch kind {
		case KindGroup:
			groups = pick(groups, w.Groups, plan.Groups, name)
		case KindHost:
			hosts = pick(hosts, w.Hosts, plan.Hosts, name)
		case KindNetwork:
			networks = pick(networks, w.Networks, plan.Networks, name)
		}
	}
	vars[KindGroup] = objectOrEmpty(groups)
	vars[KindHost] = objectOrEmpty(hosts)
	vars[KindNetwork] = objectOrEmpty(networks)
	return &hcl.EvalContext{Variables: vars, Functions: d.funcs}
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func (d *Definition) collector() *collector {
	return &collector{sources: d.sources}
}

// evalAttr evaluates a; ok is false when it failed (reported to c).
func (c *collector) evalAttr(a *hclsyntax.Attribute, ctx *hcl.EvalContext, field string) (cty.Value, bool) {
	if c.skip != nil && c.skip(a) {
		return cty.NilVal, false
	}
	v, hd := a.Expr.Value(ctx)
	if c.hcl(hd, field) {
		return cty.NilVal, false
	}
	return v, true
}

// EvalGroup evaluates group name with what w knows of the other resources.
// Attributes that come out unknown are named in the result's Unknown (and
// left zero); an error is diag.Diagnostics.
func (d *Definition) EvalGroup(name string, w World) (GroupSpec, error) {
	b, ok := d.Groups[name]
	if !ok {
		return GroupSpec{}, fmt.Errorf("no group %q in the definition", name)
	}
	c := d.collector()
	spec := d.evalMachine(c, b, d.ctxFor(b, w))
	return spec, c.list.Err()
}

// EvalHost evaluates host block name like EvalGroup; the result has Host
// set and Count 1.
func (d *Definition) EvalHost(name string, w World) (GroupSpec, error) {
	b, ok := d.Hosts[name]
	if !ok {
		return GroupSpec{}, fmt.Errorf("no host %q in the definition", name)
	}
	c := d.collector()
	spec := d.evalMachine(c, b, d.ctxFor(b, w))
	return spec, c.list.Err()
}

// EvalNetwork evaluates network name: its attributes other than provider
// and depends_on, as strings.
func (d *Definition) EvalNetwork(name string, w World) (NetworkSpec, error) {
	b, ok := d.Networks[name]
	if !ok {
		return NetworkSpec{}, fmt.Errorf("no network %q in the definition", name)
	}
	c := d.collector()
	spec := d.evalNetwork(c, b, d.ctxFor(b, w))
	return spec, c.list.Err()
}

// EvalOutputs evaluates every output's value. Values may be unknown (or
// contain unknowns) where they refer to what is not created yet. On an
// error the outputs that could be evaluated are returned with it.
func (d *Definition) EvalOutputs(w World) (map[string]cty.Value, error) {
	c := d.collector()
	out := make(map[string]cty.Value, len(d.Outputs))
	for _, name := range slices.Sorted(maps.Keys(d.Outputs)) {
		b := d.Outputs[name]
		if v, ok := d.evalOutput(c, b, d.ctxFor(b, w)); ok {
			out[name] = v
		}
	}
	return out, c.list.Err()
}

func (d *Definition) evalOutput(c *collector, b *Block, ctx *hcl.EvalContext) (cty.Value, bool) {
	a := b.body.Attributes["value"]
	if a == nil {
		return cty.NullVal(cty.DynamicPseudoType), true
	}
	return c.evalAttr(a, ctx, b.field+".value")
}

func (d *Definition) evalNetwork(c *collector, b *Block, ctx *hcl.EvalContext) NetworkSpec {
	spec := NetworkSpec{Name: b.Name, Provider: b.Provider}
	for _, a := range sortedAttrs(b.body) {
		if a.Name == "provider" || a.Name == "depends_on" {
			continue
		}
		field := b.field + "." + a.Name
		v, ok := c.evalAttr(a, ctx, field)
		if !ok || v.IsNull() {
			continue
		}
		if !v.IsWhollyKnown() {
			spec.Unknown = setTrue(spec.Unknown, "attrs."+a.Name)
			continue
		}
		if s, ok := c.decodeString(a.Expr.Range(), field, v); ok {
			if spec.Attrs == nil {
				spec.Attrs = map[string]string{}
			}
			spec.Attrs[a.Name] = s
		}
	}
	return spec
}

func setTrue(m map[string]bool, k string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[k] = true
	return m
}

// evalMachine evaluates a group or host block.
func (d *Definition) evalMachine(c *collector, b *Block, ctx *hcl.EvalContext) GroupSpec {
	spec := GroupSpec{
		Name:             b.Name,
		Host:             b.Kind == KindHost,
		Provider:         b.Provider,
		Count:            b.Count,
		Networks:         append([]string(nil), b.Networks...),
		SetupTimeout:     DefaultSetupTimeout,
		ConfigureTimeout: DefaultConfigureTimeout,
		ShutdownTimeout:  DefaultShutdownTimeout,
	}
	for _, a := range sortedAttrs(b.body) {
		if refAttrs[a.Name] {
			continue
		}
		field := b.field + "." + a.Name
		v, ok := c.evalAttr(a, ctx, field)
		if !ok || v.IsNull() {
			continue
		}
		rng := a.Expr.Range()
		var str *string
		var timeout *int
		switch a.Name {
		case "image":
			str = &spec.Image
		case "setup":
			str = &spec.Setup
		case "configure":
			str = &spec.Configure
		case "shutdown":
			str = &spec.Shutdown
		case "setup_timeout":
			timeout = &spec.SetupTimeout
		case "configure_timeout":
			timeout = &spec.ConfigureTimeout
		case "shutdown_timeout":
			timeout = &spec.ShutdownTimeout
		}
		if !v.IsWhollyKnown() {
			if str == nil && timeout == nil && a.Name != "labels" {
				spec.Unknown = setTrue(spec.Unknown, "attrs."+a.Name)
			} else {
				spec.Unknown = setTrue(spec.Unknown, a.Name)
			}
			continue
		}
		switch {
		case str != nil:
			if s, ok := c.decodeString(rng, field, v); ok {
				*str = s
			}
		case timeout != nil:
			if n, ok := c.decodeSeconds(rng, field, v, validate.LifecycleTimeout); ok {
				*timeout = n
			}
		case a.Name == "labels":
			if m, ok := c.decodeLabels(rng, field, v); ok && len(m) > 0 {
				spec.Labels = m
			}
		default:
			if s, ok := c.decodeString(rng, field, v); ok && c.validAttr(rng, field, a.Name, s) {
				if spec.Attrs == nil {
					spec.Attrs = map[string]string{}
				}
				spec.Attrs[a.Name] = s
			}
		}
	}
	blocks := groupBlocks
	if b.Kind == KindHost {
		blocks = hostBlocks
	}
	for _, blk := range b.body.Blocks {
		if !contains(blocks, blk.Type) {
			continue // reported by Load
		}
		bf := b.field + "." + blk.Type
		vals, unknown, ok := c.evalNested(blk, ctx, bf)
		if unknown {
			spec.Unknown = setTrue(spec.Unknown, blk.Type)
			continue
		}
		if !ok {
			continue
		}
		switch blk.Type {
		case "size":
			c.decodeSize(&spec, vals, bf)
		case "health_check":
			spec.HealthCheck = c.decodeHealthCheck(blk, vals, bf)
		case "deploy":
			spec.Deploy = c.decodeDeploy(vals, bf)
			if spec.Deploy != nil {
				c.decodeStrategy(spec.Deploy, blk, ctx, vals, bf, &spec)
			}
		case "load_balancer":
			spec.LoadBalancer = c.decodeLB(b, blk, ctx, vals, bf, &spec)
		}
	}
	return spec
}

// nestedVal is an evaluated attribute of a nested block.
type nestedVal struct {
	v   cty.Value
	rng hcl.Range
}

// evalNested evaluates the attributes of a nested block (size,
// health_check, deploy). unknown is true when one of them is not known
// yet; ok is false on an error. Null attributes are left out, and so are
// attributes the block does not take (reported by Load).
func (c *collector) evalNested(blk *hclsyntax.Block, ctx *hcl.EvalContext, field string) (vals map[string]nestedVal, unknown, ok bool) {
	return c.evalBody(blk.Body, nestedAttrs[blk.Type], ctx, field)
}

// evalBody evaluates the attributes of body named in allowed, as
// evalNested. A load_balancer's target is a reference resolved by Load,
// not a value: it is left out.
func (c *collector) evalBody(body *hclsyntax.Body, allowed []string, ctx *hcl.EvalContext, field string) (vals map[string]nestedVal, unknown, ok bool) {
	vals = map[string]nestedVal{}
	ok = true
	for _, a := range sortedAttrs(body) {
		if !contains(allowed, a.Name) || (a.Name == "target" && strings.HasSuffix(field, ".load_balancer")) {
			continue
		}
		v, good := c.evalAttr(a, ctx, field+"."+a.Name)
		if !good {
			ok = false
			continue
		}
		if !v.IsWhollyKnown() {
			unknown = true
			continue
		}
		if !v.IsNull() {
			vals[a.Name] = nestedVal{v, a.Expr.Range()}
		}
	}
	return vals, unknown && ok, ok
}

// decodeLabels is decodeStringMap with the gantry.* keys refused.
func (c *collector) decodeLabels(rng hcl.Range, field string, v cty.Value) (map[string]string, bool) {
	m, ok := c.decodeStringMap(rng, field, v, `{ role = "web" }`)
	if !ok {
		return nil, false
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.HasPrefix(k, "gantry.") {
			c.at(rng, field, "label %q: keys starting with \"gantry.\" are reserved for gantry's own labels", k)
			return nil, false
		}
	}
	if !c.valid(rng, field, validate.LabelSet("", m)) {
		return nil, false
	}
	return m, true
}

func (c *collector) decodeSize(spec *GroupSpec, vals map[string]nestedVal, bf string) {
	field := func(attr string) string { return bf + "." + attr }
	if nv, ok := vals["cpus"]; ok {
		if f, ok := c.decodeNumber(nv.rng, field("cpus"), nv.v); ok {
			cpus, _ := f.Float64()
			if cpus < 0 || cpus > 1024 {
				c.at(nv.rng, field("cpus"), "must be from 0 (no limit) to 1024, got %s", f.Text('g', -1))
			} else {
				spec.CPUs = cpus
			}
		}
	}
	if nv, ok := vals["memory"]; ok {
		if mib, ok := c.decodeMemory(nv.rng, field("memory"), nv.v); ok {
			spec.MemoryMB = mib
		}
	}
}

func (c *collector) decodeHealthCheck(blk *hclsyntax.Block, vals map[string]nestedVal, bf string) *api.HealthCheck {
	field := func(attr string) string { return bf + "." + attr }
	hc := &api.HealthCheck{}
	good := true
	str := func(name string, into *string) {
		if nv, ok := vals[name]; ok {
			s, ok := c.decodeString(nv.rng, field(name), nv.v)
			good = good && ok
			*into = s
		}
	}
	str("http", &hc.HTTP)
	str("tcp", &hc.TCP)
	if nv, ok := vals["command"]; ok {
		l, ok := c.decodeStringList(nv.rng, field("command"), nv.v, `["pg_isready", "-q"]`)
		good = good && ok && c.valid(nv.rng, field("command"), validate.Command("", l))
		hc.Command = l
	}
	if nv, ok := vals["expect_status"]; ok {
		n, ok := c.decodeWhole(nv.rng, field("expect_status"), nv.v, validate.HealthStatus.Min, validate.HealthStatus.Max)
		good = good && ok
		hc.ExpectStatus = int(n)
		if ok && hc.HTTP == "" {
			c.at(nv.rng, field("expect_status"), "expect_status applies to http checks only")
			good = false
		}
	}
	if nv, ok := vals["timeout"]; ok {
		n, ok := c.decodeSeconds(nv.rng, field("timeout"), nv.v, validate.HealthTimeout)
		good = good && ok
		hc.TimeoutSeconds = n
	}
	if nv, ok := vals["interval"]; ok {
		n, ok := c.decodeMillis(nv.rng, field("interval"), nv.v, validate.HealthInterval)
		good = good && ok
		hc.IntervalMillis = n
	}
	if hc.HTTP != "" {
		good = c.valid(vals["http"].rng, field("http"), validate.HTTPURL("", hc.HTTP)) && good
	}
	if hc.TCP != "" {
		good = c.valid(vals["tcp"].rng, field("tcp"), validate.TCPAddress("", hc.TCP)) && good
	}
	kinds := 0
	for _, k := range []string{"http", "tcp", "command"} {
		if _, ok := vals[k]; ok {
			kinds++
		}
	}
	if kinds != 1 {
		c.at(blk.DefRange(), bf, "needs exactly one of http, tcp and command, got %d", kinds)
		good = false
	}
	if !good {
		return nil
	}
	return hc
}

func (c *collector) decodeDeploy(vals map[string]nestedVal, bf string) *DeploySpec {
	field := func(attr string) string { return bf + "." + attr }
	ds := &DeploySpec{}
	good := true
	for name, into := range map[string]*string{"app": &ds.App, "revision": &ds.Revision, "config": &ds.Config} {
		if nv, ok := vals[name]; ok {
			s, ok := c.decodeString(nv.rng, field(name), nv.v)
			good = good && ok
			*into = s
		}
	}
	if nv, ok := vals["app"]; ok && ds.App == "" {
		c.at(nv.rng, field("app"), "must name an application")
		good = false
	} else if ok {
		good = c.valid(nv.rng, field("app"), validate.AppName("", ds.App)) && good
	}
	if _, err := validate.ParseDeployConfig("", ds.Config); err != nil {
		c.at(vals["config"].rng, field("config"), "%s%s", err.(*validate.Error).Msg, diag.DidYouMean(ds.Config, validate.DeployConfigs))
		good = false
	}
	if !good {
		return nil
	}
	return ds
}

// validAttr checks the provider-specific attributes that every provider
// means the same way: address (an IP or DNS name) and port.
func (c *collector) validAttr(rng hcl.Range, field, name, s string) bool {
	switch name {
	case "address":
		return c.valid(rng, field, validate.Address("", s))
	case "port":
		return s == "" || c.valid(rng, field, validate.PortNumber("", s))
	}
	return true
}

// valid reports err (a *validate.Error or nil) as a diagnostic at rng and
// whether there was none: the HCL side of the validators the API uses.
func (c *collector) valid(rng hcl.Range, field string, err error) bool {
	if err == nil {
		return true
	}
	msg := err.Error()
	if ve, ok := err.(*validate.Error); ok {
		msg = ve.Msg
	}
	c.at(rng, field, "%s", msg)
	return false
}
