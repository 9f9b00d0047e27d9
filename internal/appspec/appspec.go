package appspec

import (
	"io/fs"
	"strconv"
	"time"
)

// Version is the only appspec.yml version there is.
const Version = "0.0"

// OSLinux is the only operating system gantry deploys to.
const OSLinux = "linux"

// The values of file_exists_behavior: what to do with a file that an install
// would write but that already exists and was not installed by the previous
// revision.
const (
	// FileExistsDisallow fails the deployment (the default).
	FileExistsDisallow = "DISALLOW"
	// FileExistsOverwrite replaces the file with the bundle's.
	FileExistsOverwrite = "OVERWRITE"
	// FileExistsRetain keeps the file on the host and skips the bundle's.
	FileExistsRetain = "RETAIN"
)

// Defaults filled in by Parse.
const (
	// DefaultPattern is the permissions pattern when none is given: every
	// file and directory under the object.
	DefaultPattern = "**"
	// DefaultTimeout is a hook script's timeout when none is given.
	DefaultTimeout = time.Hour
	// MaxTimeout is the longest timeout a hook script may be given.
	MaxTimeout = time.Hour
	// MaxEventTimeout is the longest the scripts of one lifecycle event may
	// run all together; an executor fails the event when they run longer.
	MaxEventTimeout = time.Hour
)

// The permissions types.
const (
	// TypeFile applies a permission to files.
	TypeFile = "file"
	// TypeDirectory applies a permission to directories.
	TypeDirectory = "directory"
)

// AppSpec is a parsed and validated appspec.yml, with defaults filled in.
type AppSpec struct {
	// Version is always "0.0".
	Version string
	// OS is always "linux".
	OS string
	// Files are the bundle's files to install, in the file's order.
	Files []File
	// FileExistsBehavior is FileExistsDisallow (the default),
	// FileExistsOverwrite or FileExistsRetain.
	FileExistsBehavior string
	// Permissions are applied, in order, to installed files.
	Permissions []Permission
	// Hooks maps a lifecycle event that takes scripts to its scripts, in the
	// order they run. It is never nil; events without scripts are absent.
	Hooks map[string][]Hook
}

// File is one entry of files: what to copy from the bundle, and where to.
type File struct {
	// Source is the path in the bundle, relative to its root, cleaned and
	// without a leading slash; "." is the whole bundle (written / or .).
	Source string
	// Destination is the directory on the host the source is copied into:
	// a clean absolute path, without a trailing slash except for "/".
	Destination string
}

// WholeBundle reports whether f copies the whole bundle.
func (f File) WholeBundle() bool { return f.Source == "." }

// Permission is one entry of permissions: the owner, group, mode, ACL and
// SELinux context to give to installed files under Object.
type Permission struct {
	// Object is the clean absolute path of the file or directory the
	// permission applies to (and, for a directory, to what is under it).
	Object string
	// Pattern selects names under Object; DefaultPattern when not given.
	Pattern string
	// Except are patterns of names under Object to leave alone.
	Except []string
	// Type lists what the permission applies to: TypeFile, TypeDirectory or
	// both (the default, in that order).
	Type []string
	// Owner is the user name (or numeric id) to give ownership to; "" leaves
	// it alone.
	Owner string
	// Group is the group name (or numeric id); "" leaves it alone.
	Group string
	// Mode is the mode as four octal digits, e.g. "0644" or "4755"; "" leaves
	// the mode alone. See FileMode.
	Mode string
	// ACLs are setfacl-style entries, e.g. "u:bob:rw" or "d:g:ops:rx".
	ACLs []string
	// Context is the SELinux context; nil leaves it alone.
	Context *Context
}

// FileMode returns Mode as an fs.FileMode, with the setuid, setgid and
// sticky bits mapped to fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky, and
// false when the permission sets no mode.
func (p Permission) FileMode() (fs.FileMode, bool) {
	if p.Mode == "" {
		return 0, false
	}
	bits, err := strconv.ParseUint(p.Mode, 8, 32)
	if err != nil {
		return 0, false // Parse only lets valid modes through
	}
	m := fs.FileMode(bits & 0o777)
	if bits&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if bits&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if bits&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, true
}

// Context is an SELinux security context, as in permissions[].context.
type Context struct {
	// User is the SELinux user, e.g. "unconfined_u"; may be empty.
	User string
	// Type is the SELinux type, e.g. "httpd_sys_content_t"; always set.
	Type string
	// Range is the MLS/MCS range, e.g. "s0-s0:c0.c1023"; may be empty.
	Range string
}

// Hook is one script of a lifecycle event.
type Hook struct {
	// Location is the script's path in the bundle, relative to its root and
	// cleaned.
	Location string
	// Timeout is how long the script may run: DefaultTimeout unless given.
	Timeout time.Duration
	// RunAs is the user to run the script as; "" means the agent's user.
	RunAs string
}

// HookScripts returns the scripts of event, in the order they run, or nil
// when it has none.
func (s *AppSpec) HookScripts(event string) []Hook {
	if s == nil {
		return nil
	}
	return s.Hooks[event]
}
