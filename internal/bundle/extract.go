package bundle

import (
	"archive/tar"
	"archive/zip"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Manifest lists what an extraction created, in path order. Paths are
// relative to the destination, slash-separated, in canonical form. The agent
// keeps it to remove, on the next deployment, the files a previous revision
// installed.
type Manifest struct {
	// Files are the regular files written.
	Files []File
	// Dirs are the directories created, explicit or implied by the paths
	// of other entries.
	Dirs []string
	// Links are the symbolic links created.
	Links []Link
}

// File is a regular file written by [Extract].
type File struct {
	// Path is the file's path relative to the destination.
	Path string
	// Size is the number of bytes written.
	Size int64
	// Mode holds the permission bits given to the file.
	Mode fs.FileMode
	// SHA256 is the lowercase hexadecimal SHA-256 of the content.
	SHA256 string
}

// Link is a symbolic link created by [Extract].
type Link struct {
	// Path is the link's path relative to the destination.
	Path string
	// Target is the (relative, cleaned) target the link points to.
	Target string
}

// ExtractFresh creates a new directory with a random name, "rev-*", in
// parent (which must exist) and extracts the archive into it with [Extract].
// On failure the new directory is removed and dir is "".
func ExtractFresh(parent string, a Archive, lim Limits) (dir string, m Manifest, err error) {
	dir, err = os.MkdirTemp(parent, "rev-*")
	if err != nil {
		return "", Manifest{}, fmt.Errorf("bundle: %w", err)
	}
	m, err = Extract(a, dir, lim)
	if err != nil {
		os.RemoveAll(dir)
		return "", Manifest{}, err
	}
	return dir, m, nil
}

// Extract unpacks the archive into dest, which must not exist yet (it is
// then created, mode 0700, in an existing parent) or be an empty directory.
//
// Refused, with an [*EntryError] naming the entry and the reason: names that
// are empty, absolute, contain a NUL byte, a backslash, or an empty, "." or
// ".." component (a leading "./" is accepted); a second entry for the same
// path; an entry below a symbolic link or a regular file of the archive
// (the "symlink, then write through it" attack); symbolic links whose target
// is absolute, resolves outside dest from the link's directory, or has a
// ".." after a normal component (whose meaning would depend on whether that
// component is itself a link: with "d" -> ".", "d/../x" is "../x"); every
// hard link, even to a file of the archive, since a bundle never needs one
// and refusing them all removes a whole class of attacks; devices, FIFOs,
// sockets, sparse and unknown entry types; encrypted zip entries;
// overlapping zip entries; archives that exceed the [Limits]. Link targets
// are stored cleaned ("./a//b" becomes "a/b").
//
// Files get the archive's permission bits masked with 0755: setuid, setgid,
// sticky and group/other write bits are dropped. Directories get the same,
// plus 0700 so that the agent can always clean them up. Ownership and
// modification times are not restored. Files are created with O_EXCL
// through an [os.Root] on dest, so no write can land outside dest even if
// the tree changes during extraction.
//
// On failure, whatever was created is removed: dest itself if Extract
// created it, its content otherwise; the Manifest is then empty.
func Extract(a Archive, dest string, lim Limits) (Manifest, error) {
	if a.r == nil {
		return Manifest{}, errors.New("bundle: zero Archive")
	}
	created, err := prepareDest(dest)
	if err != nil {
		return Manifest{}, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		if created {
			os.Remove(dest)
		}
		return Manifest{}, fmt.Errorf("bundle: %w", err)
	}
	x := &extractor{root: root, m: newMeter(a, lim), nodes: map[string]nodeKind{}, buf: make([]byte, 32<<10)}
	var xerr *EntryError
	switch a.format {
	case FormatTarGz:
		xerr = x.tarGz(a)
	case FormatZip:
		xerr = x.zip(a)
	default:
		xerr = &EntryError{Err: ErrFormat}
	}
	if xerr != nil {
		x.removeAll()
		root.Close()
		if created {
			os.Remove(dest)
		}
		return Manifest{}, xerr
	}
	root.Close()
	man := x.man
	slices.SortFunc(man.Files, func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	slices.Sort(man.Dirs)
	slices.SortFunc(man.Links, func(a, b Link) int { return cmp.Compare(a.Path, b.Path) })
	return man, nil
}

// prepareDest checks that dest is an empty directory or creates it.
func prepareDest(dest string) (created bool, err error) {
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dest, 0o700); err != nil {
			return false, fmt.Errorf("bundle: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("bundle: %w", err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("bundle: destination %s is not a directory", dest)
	}
	f, err := os.Open(dest)
	if err != nil {
		return false, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		if err == nil {
			return false, fmt.Errorf("bundle: destination %s is not empty", dest)
		}
		return false, fmt.Errorf("bundle: %w", err)
	}
	return false, nil
}

// nodeKind records what the extraction created at a path. Since dest starts
// empty and only the extractor writes to it, the map of nodes is the tree.
type nodeKind uint8

const (
	kindImplicitDir nodeKind = iota + 1
	kindDir
	kindFile
	kindLink
)

type extractor struct {
	root    *os.Root
	m       *meter
	nodes   map[string]nodeKind
	entries int
	man     Manifest
	buf     []byte
}

// removeAll removes everything created in dest, through the root.
func (x *extractor) removeAll() {
	d, err := x.root.Open(".")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		x.root.RemoveAll(n)
	}
}

// count counts one more entry against MaxEntries.
func (x *extractor) count(entry string) *EntryError {
	x.entries++
	if x.m.lim.MaxEntries > 0 && x.entries > x.m.lim.MaxEntries {
		return entryErr(entry, ErrLimit, "more than %d entries, counting implied directories (MaxEntries)", x.m.lim.MaxEntries)
	}
	return nil
}

// prepare checks that an entry of the given kind may be created at name
// and creates its missing parent directories.
func (x *extractor) prepare(entry, name string, kind nodeKind) *EntryError {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		p := name[:i]
		switch x.nodes[p] {
		case 0:
			if err := x.count(entry); err != nil {
				return err
			}
			if err := x.mkdir(entry, p, 0o755); err != nil {
				return err
			}
			x.nodes[p] = kindImplicitDir
			x.man.Dirs = append(x.man.Dirs, p)
		case kindLink:
			return entryErr(entry, ErrUnsafePath, "parent %q is a symbolic link: writing through it is refused", p)
		case kindFile:
			return entryErr(entry, ErrUnsafePath, "parent %q is a regular file", p)
		}
	}
	switch have := x.nodes[name]; {
	case have == 0:
	case have == kindImplicitDir && kind == kindDir:
	case have == kindImplicitDir:
		return entryErr(entry, ErrDuplicate, "%q is already a directory implied by earlier entries", name)
	default:
		return entryErr(entry, ErrDuplicate, "%q is already in the archive", name)
	}
	return nil
}

