package planview

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/api"
)

// unknownText is the plan's marker of a value known only after apply.
const unknownText = "(known after apply)"

// scriptRE matches the digest a plan shows for a script.
var scriptRE = regexp.MustCompile(`^<\d+ lines?, sha256 [0-9a-f]+>$`)

// numberRE matches a plain decimal number.
var numberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// stringAttrs are attributes that are strings even when they look like
// numbers or booleans (a provider id, an image tag, a revision).
var stringAttrs = map[string]bool{"name": true, "ip": true, "image": true, "provider": true, "provider_id": true,
	"kind": true, "deploy.app": true, "deploy.revision": true, "deploy.config": true, "deploy.group": true,
	"deploy.strategy": true, "load_balancer.balance": true, "load_balancer.driver": true, "load_balancer.header": true,
	"load_balancer.drain_timeout": true}

// Value renders an attribute's display string as a typed HCL-like value:
// numbers and booleans unquoted, labels as a map, networks as a list,
// script digests and the unknown marker as they are, other strings
// quoted. JSON objects are rendered by Block.
func Value(name, s string) string {
	switch {
	case s == unknownText, scriptRE.MatchString(s):
		return s
	case name == "labels":
		return labelsValue(s)
	case name == "networks":
		return listValue(strings.Split(s, ","))
	case stringAttrs[name] || strings.HasPrefix(name, "attrs."):
		return strconv.Quote(s)
	case numberRE.MatchString(s), s == "true", s == "false":
		return s
	}
	if v, ok := jsonValue(s); ok {
		if _, isObj := v.(map[string]any); !isObj {
			return hclValue(v)
		}
	}
	return strconv.Quote(s)
}

// jsonValue decodes s when it is a JSON array or object.
func jsonValue(s string) (any, bool) {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "{") && !strings.HasPrefix(t, "[") {
		return nil, false
	}
	var v any
	d := json.NewDecoder(strings.NewReader(t))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil, false
	}
	return v, true
}

// objectValue decodes s when it is a JSON object.
func objectValue(s string) (map[string]any, bool) {
	v, ok := jsonValue(s)
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return m, ok
}

// hclValue renders a decoded JSON value the way HCL writes it.
func hclValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == unknownText {
			return x
		}
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case reference:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = hclValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := sortedKeys(x)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + hclValue(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v)
}

func labelsValue(s string) string {
	if s == "" {
		return "{}"
	}
	var parts []string
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		parts = append(parts, k+" = "+strconv.Quote(v))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func listValue(items []string) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		if it != "" {
			parts = append(parts, strconv.Quote(it))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// nestedPrefixes are the dotted attributes shown as one nested block, as
// the definition writes them (deploy { app = … }).
var nestedPrefixes = []string{"deploy.", "load_balancer."}

// refAttrs are attributes whose value is a reference, shown unquoted as
// the definition writes it (target = group.web).
var refAttrs = map[string]bool{"load_balancer.target": true}

// reference is a value shown as it is (a reference like group.web).
type reference string

// typed is the value of a nested block's attribute for hclValue: strings
// of string attributes stay strings; numbers, booleans, JSON and
// references get their type.
func typed(name, s string) any {
	switch {
	case refAttrs[name]:
		return reference(s)
	case s == unknownText || stringAttrs[name]:
		return s
	case numberRE.MatchString(s):
		return json.Number(s)
	case s == "true" || s == "false":
		return s == "true"
	}
	if v, ok := jsonValue(s); ok {
		return v
	}
	return s
}

// changeLines renders a change's attributes, the dotted ones of a nested
// block gathered into that block where the first of them is.
func changeLines(c api.PlanChange) []string {
	var lines []string
	done := map[string]bool{}
	for _, at := range c.Attrs {
		prefix := ""
		for _, p := range nestedPrefixes {
			if strings.HasPrefix(at.Name, p) {
				prefix = p
			}
		}
		if prefix == "" {
			lines = append(lines, attrLines(c.Action, at)...)
			continue
		}
		if done[prefix] {
			continue
		}
		done[prefix] = true
		var old, nw map[string]any
		if c.Action != api.ActionCreate {
			old = map[string]any{}
		}
		if c.Action != api.ActionDelete {
			nw = map[string]any{}
		}
		for _, x := range c.Attrs {
			if !strings.HasPrefix(x.Name, prefix) {
				continue
			}
			key := strings.TrimPrefix(x.Name, prefix)
			if old != nil && x.Old != "" {
				old[key] = typed(x.Name, x.Old)
			}
			if nw != nil && (x.New != "" || x.Unknown) {
				nw[key] = typed(x.Name, x.New)
			}
		}
		lines = append(lines, blockLines(strings.TrimSuffix(prefix, "."), old, nw, "")...)
	}
	return lines
}

// attrLines renders one attribute of a change: a line, or a nested block
// for a JSON object, or a line and the unified diff of a script.
func attrLines(action string, at api.AttrChange) []string {
	mark := ""
	if at.ForcesReplace {
		mark = "  # forces replacement"
	}
	oldObj, oldIsObj := objectValue(at.Old)
	newObj, newIsObj := objectValue(at.New)
	switch action {
	case api.ActionCreate:
		if newIsObj {
			return blockLines(at.Name, nil, newObj, mark)
		}
		return []string{fmt.Sprintf("%s = %s%s", at.Name, Value(at.Name, at.New), mark)}
	case api.ActionDelete:
		if oldIsObj {
			return blockLines(at.Name, oldObj, nil, mark)
		}
		return []string{fmt.Sprintf("%s = %s%s", at.Name, Value(at.Name, at.Old), mark)}
	}
	if (oldIsObj || at.Old == "") && (newIsObj || at.New == "") && (oldIsObj || newIsObj) {
		return blockLines(at.Name, oldObj, newObj, mark)
	}
	old, nw := "(none)", "(none)"
	if at.Old != "" {
		old = Value(at.Name, at.Old)
	}
	if at.New != "" || at.Unknown {
		nw = Value(at.Name, at.New)
	}
	lines := []string{fmt.Sprintf("%s: %s -> %s%s", at.Name, old, nw, mark)}
	if at.Diff != "" {
		for _, l := range strings.Split(strings.TrimSuffix(at.Diff, "\n"), "\n") {
			lines = append(lines, "  "+l)
		}
	}
	return lines
}

// blockLines renders an object attribute as a nested block: every key on
// create or destroy, the changed keys (old -> new) on update.
func blockLines(name string, old, nw map[string]any, mark string) []string {
	lines := []string{name + " {" + mark}
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range nw {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		o, inOld := old[k]
		n, inNew := nw[k]
		switch {
		case old == nil:
			lines = append(lines, fmt.Sprintf("  %s = %s", k, hclValue(n)))
		case nw == nil:
			lines = append(lines, fmt.Sprintf("  %s = %s", k, hclValue(o)))
		case !inOld:
			lines = append(lines, fmt.Sprintf("  %s: (none) -> %s", k, hclValue(n)))
		case !inNew:
			lines = append(lines, fmt.Sprintf("  %s: %s -> (none)", k, hclValue(o)))
		case hclValue(o) != hclValue(n):
			lines = append(lines, fmt.Sprintf("  %s: %s -> %s", k, hclValue(o), hclValue(n)))
		}
	}
	return append(lines, "}")
}
