package appspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/gantry-dev/gantry/internal/diag"
)

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is YAML null: no value at all, ~ or null.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalarText returns the text of a scalar that reads as text: a string, a
// number or a date, as written. Null, booleans, collections and values with
// other tags are not text.
func scalarText(n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return "", false
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!timestamp":
		return n.Value, true
	}
	return "", false
}

// describe names what n is, for "got …" in messages: a quoted value for
// text, "a list", "a mapping", "nothing" for a key without a value, ….
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			if n.Value == "" {
				return "nothing"
			}
			return "null"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!str", "!!int", "!!float", "!!timestamp":
			v := n.Value
			if utf8.RuneCountInString(v) > 60 {
				v = string([]rune(v)[:57]) + "..."
			}
			return strconv.Quote(v)
		case "!!binary":
			return "binary data"
		default:
			return "a value tagged " + n.Tag
		}
	}
	return "nothing"
}

// entry is one key of a mapping.
type entry struct {
	name     string
	key, val *yaml.Node
}

// entries returns the keys of mapping n in order, those brought in by merge
// keys (<<) after the ones written, and records keys that are not plain names
// and keys given twice. field is n's path; merging guards against cycles.
func (p *parser) entries(n *yaml.Node, field string, merging []*yaml.Node) []entry {
	n = resolve(n)
	var out, merged []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, p.merge(v, field, append(merging, n))...)
			continue
		}
		if rk := resolve(k); rk.Kind != yaml.ScalarNode || isNull(rk) {
			p.errorf(k, field, "keys must be plain names, got %s", describe(k))
			continue
		}
		name := resolve(k).Value
		if first, dup := seen[name]; dup {
			p.errorf(k, join(field, name), "duplicate key %q (first given on line %d)", name, first.Line)
			continue
		}
		seen[name] = k
		out = append(out, entry{name: name, key: k, val: v})
	}
	for _, e := range merged {
		if _, dup := seen[e.name]; !dup {
			seen[e.name] = e.key
			out = append(out, e)
		}
	}
	return out
}

// merge returns the entries a merge key brings in: those of a mapping, or of
// a list of mappings where the first to give a key wins.
func (p *parser) merge(v *yaml.Node, field string, merging []*yaml.Node) []entry {
	if p.mergeBudget < 0 {
		return nil
	}
	r := resolve(v)
	var maps []*yaml.Node
	switch r.Kind {
	case yaml.MappingNode:
		maps = []*yaml.Node{r}
	case yaml.SequenceNode:
		for _, item := range r.Content {
			maps = append(maps, resolve(item))
		}
	}
	var out []entry
	seen := map[string]bool{}
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			p.errorf(v, field, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(v))
			return nil
		}
		if slices.Contains(merging, m) {
			p.errorf(v, field, "a merge key (<<) merges a mapping into itself")
			return nil
		}
		for _, e := range p.entries(m, field, merging) {
			if p.mergeBudget--; p.mergeBudget < 0 {
				if p.mergeBudget == -1 {
					p.errorf(v, field, "merge keys (<<) bring in more than %d keys", maxMerged)
				}
				return nil
			}
			if !seen[e.name] {
				seen[e.name] = true
				out = append(out, e)
			}
		}
	}
	if len(maps) == 0 {
		p.errorf(v, field, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(v))
	}
	return out
}

// fieldSet is the known keys of a mapping, by name.
type fieldSet struct {
	entries map[string]entry
	// suggested are the known keys that an unknown key was taken for a
	// misspelling of: their absence is not reported again.
	suggested map[string]bool
}

// get returns the entry for a known key.
func (f fieldSet) get(name string) (entry, bool) {
	e, ok := f.entries[name]
	return e, ok
}

// value returns the value of a known key given a non-null value.
func (f fieldSet) value(name string) (*yaml.Node, bool) {
	e, ok := f.entries[name]
	if !ok || isNull(e.val) {
		return nil, false
	}
	return e.val, true
}

// missing reports whether a required key is absent and not already reported
// as misspelt.
func (f fieldSet) missing(name string) bool {
	_, ok := f.entries[name]
	return !ok && !f.suggested[name]
}

