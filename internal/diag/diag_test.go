package diag

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/gantry-dev/gantry/internal/golden"
)

func TestDiagnosticError(t *testing.T) {
	tests := []struct {
		name string
		d    Diagnostic
		want string
	}{
		{
			name: "full",
			d: Diagnostic{File: "appspec.yml", Line: 12, Column: 5, Field: "hooks.BeforeInstall[0].timeout",
				Message: `must be a whole number of seconds from 1 to 3600, got "abc"`, Snippet: "    timeout: abc"},
			want: "appspec.yml:12:5: hooks.BeforeInstall[0].timeout: must be a whole number of seconds from 1 to 3600, got \"abc\"\n" +
				"   12 |     timeout: abc\n" +
				"      |     ^",
		},
		{
			name: "no field",
			d:    Diagnostic{File: "a.yml", Line: 3, Column: 1, Message: "invalid YAML", Snippet: "x"},
			want: "a.yml:3:1: invalid YAML\n   3 | x\n     | ^",
		},
		{
			name: "no column: snippet without caret",
			d:    Diagnostic{File: "a.yml", Line: 3, Message: "bad", Snippet: "x: 1"},
			want: "a.yml:3: bad\n   3 | x: 1",
		},
		{
			name: "no line: whole file",
			d:    Diagnostic{File: "a.yml", Message: "file is empty"},
			want: "a.yml: file is empty",
		},
		{
			name: "no file",
			d:    Diagnostic{Line: 2, Column: 3, Field: "os", Message: "bad"},
			want: "2:3: os: bad",
		},
		{
			name: "nothing but a message",
			d:    Diagnostic{Message: "bad"},
			want: "bad",
		},
		{
			name: "tabs in the snippet stay tabs in the caret line",
			d:    Diagnostic{File: "a.yml", Line: 1, Column: 3, Message: "tab", Snippet: "\t\tx: 1"},
			want: "a.yml:1:3: tab\n   1 | \t\tx: 1\n     | \t\t^",
		},
		{
			name: "column counts runes",
			d:    Diagnostic{File: "a.yml", Line: 1, Column: 5, Message: "m", Snippet: "é: é!"},
			want: "a.yml:1:5: m\n   1 | é: é!\n     |     ^",
		},
		{
			name: "column past the end of the line",
			d:    Diagnostic{File: "a.yml", Line: 1, Column: 4, Message: "m", Snippet: "ab"},
			want: "a.yml:1:4: m\n   1 | ab\n     |    ^",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Error(); got != tt.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestSourceLine(t *testing.T) {
	src := NewSource("f", []byte("one\r\ntwo\n\nfour"))
	tests := []struct {
		n    int
		want string
	}{
		{0, ""}, {1, "one"}, {2, "two"}, {3, ""}, {4, "four"}, {5, ""},
	}
	for _, tt := range tests {
		if got := src.Line(tt.n); got != tt.want {
			t.Errorf("Line(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	dirty := NewSource("f", []byte("a\x01b\tc\xffd\x7f\n"))
	if got, want := dirty.Line(1), "a\ufffdb\tc\ufffdd\ufffd"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		src  string
		want int
	}{{"", 0}, {"a", 1}, {"a\n", 1}, {"a\nb", 2}, {"\n\n", 2}} {
		if got := NewSource("f", []byte(tt.src)).Lines(); got != tt.want {
			t.Errorf("Lines(%q) = %d, want %d", tt.src, got, tt.want)
		}
	}
}

func TestAtAndErrorf(t *testing.T) {
	src := []byte("version: 0.0\nos: windows\n")
	got := Errorf("appspec.yml", src, 2, 5, "os", "%s is not supported", "windows")
	want := Diagnostic{File: "appspec.yml", Line: 2, Column: 5, Field: "os",
		Message: "windows is not supported", Snippet: "os: windows"}
	if got != want {
		t.Errorf("Errorf() = %#v, want %#v", got, want)
	}
	if got := At("appspec.yml", src, 9, 1, "", "m"); got.Snippet != "" {
		t.Errorf("At() past the end has snippet %q", got.Snippet)
	}
}

// TestDiagnosticsGolden checks the text of a list: sorted by file, line and
// column, one block per diagnostic.
func TestDiagnosticsGolden(t *testing.T) {
	src := NewSource("appspec.yml", []byte("version: 1.0\nos: windows\nhooks:\n  BeforeInstall:\n    - location: ../x.sh\n      timeout: abc\n"))
	ds := Diagnostics{
		src.At(6, 16, "hooks.BeforeInstall[0].timeout", `must be a whole number of seconds from 1 to 3600, got "abc"`),
		src.At(2, 5, "os", "windows is not supported by gantry (only linux)"),
		src.At(5, 17, "hooks.BeforeInstall[0].location", `must stay inside the bundle, got "../x.sh"`),
		src.At(1, 10, "version", `must be 0.0, got "1.0"`),
		{File: "appspec.yml", Message: "a whole-file problem"},
	}
	golden.Check(t, filepath.Join("testdata", "diagnostics.golden"), ds.Error()+"\n")
	// Error must not reorder the list it is called on.
	if ds[0].Line != 6 {
		t.Errorf("Error() reordered its receiver")
	}
}

func TestDiagnosticsErr(t *testing.T) {
	var none Diagnostics
	if err := none.Err(); err != nil {
		t.Errorf("empty Diagnostics.Err() = %v, want nil", err)
	}
	if none.HasErrors() {
		t.Errorf("empty HasErrors() = true")
	}
	ds := Diagnostics{{Line: 2, Message: "b"}, {Line: 1, Message: "a"}}
	if !ds.HasErrors() {
		t.Errorf("HasErrors() = false")
	}
	err := ds.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	if got, want := err.Error(), "1: a\n2: b"; got != want {
		t.Errorf("Err().Error() = %q, want %q", got, want)
	}
	var list Diagnostics
	if !errors.As(err, &list) || len(list) != 2 {
		t.Errorf("errors.As(Diagnostics) failed: %v", list)
	}
	var one Diagnostic
	if !errors.As(err, &one) || one.Message != "a" {
		t.Errorf("errors.As(Diagnostic) = %v, want the first (sorted) diagnostic", one)
	}
}

func TestSortIsStable(t *testing.T) {
	ds := Diagnostics{
		{File: "b", Line: 1, Message: "4"},
		{File: "a", Line: 2, Column: 1, Message: "3"},
		{File: "a", Line: 2, Message: "2"},
		{File: "a", Line: 2, Column: 1, Message: "3b"},
		{File: "a", Message: "1"},
	}
	ds.Sort()
	var got []string
	for _, d := range ds {
		got = append(got, d.Message)
	}
	want := []string{"1", "2", "3", "3b", "4"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order = %v, want %v", got, want)
		}
	}
}
