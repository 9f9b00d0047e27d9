package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/internal/diag"
)

// refMode says what an expression may refer to.
type refMode int

const (
	// modeConst: nothing (variable defaults, variables files).
	modeConst refMode = iota
	// modeStatic: var, local and env (locals, provider blocks, count).
	modeStatic
	// modeResource: also group, host and network (resource bodies).
	modeResource
)

var rootsByMode = map[refMode][]string{
	modeConst:    nil,
	modeStatic:   {"var", "local", "env"},
	modeResource: {"var", "local", "env", KindGroup, KindHost, KindNetwork},
}

// stepName is the name the i'th step of t gives (an attribute, or an index
// with a string key).
func stepName(t hcl.Traversal, i int) (string, bool) {
	if len(t) <= i {
		return "", false
	}
	switch s := t[i].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

// traversalText shows the first two steps of t: "group.db".
func traversalText(t hcl.Traversal) string {
	if n, ok := stepName(t, 1); ok {
		return t.RootName() + "." + n
	}
	return t.RootName()
}

// checkRefs checks every reference in expr: that mode allows it and that
// what it names is declared. Resource references are added to deps (when
// not nil). why explains a reference mode does not allow.
func (l *loader) checkRefs(expr hclsyntax.Expression, field string, mode refMode, deps map[string]bool, why string) {
	for _, t := range hclsyntax.Variables(expr) {
		l.checkTraversal(t, field, mode, deps, why)
	}
}

func (l *loader) checkTraversal(t hcl.Traversal, field string, mode refMode, deps map[string]bool, why string) {
	root := t.RootName()
	rng := t.SourceRange()
	allowed := rootsByMode[mode]
	if !contains(allowed, root) {
		switch {
		case contains(rootsByMode[modeResource], root) || root == "provider":
			if root == "provider" && mode == modeResource {
				l.c.at(rng, field, "a provider can only be named by a provider attribute (provider = provider.TYPE.NAME)")
				return
			}
			l.c.at(rng, field, "cannot refer to %s: %s", traversalText(t), why)
		default:
			hint := diag.DidYouMean(root, rootsByMode[modeResource])
			switch {
			case len(allowed) == 0:
				hint += ": " + why
			case hint == "":
				hint = "; expressions here can refer to " + strings.Join(allowed, ", ")
			}
			l.c.at(rng, field, "unknown name %q%s", root, hint)
		}
		return
	}
	name, ok := stepName(t, 1)
	if !ok {
		if root == "env" {
			l.c.at(rng, field, "env has one attribute: env.name")
		} else {
			l.c.at(rng, field, "%s must be followed by a name: %s.NAME", root, root)
		}
		return
	}
	switch root {
	case "var":
		if _, ok := l.vars[name]; !ok {
			l.c.at(rng, field, "reference to undeclared variable %q%s", name, diag.DidYouMean(name, slices.Sorted(maps.Keys(l.vars))))
		}
	case "local":
		if _, ok := l.localAttr[name]; !ok {
			l.c.at(rng, field, "reference to undeclared local value %q%s", name, diag.DidYouMean(name, slices.Sorted(maps.Keys(l.localAttr))))
		}
	case "env":
		if name != "name" {
			l.c.at(rng, field, "env has no attribute %q; it has one: env.name", name)
		}
	case KindGroup, KindHost, KindNetwork:
		declared := l.resources(root)
		if _, ok := declared[name]; !ok {
			l.c.at(rng, field, "reference to undeclared %s %q%s", root, name, diag.DidYouMean(name, slices.Sorted(maps.Keys(declared))))
			return
		}
		if deps != nil {
			deps[root+"."+name] = true
		}
		if len(t) < 3 {
			return
		}
		attrs := objectAttrs[root]
		switch s := t[2].(type) {
		case hcl.TraverseAttr:
			if !contains(attrs, s.Name) {
				hint := diag.DidYouMean(s.Name, attrs)
				l.c.at(rng, field, "%s.%s has no attribute %q%s; a %s has %s", root, name, s.Name, hint, root, strings.Join(attrs, ", "))
			}
		case hcl.TraverseIndex, hcl.TraverseSplat:
			if root == KindGroup {
				l.c.at(rng, field, "group.%s is an object, not a list: its machines are group.%s.hosts[INDEX]", name, name)
			} else {
				l.c.at(rng, field, "%s.%s is an object, not a list", root, name)
			}
		}
	}
}

func (l *loader) resources(kind string) map[string]*Block {
	switch kind {
	case KindGroup:
		return l.d.Groups
	case KindHost:
		return l.d.Hosts
	case KindNetwork:
		return l.d.Networks
	}
	return l.d.Outputs
}

// refTo interprets expr as a reference to a declared resource of one of
// kinds ("network.app"), for networks and depends_on entries; ok is false
// when it is not (reported).
func (l *loader) refTo(expr hcl.Expression, field string, kinds ...string) (kind, name string, ok bool) {
	examples := make([]string, len(kinds))
	for i, k := range kinds {
		examples[i] = k + ".NAME"
	}
	want := strings.Join(examples, ", ")
	t, hd := hcl.AbsTraversalForExpr(expr)
	if hd.HasErrors() || len(t) != 2 || !contains(kinds, t.RootName()) {
		l.c.at(expr.Range(), field, "must be a reference like %s%s", want, quotedHint(expr, onlyKind(kinds)))
		return "", "", false
	}
	name, ok = stepName(t, 1)
	if !ok {
		l.c.at(expr.Range(), field, "must be a reference like %s", want)
		return "", "", false
	}
	kind = t.RootName()
	declared := l.resources(kind)
	if _, found := declared[name]; !found {
		l.c.at(expr.Range(), field, "reference to undeclared %s %q%s", kind, name, diag.DidYouMean(name, slices.Sorted(maps.Keys(declared))))
		return "", "", false
	}
	return kind, name, true
}

// providerRef resolves a block's provider attribute to "TYPE.NAME"; ok is
// false when it is missing or wrong (reported).
func (l *loader) providerRef(b *Block, field string) (key string, ok bool) {
	a, found := b.body.Attributes["provider"]
	if !found {
		example := "docker.local"
		if keys := slices.Sorted(maps.Keys(l.d.Providers)); len(keys) > 0 {
			example = keys[0]
		}
		l.c.at(b.DefRange, field, "missing required attribute \"provider\" (e.g. provider = provider.%s)", example)
		return "", false
	}
	field += ".provider"
	t, hd := hcl.AbsTraversalForExpr(a.Expr)
	typ, tok := stepName(t, 1)
	name, nok := stepName(t, 2)
	if hd.HasErrors() || len(t) != 3 || t.RootName() != "provider" || !tok || !nok {
		example := "docker.local"
		if keys := slices.Sorted(maps.Keys(l.d.Providers)); len(keys) > 0 {
			example = keys[0]
		}
		l.c.at(a.Expr.Range(), field, "must be a reference to a provider block, like provider.%s%s", example, quotedHint(a.Expr, "provider"))
		return "", false
	}
	key = typ + "." + name
	if _, declared := l.d.Providers[key]; !declared {
		keys := slices.Sorted(maps.Keys(l.d.Providers))
		hint := diag.DidYouMean(key, keys)
		if hint == "" && len(keys) == 0 {
			hint = fmt.Sprintf(`; declare it: provider %q %q { ... }`, typ, name)
		}
		l.c.at(a.Expr.Range(), field, "reference to undeclared provider %q%s", key, hint)
		return "", false
	}
	return key, true
}

// quotedHint is a hint for a reference written as a string.
// prefix ("provider", "network") is added where the string lacks it.
func quotedHint(expr hcl.Expression, prefix string) string {
	if _, ok := expr.(*hclsyntax.TemplateExpr); !ok {
		return ""
	}
	v, hd := expr.Value(nil)
	if hd.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return ""
	}
	ref := v.AsString()
	if prefix != "" && !strings.HasPrefix(ref, prefix+".") {
		ref = prefix + "." + ref
	}
	return fmt.Sprintf(" (a reference is written without quotes: %s, not %q)", ref, v.AsString())
}

func onlyKind(kinds []string) string {
	if len(kinds) == 1 {
		return kinds[0]
	}
	return ""
}
