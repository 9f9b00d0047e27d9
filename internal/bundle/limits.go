package bundle

import (
	"errors"
	"fmt"
	"io"
)

// Default limits applied by [Extract] to a zero field of [Limits].
const (
	// DefaultMaxTotalBytes is the default of Limits.MaxTotalBytes (and so of
	// MaxFileBytes): 1 GiB of file content.
	DefaultMaxTotalBytes = 1 << 30
	// DefaultMaxEntries is the default of Limits.MaxEntries.
	DefaultMaxEntries = 50_000
	// DefaultMaxRatio is the default of Limits.MaxRatio.
	DefaultMaxRatio = 100
)

// ratioSlack is the expansion allowed before MaxRatio applies, so that small
// bundles of very compressible text are not refused.
const ratioSlack = 1 << 20

// Limits bound what one extraction may produce. They are checked while the
// archive is streamed, before the data is written, so that a decompression
// bomb stops early. A zero field takes its default; a negative field
// disables that limit.
type Limits struct {
	// MaxTotalBytes bounds the total content of the regular files
	// (default 1 GiB). For a .tar.gz it also bounds the decompressed tar
	// stream, with an allowance of 64 MiB plus 4 KiB per allowed entry for
	// headers.
	MaxTotalBytes int64
	// MaxEntries bounds the number of entries, counting the directories
	// implied by the paths of other entries (default 50,000).
	MaxEntries int
	// MaxFileBytes bounds the content of one regular file (default
	// MaxTotalBytes).
	MaxFileBytes int64
	// MaxRatio bounds the number of bytes produced (decompressed stream or
	// file content, whichever is larger) per byte of the archive read so far
	// (default 100). The first 1 MiB is exempt.
	MaxRatio float64
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		MaxTotalBytes: DefaultMaxTotalBytes,
		MaxEntries:    DefaultMaxEntries,
		MaxFileBytes:  DefaultMaxTotalBytes,
		MaxRatio:      DefaultMaxRatio,
	}
}

// normalized applies the defaults; in the result, a value <= 0 means no
// limit.
func (l Limits) normalized() Limits {
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = l.MaxTotalBytes
	}
	if l.MaxRatio == 0 {
		l.MaxRatio = DefaultMaxRatio
	}
	return l
}

// countingReaderAt counts the archive bytes read, the denominator of the
// expansion ratio.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// meter tracks what an extraction has read and produced against its limits.
type meter struct {
	lim       Limits
	in        *countingReaderAt
	stream    int64 // decompressed tar stream bytes (tar.gz only)
	streamMax int64 // <= 0: none
	content   int64 // regular file bytes produced
	entry     string
	err       *EntryError // sticky error of the stream reader
}

func newMeter(a Archive, lim Limits) *meter {
	lim = lim.normalized()
	m := &meter{lim: lim, in: &countingReaderAt{r: a.r}}
	if lim.MaxTotalBytes > 0 && lim.MaxEntries > 0 {
		m.streamMax = lim.MaxTotalBytes + 64<<20 + 4096*int64(lim.MaxEntries)
	}
	return m
}

// checkRatio refuses an expansion above MaxRatio.
func (m *meter) checkRatio(entry string) *EntryError {
	out := max(m.stream, m.content)
	if m.lim.MaxRatio > 0 && out > ratioSlack && float64(out) > m.lim.MaxRatio*float64(m.in.n) {
		return entryErr(entry, ErrLimit, "expansion ratio above %g: %d bytes from %d archive bytes read (MaxRatio)", m.lim.MaxRatio, out, m.in.n)
	}
	return nil
}

// addContent accounts for n more bytes of the regular file entry, of which
// fileSoFar have now been produced, and refuses if a limit is crossed.
func (m *meter) addContent(entry string, n, fileSoFar int64) *EntryError {
	m.content += n
	if m.lim.MaxFileBytes > 0 && fileSoFar > m.lim.MaxFileBytes {
		return entryErr(entry, ErrLimit, "file larger than %d bytes (MaxFileBytes)", m.lim.MaxFileBytes)
	}
	if m.lim.MaxTotalBytes > 0 && m.content > m.lim.MaxTotalBytes {
		return entryErr(entry, ErrLimit, "content larger than %d bytes in total (MaxTotalBytes)", m.lim.MaxTotalBytes)
	}
	return m.checkRatio(entry)
}

// checkDeclared refuses, before reading it, a file whose size is known to
// exceed a limit.
func (m *meter) checkDeclared(entry string, size int64) *EntryError {
	if m.lim.MaxFileBytes > 0 && size > m.lim.MaxFileBytes {
		return entryErr(entry, ErrLimit, "size %d bytes is more than %d (MaxFileBytes)", size, m.lim.MaxFileBytes)
	}
	if m.lim.MaxTotalBytes > 0 && size > m.lim.MaxTotalBytes-m.content {
		return entryErr(entry, ErrLimit, "size %d bytes brings the content over %d bytes (MaxTotalBytes)", size, m.lim.MaxTotalBytes)
	}
	return nil
}

// fail turns an error met while reading the archive into an *EntryError,
// preferring a limit the stream reader hit.
func (m *meter) fail(entry string, err error) *EntryError {
	if m.err != nil {
		return m.err
	}
	var ee *EntryError
	if errors.As(err, &ee) {
		return ee
	}
	if entry == "" && m.entry != "" {
		return &EntryError{Err: ErrCorrupt, Detail: fmt.Sprintf("after entry %q: %v", m.entry, err)}
	}
	return &EntryError{Entry: entry, Err: ErrCorrupt, Detail: err.Error()}
}

// streamReader meters the decompressed tar stream.
type streamReader struct {
	r io.Reader
	m *meter
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.m.err != nil {
		return 0, s.m.err
	}
	n, err := s.r.Read(p)
	s.m.stream += int64(n)
	if s.m.streamMax > 0 && s.m.stream > s.m.streamMax {
		s.m.err = entryErr(s.m.entry, ErrLimit, "decompressed tar stream larger than %d bytes (MaxTotalBytes plus header allowance)", s.m.streamMax)
	} else if e := s.m.checkRatio(s.m.entry); e != nil {
		s.m.err = e
	}
	if s.m.err != nil {
		return 0, s.m.err
	}
	return n, err
}
