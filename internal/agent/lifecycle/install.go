package lifecycle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/internal/appspec"
	"github.com/gantry-dev/gantry/internal/bundle"
)

// entry is one thing Install copies.
type entry struct {
	src  string      // absolute path in the revision directory
	dest string      // absolute destination path, without DestRoot
	mode fs.FileMode // type and permission bits of src
}

// host returns the path on the host of the appspec's absolute path p.
func (r *Runner) host(p string) string {
	if r.DestRoot == "" || r.DestRoot == "/" {
		return filepath.Clean(p)
	}
	return filepath.Join(r.DestRoot, p)
}

// install is the Install event: remove what the previous revision installed
// and the new one does not, copy the files, apply the permissions.
func (x *run) install() error {
	if x.spec == nil {
		return errors.New("the revision has not been downloaded")
	}
	plan, err := x.plan()
	if err != nil {
		return err
	}
	var prev []string
	if x.step.Previous != nil {
		prev = x.step.Previous.InstalledFiles
	}
	prevSet := make(map[string]bool, len(prev))
	for _, p := range prev {
		prevSet[p] = true
	}
	newSet := make(map[string]bool, len(plan))
	for _, e := range plan {
		if !e.mode.IsDir() {
			newSet[e.dest] = true
		}
	}

	// Check every conflict before changing anything.
	behavior := x.spec.FileExistsBehavior
	if behavior == "" {
		behavior = appspec.FileExistsDisallow
	}
	var conflicts []string
	for _, e := range plan {
		fi, err := os.Lstat(x.r.host(e.dest))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case e.mode.IsDir() && !fi.IsDir():
			return fmt.Errorf("cannot install directory %s: a file is in the way", e.dest)
		case !e.mode.IsDir() && fi.IsDir():
			return fmt.Errorf("cannot install %s: a directory is in the way", e.dest)
		case !e.mode.IsDir() && !prevSet[e.dest] && behavior == appspec.FileExistsDisallow:
			conflicts = append(conflicts, e.dest)
		}
	}
	if len(conflicts) > 0 {
		more := ""
		if len(conflicts) > 5 {
			more = fmt.Sprintf(" and %d more", len(conflicts)-5)
			conflicts = conflicts[:5]
		}
		return fmt.Errorf("file_exists_behavior is DISALLOW and %s%s already exist(s) on the host but was not installed by the previous revision; remove it or set file_exists_behavior to OVERWRITE or RETAIN",
			strings.Join(conflicts, ", "), more)
	}

	// Clean up what the previous revision installed and this one does not.
	for _, p := range prev {
		if newSet[p] {
			continue
		}
		if err := os.Remove(x.r.host(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s, installed by revision %s: %w", p, x.step.Previous.Revision, err)
		}
	}

	var installed, dirs []string
	for _, e := range plan {
		dst := x.r.host(e.dest)
		if e.mode.IsDir() {
			if err := mkdir(dst, e.mode.Perm()); err != nil {
				return err
			}
			dirs = append(dirs, e.dest)
			continue
		}
		if _, err := os.Lstat(dst); err == nil && !prevSet[e.dest] && behavior == appspec.FileExistsRetain {
			continue
		}
		if err := mkdir(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyEntry(e, dst); err != nil {
			return fmt.Errorf("installing %s: %w", e.dest, err)
		}
		installed = append(installed, e.dest)
	}
	slices.Sort(installed)
	installed = slices.Compact(installed)
	x.installed = installed
	return x.permissions(installed, dirs)
}

// plan lists what the appspec's files copy, in order; a later entry for the
// same destination wins.
func (x *run) plan() ([]entry, error) {
	var out []entry
	for i, f := range x.spec.Files {
		src := x.dir
		if !f.WholeBundle() {
			var err error
			if src, err = bundle.SafeJoin(x.dir, f.Source); err != nil {
				return nil, fmt.Errorf("files[%d].source: %w", i, err)
			}
		}
		fi, err := os.Lstat(src)
		if err != nil {
			return nil, fmt.Errorf("files[%d].source %q is not in the bundle", i, f.Source)
		}
		if !fi.IsDir() {
			out = append(out, entry{src, path.Join(f.Destination, filepath.Base(src)), fi.Mode()})
			continue
		}
		out = append(out, entry{src, f.Destination, fi.Mode()})
		err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == src {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			out = append(out, entry{p, path.Join(f.Destination, filepath.ToSlash(rel)), fi.Mode()})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
	}
	return out, nil
}

// mkdir creates dir and its missing parents; a directory it creates gets
// perm (parents 0755).
func mkdir(dir string, perm fs.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(dir, perm) // umask
}

// copyEntry copies a regular file or symbolic link to dst, replacing what is
// there: written to a temporary file next to dst and renamed over it.
func copyEntry(e entry, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".gantry-tmp")
	os.Remove(tmp)
	switch {
	case e.mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(e.src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, tmp); err != nil {
			return err
		}
	case e.mode.IsRegular():
		if err := copyFile(e.src, tmp, e.mode.Perm()); err != nil {
			os.Remove(tmp)
			return err
		}
	default:
		return fmt.Errorf("unsupported file type %s", e.mode.Type())
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(perm); err != nil { // umask
		out.Close()
		return err
	}
	return out.Close()
}

// permissions applies the appspec's permissions, in order, to the installed
// files and directories (absolute paths without DestRoot).
func (x *run) permissions(files, dirs []string) error {
	for i, p := range x.spec.Permissions {
		if len(p.ACLs) > 0 {
			return fmt.Errorf("permissions[%d] (%s): acls are not supported yet", i, p.Object)
		}
		if p.Context != nil {
			return fmt.Errorf("permissions[%d] (%s): SELinux context is not supported yet", i, p.Object)
		}
		uid, gid := -1, -1
		var err error
		if p.Owner != "" {
			if uid, err = lookupID(p.Owner, false); err != nil {
				return fmt.Errorf("permissions[%d] (%s): %w", i, p.Object, err)
			}
		}
		if p.Group != "" {
			if gid, err = lookupID(p.Group, true); err != nil {
				return fmt.Errorf("permissions[%d] (%s): %w", i, p.Object, err)
			}
		}
		mode, setMode := p.FileMode()
		apply := func(name string, isDir bool) error {
			want := appspec.TypeFile
			if isDir {
				want = appspec.TypeDirectory
			}
			if !slices.Contains(p.Type, want) || !selected(p, name) {
				return nil
			}
			h := x.r.host(name)
			if uid >= 0 || gid >= 0 {
				if err := os.Lchown(h, uid, gid); err != nil {
					return err
				}
			}
			if setMode {
				if fi, err := os.Lstat(h); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
					return err // links have no mode of their own
				}
				if err := os.Chmod(h, mode); err != nil {
					return err
				}
			}
			return nil
		}
		for _, d := range dirs {
			if err := apply(d, true); err != nil {
				return fmt.Errorf("permissions[%d]: %w", i, err)
			}
		}
		for _, f := range files {
			if err := apply(f, false); err != nil {
				return fmt.Errorf("permissions[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// selected reports whether the permission p applies to name: name is the
// object itself when the object is a file, or is under the object, matches
// the pattern and none of the excepts. See match for the pattern syntax.
func selected(p appspec.Permission, name string) bool {
	var rel string
	switch {
	case name == p.Object:
		rel = path.Base(name) // a file object: match its own name
	case strings.HasPrefix(name, strings.TrimSuffix(p.Object, "/")+"/"):
		rel = strings.TrimPrefix(name, strings.TrimSuffix(p.Object, "/")+"/")
	default:
		return false
	}
	if !match(p.Pattern, rel) {
		return false
	}
	for _, e := range p.Except {
		if match(e, rel) {
			return false
		}
	}
	return true
}

// match matches rel, a slash-separated path relative to a permission's
// object, against pattern. "**" as a whole component matches any number of
// components (zero included); other components are path.Match patterns. A
// pattern without a slash is matched against the last component only, so
// "*.sh" selects every .sh file at any depth.
func match(pattern, rel string) bool {
	if !strings.Contains(pattern, "/") && pattern != "**" {
		ok, _ := path.Match(pattern, path.Base(rel))
		return ok
	}
	return matchParts(strings.Split(pattern, "/"), strings.Split(rel, "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// lookupID resolves a user (or, with group, a group) name or numeric id.
func lookupID(name string, group bool) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	var id string
	if group {
		g, err := user.LookupGroup(name)
		if err != nil {
			return -1, fmt.Errorf("group %q does not exist on this host", name)
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return -1, fmt.Errorf("user %q does not exist on this host", name)
		}
		id = u.Uid
	}
	return strconv.Atoi(id)
}
