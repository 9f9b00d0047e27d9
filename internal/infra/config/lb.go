package config

import (
	"maps"
	"regexp"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/validate"
)

// Load balancers (load_balancer blocks) and deployment strategies (the
// deploy block's strategy, canary and blue_green).

// Defaults and ranges of a load_balancer block.
const (
	DefaultLBListen       = 80
	DefaultLBBalance      = "roundrobin"
	DefaultLBDriver       = "haproxy"
	DefaultLBDrainTimeout = 30
	DefaultLBInterval     = 1000
	DefaultLBRise         = 2
	DefaultLBFall         = 2
)

var (
	// LBBalances are the balance algorithms a load_balancer takes.
	LBBalances = []string{"roundrobin", "leastconn", "first", "random"}
	// LBDrivers are the kinds of load balancer gantry drives.
	LBDrivers = []string{"haproxy"}

	lbDrainRange    = withField(validate.DrainTimeout, "drain_timeout", "the default, 30s")
	lbIntervalRange = validate.Range{Field: "interval", Min: 100, Max: 60000, Unit: validate.Millis}
	canaryPause     = validate.Range{Field: "pause", Min: 0, Max: 86400000, Unit: validate.Millis}
	canaryInterval  = validate.Range{Field: "interval", Min: 100, Max: 3600000, Unit: validate.Millis}
	// A blue_green block's shift_interval (1s to 1h) and keep_original
	// (0s, let the originals go at once, to 48h).
	blueGreenInterval = validate.Range{Field: "shift_interval", Min: 1000, Max: 3600000, Unit: validate.Millis}
	blueGreenKeep     = validate.Range{Field: "keep_original", Min: 0, Max: 48 * 3600000, Unit: validate.Millis}

	// lbPathRE is what a health check path may hold: it is written into
	// the load balancer's configuration, so nothing that could end a
	// line or a word there.
	lbPathRE = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$`)
	// headerRE is an HTTP header name (RFC 9110 token, letters, digits
	// and dashes here).
	headerRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

// withField is r as HCL names it.
func withField(r validate.Range, field, zero string) validate.Range {
	r.Field, r.Zero = field, zero
	return r
}

// checkLBTarget resolves a load_balancer's target: another group.
func (l *loader) checkLBTarget(b *Block, a *hclsyntax.Attribute, field string) {
	_, name, ok := l.refTo(a.Expr, field, KindGroup)
	if !ok {
		return
	}
	if name == b.Name {
		l.c.at(a.Expr.Range(), field, "a group cannot be its own load balancer: name another group, like target = group.web")
		return
	}
	b.LBTarget = name
}

// checkInnerBlocks checks the blocks inside a nested block (a
// load_balancer's health_check, a deploy's canary or blue_green).
func (l *loader) checkInnerBlocks(blk *hclsyntax.Block, bf string, deps map[string]bool) {
	seen := map[string]*hclsyntax.Block{}
	for _, in := range blk.Body.Blocks {
		if !contains(nestedBlocks[blk.Type], in.Type) {
			continue // reported by checkShape
		}
		f := bf + "." + in.Type
		if len(in.Labels) > 0 {
			l.c.at(in.LabelRanges[0], f, "a %s block takes no labels: %s { ... }", in.Type, in.Type)
		}
		if prev, dup := seen[in.Type]; dup {
			l.c.at(in.TypeRange, f, "only one %s block is allowed (the first is at %s)", in.Type, posString(prev.DefRange()))
			continue
		}
		seen[in.Type] = in
		key := blk.Type + "." + in.Type
		l.checkShape(in.Body, f, nestedAttrs[key], nil)
		for _, a := range sortedAttrs(in.Body) {
			if contains(nestedAttrs[key], a.Name) {
				l.checkRefs(a.Expr, f+"."+a.Name, modeResource, deps, "")
			}
		}
	}
}

// checkLoadBalancers checks what involves several groups: a group has at
// most one load balancer.
func (l *loader) checkLoadBalancers() {
	by := map[string]*Block{}
	for _, name := range slices.Sorted(maps.Keys(l.d.Groups)) {
		b := l.d.Groups[name]
		if b.LBTarget == "" {
			continue
		}
		if first := by[b.LBTarget]; first != nil {
			rng := b.DefRange
			for _, blk := range b.body.Blocks {
				if a := blk.Body.Attributes["target"]; blk.Type == "load_balancer" && a != nil {
					rng = a.Expr.Range()
				}
			}
			l.c.at(rng, b.field+".load_balancer.target", "group.%s already has a load balancer, group %q (%s): a group has at most one",
				b.LBTarget, first.Name, posString(first.DefRange))
			continue
		}
		by[b.LBTarget] = b
	}
}

// innerBlock returns blk's first inner block of type typ.
func innerBlock(blk *hclsyntax.Block, typ string) *hclsyntax.Block {
	for _, in := range blk.Body.Blocks {
		if in.Type == typ {
			return in
		}
	}
	return nil
}

// decodeLB decodes a load_balancer block; nil on an error or when a value
// is not known yet (then spec.Unknown names it).
func (c *collector) decodeLB(b *Block, blk *hclsyntax.Block, ctx *hcl.EvalContext, vals map[string]nestedVal, bf string, spec *GroupSpec) *LBSpec {
	field := func(attr string) string { return bf + "." + attr }
	lb := &LBSpec{Target: b.LBTarget, Listen: DefaultLBListen, Balance: DefaultLBBalance, Driver: DefaultLBDriver,
		DrainTimeout: DefaultLBDrainTimeout, Check: api.LBCheck{IntervalMillis: DefaultLBInterval, Rise: DefaultLBRise, Fall: DefaultLBFall}}
	good := b.LBTarget != ""
	port := func(name string, into *int) {
		if nv, ok := vals[name]; ok {
			n, ok := c.decodeWhole(nv.rng, field(name), nv.v, 1, 65535)
			good = good && ok
			*into = int(n)
		}
	}
	port("listen", &lb.Listen)
	port("port", &lb.Port)
	oneOf := func(name string, into *string, valid []string) {
		nv, ok := vals[name]
		if !ok {
			return
		}
		s, ok := c.decodeString(nv.rng, field(name), nv.v)
		if ok && !contains(valid, s) {
			c.at(nv.rng, field(name), "must be one of %s, got %q%s", orList(valid), s, diag.DidYouMean(s, valid))
			ok = false
		}
		good = good && ok
		*into = s
	}
	oneOf("balance", &lb.Balance, LBBalances)
	oneOf("driver", &lb.Driver, LBDrivers)
	if nv, ok := vals["drain_timeout"]; ok {
		n, ok := c.decodeSeconds(nv.rng, field("drain_timeout"), nv.v, lbDrainRange)
		good = good && ok
		lb.DrainTimeout = n
		if n == 0 {
			lb.DrainTimeout = DefaultLBDrainTimeout // as the API reads 0
		}
	}
	if nv, ok := vals["header"]; ok {
		s, ok := c.decodeString(nv.rng, field("header"), nv.v)
		if ok && !headerRE.MatchString(s) {
			c.at(nv.rng, field("header"), "must be an HTTP header name (letters, digits and dashes, at most 64), like \"X-Backend\", got %q", s)
			ok = false
		}
		good = good && ok
		lb.Header = s
	}
	if hc := innerBlock(blk, "health_check"); hc != nil {
		hf := bf + ".health_check"
		hv, unknown, ok := c.evalBody(hc.Body, nestedAttrs["load_balancer.health_check"], ctx, hf)
		if unknown {
			spec.Unknown = setTrue(spec.Unknown, "load_balancer")
			return nil
		}
		good = good && ok
		if nv, ok := hv["path"]; ok {
			s, ok := c.decodeString(nv.rng, hf+".path", nv.v)
			if ok && !lbPathRE.MatchString(s) {
				c.at(nv.rng, hf+".path", "must be a URL path starting with \"/\", without spaces or quotes, like \"/healthz\", got %q", s)
				ok = false
			}
			good = good && ok
			lb.Check.Path = s
		}
		if nv, ok := hv["interval"]; ok {
			n, ok := c.decodeMillis(nv.rng, hf+".interval", nv.v, lbIntervalRange)
			good = good && ok
			lb.Check.IntervalMillis = n
		}
		for name, into := range map[string]*int{"rise": &lb.Check.Rise, "fall": &lb.Check.Fall} {
			if nv, ok := hv[name]; ok {
				n, ok := c.decodeWhole(nv.rng, hf+"."+name, nv.v, 1, 10)
				good = good && ok
				*into = int(n)
			}
		}
	}
	if !good {
		return nil
	}
	return lb
}

// strategyBlueGreen is how a deploy block spells api.StrategyBlueGreen
// (which it takes too).
const strategyBlueGreen = "blue_green"

// decodeStrategy decodes a deploy block's strategy and its canary and
// blue_green blocks into ds; problems are reported to c.
func (c *collector) decodeStrategy(ds *DeploySpec, blk *hclsyntax.Block, ctx *hcl.EvalContext, vals map[string]nestedVal, bf string, spec *GroupSpec) {
	strategies := []string{api.StrategyInPlace, api.StrategyCanary, strategyBlueGreen}
	if nv, ok := vals["strategy"]; ok {
		s, ok := c.decodeString(nv.rng, bf+".strategy", nv.v)
		switch {
		case !ok:
		case s == strategyBlueGreen || s == api.StrategyBlueGreen:
			ds.Strategy = api.StrategyBlueGreen
		case !contains(strategies, s):
			c.at(nv.rng, bf+".strategy", "must be one of %s, got %q%s", orList(strategies), s, diag.DidYouMean(s, strategies))
		default:
			ds.Strategy = s
		}
	}
	c.decodeCanary(ds, blk, ctx, bf, spec)
	c.decodeBlueGreen(ds, blk, ctx, bf, spec)
}

// decodeBlueGreen decodes a deploy block's blue_green block into
// ds.BlueGreen; problems are reported to c.
func (c *collector) decodeBlueGreen(ds *DeploySpec, blk *hclsyntax.Block, ctx *hcl.EvalContext, bf string, spec *GroupSpec) {
	in := innerBlock(blk, "blue_green")
	if in == nil {
		return
	}
	gf := bf + ".blue_green"
	if ds.Strategy != api.StrategyBlueGreen {
		c.at(in.TypeRange, gf, "a blue_green block applies to strategy = %q only", strategyBlueGreen)
		return
	}
	bv, unknown, ok := c.evalBody(in.Body, nestedAttrs["deploy.blue_green"], ctx, gf)
	if unknown {
		spec.Unknown = setTrue(spec.Unknown, "deploy")
		return
	}
	if !ok {
		return
	}
	bg := &api.BlueGreenSpec{}
	good := true
	if nv, ok := bv["shift_step"]; ok {
		n, ok := c.decodeWhole(nv.rng, gf+".shift_step", nv.v, 1, 100)
		good = good && ok
		bg.StepPercent = int(n)
	}
	if nv, ok := bv["shift_interval"]; ok {
		if _, step := bv["shift_step"]; !step {
			c.at(nv.rng, gf+".shift_interval", "applies only with shift_step (without it the traffic moves all at once): "+
				"add shift_step = 50 (percent per step), or remove shift_interval")
			good = false
		} else {
			n, ok := c.decodeMillis(nv.rng, gf+".shift_interval", nv.v, blueGreenInterval)
			good = good && ok
			bg.StepIntervalMillis = int64(n)
		}
	}
	if nv, ok := bv["keep_original"]; ok {
		n, ok := c.decodeMillis(nv.rng, gf+".keep_original", nv.v, blueGreenKeep)
		good = good && ok
		bg.KeepOriginalMillis = int64(n)
		bg.NoKeep = ok && n == 0
	}
	if good {
		ds.BlueGreen = bg
	}
}

// decodeCanary decodes a deploy block's canary block into ds.Canary;
// problems are reported to c.
func (c *collector) decodeCanary(ds *DeploySpec, blk *hclsyntax.Block, ctx *hcl.EvalContext, bf string, spec *GroupSpec) {
	in := innerBlock(blk, "canary")
	if in == nil {
		return
	}
	cf := bf + ".canary"
	if ds.Strategy != api.StrategyCanary {
		c.at(in.TypeRange, cf, "a canary block applies to strategy = %q only", api.StrategyCanary)
		return
	}
	cv, unknown, ok := c.evalBody(in.Body, nestedAttrs["deploy.canary"], ctx, cf)
	if unknown {
		spec.Unknown = setTrue(spec.Unknown, "deploy")
		return
	}
	if !ok {
		return
	}
	cs := &api.CanarySpec{}
	good := true
	whole := func(name string, lo, hi int64) (int64, bool) {
		nv, ok := cv[name]
		if !ok {
			return 0, false
		}
		n, ok := c.decodeWhole(nv.rng, cf+"."+name, nv.v, lo, hi)
		good = good && ok
		return n, ok
	}
	if n, ok := whole("hosts", 1, 1000); ok {
		cs.Hosts = int(n)
	}
	if n, ok := whole("failure_limit", 0, 100); ok {
		cs.FailureLimit = int(n)
	}
	if n, ok := whole("min_requests", 1, 1_000_000); ok {
		cs.MinRequests = n
	}
	if nv, ok := cv["interval"]; ok {
		n, ok := c.decodeMillis(nv.rng, cf+".interval", nv.v, canaryInterval)
		good = good && ok
		cs.IntervalMillis = int64(n)
	}
	if nv, ok := cv["max_error_rate"]; ok {
		if f, ok := c.decodeNumber(nv.rng, cf+".max_error_rate", nv.v); ok {
			x, _ := f.Float64()
			if x < 0 || x > 1 {
				c.at(nv.rng, cf+".max_error_rate", "must be a share from 0 to 1 (0.01 is 1 %%), got %s", numText(f))
				good = false
			}
			cs.MaxErrorRate = x
		} else {
			good = false
		}
	}
	if nv, ok := cv["max_latency_ratio"]; ok {
		if f, ok := c.decodeNumber(nv.rng, cf+".max_latency_ratio", nv.v); ok {
			x, _ := f.Float64()
			if x > 0 && x < 1 {
				c.at(nv.rng, cf+".max_latency_ratio", "must be at least 1 (the canary as fast as the stable hosts), or negative to turn the latency check off, got %s", numText(f))
				good = false
			}
			cs.MaxLatencyRatio = x
		} else {
			good = false
		}
	}
	if nv, ok := cv["on_no_data"]; ok {
		valid := []string{"wait", "fail", "pass"}
		s, ok := c.decodeString(nv.rng, cf+".on_no_data", nv.v)
		if ok && !contains(valid, s) {
			c.at(nv.rng, cf+".on_no_data", "must be one of %s, got %q%s", orList(valid), s, diag.DidYouMean(s, valid))
			ok = false
		}
		good = good && ok
		cs.OnNoData = s
	}
	if nv, ok := cv["steps"]; ok {
		steps, ok := c.decodeSteps(nv, cf+".steps")
		good = good && ok
		cs.Steps = steps
	}
	if good {
		ds.Canary = cs
	}
}

// decodeSteps decodes a canary's steps: [{weight = 10, pause = "30s"}, …].
func (c *collector) decodeSteps(nv nestedVal, field string) ([]api.CanaryStep, bool) {
	const example = `[{weight = 10, pause = "30s"}, {weight = 50, pause = "1m"}]`
	v := nv.v
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		c.at(nv.rng, field, "must be a list of steps, like %s, got %s", example, typeName(v))
		return nil, false
	}
	l := v.AsValueSlice()
	if len(l) == 0 || len(l) > 20 {
		c.at(nv.rng, field, "must have 1 to 20 steps, got %d", len(l))
		return nil, false
	}
	var out []api.CanaryStep
	prev := 0
	for i, e := range l {
		sf := field + "[" + itoa(i) + "]"
		if e.IsNull() || !(e.Type().IsObjectType() || e.Type().IsMapType()) {
			c.at(nv.rng, sf, "must be an object like {weight = 10, pause = \"30s\"}, got %s", typeName(e))
			return nil, false
		}
		m := e.AsValueMap()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != "weight" && k != "pause" {
				c.at(nv.rng, sf, "unsupported key %q: a step has weight and pause", k)
				return nil, false
			}
		}
		w, ok := m["weight"]
		if !ok || w.IsNull() {
			c.at(nv.rng, sf, "missing weight (the canary's share of requests, 1 to 100 percent)")
			return nil, false
		}
		n, ok := c.decodeWhole(nv.rng, sf+".weight", w, 1, 100)
		if !ok {
			return nil, false
		}
		if int(n) < prev {
			c.at(nv.rng, sf+".weight", "weights must not go down: %d after %d", n, prev)
			return nil, false
		}
		prev = int(n)
		st := api.CanaryStep{Weight: int(n)}
		if p, ok := m["pause"]; ok && !p.IsNull() {
			ms, ok := c.decodeMillis(nv.rng, sf+".pause", p, canaryPause)
			if !ok {
				return nil, false
			}
			st.PauseMillis = int64(ms)
		}
		out = append(out, st)
	}
	return out, true
}

func itoa(i int) string { return cty.NumberIntVal(int64(i)).AsBigFloat().Text('f', 0) }

// LBTargetOf returns the group whose load balancer group lb is ("" when
// lb has no load_balancer block).
func (d *Definition) LBTargetOf(lb string) string {
	if b := d.Groups[lb]; b != nil {
		return b.LBTarget
	}
	return ""
}

// LoadBalancerOf returns the group that is group target's load balancer
// ("" for none).
func (d *Definition) LoadBalancerOf(target string) string {
	for _, name := range slices.Sorted(maps.Keys(d.Groups)) {
		if d.Groups[name].LBTarget == target {
			return name
		}
	}
	return ""
}
