package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Format is the container format of a bundle archive.
type Format int

// Archive formats recognised by [Detect].
const (
	// FormatUnknown is the zero Format.
	FormatUnknown Format = iota
	// FormatTarGz is a gzip-compressed tar archive (.tar.gz, .tgz).
	FormatTarGz
	// FormatZip is a zip archive.
	FormatZip
)

// String returns "tar.gz", "zip" or "unknown".
func (f Format) String() string {
	switch f {
	case FormatTarGz:
		return "tar.gz"
	case FormatZip:
		return "zip"
	default:
		return "unknown"
	}
}

// Archive is a bundle archive whose format has been recognised by [Open] or
// [Detect]. It is a small value; copies share the underlying reader. The
// zero Archive is invalid.
type Archive struct {
	r      io.ReaderAt
	size   int64
	format Format
	file   *os.File // set by Open, closed by Close
}

// Format returns the archive's container format.
func (a Archive) Format() Format { return a.format }

// Size returns the size of the archive in bytes.
func (a Archive) Size() int64 { return a.size }

// Close closes the file opened by [Open]; it does nothing for an Archive
// made by [Detect], whose reader belongs to the caller.
func (a Archive) Close() error {
	if a.file == nil {
		return nil
	}
	return a.file.Close()
}

// Digest returns the SHA-256 of the archive's bytes, to compare with the
// digest the bundle was stored under.
func (a Archive) Digest() (Digest, error) {
	if a.r == nil {
		return "", errors.New("bundle: zero Archive")
	}
	return DigestOf(io.NewSectionReader(a.r, 0, a.size))
}

// Open opens the archive file at path and recognises its format by content,
// whatever its extension. The caller must Close the returned Archive.
func Open(path string) (Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return Archive{}, fmt.Errorf("bundle: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return Archive{}, fmt.Errorf("bundle: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		if fi.IsDir() {
			return Archive{}, fmt.Errorf("bundle: %s is a directory, not an archive (use Pack)", path)
		}
		return Archive{}, fmt.Errorf("bundle: %s is not a regular file", path)
	}
	a, err := Detect(f, fi.Size())
	if err != nil {
		f.Close()
		return Archive{}, fmt.Errorf("%w (%s)", err, path)
	}
	a.file = f
	return a, nil
}

// Detect recognises the format of the size bytes readable from r by their
// content: gzip magic (1f 8b) for .tar.gz, whose first tar header must also
// parse, and "PK\x03\x04" or "PK\x05\x06" (empty archive) for .zip, whose
// central directory must parse. Anything else is an error wrapping
// [ErrFormat]. r must stay readable while the Archive is in use.
func Detect(r io.ReaderAt, size int64) (Archive, error) {
	if r == nil || size < 0 {
		return Archive{}, errors.New("bundle: Detect: no reader")
	}
	var magic [4]byte
	n, err := r.ReadAt(magic[:], 0)
	if n < len(magic) {
		if err != nil && err != io.EOF {
			return Archive{}, fmt.Errorf("bundle: reading archive: %w", err)
		}
		return Archive{}, fmt.Errorf("bundle: %w: only %d bytes", ErrFormat, size)
	}
	switch {
	case magic[0] == 0x1f && magic[1] == 0x8b:
		if err := checkTarGz(r, size); err != nil {
			return Archive{}, err
		}
		return Archive{r: r, size: size, format: FormatTarGz}, nil
	case bytes.Equal(magic[:], []byte("PK\x03\x04")), bytes.Equal(magic[:], []byte("PK\x05\x06")):
		if _, err := openZip(r, size); err != nil {
			return Archive{}, fmt.Errorf("bundle: %w: zip: %v", ErrFormat, err)
		}
		return Archive{r: r, size: size, format: FormatZip}, nil
	}
	var ustar [5]byte
	if n, _ := r.ReadAt(ustar[:], 257); n == len(ustar) && string(ustar[:]) == "ustar" {
		return Archive{}, fmt.Errorf("bundle: %w: uncompressed tar is not supported, gzip it", ErrFormat)
	}
	return Archive{}, fmt.Errorf("bundle: %w: unrecognised content (starts with % x)", ErrFormat, magic)
}

// checkTarGz checks that the gzip stream starts with a tar header (or is an
// empty tar archive), reading at most a few blocks of it.
func checkTarGz(r io.ReaderAt, size int64) error {
	gz, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return fmt.Errorf("bundle: %w: gzip: %v", ErrFormat, err)
	}
	defer gz.Close()
	// A tar header with PAX records may be up to about 1 MiB; cap the read.
	tr := tar.NewReader(io.LimitReader(gz, 2<<20))
	if _, err := tr.Next(); err != nil && err != io.EOF && !errors.Is(err, tar.ErrInsecurePath) {
		return fmt.Errorf("bundle: %w: gzip stream is not a tar archive: %v", ErrFormat, err)
	}
	return nil
}

