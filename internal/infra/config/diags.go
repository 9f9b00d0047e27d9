package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/gantry-dev/gantry/internal/diag"
)

// collector gathers diagnostics, with snippets from the loaded files.
type collector struct {
	sources map[string]*diag.Source
	list    diag.Diagnostics
	// skip, when set, names attributes not to evaluate (they have a
	// problem reported already).
	skip func(*hclsyntax.Attribute) bool
}

// at adds a diagnostic at the start of rng.
func (c *collector) at(rng hcl.Range, field, format string, args ...any) {
	c.list = append(c.list, c.diagAt(rng.Filename, rng.Start, field, fmt.Sprintf(format, args...)))
}

// plain adds a diagnostic that points at no file (a --var, --env).
func (c *collector) plain(field, format string, args ...any) {
	c.list = append(c.list, diag.Diagnostic{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (c *collector) diagAt(file string, pos hcl.Pos, field, msg string) diag.Diagnostic {
	if src, ok := c.sources[file]; ok {
		return src.At(pos.Line, pos.Column, field, msg)
	}
	return diag.Diagnostic{File: file, Line: pos.Line, Column: pos.Column, Field: field, Message: msg}
}

// hcl adds the errors of hd (warnings are dropped) with field, and
// reports whether there was one.
func (c *collector) hcl(hd hcl.Diagnostics, field string) bool {
	found := false
	for _, d := range hd {
		if d.Severity != hcl.DiagError {
			continue
		}
		found = true
		msg := hclMessage(d)
		if d.Subject == nil {
			c.list = append(c.list, diag.Diagnostic{Field: field, Message: msg})
			continue
		}
		c.list = append(c.list, c.diagAt(d.Subject.Filename, d.Subject.Start, field, msg))
	}
	return found
}

// count is the number of diagnostics so far (to tell whether a step added
// some).
func (c *collector) count() int { return len(c.list) }

var didYouMeanRE = regexp.MustCompile(`\.? Did you mean ([^?]+)\?$`)

// hclMessage turns an hcl diagnostic into a diag message: summary and
// detail, lower-case start, no final period, "did you mean" in diag's
// style.
func hclMessage(d *hcl.Diagnostic) string {
	detail := strings.TrimSpace(d.Detail)
	detail = didYouMeanRE.ReplaceAllString(detail, ` (did you mean $1?)`)
	detail = strings.TrimSuffix(detail, ".")
	summary := strings.TrimSuffix(strings.TrimSpace(d.Summary), ".")
	switch {
	case summary == "Error in function call" && detail != "":
		// The detail says it all: Call to function "file" failed: ...
		return lowerFirst(detail)
	case detail == "":
		return lowerFirst(summary)
	}
	return lowerFirst(summary) + ": " + lowerFirst(detail)
}

// lowerFirst lower-cases the first letter of s when it starts a plain
// word (not an acronym or an identifier like HCL or URL).
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if !unicode.IsUpper(r) {
		return s
	}
	next, _ := utf8.DecodeRuneInString(s[n:])
	if next != utf8.RuneError && !unicode.IsLower(next) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// fieldOf names a block (and attribute) the way diagnostics do:
// `group "web".count`, `provider "docker" "local".host`, `locals.port`.
func fieldOf(kind string, labels []string, attr ...string) string {
	var b strings.Builder
	b.WriteString(kind)
	for _, l := range labels {
		fmt.Fprintf(&b, " %q", l)
	}
	for _, a := range attr {
		b.WriteByte('.')
		b.WriteString(a)
	}
	return b.String()
}

// sortedAttrs returns the attributes of body in source order.
func sortedAttrs(body *hclsyntax.Body) []*hclsyntax.Attribute {
	out := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *hclsyntax.Attribute) int {
		return a.SrcRange.Start.Byte - b.SrcRange.Start.Byte
	})
	return out
}

// sortedKeys returns the keys of m, sorted.

// orList joins words as `"a", "b" or "c"`.
func orList(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	switch len(q) {
	case 0:
		return "nothing"
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// posString is "file:line" for "first defined at" hints.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}
