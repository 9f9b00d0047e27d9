package config

import (
	"maps"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/validate"
)

// The attributes and nested blocks of groups and hosts (besides the
// provider-specific attributes of provider.Info.MachineAttrs).
var (
	groupAttrs = []string{
		"provider", "image", "count", "networks", "labels", "setup", "configure", "shutdown",
		"setup_timeout", "configure_timeout", "shutdown_timeout", "depends_on",
	}
	hostAttrs = []string{
		"provider", "labels", "setup", "configure", "shutdown",
		"setup_timeout", "configure_timeout", "shutdown_timeout", "depends_on",
	}
	nestedAttrs = map[string][]string{
		"size":          {"cpus", "memory"},
		"health_check":  {"http", "expect_status", "tcp", "command", "timeout", "interval"},
		"deploy":        {"app", "revision", "config", "strategy"},
		"load_balancer": {"target", "listen", "port", "balance", "drain_timeout", "header", "driver"},
		// Blocks inside those blocks, by "outer.inner".
		"load_balancer.health_check": {"path", "interval", "rise", "fall"},
		"deploy.canary": {"hosts", "steps", "interval", "max_error_rate", "max_latency_ratio", "failure_limit",
			"min_requests", "on_no_data"},
		"deploy.blue_green": {"shift_step", "shift_interval", "keep_original"},
	}
	// nestedBlocks are the blocks a nested block takes.
	nestedBlocks   = map[string][]string{"load_balancer": {"health_check"}, "deploy": {"canary", "blue_green"}}
	nestedRequired = map[string][]string{"deploy": {"app"}, "load_balancer": {"target", "port"}}
	groupBlocks    = []string{"size", "health_check", "deploy", "load_balancer"}
	hostBlocks     = []string{"health_check", "deploy"}
	// notOnHost explains the group settings a host does not take.
	notOnHost = map[string]string{
		"count":    "a host block is one existing machine",
		"image":    "a host block is an existing machine, it has no image",
		"networks": "a host block is an existing machine, gantry does not attach it to networks",
		"size":     "a host block is an existing machine, gantry does not size it",
		"load_balancer": "a load balancer is a group of gantry's own machines (count = 1); " +
			"a hand-onboarded load balancer is named by a deployment group (gantry groups update --lb-host)",
	}
)

// checkResources is the second pass: every network, group, host and
// output, now that every name is declared.
func (l *loader) checkResources() {
	for _, name := range slices.Sorted(maps.Keys(l.d.Networks)) {
		l.checked(l.d.Networks[name], l.checkNetwork)
	}
	for _, name := range slices.Sorted(maps.Keys(l.d.Groups)) {
		l.checked(l.d.Groups[name], l.checkMachine)
	}
	for _, name := range slices.Sorted(maps.Keys(l.d.Hosts)) {
		l.checked(l.d.Hosts[name], l.checkMachine)
	}
	for _, name := range slices.Sorted(maps.Keys(l.d.Outputs)) {
		l.checked(l.d.Outputs[name], l.checkOutput)
	}
}

// checked runs check on b, which collects b's dependencies.
func (l *loader) checked(b *Block, check func(*Block, map[string]bool)) {
	deps := map[string]bool{}
	check(b, deps)
	b.DependsOn = slices.Sorted(maps.Keys(deps))
}

func (l *loader) checkNetwork(b *Block, deps map[string]bool) {
	field := b.field
	if key, ok := l.providerRef(b, field); ok {
		b.Provider = key
		if info := l.provInfo[key]; info != nil && !info.Networks {
			l.c.at(b.body.Attributes["provider"].Expr.Range(), field+".provider",
				"provider type %q has no networks", info.Type)
		}
	}
	for _, blk := range b.body.Blocks {
		l.c.at(blk.TypeRange, field+"."+blk.Type, "unsupported block type: a network takes attributes only")
	}
	for _, a := range sortedAttrs(b.body) {
		switch a.Name {
		case "provider":
		case "depends_on":
			l.checkDependsOn(a, field+".depends_on", deps)
		default:
			l.checkRefs(a.Expr, field+"."+a.Name, modeResource, deps, "")
		}
	}
}

