package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/golden"
)

// TestBadDefinitions loads every testdata/bad/<case>/ directory, which must
// fail, and compares the rendered diagnostics with testdata/bad/<case>.golden
// (go test -update rewrites them). A case's optional "vars" file holds one
// --var per line; the environment is "test".
func TestBadDefinitions(t *testing.T) {
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata/bad", name)
			var vars []string
			if b, err := os.ReadFile(filepath.Join(dir, "vars")); err == nil {
				vars = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			}
			d, err := Load(dir, "test", vars)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", d)
			}
			var ds diag.Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("error is not diag.Diagnostics: %v", err)
			}
			golden.Check(t, filepath.Join("testdata/bad", name+".golden"), err.Error()+"\n")
		})
	}
	if n < 20 {
		t.Errorf("only %d bad cases", n)
	}
}
