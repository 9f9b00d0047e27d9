// Package selector parses and evaluates Kubernetes-style label selectors
// such as "role=web,zone in (a,b),!canary", and parses plain label lists
// such as "role=web,zone=a".
//
// The selector syntax is the one of kubectl -l: comma-separated terms that
// must all hold (AND), each one of
//
//	key=value   key==value   key!=value
//	key in (v1,v2)   key notin (v1,v2)
//	key   (the label exists)   !key   (the label does not exist)
//
// with optional whitespace around every token. Keys and values are checked
// as in Kubernetes (see ValidateKey and ValidateValue). As in Kubernetes,
// != and notin also match objects that lack the label, and an empty
// element in a value list ("key in (a,)", "key in ()") stands for the empty
// value. The greater-than/less-than operators that Kubernetes accepts only
// for node affinity are not supported.
package selector

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Operator is the relation a Requirement checks.
type Operator string

// Operators of a Requirement. "==" parses to Equals.
const (
	Equals       Operator = "="
	NotEquals    Operator = "!="
	In           Operator = "in"
	NotIn        Operator = "notin"
	Exists       Operator = "exists"
	DoesNotExist Operator = "!"
)

// Requirement is one term of a selector.
type Requirement struct {
	Key string
	Op  Operator
	// Values holds exactly one value for Equals and NotEquals, at least one
	// (sorted, without duplicates) for In and NotIn, none otherwise.
	Values []string
}

// Matches reports whether labels satisfy the requirement.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	if (r.Op == Equals || r.Op == NotEquals) && len(r.Values) != 1 {
		return false // malformed hand-built requirement
	}
	switch r.Op {
	case Equals:
		return ok && v == r.Values[0]
	case NotEquals:
		return !ok || v != r.Values[0]
	case In:
		return ok && slices.Contains(r.Values, v)
	case NotIn:
		return !ok || !slices.Contains(r.Values, v)
	case Exists:
		return ok
	case DoesNotExist:
		return !ok
	}
	return false
}

// String returns the canonical text of the requirement.
func (r Requirement) String() string {
	switch r.Op {
	case Equals, NotEquals:
		return r.Key + string(r.Op) + strings.Join(r.Values, "|")
	case In, NotIn:
		return r.Key + " " + string(r.Op) + " (" + strings.Join(r.Values, ",") + ")"
	case Exists:
		return r.Key
	case DoesNotExist:
		return "!" + r.Key
	}
	return r.Key + " <invalid operator " + string(r.Op) + ">"
}

// Selector is a parsed label selector: a conjunction of requirements. The
// zero value selects everything.
type Selector struct {
	reqs []Requirement
}

// Requirements returns a copy of the selector's terms in canonical order
// (sorted by key, then by text).
func (s Selector) Requirements() []Requirement {
	out := make([]Requirement, len(s.reqs))
	for i, r := range s.reqs {
		r.Values = slices.Clone(r.Values)
		out[i] = r
	}
	return out
}

