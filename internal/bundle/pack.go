package bundle

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// packTime is the modification time of every entry Pack writes.
var packTime = time.Unix(0, 0).UTC()

// Pack writes a deterministic .tar.gz of the directory dir to w and returns
// the digest of the bytes written.
//
// Entries are written in the lexical order of fs.WalkDir (parents before
// children), with slash-separated relative names (directories end in "/"),
// modification time 1970-01-01, uid and gid 0 and no user or group names.
// Permission bits are kept, masked with 0755 as [Extract] does: setuid,
// setgid, sticky and group/other write bits are dropped. So the same content
// (names, bytes, permissions, link targets) gives the same bytes, and the
// same digest, with the same build of gantry (a new version of
// compress/flate could compress differently).
//
// Regular files, directories and symbolic links whose target stays inside
// dir are packed; special files (devices, FIFOs, sockets), symbolic links
// that are absolute or escape dir and names [Extract] would refuse (e.g.
// with a backslash) are refused with an error naming the path. Pack reads
// dir through an [os.Root]; dir itself may be a symbolic link.
func Pack(dir string, w io.Writer) (Digest, error) { return PackFiltered(dir, w, nil) }

// PackFiltered is Pack without the entries for which skip returns true
// (rel is slash-separated and relative to dir; a skipped directory is not
// entered). A nil skip packs everything.
func PackFiltered(dir string, w io.Writer, skip func(rel string, isDir bool) bool) (Digest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("bundle: pack: %w", err)
	}
	defer root.Close()
	h := sha256.New()
	gz, err := gzip.NewWriterLevel(io.MultiWriter(w, h), gzip.BestCompression)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	fsys := root.FS()
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if skip != nil && skip(p, d.IsDir()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		return packEntry(root, fsys, tw, p, d)
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		var pe *PackError
		if errors.As(err, &pe) {
			return "", err
		}
		return "", fmt.Errorf("bundle: pack %s: %w", dir, err)
	}
	return Digest(hex.EncodeToString(h.Sum(nil))), nil
}

// PackError reports a file of the directory that Pack refuses to pack.
type PackError struct {
	// Path is the file's path relative to the packed directory.
	Path string
	// Err is ErrUnsafeLink, ErrUnsafePath, ErrEntryType or an I/O error.
	Err error
	// Detail explains the refusal.
	Detail string
}

// Error returns `bundle: pack: "<path>": <category>: <detail>`.
func (e *PackError) Error() string {
	s := fmt.Sprintf("bundle: pack: %q: %v", e.Path, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the category or the I/O error.
func (e *PackError) Unwrap() error { return e.Err }

func packEntry(root *os.Root, fsys fs.FS, tw *tar.Writer, p string, d fs.DirEntry) error {
	refuse := func(e *EntryError) error { return &PackError{Path: p, Err: e.Err, Detail: e.Detail} }
	fi, err := d.Info()
	if err != nil {
		return &PackError{Path: p, Err: err}
	}
	if _, _, cerr := cleanEntryName(p, false); cerr != nil {
		return refuse(cerr)
	}
	hdr := &tar.Header{
		Name:    p,
		Mode:    int64(fi.Mode().Perm() & 0o755),
		ModTime: packTime,
		Format:  tar.FormatPAX,
	}
	switch fi.Mode().Type() {
	case fs.ModeDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case fs.ModeSymlink:
		target, err := root.Readlink(p)
		if err != nil {
			return &PackError{Path: p, Err: err}
		}
		if _, cerr := cleanLinkTarget(p, target); cerr != nil {
			return refuse(cerr)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		hdr.Mode = 0o777
		return tw.WriteHeader(hdr)
	case 0:
		f, err := fsys.Open(p)
		if err != nil {
			return &PackError{Path: p, Err: err}
		}
		defer f.Close()
		// Stat the opened file: it is what is read.
		ofi, err := f.Stat()
		if err != nil {
			return &PackError{Path: p, Err: err}
		}
		if !ofi.Mode().IsRegular() {
			return &PackError{Path: p, Err: ErrEntryType, Detail: "changed while packing"}
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = ofi.Size()
		hdr.Mode = int64(ofi.Mode().Perm() & 0o755)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if n, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return &PackError{Path: p, Err: err, Detail: fmt.Sprintf("read %d of %d bytes (file changed while packing?)", n, hdr.Size)}
		}
		return nil
	default:
		return &PackError{Path: p, Err: ErrEntryType, Detail: describeType(fi.Mode()) + " cannot be packed"}
	}
}
