package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv/fulldisk"
)

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	old := syscall.Umask(0o077) // the mode must not depend on the umask
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, tc := range []struct {
		data string
		perm os.FileMode
	}{{"first", 0o644}, {"second, longer", 0o600}, {"", 0o640}} {
		if err := Write(p, []byte(tc.data), tc.perm); err != nil {
			t.Fatalf("Write(%q): %v", tc.data, err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != tc.data {
			t.Fatalf("content %q %v, want %q", b, err, tc.data)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != tc.perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Errorf("directory holds %v, want only state.json", names)
		}
	}
}

func TestWriteMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "file")
	err := Write(p, []byte("x"), 0o600)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want a not-exist error naming %s", err, p)
	}
}

// On a full disk Write fails with ENOSPC, leaves the old content intact
// and removes its temporary file.
func TestWriteFullDisk(t *testing.T) {
	const good = `{"good": true}`
	var p string
	dir := fulldisk.New(t, func(dir string) {
		p = filepath.Join(dir, "state.json")
		if err := Write(p, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	err := Write(p, []byte(strings.Repeat("n", 32<<10)), 0o600)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v, want ENOSPC naming %s", err, p)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != good {
		t.Fatalf("after the failed write: %q %v, want the old content", b, err)
	}
	if names := entries(t, dir); len(names) != 2 {
		t.Errorf("directory holds %v, want state.json and .filler only", names)
	}
}