// Empty reports whether the selector has no terms and so matches
// everything.
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// Matches reports whether labels satisfy every requirement of s. A nil map
// is a set of no labels.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// String returns the canonical form of s: requirements sorted by key,
// "==" written as "=", value lists sorted and deduplicated, no spaces
// except around in/notin. Parse(s.String()) yields an equal selector; the
// empty selector is "".
func (s Selector) String() string {
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Error is a syntax or validation error in a selector or label list.
type Error struct {
	Input string // the text that was parsed
	Pos   int    // byte offset of the problem in Input; the message shows it as a 1-based column
	Msg   string // what is wrong

	labels bool // from ParseLabels rather than Parse
}

// Error returns a one-line description followed by the input and a caret
// under the offending column, e.g.
//
//	invalid selector "role=web,,zone": at column 10: expected a label key
//	  role=web,,zone
//	           ^
func (e *Error) Error() string {
	what := "selector"
	if e.labels {
		what = "labels"
	}
	pos := min(max(e.Pos, 0), len(e.Input))
	col := runeColumn(e.Input, pos)
	var b strings.Builder
	fmt.Fprintf(&b, "invalid %s %q: at column %d: %s\n  ", what, e.Input, col, e.Msg)
	b.WriteString(printable(e.Input))
	b.WriteString("\n  ")
	b.WriteString(strings.Repeat(" ", col-1))
	b.WriteString("^")
	return b.String()
}

// Column returns the 1-based column (in characters) that the error points at.
func (e *Error) Column() int {
	return runeColumn(e.Input, min(max(e.Pos, 0), len(e.Input)))
}

// runeColumn converts a byte offset into a 1-based character column.
func runeColumn(s string, off int) int {
	off = min(max(off, 0), len(s))
	return utf8.RuneCountInString(s[:off]) + 1
}

// printable replaces control characters so that the caret line lines up.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Parse parses a label selector. The empty (or all-blank) string yields a
// selector that matches everything. Errors are of type *Error.
func Parse(s string) (Selector, error) {
	p := &parser{in: s}
	reqs, err := p.parse()
	if err != nil {
		return Selector{}, err
	}
	for i := range reqs {
		if reqs[i].Op == In || reqs[i].Op == NotIn {
			slices.Sort(reqs[i].Values)
			reqs[i].Values = slices.Compact(reqs[i].Values)
		}
	}
	sort.SliceStable(reqs, func(i, j int) bool {
		if reqs[i].Key != reqs[j].Key {
			return reqs[i].Key < reqs[j].Key
		}
		return reqs[i].String() < reqs[j].String()
	})
	return Selector{reqs: reqs}, nil
}

// MustParse is like Parse but panics on error; for constant selectors.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

type parser struct {
	in  string
	pos int
}

func (p *parser) errorf(pos int, format string, args ...any) *Error {
	return &Error{Input: p.in, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (p *parser) skipSpace() {
	for p.pos < len(p.in) && isSpace(p.in[p.pos]) {
		p.pos++
	}
}

func (p *parser) eof() bool { return p.pos >= len(p.in) }

// found describes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.eof() {
		return "end of selector"
	}
	return quoteChar(p.in, p.pos)
}

// word consumes a run of characters up to whitespace or one of stop.
func (p *parser) word(stop string) (string, int) {
	start := p.pos
	for p.pos < len(p.in) && !isSpace(p.in[p.pos]) && strings.IndexByte(stop, p.in[p.pos]) < 0 {
		p.pos++
	}
	return p.in[start:p.pos], start
}

// Characters that end a key and those that may form an operator.
const (
	keyStop  = ",=!()<>~"
	valStop  = ",=!()"
	opChars  = "=!~<>"
	knownOps = "=, ==, !=, in, notin"
)

func (p *parser) parse() ([]Requirement, error) {
	p.skipSpace()
	if p.eof() {
		return nil, nil
	}
	var reqs []Requirement
	for {
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
		p.skipSpace()
		if p.eof() {
			return reqs, nil
		}
		if p.in[p.pos] != ',' {
			return nil, p.errorf(p.pos, "expected ',' or end of selector after %q, found %s", r.String(), p.found())
		}
		p.pos++
	}
}

func (p *parser) key() (string, error) {
	p.skipSpace()
	k, start := p.word(keyStop)
	if k == "" {
		if p.eof() || p.in[p.pos] == ',' {
			return "", p.errorf(p.pos, "expected a label key")
		}
		return "", p.errorf(p.pos, "expected a label key, found %s", p.found())
	}
	if off, msg := checkKey(k); msg != "" {
		if off < 0 {
			off = 0
		}
		return "", p.errorf(start+off, "invalid label key %q: %s", k, msg)
	}
	return k, nil
}

func (p *parser) value() (string, error) {
	p.skipSpace()
	v, start := p.word(valStop)
	if off, msg := checkValue(v); msg != "" {
		if off < 0 {
			off = 0
		}
		return "", p.errorf(start+off, "invalid label value %q: %s", v, msg)
	}
	return v, nil
}

func (p *parser) term() (Requirement, error) {
	p.skipSpace()
	if !p.eof() && p.in[p.pos] == '!' {
		p.pos++
		k, err := p.key()
		if err != nil {
			return Requirement{}, err
		}
		p.skipSpace()
		if !p.eof() && p.in[p.pos] != ',' {
			return Requirement{}, p.errorf(p.pos, "expected ',' or end of selector after \"!%s\", found %s (a '!key' term takes no operator or value)", k, p.found())
		}
		return Requirement{Key: k, Op: DoesNotExist}, nil
	}
	k, err := p.key()
	if err != nil {
		return Requirement{}, err
	}
	p.skipSpace()
	if p.eof() || p.in[p.pos] == ',' {
		return Requirement{Key: k, Op: Exists}, nil
	}
	opStart := p.pos
	var op Operator
	if strings.IndexByte(opChars, p.in[p.pos]) >= 0 {
		for p.pos < len(p.in) && strings.IndexByte(opChars, p.in[p.pos]) >= 0 {
			p.pos++
		}
		switch s := p.in[opStart:p.pos]; s {
		case "=", "==":
			op = Equals
		case "!=":
			op = NotEquals
		default:
			return Requirement{}, p.errorf(opStart, "unknown operator %q after label key %q (expected one of %s)", s, k, knownOps)
		}
		v, err := p.value()
		if err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: k, Op: op, Values: []string{v}}, nil
	}
	w, _ := p.word(valStop)
	switch w {
	case "in":
		op = In
	case "notin":
		op = NotIn
	case "":
		return Requirement{}, p.errorf(opStart, "expected an operator (%s), ',' or end of selector after label key %q, found %s", knownOps, k, p.found())
	default:
		return Requirement{}, p.errorf(opStart, "unknown operator %q after label key %q (expected one of %s)", w, k, knownOps)
	}
	vals, err := p.valueList(op)
	if err != nil {
		return Requirement{}, err
	}
	return Requirement{Key: k, Op: op, Values: vals}, nil
}

