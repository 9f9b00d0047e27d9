// Package diag holds user-facing diagnostics: problems found in a file a user
// wrote (an appspec.yml, a buildspec.yml, …), each pointing at a file, line
// and column, printed the way compilers print them:
//
//	appspec.yml:12:5: hooks.BeforeInstall[0].timeout: must be a whole number of seconds from 1 to 3600, got "abc"
//	   12 |     timeout: abc
//	      |     ^
//
// A parser collects every problem it finds into a [Diagnostics] and returns
// it as its error (see [Diagnostics.Err]), so that a user fixes a file in one
// round instead of one error at a time.
package diag

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Diagnostic is one problem in a source file. Line and Column are 1-based;
// zero means unknown (a Diagnostic with Line 0 is about the file as a whole,
// one with Column 0 about a whole line). Column counts characters (runes),
// not bytes, as YAML parsers report them.
type Diagnostic struct {
	// File is the name the user knows the file by, e.g. "appspec.yml".
	File string
	// Line is the 1-based line of the problem, 0 when unknown.
	Line int
	// Column is the 1-based column (in characters) of the problem, 0 when
	// unknown.
	Column int
	// Field is the dotted path of the offending value, e.g.
	// "hooks.BeforeInstall[0].timeout"; empty for problems of the file as a
	// whole (syntax errors, a missing top-level key).
	Field string
	// Message says what is wrong, and where possible what is expected; it
	// starts in lower case and has no final period.
	Message string
	// Snippet is the source line Line points at, without its line ending
	// and with control characters (other than tab) and invalid UTF-8
	// replaced by U+FFFD; empty when there is none.
	Snippet string
}

// Error formats d like a compiler: "file:line:col: field: message", then,
// when there is a snippet, the source line and a caret under the column.
func (d Diagnostic) Error() string {
	var b strings.Builder
	d.write(&b)
	return b.String()
}

// Header returns the first line of d.Error(), without the snippet:
// "file:line:col: field: message".
func (d Diagnostic) Header() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
	}
	if d.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(d.Line))
		if d.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

func (d Diagnostic) write(b *strings.Builder) {
	b.WriteString(d.Header())
	if d.Line <= 0 || d.Snippet == "" {
		return
	}
	num := strconv.Itoa(d.Line)
	gutter := strings.Repeat(" ", 3+len(num)) + " | "
	fmt.Fprintf(b, "\n   %s | %s", num, d.Snippet)
	if d.Column > 0 {
		b.WriteByte('\n')
		b.WriteString(gutter)
		b.WriteString(caretPad(d.Snippet, d.Column))
		b.WriteByte('^')
	}
}

// caretPad returns the blanks that put a caret under the column'th character
// of line: tabs stay tabs so that the caret lines up however tabs render.
func caretPad(line string, column int) string {
	var b strings.Builder
	n := 0
	for _, r := range line {
		if n >= column-1 {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		n++
	}
	for ; n < column-1; n++ {
		b.WriteByte(' ')
	}
	return b.String()
}

// Diagnostics is a list of problems; it is an error whose text is every
// diagnostic, sorted by file, line and column, one block per diagnostic.
type Diagnostics []Diagnostic

// Error returns every diagnostic's text, sorted by position, separated by
// newlines. It does not reorder ds itself.
func (ds Diagnostics) Error() string {
	sorted := slices.Clone(ds)
	sorted.Sort()
	var b strings.Builder
	for i, d := range sorted {
		if i > 0 {
			b.WriteByte('\n')
		}
		d.write(&b)
	}
	return b.String()
}

// HasErrors reports whether ds holds at least one diagnostic.
func (ds Diagnostics) HasErrors() bool { return len(ds) > 0 }

// Err returns ds, sorted, as an error, or nil when ds is empty. Return
// ds.Err() rather than ds from a function whose result is an error, so that
// "no problems" is a nil error and not a non-nil empty list.
func (ds Diagnostics) Err() error {
	if len(ds) == 0 {
		return nil
	}
	ds.Sort()
	return ds
}

// Unwrap returns each diagnostic as an error, so that errors.As can pick one
// out of a list.
func (ds Diagnostics) Unwrap() []error {
	errs := make([]error, len(ds))
	for i, d := range ds {
		errs[i] = d
	}
	return errs
}

// Sort orders ds by file, line and column, keeping the order in which
// diagnostics were added where those are equal.
func (ds Diagnostics) Sort() {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			strings.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
		)
	})
}

// Source is a named file that diagnostics point into. It remembers where each
// line starts so that building many diagnostics for one file is cheap.
type Source struct {
	// File is the name diagnostics carry, e.g. "appspec.yml".
	File string
	// Src is the file's content.
	Src   []byte
	lines []int // byte offset at which each line starts
}

// NewSource returns a Source for the file named file with content src.
func NewSource(file string, src []byte) *Source {
	s := &Source{File: file, Src: src, lines: []int{0}}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// Lines returns how many lines src has (a final line ending does not start
// another line).
func (s *Source) Lines() int {
	if len(s.Src) == 0 {
		return 0
	}
	return len(s.lines)
}

// Line returns the text of the 1-based line n without its line ending ("\n"
// or "\r\n"), or "" when there is no such line. Control characters other
// than tab, and bytes that are not UTF-8, are replaced with U+FFFD.
func (s *Source) Line(n int) string {
	if n < 1 || n > s.Lines() {
		return ""
	}
	start := s.lines[n-1]
	end := len(s.Src)
	if n < len(s.lines) {
		end = s.lines[n]
	}
	line := s.Src[start:end]
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return printable(string(line))
}

// printable replaces what a terminal should not be sent, control characters
// other than tab and invalid UTF-8, with U+FFFD, one per character so that
// columns still line up.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s { // invalid bytes come out as utf8.RuneError
		if isControl(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f)
}

// At returns a Diagnostic at line and column (1-based, 0 for unknown) of s,
// with the source line as its snippet.
func (s *Source) At(line, column int, field, message string) Diagnostic {
	return Diagnostic{
		File:    s.File,
		Line:    line,
		Column:  column,
		Field:   field,
		Message: message,
		Snippet: s.Line(line),
	}
}

// Errorf is At with a message formatted by fmt.Sprintf.
func (s *Source) Errorf(line, column int, field, format string, args ...any) Diagnostic {
	return s.At(line, column, field, fmt.Sprintf(format, args...))
}

// At returns a Diagnostic for the file named file with content src, at line
// and column (1-based, 0 for unknown), with the source line as its snippet.
// Use a [Source] to build many diagnostics for the same file.
func At(file string, src []byte, line, column int, field, message string) Diagnostic {
	return NewSource(file, src).At(line, column, field, message)
}

// Errorf is At with a message formatted by fmt.Sprintf.
func Errorf(file string, src []byte, line, column int, field, format string, args ...any) Diagnostic {
	return At(file, src, line, column, field, fmt.Sprintf(format, args...))
}
