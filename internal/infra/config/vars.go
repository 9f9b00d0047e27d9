package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/gantry-dev/gantry/internal/diag"
)

// resolveVars gives every variable its value: default, then the variables
// file, then --var.
func (l *loader) resolveVars(assignments []string) {
	constCtx := &hcl.EvalContext{Functions: l.d.funcs}
	for _, name := range slices.Sorted(maps.Keys(l.vars)) {
		decl := l.vars[name]
		v := decl.v
		field := fieldOf("variable", []string{name})
		body := decl.block.Body
		if a, ok := body.Attributes["type"]; ok {
			ty, hd := typeexpr.TypeConstraint(a.Expr)
			if !l.c.hcl(hd, field+".type") {
				v.Type = ty
			}
		}
		if a, ok := body.Attributes["description"]; ok {
			if val, ok := l.evalConst(a, constCtx, field+".description", "a description"); ok && !val.IsNull() {
				if s, ok := l.c.decodeString(a.Expr.Range(), field+".description", val); ok {
					v.Description = s
				}
			}
		}
		l.d.Vars[name] = cty.DynamicVal // until it has a value
		if a, ok := body.Attributes["default"]; ok {
			val, ok := l.evalConst(a, constCtx, field+".default", "a variable's default")
			if ok {
				v.Source = "default"
				if cv, err := convert.Convert(val, v.Type); err != nil {
					l.c.at(a.Expr.Range(), field+".default", "the default is not a valid %s: %s", typeexpr.TypeString(v.Type), convertMessage(err))
				} else {
					v.Default = cv
					l.d.Vars[name] = cv
				}
			} else {
				v.Source = "default" // reported; not "missing"
			}
		}
	}
	if f := l.envFile; f != nil {
		l.readVarsFile(f, constCtx)
	}
	for _, s := range assignments {
		l.assignVar(s, constCtx)
	}
	for _, name := range slices.Sorted(maps.Keys(l.vars)) {
		v := l.vars[name].v
		if v.Source != "" {
			continue
		}
		l.c.at(v.DefRange, fieldOf("variable", []string{name}),
			"no value for required variable %q: give it a default, set it in envs/%s.hcl (%s = ...) or pass --var %s=VALUE",
			name, l.d.Env, name, name)
	}
}

// evalConst evaluates an expression that may refer to nothing (functions
// are fine).
func (l *loader) evalConst(a *hclsyntax.Attribute, ctx *hcl.EvalContext, field, what string) (cty.Value, bool) {
	n := l.c.count()
	l.checkRefs(a.Expr, field, modeConst, nil, what+" must be a constant")
	if l.c.count() > n {
		return cty.NilVal, false
	}
	return l.c.evalAttr(a, ctx, field)
}

func (l *loader) readVarsFile(f *parsedFile, ctx *hcl.EvalContext) {
	for _, blk := range f.body.Blocks {
		l.c.at(blk.TypeRange, "", "a variables file holds assignments only (name = value), not %s blocks", blk.Type)
	}
	names := slices.Sorted(maps.Keys(l.vars))
	for _, a := range sortedAttrs(f.body) {
		decl, ok := l.vars[a.Name]
		if !ok {
			l.c.at(a.NameRange, "", "assignment to undeclared variable %q%s", a.Name, declaredHint(a.Name, names))
			continue
		}
		val, ok := l.evalConst(a, ctx, a.Name, "a value in a variables file")
		if !ok {
			decl.v.Source = f.name
			continue
		}
		cv, err := convert.Convert(val, decl.v.Type)
		if err != nil {
			l.c.at(a.Expr.Range(), a.Name, "variable %q is of type %s: %s", a.Name, typeexpr.TypeString(decl.v.Type), convertMessage(err))
			decl.v.Source = f.name
			continue
		}
		decl.v.Source = f.name
		l.d.Vars[a.Name] = cv
	}
}

// declaredHint is a did-you-mean among the declared variables, or their
// list.
func declaredHint(name string, declared []string) string {
	if hint := diag.DidYouMean(name, declared); hint != "" {
		return hint
	}
	if len(declared) == 0 {
		return "; no variables are declared"
	}
	return "; declared variables: " + strings.Join(declared, ", ")
}

// assignVar applies one --var NAME=VALUE.
func (l *loader) assignVar(s string, ctx *hcl.EvalContext) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		l.c.plain("--var "+s, "must be NAME=VALUE")
		return
	}
	field := "--var " + name
	decl, ok := l.vars[name]
	if !ok {
		l.c.plain(field, "no variable %q is declared%s", name, declaredHint(name, slices.Sorted(maps.Keys(l.vars))))
		return
	}
	decl.v.Source = "--var"
	val, err := parseVarValue(raw, decl.v.Type, ctx)
	if err != nil {
		l.c.plain(field, "invalid value %q for type %s: %s", raw, typeexpr.TypeString(decl.v.Type), err)
		return
	}
	l.d.Vars[name] = val
}

