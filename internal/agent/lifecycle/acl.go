package lifecycle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// Revisions are private (0700, root's), but a hook with `runas` must reach
// its script, its working directory (the revision) and the revision's
// files. The runas users of a step, and only they, get a POSIX ACL entry:
// search (--x) on the directories above the revision (Runner.Traverse,
// Root, the application's directory) and read and search (r-x) on the
// revision directory whose hooks they run. Group and others get nothing
// more. Run resets the ACL of the application's directory, so a user of an
// earlier step of the application keeps no access to its revisions (Root's
// entries, search only, stay: clearing them could break a concurrent step
// of another application).

// aclXattr is the extended attribute holding a file's access ACL.
const aclXattr = "system.posix_acl_access"

// Tags and permissions of Linux's ACL extended attribute format
// (include/uapi/linux/posix_acl_xattr.h).
const (
	aclVersion   = 2
	aclUserObj   = 0x01
	aclUser      = 0x02
	aclGroupObj  = 0x04
	aclGroup     = 0x08
	aclMask      = 0x10
	aclOther     = 0x20
	aclUndefined = 0xFFFFFFFF

	permSearch = 1 // --x
	permRead   = 4 // r--
)

// aclEntry is one entry of an ACL.
type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// grantUsers adds (or widens) ACL entries giving each uid perm on path,
// keeping the entries already there, and recomputes the mask. The owner's,
// group's and others' permissions stay those of the mode.
func grantUsers(path string, perm uint16, uids []uint32) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	mode := uint16(fi.Mode().Perm())
	entries := map[[2]uint32]uint16{} // {tag, id} -> perm
	if b, err := getACL(path); err != nil {
		return err
	} else {
		for _, e := range decodeACL(b) {
			if e.tag == aclUser || e.tag == aclGroup {
				entries[[2]uint32{uint32(e.tag), e.id}] = e.perm
			}
		}
	}
	for _, u := range uids {
		entries[[2]uint32{aclUser, u}] |= perm
	}
	groupObj := mode >> 3 & 7
	mask := groupObj
	acl := []aclEntry{{aclUserObj, mode >> 6 & 7, aclUndefined}, {aclGroupObj, groupObj, aclUndefined}, {aclOther, mode & 7, aclUndefined}}
	for k, p := range entries {
		acl = append(acl, aclEntry{uint16(k[0]), p, k[1]})
		mask |= p
	}
	acl = append(acl, aclEntry{aclMask, mask, aclUndefined})
	slices.SortFunc(acl, func(a, b aclEntry) int {
		if a.tag != b.tag {
			return int(a.tag) - int(b.tag)
		}
		return int(int64(a.id) - int64(b.id))
	})
	if err := unix.Setxattr(path, aclXattr, encodeACL(acl), 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("the file system of %s does not support POSIX ACLs, which hooks with runas need to reach the revision", filepath.Dir(path))
		}
		return fmt.Errorf("set the ACL of %s: %w", path, err)
	}
	return nil
}

// clearACL removes path's extended ACL entries, if any.
func clearACL(path string) error {
	err := unix.Removexattr(path, aclXattr)
	if err == nil || errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return fmt.Errorf("clear the ACL of %s: %w", path, err)
}

// getACL returns path's ACL attribute, nil if it has none.
func getACL(path string) ([]byte, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Getxattr(path, aclXattr, buf)
		switch {
		case errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case err != nil:
			return nil, fmt.Errorf("read the ACL of %s: %w", path, err)
		}
		return buf[:n], nil
	}
}

func decodeACL(b []byte) []aclEntry {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != aclVersion {
		return nil
	}
	var out []aclEntry
	for b = b[4:]; len(b) >= 8; b = b[8:] {
		out = append(out, aclEntry{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])})
	}
	return out
}

func encodeACL(acl []aclEntry) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range acl {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}