func (l *loader) checkOutput(b *Block, deps map[string]bool) {
	field := b.field
	l.checkShape(b.body, field, []string{"value", "description"}, nil)
	a, ok := b.body.Attributes["value"]
	if !ok {
		l.c.at(b.DefRange, field, "missing required attribute \"value\"")
	} else {
		l.checkRefs(a.Expr, field+".value", modeResource, deps, "")
	}
	if a, ok := b.body.Attributes["description"]; ok {
		n := l.c.count()
		l.checkRefs(a.Expr, field+".description", modeStatic, nil, "a description must be known before any resource exists")
		if l.c.count() == n {
			ctx := &hcl.EvalContext{Variables: l.d.base, Functions: l.d.funcs}
			if v, ok := l.c.evalAttr(a, ctx, field+".description"); ok && !v.IsNull() && v.IsWhollyKnown() {
				b.Description, _ = l.c.decodeString(a.Expr.Range(), field+".description", v)
			}
		}
	}
}

// checkMachine checks a group or host block.
func (l *loader) checkMachine(b *Block, deps map[string]bool) {
	field := b.field
	attrs, blocks := groupAttrs, groupBlocks
	if b.Kind == KindHost {
		attrs, blocks = hostAttrs, hostBlocks
		b.Count, b.countKnown = 1, true
	} else {
		b.Count, b.countKnown = 1, true // unless count says otherwise
	}
	var info *provider.Info
	providerOK := false
	if key, ok := l.providerRef(b, field); ok {
		b.Provider = key
		info = l.provInfo[key]
		providerOK = info != nil
	}
	machineAttrs := l.machineAttrs[b.Provider]
	for _, a := range sortedAttrs(b.body) {
		af := field + "." + a.Name
		switch {
		case a.Name == "provider":
			continue
		case contains(attrs, a.Name) || contains(machineAttrs, a.Name):
		case !providerOK && !contains(groupAttrs, a.Name) && !contains(groupBlocks, a.Name):
			// Maybe provider-specific: the provider is unknown, and
			// reported already.
			l.checkRefs(a.Expr, af, modeResource, deps, "")
			continue
		default:
			l.unsupportedMachineAttr(b, a, attrs, blocks, machineAttrs, info)
			continue
		}
		switch a.Name {
		case "count":
			l.checkCount(b, a, af)
		case "networks":
			if info != nil && !info.Networks {
				l.c.at(a.NameRange, af, "provider type %q has no networks: remove networks", info.Type)
				continue
			}
			l.checkNetworks(b, a, af, deps)
		case "depends_on":
			l.checkDependsOn(a, af, deps)
		case "image":
			if info != nil && !info.Images {
				l.c.at(a.NameRange, af, "provider type %q has no images: remove image", info.Type)
				continue
			}
			l.checkRefs(a.Expr, af, modeResource, deps, "")
		default:
			l.checkRefs(a.Expr, af, modeResource, deps, "")
		}
	}
	if _, ok := b.body.Attributes["image"]; !ok && info != nil && info.Images && b.Kind == KindGroup {
		l.c.at(b.DefRange, field, "missing required attribute \"image\": machines of provider type %q need an image", info.Type)
	}
	seen := map[string]*hclsyntax.Block{}
	for _, blk := range b.body.Blocks {
		bf := field + "." + blk.Type
		if !contains(blocks, blk.Type) {
			switch {
			case b.Kind == KindHost && notOnHost[blk.Type] != "":
				l.c.at(blk.TypeRange, bf, "unsupported block type: %s", notOnHost[blk.Type])
			case contains(attrs, blk.Type) || contains(machineAttrs, blk.Type):
				l.c.at(blk.TypeRange, bf, "%s is an attribute, not a block: write %s = ...", blk.Type, blk.Type)
			default:
				l.c.at(blk.TypeRange, bf, "unsupported block type%s", expected(blk.Type, blocks))
			}
			continue
		}
		if len(blk.Labels) > 0 {
			l.c.at(blk.LabelRanges[0], bf, "a %s block takes no labels: %s { ... }", blk.Type, blk.Type)
		}
		if prev, dup := seen[blk.Type]; dup {
			l.c.at(blk.TypeRange, bf, "only one %s block is allowed (the first is at %s)", blk.Type, posString(prev.DefRange()))
			continue
		}
		seen[blk.Type] = blk
		l.checkShape(blk.Body, bf, nestedAttrs[blk.Type], nestedBlocks[blk.Type])
		for _, req := range nestedRequired[blk.Type] {
			if _, ok := blk.Body.Attributes[req]; !ok {
				l.c.at(blk.DefRange(), bf, "missing required attribute %q", req)
			}
		}
		for _, a := range sortedAttrs(blk.Body) {
			switch {
			case blk.Type == "load_balancer" && a.Name == "target":
				l.checkLBTarget(b, a, bf+".target")
			case contains(nestedAttrs[blk.Type], a.Name):
				l.checkRefs(a.Expr, bf+"."+a.Name, modeResource, deps, "")
			}
		}
		l.checkInnerBlocks(blk, bf, deps)
		if blk.Type == "load_balancer" && b.countKnown && b.Count != 1 {
			rng := blk.TypeRange
			if a := b.body.Attributes["count"]; a != nil {
				rng = a.Expr.Range()
			}
			l.c.at(rng, field+".count", "a group with a load_balancer block has count = 1 (got %d): the target group's "+
				"deployments drain and let in each machine through one load balancer machine, and clients reach it at one "+
				"address; several would need an address in front of them, which gantry does not make yet", b.Count)
		}
	}
	// The health check is the deployment's health gate: without a deploy
	// block nothing would run it, and a check that never runs must not
	// look like one that passes.
	if hc := seen["health_check"]; hc != nil && seen["deploy"] == nil {
		l.c.at(hc.TypeRange, field+".health_check", "a health_check needs a deploy block: it is the health gate of the group's deployments (check other machines from a setup or configure script)")
	}
}

