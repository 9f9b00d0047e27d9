package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func evalIn(t *testing.T, dir, src string) (cty.Value, error) {
	t.Helper()
	expr, hd := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if hd.HasErrors() {
		t.Fatal(hd)
	}
	v, hd := expr.Value(&hcl.EvalContext{Functions: newFuncs(dir)})
	if hd.HasErrors() {
		return cty.NilVal, hd
	}
	return v, nil
}

func TestFileFunctions(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("scripts/a.sh", "echo a\n")
	write("t/hosts.tpl", "%{ for h in hosts ~}\nserver ${h}\n%{ endfor ~}\nport=${port}")
	write("t/nested.tpl", "${upper(file(\"scripts/a.sh\"))}")
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("scripts/a.sh", filepath.Join(dir, "inside-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "outside-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "outside-dir")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		expr, want, err string
	}{
		{expr: `file("scripts/a.sh")`, want: "echo a\n"},
		{expr: `file("./scripts/a.sh")`, want: "echo a\n"},
		{expr: `file("inside-link")`, want: "echo a\n"},
		{expr: `templatefile("t/hosts.tpl", { hosts = ["a", "b"], port = 80 })`, want: "server a\nserver b\nport=80"},
		{expr: `templatefile("t/nested.tpl", {})`, want: "ECHO A\n"},
		{expr: `length("héllo") + length([1, 2]) + length({ a = 1 })`, want: "8"},
		{expr: `file("outside-link")`, err: "leads outside the definition directory"},
		{expr: `file("outside-dir/secret")`, err: "leads outside the definition directory"},
		{expr: `file("scripts/../scripts/a.sh")`, err: `paths must not contain ".."`},
		{expr: `file("` + filepath.Join(outside, "secret") + `")`, err: "is an absolute path"},
		{expr: `file("nope")`, err: `no file "nope"`},
		{expr: `file("")`, err: "the path is empty"},
		{expr: `templatefile("t/hosts.tpl", { hosts = [] })`, err: `refers to "port", which vars does not have`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			v, err := evalIn(t, dir, tt.expr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if v.Type() == cty.Number {
				got = v.AsBigFloat().Text('f', -1)
			} else {
				got = v.AsString()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemplateFileUnknownVars(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.tpl"), []byte("a=${a}"), 0o644); err != nil {
		t.Fatal(err)
	}
	expr, _ := hclsyntax.ParseExpression([]byte(`templatefile("x.tpl", { a = x })`), "t.hcl", hcl.InitialPos)
	v, hd := expr.Value(&hcl.EvalContext{
		Functions: newFuncs(dir),
		Variables: map[string]cty.Value{"x": cty.UnknownVal(cty.String)},
	})
	if hd.HasErrors() || v.IsKnown() {
		t.Errorf("got %#v, %v; want an unknown string", v, hd)
	}
}
