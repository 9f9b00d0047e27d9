// Package fulldisk gives tests a directory on a file system with no space
// left: a small tmpfs (64 KiB) mounted for the test and filled up, for
// checking what code does when a write fails with ENOSPC.
//
// It needs root (mount). Without it New fails the test with a clear
// message, or skips it under `go test -short`.
package fulldisk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Size is the size of the tmpfs New mounts.
const Size = "64k"

// New mounts a tmpfs of Size on a fresh directory, lets prepare (if not
// nil) write what the test needs there while space is left, fills the rest
// with a file named ".filler", and returns the directory. The tmpfs is
// unmounted when the test ends.
func New(t testing.TB, prepare func(dir string)) string {
	t.Helper()
	if testing.Short() {
		t.Skip("fulldisk: mounts a tmpfs (skipped with -short)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+Size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("fulldisk: mount -t tmpfs on %s failed (the test needs root and permission to mount): %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("fulldisk: umount %s: %v: %s", dir, err, out)
		}
	})
	if prepare != nil {
		prepare(dir)
	}
	f, err := os.Create(filepath.Join(dir, ".filler"))
	if err != nil {
		t.Fatalf("fulldisk: %v", err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fulldisk: filling %s: %v", dir, err)
			}
			break
		}
	}
	// Page-sized writes may leave a few bytes: take them too.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
	return dir
}