// openZip parses the zip central directory. It ignores ErrInsecurePath
// (reported under GODEBUG=zipinsecurepath=0): names are checked here.
func openZip(r io.ReaderAt, size int64) (*zip.Reader, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, err
	}
	return zr, nil
}

// DefaultReadFileMax is the size limit ReadFile applies when max <= 0.
const DefaultReadFileMax = 1 << 20

// ReadFile returns the content of the regular file name (e.g. "appspec.yml")
// in the archive without extracting anything. Entry names are compared in
// canonical form, so "./appspec.yml" matches "appspec.yml". A missing entry
// is an error wrapping [fs.ErrNotExist]; an entry that is not a regular file,
// is present twice or is larger than max bytes (DefaultReadFileMax when max
// <= 0) is an error. Scanning a .tar.gz is bounded by the default [Limits].
func ReadFile(a Archive, name string, max int64) ([]byte, error) {
	if a.r == nil {
		return nil, errors.New("bundle: zero Archive")
	}
	want, isRoot, cerr := cleanEntryName(name, false)
	if cerr != nil {
		return nil, withEntry(cerr, name)
	}
	if isRoot {
		return nil, entryErr(name, ErrUnsafePath, "names the bundle root")
	}
	if max <= 0 {
		max = DefaultReadFileMax
	}
	switch a.format {
	case FormatTarGz:
		return readFileTarGz(a, name, want, max)
	case FormatZip:
		return readFileZip(a, name, want, max)
	}
	return nil, fmt.Errorf("bundle: %w", ErrFormat)
}

func readFileTarGz(a Archive, name, want string, max int64) ([]byte, error) {
	m := newMeter(a, DefaultLimits())
	gz, err := gzip.NewReader(io.NewSectionReader(m.in, 0, a.size))
	if err != nil {
		return nil, &EntryError{Err: ErrCorrupt, Detail: "gzip: " + err.Error()}
	}
	defer gz.Close()
	tr := tar.NewReader(&streamReader{r: gz, m: m})
	for entries := 1; ; entries++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return nil, m.fail("", err)
		}
		if m.lim.MaxEntries > 0 && entries > m.lim.MaxEntries {
			return nil, entryErr(hdr.Name, ErrLimit, "more than %d entries (MaxEntries)", m.lim.MaxEntries)
		}
		got, _, cerr := cleanEntryName(hdr.Name, hdr.Typeflag == tar.TypeDir)
		if cerr != nil || got != want {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, entryErr(hdr.Name, ErrEntryType, "not a regular file")
		}
		if hdr.Size > max {
			return nil, entryErr(hdr.Name, ErrLimit, "%d bytes, more than %d", hdr.Size, max)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, m.fail(hdr.Name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("bundle: %q not in archive: %w", name, fs.ErrNotExist)
}

func readFileZip(a Archive, name, want string, max int64) ([]byte, error) {
	zr, err := openZip(a.r, a.size)
	if err != nil {
		return nil, &EntryError{Err: ErrCorrupt, Detail: "zip: " + err.Error()}
	}
	var found *zip.File
	for _, f := range zr.File {
		got, _, cerr := cleanEntryName(f.Name, f.Mode().IsDir())
		if cerr != nil || got != want {
			continue
		}
		if found != nil {
			return nil, entryErr(f.Name, ErrDuplicate, "%q is already in the archive", found.Name)
		}
		found = f
	}
	if found == nil {
		return nil, fmt.Errorf("bundle: %q not in archive: %w", name, fs.ErrNotExist)
	}
	if !found.Mode().IsRegular() {
		return nil, entryErr(found.Name, ErrEntryType, "not a regular file")
	}
	if found.UncompressedSize64 > uint64(max) {
		return nil, entryErr(found.Name, ErrLimit, "declared size %d bytes, more than %d", found.UncompressedSize64, max)
	}
	rc, err := found.Open()
	if err != nil {
		return nil, &EntryError{Entry: found.Name, Err: ErrCorrupt, Detail: err.Error()}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, &EntryError{Entry: found.Name, Err: ErrCorrupt, Detail: err.Error()}
	}
	if int64(len(b)) > max {
		return nil, entryErr(found.Name, ErrLimit, "more than %d bytes", max)
	}
	return b, nil
}
