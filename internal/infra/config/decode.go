package config

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/gantry-dev/gantry/internal/validate"
)

// Decoding of known, non-null values into Go values. Each helper reports
// a problem at rng (the expression) and returns ok=false.

func typeName(v cty.Value) string {
	return v.Type().FriendlyName()
}

// decodeString converts v (string, number or bool) to a string.
func (c *collector) decodeString(rng hcl.Range, field string, v cty.Value) (string, bool) {
	s, err := convert.Convert(v, cty.String)
	if err != nil || s.IsNull() {
		c.at(rng, field, "must be a string, got %s", typeName(v))
		return "", false
	}
	return s.AsString(), true
}

// decodeStringMap converts v (an object or map of strings) to a map.
func (c *collector) decodeStringMap(rng hcl.Range, field string, v cty.Value, example string) (map[string]string, bool) {
	m, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil || m.IsNull() {
		c.at(rng, field, "must be a map of strings, like %s, got %s", example, typeName(v))
		return nil, false
	}
	out := make(map[string]string, m.LengthInt())
	for k, e := range m.AsValueMap() {
		if e.IsNull() {
			c.at(rng, field, "the value of %q must not be null", k)
			return nil, false
		}
		out[k] = e.AsString()
	}
	return out, true
}

// decodeStringList converts v (a list or tuple of strings) to a slice.
func (c *collector) decodeStringList(rng hcl.Range, field string, v cty.Value, example string) ([]string, bool) {
	l, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || l.IsNull() {
		c.at(rng, field, "must be a list of strings, like %s, got %s", example, typeName(v))
		return nil, false
	}
	var out []string
	for _, e := range l.AsValueSlice() {
		if e.IsNull() {
			c.at(rng, field, "must not contain null")
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

// decodeNumber converts v to a number.
func (c *collector) decodeNumber(rng hcl.Range, field string, v cty.Value) (*big.Float, bool) {
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		c.at(rng, field, "must be a number, got %s", describe(v))
		return nil, false
	}
	return n.AsBigFloat(), true
}

// decodeWhole converts v to a whole number from lo to hi.
func (c *collector) decodeWhole(rng hcl.Range, field string, v cty.Value, lo, hi int64) (int64, bool) {
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		c.at(rng, field, "must be a whole number from %d to %d, got %s", lo, hi, describe(v))
		return 0, false
	}
	f := n.AsBigFloat()
	i, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || i < lo || i > hi {
		c.at(rng, field, "must be a whole number from %d to %d, got %s", lo, hi, numText(f))
		return 0, false
	}
	return i, true
}

// describe shows a small value in a message: "string \"two\"", "bool".
func describe(v cty.Value) string {
	if v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
		s := v.AsString()
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return fmt.Sprintf("string %q", s)
	}
	return typeName(v)
}

// decodeSeconds converts a number of seconds or a Go duration string
// ("90s", "2m") to whole seconds within r.
func (c *collector) decodeSeconds(rng hcl.Range, field string, v cty.Value, r validate.Range) (int, bool) {
	n, ok := c.decodeDuration(rng, field, v, r, time.Second)
	return int(n), ok
}

// decodeMillis converts a number of seconds (fractions allowed) or a Go
// duration string ("500ms") to whole milliseconds within r.
func (c *collector) decodeMillis(rng hcl.Range, field string, v cty.Value, r validate.Range) (int, bool) {
	n, ok := c.decodeDuration(rng, field, v, r, time.Millisecond)
	return int(n), ok
}

