package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// privateDirs creates the directories (in order, parents first) if needed
// and makes them 0700: the agent's copies of revisions under them are
// readable by root (the agent) only, whatever the modes of their files.
// Directories made by older agents (0755) are tightened too.
func privateDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// grant lets the runas user name (if it is not the agent's own user) reach
// and read the revision directory dir, whose hook it is about to run: an
// ACL entry on dir (r-x) and on the directories above it (--x). An unknown
// user is left to the executor, which names it.
func (x *run) grant(name, dir string) error {
	if name == "" {
		return nil
	}
	uid, err := lookupID(name, false)
	if err != nil || uid == os.Geteuid() {
		return nil
	}
	key := fmt.Sprint(uid, " ", dir)
	if x.granted[key] {
		return nil
	}
	u := []uint32{uint32(uid)}
	for _, d := range slices.Concat(x.r.Traverse, []string{x.r.Root, filepath.Join(x.r.Root, x.step.Application)}) {
		if err := grantUsers(d, permSearch, u); err != nil {
			return err
		}
	}
	if err := grantUsers(dir, permRead|permSearch, u); err != nil {
		return err
	}
	if x.granted == nil {
		x.granted = map[string]bool{}
	}
	x.granted[key] = true
	return nil
}

// makeExecutable gives the hook file rel of the revision directory dir
// (the agent's own extracted copy) the executable bit wherever it has the
// read bit, and to its owner, as CodeDeploy's agent does (`chmod +x`)
// before executing it. The file is reached through an [os.Root]: a
// symbolic link cannot make it change a file outside dir.
func makeExecutable(dir, rel string) error {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	fi, err := r.Stat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("not found in the revision")
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file in the revision")
	}
	mode := fi.Mode().Perm()
	want := mode | 0o100 | (mode&0o044)>>2
	if want == mode {
		return nil
	}
	if err := r.Chmod(rel, want); err != nil {
		return fmt.Errorf("make it executable: %w", err)
	}
	return nil
}