func (x *extractor) mkdir(entry, name string, perm fs.FileMode) *EntryError {
	if err := x.root.Mkdir(name, perm); err != nil {
		return &EntryError{Entry: entry, Err: err}
	}
	if err := x.root.Chmod(name, perm); err != nil { // umask
		return &EntryError{Entry: entry, Err: err}
	}
	return nil
}

// dir creates the directory entry name.
func (x *extractor) dir(entry, name string, perm fs.FileMode) *EntryError {
	perm = perm&0o755 | 0o700
	if err := x.prepare(entry, name, kindDir); err != nil {
		return err
	}
	if x.nodes[name] == kindImplicitDir {
		if err := x.root.Chmod(name, perm); err != nil {
			return &EntryError{Entry: entry, Err: err}
		}
	} else {
		if err := x.mkdir(entry, name, perm); err != nil {
			return err
		}
		x.man.Dirs = append(x.man.Dirs, name)
	}
	x.nodes[name] = kindDir
	return nil
}

// symlink creates the symbolic link entry name -> target.
func (x *extractor) symlink(entry, name, target string) *EntryError {
	clean, err := cleanLinkTarget(name, target)
	if err != nil {
		return withEntry(err, entry)
	}
	if err := x.prepare(entry, name, kindLink); err != nil {
		return err
	}
	if err := x.root.Symlink(clean, name); err != nil {
		return &EntryError{Entry: entry, Err: err}
	}
	x.nodes[name] = kindLink
	x.man.Links = append(x.man.Links, Link{Path: name, Target: clean})
	return nil
}