// decodeDuration converts a number of seconds or a duration string to a
// whole number of units within r. Bounds are compared on the value as
// written (a big number), never after a multiplication that could
// overflow.
func (c *collector) decodeDuration(rng hcl.Range, field string, v cty.Value, r validate.Range, unit time.Duration) (int64, bool) {
	bad := func(got string) (int64, bool) {
		c.at(rng, field, `must be a number of seconds or a duration like "90s" or "2m", got %s`, got)
		return 0, false
	}
	perSecond := new(big.Float).SetInt64(int64(time.Second / unit))
	var n *big.Float // in units
	var shown string
	switch v.Type() {
	case cty.Number:
		shown = numText(v.AsBigFloat())
		n = new(big.Float).Mul(v.AsBigFloat(), perSecond)
	case cty.String:
		s := strings.TrimSpace(v.AsString())
		shown = strconv.Quote(v.AsString())
		if f, _, err := big.ParseFloat(s, 10, 128, big.ToNearestEven); err == nil && !f.IsInf() {
			n = f.Mul(f, perSecond)
			break
		}
		d, err := time.ParseDuration(s)
		if err != nil && durationRE.MatchString(s) {
			c.at(rng, field, "%s", r.RefuseDuration("", shown).Msg) // well-formed, too large for a duration
			return 0, false
		}
		if err != nil {
			return bad(shown)
		}
		if d%unit != 0 {
			n = big.NewFloat(float64(d) / float64(unit)) // not whole: reported below
		} else {
			n = new(big.Float).SetInt64(int64(d / unit))
		}
	default:
		return bad(typeName(v))
	}
	if !n.IsInt() {
		what := "seconds"
		if unit == time.Millisecond {
			what = "milliseconds"
		}
		c.at(rng, field, "must be a whole number of %s, got %s", what, shown)
		return 0, false
	}
	i, acc := n.Int64()
	if acc != big.Exact {
		c.at(rng, field, "%s", r.RefuseDuration("", shown).Msg)
		return 0, false
	}
	if err := r.CheckAs("", i); err != nil {
		c.at(rng, field, "%s", r.RefuseDuration("", shown).Msg)
		return 0, false
	}
	return i, true
}

// durationRE matches what time.ParseDuration reads (it fails on such a
// string only when it overflows).
var durationRE = regexp.MustCompile(`^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$`)

// numText shows a number as the user would write it: whole numbers below
// 1e21 in full, others in the shortest exponent form.
func numText(f *big.Float) string {
	if f.IsInt() && new(big.Float).Abs(f).Cmp(big.NewFloat(1e21)) < 0 {
		return f.Text('f', 0)
	}
	return f.Text('g', -1)
}

var memoryRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// memoryUnits are the units memory accepts, in MiB.
var memoryUnits = map[string]int64{"": 1, "mib": 1, "gib": 1024, "tib": 1024 * 1024}

// decodeMemory converts a number of MiB or a string with a binary unit
// ("512MiB", "1.5GiB") to whole MiB.
func (c *collector) decodeMemory(rng hcl.Range, field string, v cty.Value) (int64, bool) {
	const hint = `a number of MiB or a string like "512MiB" or "1GiB"`
	var num, unit string
	switch v.Type() {
	case cty.Number:
		num = v.AsBigFloat().Text('f', -1)
	case cty.String:
		m := memoryRE.FindStringSubmatch(strings.TrimSpace(v.AsString()))
		if m == nil {
			c.at(rng, field, "must be %s, got %q", hint, v.AsString())
			return 0, false
		}
		num, unit = m[1], m[2]
	default:
		c.at(rng, field, "must be %s, got %s", hint, typeName(v))
		return 0, false
	}
	mult, ok := memoryUnits[strings.ToLower(unit)]
	if !ok {
		c.at(rng, field, "unknown memory unit %q: use MiB, GiB or TiB (binary units), like \"512MiB\" or \"1GiB\"", unit)
		return 0, false
	}
	f, _, err := big.ParseFloat(num, 10, 128, big.ToNearestEven)
	if err != nil || f.Sign() < 0 {
		c.at(rng, field, "must be %s, got %s", hint, num)
		return 0, false
	}
	f.Mul(f, new(big.Float).SetInt64(mult))
	mib, acc := f.Int64()
	if !f.IsInt() || acc != big.Exact || mib > 1<<40 {
		c.at(rng, field, "must be a whole number of MiB, got %s MiB", f.Text('g', -1))
		return 0, false
	}
	return mib, true
}
