// Package atomicfile replaces files atomically and durably: the one helper
// every part of gantry uses to write a state file (identities, records,
// profiles, keys) so that a crash, a full disk or a power cut leaves either
// the old content or the new one, never a truncated file.
//
// It imports nothing from gantry (a leaf, usable from the CLI, the server
// and the agent alike).
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces the file at path with data, mode perm (exactly: the umask
// does not apply). It writes a temporary file in path's directory (which
// must exist), fsyncs it, closes it, renames it over path and fsyncs the
// directory, so that after a nil return the new content survives a crash.
//
// Every error is returned, wrapped with the path. On an error before the
// rename the temporary file is removed and path is untouched (its previous
// content, if any, is intact); an error from the final directory fsync
// means path already has the new content but it may not be durable yet.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return wrap(path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil && !renamed {
			_ = f.Close() // may already be closed
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return wrap(path, err)
	}
	if _, err = f.Write(data); err != nil {
		return wrap(path, err)
	}
	if err = f.Sync(); err != nil {
		return wrap(path, err)
	}
	if err = f.Close(); err != nil {
		return wrap(path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: sync its directory: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync its directory: %w", path, err)
	}
	return nil
}

// wrap names path in an error about its temporary file, without the
// temporary file's name (a *fs.PathError's Err is kept, so errors.Is still
// finds syscall.ENOSPC and the like).
func wrap(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("write %s: %w", path, err)
}
