// Package planview renders an environment plan (api.Plan) for people, the
// way `gantry plan` prints it: one block per resource with its action
// symbol (+ create, ~ update in place, -/+ replace, - destroy), the
// attributes that change (the ones forcing a replacement marked) as typed
// HCL-like values (numbers unquoted, objects as nested blocks, scripts
// with a unified diff), the outputs and a summary line. It is shared by the CLI and the engine's
// golden tests.
package planview

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gantry-dev/gantry/api"
)

// Symbol is an action's symbol.
func Symbol(action string) string {
	switch action {
	case api.ActionCreate:
		return "+"
	case api.ActionUpdate:
		return "~"
	case api.ActionReplace:
		return "-/+"
	case api.ActionDelete:
		return "-"
	}
	return "?"
}

// Render writes the plan.
func Render(w io.Writer, p api.Plan) error {
	var b strings.Builder
	for _, warning := range p.Warnings {
		b.WriteString("Warning: " + warning + "\n\n")
	}
	if len(p.Changes) == 0 {
		fmt.Fprintf(&b, "No changes: environment %q matches its definition.\n", p.Env)
	} else {
		verb := "apply"
		if p.Destroy {
			verb = "destroy"
		}
		if p.Serial == 0 && !p.Destroy {
			fmt.Fprintf(&b, "Plan to %s environment %q (new environment):\n\n", verb, p.Env)
		} else {
			fmt.Fprintf(&b, "Plan to %s environment %q (state serial %d):\n\n", verb, p.Env, p.Serial)
		}
		for _, c := range p.Changes {
			head := fmt.Sprintf("  %-3s %s", Symbol(c.Action), c.Address)
			if c.Reason != "" {
				head += "  (" + c.Reason + ")"
			}
			b.WriteString(head + "\n")
			for _, l := range changeLines(c) {
				b.WriteString("        " + l + "\n")
			}
		}
		b.WriteString("\n")
	}
	if len(p.Outputs) > 0 {
		b.WriteString("Outputs:\n")
		keys := make([]string, 0, len(p.Outputs))
		for k := range p.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s = %s\n", k, OutputText(p.Outputs[k]))
		}
		b.WriteString("\n")
	}
	if len(p.Changes) > 0 {
		b.WriteString(Summary(p.Summary) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is the plan's last line.
func Summary(s api.PlanSummary) string {
	return fmt.Sprintf("Plan: %d to create, %d to update, %d to replace, %d to destroy.", s.Create, s.Update, s.Replace, s.Delete)
}

// OutputText renders an output value (JSON) compactly; strings unquoted
// when they are the unknown marker.
func OutputText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil && s == "(known after apply)" {
		return s
	}
	return string(raw)
}