// fields returns the entries of mapping n by name, recording the keys that
// are not in known; hints give advice for some unknown keys.
func (p *parser) fields(n *yaml.Node, field string, known []string, hints map[string]string) fieldSet {
	f := fieldSet{entries: map[string]entry{}, suggested: map[string]bool{}}
	for _, e := range p.entries(n, field, nil) {
		if slices.Contains(known, e.name) {
			f.entries[e.name] = e
			continue
		}
		s := diag.Suggest(e.name, known)
		switch {
		case hints[e.name] != "":
			p.errorf(e.key, join(field, e.name), "unknown key %q; %s", e.name, hints[e.name])
		case s != "":
			f.suggested[s] = true
			p.errorf(e.key, join(field, e.name), "unknown key %q (did you mean %q?)", e.name, s)
		default:
			p.errorf(e.key, join(field, e.name), "unknown key %q; valid keys are %s", e.name, andList(known))
		}
	}
	return f
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// andList returns "a, b and c".
func andList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the errors of yaml.v3's parser (as opposed to its
// scanner): it reports their line 0-based, the scanner 1-based.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// unplacedProblems are yaml.v3 errors that carry no position at all.
var unplacedProblems = []string{
	"control characters are not allowed",
	"invalid leading UTF-8 octet",
	"invalid trailing UTF-8 octet",
	"incomplete UTF-8 octet sequence",
	"invalid length of a UTF-8 sequence",
	"invalid Unicode character",
	"incomplete UTF-16",
	"input error",
	"unknown anchor",
	"anchor '",
	"document contains excessive aliasing",
	"attempted to go past the end of stream",
}

// indentProblems are parser errors that come from a line indented too
// little or too much.
var indentProblems = []string{
	"did not find expected key",
	"did not find expected '-' indicator",
}

// syntaxError records an error of the YAML parser, with the best position
// that can be made of it.
func (p *parser) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 0, 0
	if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if slices.Contains(parserProblems, msg) {
			line++
		}
	} else if !slices.ContainsFunc(unplacedProblems, func(s string) bool { return strings.HasPrefix(msg, s) }) {
		line = 1 // yaml.v3 leaves out "line 1"
	}
	if slices.Contains(parserProblems, msg) {
		// The parser reports where the construct it was in began; the line
		// where the same problem first shows is the one to look at.
		if l := p.firstFailingLine(msg); l > 0 {
			line = l
		}
	}
	text := p.src.Line(line)
	switch {
	case strings.HasPrefix(msg, "unknown anchor '"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		line, col = p.find("*" + name)
		msg = fmt.Sprintf("the alias *%s refers to no anchor (&%s)", name, name)
	case line == 0:
		var r rune
		if line, col, r = p.badChar(); line > 0 {
			if r == utf8.RuneError {
				msg = "the file is not UTF-8 text"
			} else {
				msg = fmt.Sprintf("control characters are not allowed (found %U)", r)
			}
		}
	case strings.Contains(text, "\t") &&
		(strings.Contains(indentOf(text), "\t") || strings.Contains(msg, "tab")):
		col = utf8.RuneCountInString(text[:strings.IndexByte(text, '\t')]) + 1
		msg += "; YAML does not allow tabs for indentation, indent with spaces"
	case slices.Contains(indentProblems, msg):
		col = utf8.RuneCountInString(indentOf(text)) + 1
		msg += " (check the indentation of this line)"
	case msg == "mapping values are not allowed in this context":
		// A plain value with ": " in it: point at the second colon.
		if i := secondColon(text); i >= 0 {
			col = utf8.RuneCountInString(text[:i]) + 1
		}
		msg += " (put a value that contains \": \" in quotes)"
	}
	p.ds = append(p.ds, p.src.Errorf(line, col, "", "invalid YAML: %s", msg))
}

// indentOf returns the blanks that start line.
func indentOf(line string) string {
	return line[:len(line)-len(strings.TrimLeft(line, " \t"))]
}

// secondColon returns the byte offset of the second colon of line that
// ends a key (followed by a blank or the end of the line), or -1.
func secondColon(line string) int {
	seen := 0
	for i := 0; i < len(line); i++ {
		if line[i] == ':' && (i+1 == len(line) || line[i+1] == ' ' || line[i+1] == '\t') {
			if seen++; seen == 2 {
				return i
			}
		}
	}
	return -1
}

// maxRefineLines bounds the files whose syntax errors are placed by parsing
// ever longer prefixes of them, which takes time quadratic in their size.
const maxRefineLines = 1000

// firstFailingLine returns the first line such that the source up to the
// end of it fails to parse with problem msg, or 0.
func (p *parser) firstFailingLine(msg string) int {
	src := p.src.Src
	if p.src.Lines() > maxRefineLines {
		return 0
	}
	end := 0
	for n := 1; end < len(src); n++ {
		if i := bytes.IndexByte(src[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(src)
		}
		err := decodeAll(src[:end])
		if err == nil {
			continue
		}
		got := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := lineRE.FindStringSubmatch(err.Error()); m != nil {
			got = m[2]
		}
		if got == msg {
			return n
		}
	}
	return 0
}

// decodeAll decodes every document of src and returns the first error.
func decodeAll(src []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// find returns the position of the first occurrence of s in the source.
func (p *parser) find(s string) (line, col int) {
	for n := 1; n <= p.src.Lines(); n++ {
		if i := strings.Index(p.src.Line(n), s); i >= 0 {
			return n, utf8.RuneCountInString(p.src.Line(n)[:i]) + 1
		}
	}
	return 0, 0
}

// badChar returns the position of the first character YAML does not allow:
// invalid UTF-8 (reported as utf8.RuneError) or a control character.
func (p *parser) badChar() (line, col int, r rune) {
	line, col = 1, 1
	for src := p.src.Src; len(src) > 0; {
		r, size := utf8.DecodeRune(src)
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, col, utf8.RuneError
		case r == '\n':
			line, col = line+1, 1
		case r == '\t' || r == '\r':
			col++
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfffe || r == 0xffff:
			return line, col, r
		default:
			col++
		}
		src = src[size:]
	}
	return 0, 0, 0
}