// valueList parses "(v1, v2, ...)" after in/notin.
func (p *parser) valueList(op Operator) ([]string, error) {
	p.skipSpace()
	if p.eof() || p.in[p.pos] != '(' {
		return nil, p.errorf(p.pos, "expected '(' to open the value list after %q, found %s", string(op), p.found())
	}
	open := p.pos
	p.pos++
	var vals []string
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		p.skipSpace()
		if p.eof() {
			return nil, p.errorf(p.pos, "unterminated value list: missing ')' to close the '(' at column %d", runeColumn(p.in, open))
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return vals, nil
		default:
			return nil, p.errorf(p.pos, "expected ',' or ')' in value list, found %s", p.found())
		}
	}
}

// ParseLabels parses a comma-separated list of key=value pairs, as given to
// flags like --labels role=web,zone=a. Whitespace around pairs, keys and
// values is ignored; keys and values are validated like selector labels;
// a key may appear only once. The empty string yields an empty map. Errors
// are of type *Error and name the offending pair.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	fail := func(pos int, format string, args ...any) (map[string]string, error) {
		return nil, &Error{Input: s, Pos: pos, Msg: fmt.Sprintf(format, args...), labels: true}
	}
	firstPair := map[string]int{}
	start := 0
	for n := 1; ; n++ {
		end := strings.IndexByte(s[start:], ',')
		if end < 0 {
			end = len(s)
		} else {
			end += start
		}
		pair := s[start:end]
		lead := len(pair) - len(strings.TrimLeft(pair, " \t\r\n"))
		trimmed := strings.TrimSpace(pair)
		if trimmed == "" {
			return fail(end, "pair %d is empty (expected key=value)", n)
		}
		eq := strings.IndexByte(pair, '=')
		if eq < 0 {
			return fail(start+lead, "pair %d %q has no '=' (expected key=value)", n, trimmed)
		}
		rawKey, rawVal := pair[:eq], pair[eq+1:]
		k := strings.TrimSpace(rawKey)
		v := strings.TrimSpace(rawVal)
		kOff := start + lead
		vOff := start + eq + 1 + len(rawVal) - len(strings.TrimLeft(rawVal, " \t\r\n"))
		if off, msg := checkKey(k); msg != "" {
			return fail(kOff+max(off, 0), "pair %d %q: invalid label key %q: %s", n, trimmed, k, msg)
		}
		if off, msg := checkValue(v); msg != "" {
			return fail(vOff+max(off, 0), "pair %d %q: invalid label value %q: %s", n, trimmed, v, msg)
		}
		if prev, dup := firstPair[k]; dup {
			return fail(kOff, "pair %d %q: duplicate key %q (already set by pair %d)", n, trimmed, k, prev)
		}
		firstPair[k] = n
		out[k] = v
		if end == len(s) {
			return out, nil
		}
		start = end + 1
	}
}
