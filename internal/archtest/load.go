package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// listed is the part of `go list -json` that Load reads.
type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Error      *struct{ Err string }
}

// Load lists the packages of the module that contains dir with `go list`
// and reads the imports of their non-test files. It fails if a package
// cannot be listed or a file cannot be parsed.
func Load(dir string) ([]Package, error) {
	mod, err := goCmd(dir, "list", "-m", "-f", "{{.Path}}\n{{.Dir}}")
	if err != nil {
		return nil, err
	}
	modPath, modDir, ok := strings.Cut(strings.TrimSpace(string(mod)), "\n")
	if !ok {
		return nil, fmt.Errorf("go list -m: unexpected output %q", mod)
	}
	out, err := goCmd(modDir, "list", "-e", "-json", "./...")
	if err != nil {
		return nil, err
	}
	rel := func(imp string) (string, bool) {
		if imp == modPath {
			return ".", true
		}
		r, ok := strings.CutPrefix(imp, modPath+"/")
		return r, ok
	}
	var pkgs []Package
	var problems []string
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		if l.Error != nil {
			problems = append(problems, l.ImportPath+": "+l.Error.Err)
			continue
		}
		path, ok := rel(l.ImportPath)
		if !ok {
			continue
		}
		p := Package{Path: path, Files: map[string][]string{}}
		for _, name := range append(append([]string{}, l.GoFiles...), l.CgoFiles...) {
			imps, err := fileImports(filepath.Join(l.Dir, name))
			if err != nil {
				return nil, err
			}
			fileRel, err := filepath.Rel(modDir, filepath.Join(l.Dir, name))
			if err != nil {
				return nil, err
			}
			var own []string
			for _, imp := range imps {
				if r, ok := rel(imp); ok {
					own = append(own, r)
				}
			}
			p.Files[filepath.ToSlash(fileRel)] = own
		}
		pkgs = append(pkgs, p)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("go list: %s", strings.Join(problems, "; "))
	}
	return pkgs, nil
}

// fileImports returns the import paths of one Go file.
func fileImports(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
	if err != nil {
		return nil, fmt.Errorf("parse imports: %w", err)
	}
	out := make([]string, 0, len(f.Imports))
	for _, s := range f.Imports {
		p, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: import %s: %w", path, s.Path.Value, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