// file writes the regular file entry name from src. size is its size when
// known and trustworthy (tar), else -1.
func (x *extractor) file(entry, name string, perm fs.FileMode, src io.Reader, size int64) *EntryError {
	perm &= 0o755
	if size >= 0 {
		if err := x.m.checkDeclared(entry, size); err != nil {
			return err
		}
	}
	if err := x.prepare(entry, name, kindFile); err != nil {
		return err
	}
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &EntryError{Entry: entry, Err: err}
	}
	x.nodes[name] = kindFile // so that cleanup and later entries see it
	defer f.Close()
	h := sha256.New()
	var n int64
	for {
		k, rerr := src.Read(x.buf)
		if k > 0 {
			n += int64(k)
			if err := x.m.addContent(entry, int64(k), n); err != nil {
				return err
			}
			if _, err := f.Write(x.buf[:k]); err != nil {
				return &EntryError{Entry: entry, Err: err}
			}
			h.Write(x.buf[:k])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return x.m.fail(entry, rerr)
		}
	}
	if err := f.Chmod(perm); err != nil {
		return &EntryError{Entry: entry, Err: err}
	}
	if err := f.Close(); err != nil {
		return &EntryError{Entry: entry, Err: err}
	}
	x.man.Files = append(x.man.Files, File{Path: name, Size: n, Mode: perm, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// tarGz extracts a gzip-compressed tar stream.
func (x *extractor) tarGz(a Archive) *EntryError {
	gz, err := gzip.NewReader(io.NewSectionReader(x.m.in, 0, a.size))
	if err != nil {
		return &EntryError{Err: ErrCorrupt, Detail: "gzip: " + err.Error()}
	}
	defer gz.Close()
	stream := &streamReader{r: gz, m: x.m}
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return x.m.fail("", err)
		}
		x.m.entry = hdr.Name
		if err := x.count(hdr.Name); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader { // e.g. git archive's commit id
			continue
		}
		if err := x.tarEntry(tr, hdr); err != nil {
			return err
		}
	}
	// Read the rest of the stream, within the limits, so that gzip checks
	// the CRC of every member. Garbage after a complete member is ignored.
	x.m.entry = ""
	if _, err := io.CopyBuffer(io.Discard, stream, x.buf); err != nil && !errors.Is(err, gzip.ErrHeader) {
		return x.m.fail("", fmt.Errorf("after the end of the tar archive: %w", err))
	}
	return nil
}

func (x *extractor) tarEntry(tr *tar.Reader, hdr *tar.Header) *EntryError {
	name, isRoot, cerr := cleanEntryName(hdr.Name, hdr.Typeflag == tar.TypeDir)
	if cerr != nil {
		return withEntry(cerr, hdr.Name)
	}
	if isRoot {
		if hdr.Typeflag == tar.TypeDir {
			return nil // "./": dest itself
		}
		return entryErr(hdr.Name, ErrUnsafePath, "names the bundle root")
	}
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm
	switch hdr.Typeflag {
	case tar.TypeReg:
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return entryErr(hdr.Name, ErrEntryType, "sparse file")
			}
		}
		return x.file(hdr.Name, name, perm, tr, hdr.Size)
	case tar.TypeDir:
		return x.dir(hdr.Name, name, perm)
	case tar.TypeSymlink:
		return x.symlink(hdr.Name, name, hdr.Linkname)
	case tar.TypeLink:
		return entryErr(hdr.Name, ErrEntryType, "hard link to %q: hard links are refused", hdr.Linkname)
	case tar.TypeChar:
		return entryErr(hdr.Name, ErrEntryType, "character device")
	case tar.TypeBlock:
		return entryErr(hdr.Name, ErrEntryType, "block device")
	case tar.TypeFifo:
		return entryErr(hdr.Name, ErrEntryType, "named pipe (FIFO)")
	case tar.TypeGNUSparse:
		return entryErr(hdr.Name, ErrEntryType, "sparse file")
	default:
		return entryErr(hdr.Name, ErrEntryType, "tar type %q", hdr.Typeflag)
	}
}