func (l *loader) unsupportedMachineAttr(b *Block, a *hclsyntax.Attribute, attrs, blocks, machineAttrs []string, info *provider.Info) {
	af := b.field + "." + a.Name
	switch {
	case b.Kind == KindHost && notOnHost[a.Name] != "":
		l.c.at(a.NameRange, af, "unsupported attribute: %s", notOnHost[a.Name])
		return
	case contains(blocks, a.Name):
		l.c.at(a.NameRange, af, "%s is a block, not an attribute: write %s { ... }", a.Name, a.Name)
		return
	}
	all := append(slices.Clone(attrs), machineAttrs...)
	if hint := diag.DidYouMean(a.Name, append(all, blocks...)); hint != "" {
		l.c.at(a.NameRange, af, "unsupported attribute%s", hint)
		return
	}
	extra := "none"
	if len(machineAttrs) > 0 {
		extra = orList(machineAttrs)
	}
	l.c.at(a.NameRange, af, "unsupported attribute; provider-specific attributes of provider type %q: %s", info.Type, extra)
}

// checkCount evaluates a group's count: a whole number that does not
// depend on a resource.
func (l *loader) checkCount(b *Block, a *hclsyntax.Attribute, field string) {
	b.countKnown = false
	n := l.c.count()
	l.checkRefs(a.Expr, field, modeStatic, nil, "count must be known before any machine is created (use a variable)")
	if l.c.count() > n {
		return
	}
	ctx := &hcl.EvalContext{Variables: l.d.base, Functions: l.d.funcs}
	v, ok := l.c.evalAttr(a, ctx, field)
	if !ok {
		return
	}
	if v.IsNull() {
		b.countKnown = true
		return
	}
	if !v.IsWhollyKnown() {
		return // a variable that could not be set (reported)
	}
	if i, ok := l.c.decodeWhole(a.Expr.Range(), field, v, validate.GroupCount.Min, validate.GroupCount.Max); ok {
		b.Count, b.countKnown = int(i), true
	}
}