// parseVarValue parses a --var value: a string as it is, a number or a
// bool from its text, anything else as an HCL expression.
func parseVarValue(raw string, ty cty.Type, ctx *hcl.EvalContext) (cty.Value, error) {
	if ty == cty.String || ty == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	if ty.IsPrimitiveType() {
		v, err := convert.Convert(cty.StringVal(strings.TrimSpace(raw)), ty)
		if err != nil {
			return cty.NilVal, errors.New(convertMessage(err))
		}
		return v, nil
	}
	expr, hd := hclsyntax.ParseExpression([]byte(raw), "--var", hcl.InitialPos)
	if hd.HasErrors() {
		return cty.NilVal, errors.New(hclMessage(hd[0]))
	}
	if refs := hclsyntax.Variables(expr); len(refs) > 0 {
		return cty.NilVal, fmt.Errorf("a value cannot refer to %s: it must be a constant (quote strings inside lists and maps)", traversalText(refs[0]))
	}
	v, hd := expr.Value(ctx)
	if hd.HasErrors() {
		return cty.NilVal, errors.New(hclMessage(hd[0]))
	}
	v, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, errors.New(convertMessage(err))
	}
	return v, nil
}

// convertMessage is a conversion error with its path, if any.
func convertMessage(err error) string {
	var pe cty.PathError
	if errors.As(err, &pe) && len(pe.Path) > 0 {
		return fmt.Sprintf("%s: %s", pathText(pe.Path), pe.Error())
	}
	return err.Error()
}

func pathText(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&b, "[%q]", s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				fmt.Fprintf(&b, "[%s]", s.Key.AsBigFloat().Text('f', -1))
			}
		}
	}
	if b.Len() == 0 {
		return "value"
	}
	return b.String()
}

// evalLocals evaluates the locals in dependency order.
func (l *loader) evalLocals() {
	const reason = "locals are evaluated before any resource exists; use the expression in the block that needs it"
	deps := map[string][]string{}
	names := slices.Sorted(maps.Keys(l.localAttr))
	for _, name := range names {
		a := l.localAttr[name]
		n := l.c.count()
		l.checkRefs(a.Expr, "locals."+name, modeStatic, nil, reason)
		if l.c.count() > n {
			l.d.Locals[name] = cty.DynamicVal
			continue
		}
		var ds []string
		for _, t := range hclsyntax.Variables(a.Expr) {
			if t.RootName() == "local" {
				if n, ok := stepName(t, 1); ok {
					ds = append(ds, n)
				}
			}
		}
		slices.Sort(ds)
		deps[name] = slices.Compact(ds)
	}
	// Depth-first, in name order, so that a cycle is reported once.
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		if _, ok := deps[name]; !ok || state[name] == done {
			return
		}
		if state[name] == visiting {
			i := slices.Index(stack, name)
			cycle := append(slices.Clone(stack[i:]), name)
			for j := range cycle {
				cycle[j] = "local." + cycle[j]
			}
			a := l.localAttr[stack[i]]
			l.c.at(a.NameRange, "locals."+stack[i], "locals refer to each other in a cycle: %s", strings.Join(cycle, " -> "))
			for _, n := range stack[i:] {
				l.d.Locals[n] = cty.DynamicVal
			}
			return
		}
		state[name] = visiting
		stack = append(stack, name)
		for _, dep := range deps[name] {
			visit(dep)
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		if _, failed := l.d.Locals[name]; failed {
			return
		}
		locals := map[string]cty.Value{}
		for _, dep := range deps[name] {
			locals[dep] = l.d.Locals[dep]
		}
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{
				"var":   objectOrEmpty(l.d.Vars),
				"local": objectOrEmpty(locals),
				"env":   cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(l.d.Env)}),
			},
			Functions: l.d.funcs,
		}
		v, ok := l.c.evalAttr(l.localAttr[name], ctx, "locals."+name)
		if !ok {
			v = cty.DynamicVal
		}
		l.d.Locals[name] = v
	}
	for _, name := range names {
		visit(name)
	}
}

// configureProviders evaluates the provider blocks' attributes to strings.
func (l *loader) configureProviders() {
	const reason = "providers are configured before any resource exists"
	ctx := &hcl.EvalContext{Variables: l.d.base, Functions: l.d.funcs}
	for _, key := range slices.Sorted(maps.Keys(l.provBody)) {
		blk := l.provBody[key]
		info := l.provInfo[key]
		p := l.d.Providers[key]
		for _, a := range sortedAttrs(blk.Body) {
			if info != nil {
				if _, ok := info.Config[a.Name]; !ok {
					continue // reported by checkShape
				}
			}
			field := fieldOf("provider", blk.Labels, a.Name)
			n := l.c.count()
			l.checkRefs(a.Expr, field, modeStatic, nil, reason)
			if l.c.count() > n {
				continue
			}
			v, ok := l.c.evalAttr(a, ctx, field)
			if !ok || v.IsNull() || !v.IsWhollyKnown() {
				continue
			}
			if s, ok := l.c.decodeString(a.Expr.Range(), field, v); ok {
				p.Config[a.Name] = s
			}
		}
	}
}
