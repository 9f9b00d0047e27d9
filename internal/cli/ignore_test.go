package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIgnoreFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ignoreFile), []byte("# comment\napp/\n*_test.go\nbuild/out.bin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	skip, err := loadIgnore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel  string
		dir  bool
		want bool
	}{
		{".gantryignore", false, true},
		{"app", true, true},
		{"app", false, false}, // "app/" is for directories
		{"main.hcl", false, false},
		{"example_test.go", false, true},
		{"sub/x_test.go", false, true},
		{"build/out.bin", false, true},
		{"build/other", false, false},
		{"envs/dev.hcl", false, false},
	} {
		if got := skip(tc.rel, tc.dir); got != tc.want {
			t.Errorf("skip(%q, dir=%v) = %v, want %v", tc.rel, tc.dir, got, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ignoreFile), []byte("ok\n[bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIgnore(dir); err == nil || !strings.Contains(err.Error(), ".gantryignore:2") {
		t.Fatalf("bad pattern error = %v, want it to name .gantryignore:2", err)
	}
}