// checkNetworks resolves a group's networks: a list of network.NAME.
func (l *loader) checkNetworks(b *Block, a *hclsyntax.Attribute, field string, deps map[string]bool) {
	exprs, hd := hcl.ExprList(a.Expr)
	if hd.HasErrors() {
		l.c.at(a.Expr.Range(), field, "must be a list of networks, like [network.app]")
		return
	}
	for _, e := range exprs {
		_, name, ok := l.refTo(e, field, KindNetwork)
		if !ok {
			continue
		}
		if contains(b.Networks, name) {
			l.c.at(e.Range(), field, "network.%s is listed twice", name)
			continue
		}
		b.Networks = append(b.Networks, name)
		deps[KindNetwork+"."+name] = true
		if n := l.d.Networks[name]; n.Provider != "" && b.Provider != "" && n.Provider != b.Provider {
			l.c.at(e.Range(), field, "network.%s belongs to provider.%s, not to provider.%s", name, n.Provider, b.Provider)
		}
	}
}

// checkDependsOn resolves depends_on: a list of group.X, host.X, network.X.
func (l *loader) checkDependsOn(a *hclsyntax.Attribute, field string, deps map[string]bool) {
	exprs, hd := hcl.ExprList(a.Expr)
	if hd.HasErrors() {
		l.c.at(a.Expr.Range(), field, "must be a list of references, like [group.db]")
		return
	}
	for _, e := range exprs {
		if kind, name, ok := l.refTo(e, field, KindGroup, KindHost, KindNetwork); ok {
			deps[kind+"."+name] = true
		}
	}
}

// staticEval evaluates every block against PlanWorld, to find what only
// evaluation shows: wrong types, files that are missing, bad values.
// Attributes that already have a problem are not evaluated again.
func (l *loader) staticEval() {
	w := *l.d.planned
	type fileLine struct {
		file string
		line int
	}
	reported := map[fileLine][]int{} // columns of the diagnostics so far
	for _, d := range l.c.list {
		k := fileLine{d.File, d.Line}
		reported[k] = append(reported[k], d.Column)
	}
	if len(reported) > 0 {
		l.c.skip = func(a *hclsyntax.Attribute) bool {
			r := a.SrcRange
			for line := r.Start.Line; line <= r.End.Line; line++ {
				for _, col := range reported[fileLine{r.Filename, line}] {
					if inRange(r, line, col) {
						return true
					}
				}
			}
			return false
		}
	}
	defer func() { l.c.skip = nil }()
	var blocks []*Block
	for _, kind := range []map[string]*Block{l.d.Networks, l.d.Groups, l.d.Hosts, l.d.Outputs} {
		for _, name := range slices.Sorted(maps.Keys(kind)) {
			blocks = append(blocks, kind[name])
		}
	}
	// Blocks are independent: evaluate them in chunks, in parallel, each
	// chunk with its own collector.
	const chunk = 256
	cs := make([]*collector, (len(blocks)+chunk-1)/chunk)
	parallel(len(cs), func(i int) {
		c := &collector{sources: l.c.sources, skip: l.c.skip}
		for _, b := range blocks[i*chunk : min(len(blocks), (i+1)*chunk)] {
			ctx := l.d.ctxFor(b, w)
			switch b.Kind {
			case KindNetwork:
				l.d.evalNetwork(c, b, ctx)
			case KindOutput:
				l.d.evalOutput(c, b, ctx)
			default:
				l.d.evalMachine(c, b, ctx)
			}
		}
		cs[i] = c
	})
	for _, c := range cs {
		l.c.list = append(l.c.list, c.list...)
	}
}

// inRange reports whether line:column is inside r.
func inRange(r hcl.Range, line, column int) bool {
	after := line > r.Start.Line || (line == r.Start.Line && column >= r.Start.Column)
	before := line < r.End.Line || (line == r.End.Line && column <= r.End.Column)
	return after && before
}