// zip extracts a zip archive.
func (x *extractor) zip(a Archive) *EntryError {
	zr, err := openZip(x.m.in, a.size)
	if err != nil {
		return &EntryError{Err: ErrCorrupt, Detail: "zip: " + err.Error()}
	}
	lim := x.m.lim
	if lim.MaxEntries > 0 && len(zr.File) > lim.MaxEntries {
		return entryErr(zr.File[lim.MaxEntries].Name, ErrLimit, "archive has %d entries, more than %d (MaxEntries)", len(zr.File), lim.MaxEntries)
	}
	// Refuse early what the declared sizes already show to be too large.
	// They are not trusted otherwise: reads are metered.
	var total uint64
	for _, f := range zr.File {
		if !f.Mode().IsRegular() {
			continue
		}
		if lim.MaxFileBytes > 0 && f.UncompressedSize64 > uint64(lim.MaxFileBytes) {
			return entryErr(f.Name, ErrLimit, "declared size %d bytes is more than %d (MaxFileBytes)", f.UncompressedSize64, lim.MaxFileBytes)
		}
		total += f.UncompressedSize64
		if lim.MaxTotalBytes > 0 && total > uint64(lim.MaxTotalBytes) {
			return entryErr(f.Name, ErrLimit, "declared sizes total more than %d bytes (MaxTotalBytes)", lim.MaxTotalBytes)
		}
	}
	if err := checkZipLayout(zr, a.size); err != nil {
		return err
	}
	for _, f := range zr.File {
		x.m.entry = f.Name
		if err := x.count(f.Name); err != nil {
			return err
		}
		if err := x.zipEntry(f); err != nil {
			return err
		}
	}
	return nil
}

// checkZipLayout refuses entries whose compressed data lies past the end of
// the archive or overlaps another entry's (the overlapping-entries zip bomb).
func checkZipLayout(zr *zip.Reader, size int64) *EntryError {
	type span struct {
		start, end int64
		name       string
	}
	spans := make([]span, 0, len(zr.File))
	for _, f := range zr.File {
		off, err := f.DataOffset()
		if err != nil {
			return &EntryError{Entry: f.Name, Err: ErrCorrupt, Detail: "local header: " + err.Error()}
		}
		if f.CompressedSize64 > uint64(size) || off+int64(f.CompressedSize64) > size {
			return entryErr(f.Name, ErrCorrupt, "compressed data extends past the end of the archive")
		}
		if f.CompressedSize64 > 0 {
			spans = append(spans, span{off, off + int64(f.CompressedSize64), f.Name})
		}
	}
	slices.SortStableFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return entryErr(spans[i].name, ErrCorrupt, "data overlaps entry %q (overlapping entries: zip bomb)", spans[i-1].name)
		}
	}
	return nil
}

func (x *extractor) zipEntry(f *zip.File) *EntryError {
	mode := f.Mode()
	name, isRoot, cerr := cleanEntryName(f.Name, mode.IsDir())
	if cerr != nil {
		return withEntry(cerr, f.Name)
	}
	if isRoot {
		if mode.IsDir() {
			return nil
		}
		return entryErr(f.Name, ErrUnsafePath, "names the bundle root")
	}
	if f.Flags&0x1 != 0 {
		return entryErr(f.Name, ErrEntryType, "encrypted entry")
	}
	switch mode.Type() {
	case 0:
		rc, err := f.Open()
		if err != nil {
			return &EntryError{Entry: f.Name, Err: ErrCorrupt, Detail: err.Error()}
		}
		defer rc.Close()
		return x.file(f.Name, name, mode.Perm(), &zipData{r: rc, f: f}, -1)
	case fs.ModeDir:
		return x.dir(f.Name, name, mode.Perm())
	case fs.ModeSymlink:
		rc, err := f.Open()
		if err != nil {
			return &EntryError{Entry: f.Name, Err: ErrCorrupt, Detail: err.Error()}
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(&zipData{r: rc, f: f}, maxLinkTarget+1))
		if err != nil {
			return x.m.fail(f.Name, err)
		}
		if len(b) > maxLinkTarget {
			return entryErr(f.Name, ErrUnsafeLink, "target longer than %d bytes", maxLinkTarget)
		}
		return x.symlink(f.Name, name, string(b))
	default:
		return entryErr(f.Name, ErrEntryType, "%s", describeType(mode))
	}
}

// describeType names a special file type.
func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	default:
		return "irregular file"
	}
}

// zipData names the failure of archive/zip when an entry's data is longer
// than the size its header declares.
type zipData struct {
	r io.Reader
	f *zip.File
	n uint64
}

func (z *zipData) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.n += uint64(n)
	if errors.Is(err, zip.ErrFormat) { // archive/zip's check of the declared size
		err = entryErr(z.f.Name, ErrCorrupt, "data is larger than its declared size of %d bytes (zip bomb?)", z.f.UncompressedSize64)
	}
	return n, err
}
