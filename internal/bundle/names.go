package bundle

import (
	"path"
	"strings"
)

// maxLinkTarget bounds the length of a symbolic link target (PATH_MAX - 1).
const maxLinkTarget = 4095

// cleanEntryName checks an archive entry name and returns its canonical
// form: slash-separated, relative, without leading "./" or trailing "/".
// isRoot reports a name that denotes the bundle root itself (".", "./").
// The returned error has no Entry set; callers add it.
func cleanEntryName(raw string, isDir bool) (name string, isRoot bool, err *EntryError) {
	switch {
	case raw == "":
		return "", false, entryErr("", ErrUnsafePath, "empty name")
	case strings.IndexByte(raw, 0) >= 0:
		return "", false, entryErr("", ErrUnsafePath, "name contains a NUL byte")
	case strings.IndexByte(raw, '\\') >= 0:
		return "", false, entryErr("", ErrUnsafePath, "name contains a backslash")
	case raw[0] == '/':
		return "", false, entryErr("", ErrUnsafePath, "absolute path")
	}
	name = raw
	if strings.HasSuffix(name, "/") {
		if !isDir {
			return "", false, entryErr("", ErrUnsafePath, "trailing slash on a non-directory")
		}
		name = name[:len(name)-1]
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if name == "" || name == "." {
		return "", true, nil
	}
	if err := checkComponents(name); err != nil {
		return "", false, err
	}
	return name, false, nil
}

// checkComponents refuses empty, "." and ".." components.
func checkComponents(name string) *EntryError {
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "":
			return entryErr("", ErrUnsafePath, "empty path component")
		case ".":
			return entryErr("", ErrUnsafePath, `"." path component`)
		case "..":
			return entryErr("", ErrUnsafePath, `name has a ".." component`)
		}
	}
	return nil
}

// cleanLinkTarget checks the target of a symbolic link at the canonical
// entry name link and returns the target in clean form.
//
// The target must be relative, must not contain a ".." component after a
// normal one (so that its meaning cannot depend on whether that component
// is itself a symbolic link: with "d" -> ".", "d/../x" names "../x"), and,
// resolved from the directory holding the link, must stay inside the
// bundle. Because entries are never created below a symbolic link, the
// directory holding a link is a real directory, so the leading ".."
// components climb real directories and the physical resolution is the
// lexical one; by induction over the links it descends through, every link
// accepted here resolves inside the bundle.
func cleanLinkTarget(link, target string) (string, *EntryError) {
	switch {
	case target == "":
		return "", entryErr("", ErrUnsafeLink, "empty target")
	case len(target) > maxLinkTarget:
		return "", entryErr("", ErrUnsafeLink, "target longer than %d bytes", maxLinkTarget)
	case strings.IndexByte(target, 0) >= 0:
		return "", entryErr("", ErrUnsafeLink, "target contains a NUL byte")
	case strings.IndexByte(target, '\\') >= 0:
		return "", entryErr("", ErrUnsafeLink, "target %q contains a backslash", target)
	case target[0] == '/':
		return "", entryErr("", ErrUnsafeLink, "absolute target %q", target)
	}
	seenNormal := false
	for c := range strings.SplitSeq(target, "/") {
		switch c {
		case "", ".":
		case "..":
			if seenNormal {
				return "", entryErr("", ErrUnsafeLink, `target %q has a ".." after a normal component`, target)
			}
		default:
			seenNormal = true
		}
	}
	clean := path.Clean(target)
	resolved := path.Join(path.Dir(link), clean)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return "", entryErr("", ErrUnsafeLink, "target %q resolves outside the bundle", target)
	}
	return clean, nil
}

// withEntry sets the entry of an error made by the helpers above.
func withEntry(e *EntryError, entry string) *EntryError {
	e.Entry = entry
	return e
}
