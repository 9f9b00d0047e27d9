package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinkHops bounds the symbolic links SafeJoin follows (Linux's limit).
const maxLinkHops = 40

// SafeJoin joins the relative path rel (e.g. an appspec hook's location) to
// the directory root and returns the joined, cleaned path. It refuses, with
// an error wrapping [ErrUnsafePath], an empty or absolute rel, a NUL byte or
// a backslash in it, and any rel that resolves outside root, lexically or
// through symbolic links inside root: each existing component is examined
// (through an [os.Root]) and links are followed, and a link with an
// absolute target is refused even if it points back inside root. Components
// that do not exist are resolved lexically; root itself is trusted and must
// exist.
func SafeJoin(root, rel string) (string, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("bundle: path %q: %w: %s", rel, ErrUnsafePath, fmt.Sprintf(format, args...))
	}
	switch {
	case rel == "":
		return "", refuse("empty")
	case strings.IndexByte(rel, 0) >= 0:
		return "", refuse("contains a NUL byte")
	case strings.IndexByte(rel, '\\') >= 0:
		return "", refuse("contains a backslash")
	case path.IsAbs(rel):
		return "", refuse("absolute path")
	}
	clean := path.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", refuse("outside the root")
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	defer r.Close()

	var resolved []string // real directories from root, then missing names
	todo := strings.Split(clean, "/")
	hops := 0
	missingAt := -1 // index in resolved of the first component that does not exist
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "", refuse("resolves outside the root")
			}
			resolved = resolved[:len(resolved)-1]
			if len(resolved) <= missingAt {
				missingAt = -1 // back among existing directories
			}
			continue
		}
		if missingAt >= 0 {
			resolved = append(resolved, c)
			continue
		}
		cur := path.Join(append(resolved, c)...)
		fi, err := r.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			missingAt = len(resolved)
			resolved = append(resolved, c)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("bundle: path %q: %w", rel, err)
		}
		if fi.Mode().Type() != fs.ModeSymlink {
			resolved = append(resolved, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", refuse("too many levels of symbolic links")
		}
		target, err := r.Readlink(cur)
		if err != nil {
			return "", fmt.Errorf("bundle: path %q: %w", rel, err)
		}
		if target == "" || path.IsAbs(target) {
			return "", refuse("symbolic link %q has absolute target %q", cur, target)
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(root, filepath.FromSlash(clean)), nil
}
