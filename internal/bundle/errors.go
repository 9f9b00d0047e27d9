package bundle

import (
	"errors"
	"fmt"
)

// Categories of refusal. An [*EntryError] unwraps to one of them (or to the
// underlying I/O error), so callers can test with [errors.Is].
var (
	// ErrUnsafePath marks an entry name or path that is absolute, escapes
	// its root, goes through a symbolic link or is otherwise not acceptable.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrUnsafeLink marks a symbolic link whose target is absolute or
	// resolves outside the bundle.
	ErrUnsafeLink = errors.New("unsafe symbolic link")
	// ErrEntryType marks an entry of a type bundles may not contain: hard
	// link, device, FIFO, socket, sparse or unknown.
	ErrEntryType = errors.New("unsupported entry type")
	// ErrDuplicate marks a second entry for a path already in the archive.
	ErrDuplicate = errors.New("duplicate entry")
	// ErrLimit marks an archive that exceeds one of the [Limits].
	ErrLimit = errors.New("limit exceeded")
	// ErrCorrupt marks an archive that is malformed or inconsistent.
	ErrCorrupt = errors.New("corrupt archive")
	// ErrFormat marks data that is neither a .tar.gz nor a .zip.
	ErrFormat = errors.New("not a .tar.gz or .zip bundle")
)

// EntryError reports why an archive entry (or, when Entry is empty, the
// archive as a whole) was refused or could not be unpacked.
type EntryError struct {
	// Entry is the entry name as stored in the archive, possibly hostile;
	// it is quoted with %q in Error. Empty for the archive as a whole.
	Entry string
	// Err is the category (ErrUnsafePath, ErrUnsafeLink, ErrEntryType,
	// ErrDuplicate, ErrLimit, ErrCorrupt) or the underlying I/O error.
	Err error
	// Detail explains the refusal, e.g. `name has a ".." component`.
	Detail string
}

// Error returns `bundle: entry "<name>": <category>: <detail>`.
func (e *EntryError) Error() string {
	what := "archive"
	if e.Entry != "" {
		what = fmt.Sprintf("entry %q", e.Entry)
	}
	switch {
	case e.Err == nil:
		return "bundle: " + what + ": " + e.Detail
	case e.Detail == "":
		return "bundle: " + what + ": " + e.Err.Error()
	default:
		return "bundle: " + what + ": " + e.Err.Error() + ": " + e.Detail
	}
}

// Unwrap returns the category or the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

func entryErr(entry string, kind error, format string, args ...any) *EntryError {
	return &EntryError{Entry: entry, Err: kind, Detail: fmt.Sprintf(format, args...)}
}
