package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileCase is an archive Extract must refuse.
type hostileCase struct {
	name string
	// build makes the archive; s locates the sentinels it aims at.
	build func(t *testing.T, s sandbox) (io.ReaderAt, int64)
	lim   Limits
	// is is the error category; want are substrings of the message (the
	// entry name, quoted, and the reason).
	is   error
	want []string
	// maxRead, if set, bounds the archive bytes Extract may read: the
	// proof that a bomb was stopped early.
	maxRead int64
}

func mem(b []byte) (io.ReaderAt, int64) { return bytes.NewReader(b), int64(len(b)) }

func tgz(ents ...func(s sandbox) tarEnt) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		var es []tarEnt
		for _, e := range ents {
			es = append(es, e(s))
		}
		return mem(buildTarGz(t, es...))
	}
}

func zipOf(ents ...func(s sandbox) zipEnt) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		var es []zipEnt
		for _, e := range ents {
			es = append(es, e(s))
		}
		return mem(buildZip(t, es...))
	}
}

func fixed[E any](e E) func(sandbox) E { return func(sandbox) E { return e } }

// gzipBomb builds a virtual .tar.gz: a tar header (if hdr is set) declaring
// the given size, then 10 GiB of zeros as 10240 copies of one gzip member of
// 1 MiB of zeros (about 10 MB of archive), never materialised.
func gzipBomb(hdr *tar.Header) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		var head []byte
		if hdr != nil {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			head = gzipMember(t, buf.Bytes()) // header block only: no Close
		} else {
			head = gzipMember(t, nil)
		}
		l := &lazyGzip{head: head, chunk: gzipMember(t, make([]byte, 1<<20)), tail: gzipMember(t, make([]byte, 1024)), n: 10 << 10}
		return l, l.Size()
	}
}

// lyingZip is a zip whose one entry declares `declared` uncompressed bytes
// but inflates to 16 MiB of zeros.
func lyingZip(declared uint64) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		c := deflatedZeros(t, 16<<20)
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: "bomb.bin", Method: zip.Deflate,
			CRC32:              crc32.ChecksumIEEE(make([]byte, 16<<20)),
			CompressedSize64:   uint64(len(c)),
			UncompressedSize64: declared,
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(c)
		zw.Close()
		return mem(buf.Bytes())
	}
}

// overlappingZip is a zip whose n central directory records all point at
// the same 1 MiB entry (the "overlapping files" zip bomb).
func overlappingZip(n int) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		b := buildZip(t, zipEnt{"f000", 0o644, make([]byte, 1<<20)})
		eocd := b[len(b)-22:]
		cdOff := binary.LittleEndian.Uint32(eocd[16:])
		cdSize := binary.LittleEndian.Uint32(eocd[12:])
		rec := b[cdOff : cdOff+cdSize]
		var out bytes.Buffer
		out.Write(b[:cdOff])
		for i := range n {
			r := bytes.Clone(rec)
			copy(r[46:50], fmt.Sprintf("f%03d", i))
			out.Write(r)
		}
		e := bytes.Clone(eocd)
		binary.LittleEndian.PutUint16(e[8:], uint16(n))
		binary.LittleEndian.PutUint16(e[10:], uint16(n))
		binary.LittleEndian.PutUint32(e[12:], uint32(n)*cdSize)
		out.Write(e)
		return mem(out.Bytes())
	}
}

func manyZip(n int) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i := range n {
			if _, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("f%06d", i), Method: zip.Store}); err != nil {
				t.Fatal(err)
			}
		}
		zw.Close()
		return mem(buf.Bytes())
	}
}

func manyTar(n int) func(*testing.T, sandbox) (io.ReaderAt, int64) {
	return func(t *testing.T, s sandbox) (io.ReaderAt, int64) {
		es := make([]tarEnt, n)
		for i := range es {
			es[i] = treg(fmt.Sprintf("f%06d", i), "", 0o644)
		}
		return mem(buildTarGz(t, es...))
	}
}

func hostileCases() []hostileCase {
	big := strings.Repeat("A", 2<<20)
	return []hostileCase{
		{name: "tar traversal ../../etc/x", build: tgz(fixed(treg("../../etc/x", "pwned", 0o644))),
			is: ErrUnsafePath, want: []string{`"../../etc/x"`, `".." component`}},
		{name: "tar traversal hidden in the middle", build: tgz(fixed(tdir("a/", 0o755)), fixed(treg("a/../../../etc/x", "pwned", 0o644))),
			is: ErrUnsafePath, want: []string{`"a/../../../etc/x"`, `".." component`}},
		{name: "tar absolute path", build: tgz(func(s sandbox) tarEnt { return treg(filepath.Join(s.etc, "x"), "pwned", 0o644) }),
			is: ErrUnsafePath, want: []string{"/etc/x\"", "absolute path"}},
		{name: "tar symlink escaping, then a file written through it",
			build: tgz(fixed(tsym("evil", "../../etc")), fixed(treg("evil/shadow", "pwned", 0o644))),
			is:    ErrUnsafeLink, want: []string{`"evil"`, "resolves outside the bundle"}},
		{name: "tar symlink to absolute fake /etc/shadow",
			build: tgz(func(s sandbox) tarEnt { return tsym("shadow", s.shadow) }, fixed(treg("shadow", "pwned", 0o644))),
			is:    ErrUnsafeLink, want: []string{`"shadow"`, "absolute target"}},
		{name: "tar write through an in-bundle symlink",
			build: tgz(fixed(tdir("real/", 0o755)), fixed(tsym("lnk", "real")), fixed(treg("lnk/x", "pwned", 0o644))),
			is:    ErrUnsafePath, want: []string{`"lnk/x"`, `parent "lnk" is a symbolic link`}},
		{name: "tar symlink escaping through another symlink then ..",
			build: tgz(fixed(tsym("dot", ".")), fixed(tsym("s", "dot/../../etc"))),
			is:    ErrUnsafeLink, want: []string{`"s"`, `".." after a normal component`}},
		{name: "tar symlink target lexically inside but via link then ..",
			build: tgz(fixed(tsym("dot", ".")), fixed(tsym("s", "dot/../x"))),
			is:    ErrUnsafeLink, want: []string{`"s"`, `".." after a normal component`}},
		{name: "tar hard link to fake /etc/shadow",
			build: tgz(func(s sandbox) tarEnt { return ttype("shadow", tar.TypeLink, s.shadow) }),
			is:    ErrEntryType, want: []string{`"shadow"`, "hard link"}},
		{name: "tar hard link to a file of the archive",
			build: tgz(fixed(treg("a", "x", 0o644)), fixed(ttype("b", tar.TypeLink, "a"))),
			is:    ErrEntryType, want: []string{`"b"`, "hard link"}},
		{name: "tar FIFO", build: tgz(fixed(ttype("fifo", tar.TypeFifo, ""))),
			is: ErrEntryType, want: []string{`"fifo"`, "FIFO"}},
		{name: "tar character device", build: tgz(fixed(ttype("null", tar.TypeChar, ""))),
			is: ErrEntryType, want: []string{`"null"`, "character device"}},
		{name: "tar block device", build: tgz(fixed(ttype("sda", tar.TypeBlock, ""))),
			is: ErrEntryType, want: []string{`"sda"`, "block device"}},
		{name: "gzip bomb: 10 GiB file refused by its header",
			build: gzipBomb(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Size: 10 << 30, Mode: 0o644}),
			is:    ErrLimit, want: []string{`"zeros"`, "MaxFileBytes"}, maxRead: 1 << 20},
		{name: "gzip bomb: 10 GiB of zeros stopped by the ratio while streaming",
			build: gzipBomb(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Size: 1000 << 20, Mode: 0o644}),
			is:    ErrLimit, want: []string{`"zeros"`, "MaxRatio"}, maxRead: 1 << 20},
		{name: "gzip bomb: 10 GiB of zeros after the tar end, ratio",
			build: gzipBomb(nil),
			is:    ErrLimit, want: []string{"archive", "MaxRatio"}, maxRead: 1 << 20},
		{name: "gzip bomb: ratio disabled, stopped by the stream size",
			build: gzipBomb(nil), lim: Limits{MaxRatio: -1, MaxTotalBytes: 4 << 20, MaxEntries: 10},
			is: ErrLimit, want: []string{"archive", "decompressed tar stream larger"}, maxRead: 1 << 20},
		{name: "zip bomb: declared size smaller than the data",
			build: lyingZip(1000), is: ErrCorrupt, want: []string{`"bomb.bin"`, "larger than its declared size of 1000"}, maxRead: 64 << 10},
		{name: "zip bomb: declared size within limits, stopped by the ratio",
			build: lyingZip(900 << 20), is: ErrLimit, want: []string{`"bomb.bin"`, "MaxRatio"}, maxRead: 64 << 10},
		{name: "zip bomb: declared size over the limit",
			build: lyingZip(1 << 40), is: ErrLimit, want: []string{`"bomb.bin"`, "declared size", "MaxFileBytes"}, maxRead: 64 << 10},
		{name: "zip bomb: overlapping entries",
			build: overlappingZip(200), is: ErrCorrupt, want: []string{`"f001"`, `overlaps entry "f000"`}},
		{name: "zip with 100,000 tiny entries", build: manyZip(100_000),
			is: ErrLimit, want: []string{`"f050000"`, "100000 entries", "MaxEntries"}},
		{name: "tar.gz with many tiny entries", build: manyTar(600), lim: Limits{MaxEntries: 300},
			is: ErrLimit, want: []string{`"f000300"`, "more than 300 entries"}},
		{name: "tar duplicate entry", build: tgz(fixed(treg("a.txt", "one", 0o644)), fixed(treg("a.txt", "two", 0o644))),
			is: ErrDuplicate, want: []string{`"a.txt"`, "already in the archive"}},
		{name: "zip duplicate entry via ./", build: zipOf(fixed(zreg("a.txt", "one", 0o644)), fixed(zreg("./a.txt", "two", 0o644))),
			is: ErrDuplicate, want: []string{`"./a.txt"`, "already in the archive"}},
		{name: "tar file over an implied directory", build: tgz(fixed(treg("a/b", "x", 0o644)), fixed(treg("a", "x", 0o644))),
			is: ErrDuplicate, want: []string{`"a"`, "directory implied"}},
		{name: "tar file below a file", build: tgz(fixed(treg("a", "x", 0o644)), fixed(treg("a/b", "x", 0o644))),
			is: ErrUnsafePath, want: []string{`"a/b"`, `parent "a" is a regular file`}},
		{name: "zip name with a NUL byte", build: zipOf(fixed(zreg("ok.txt\x00../../etc/x", "pwned", 0o644))),
			is: ErrUnsafePath, want: []string{`"ok.txt\x00../../etc/x"`, "NUL byte"}},
		{name: `zip ..\..\ backslash names`, build: zipOf(fixed(zreg(`..\..\etc\x`, "pwned", 0o644))),
			is: ErrUnsafePath, want: []string{`"..\\..\\etc\\x"`, "backslash"}},
		{name: "zip absolute path", build: zipOf(func(s sandbox) zipEnt { return zreg(filepath.Join(s.etc, "x"), "pwned", 0o644) }),
			is: ErrUnsafePath, want: []string{"absolute path"}},
		{name: "zip symlink escaping, then a file written through it",
			build: zipOf(fixed(zipEnt{"evil", fs.ModeSymlink | 0o777, []byte("../../etc")}), fixed(zreg("evil/shadow", "pwned", 0o644))),
			is:    ErrUnsafeLink, want: []string{`"evil"`, "resolves outside"}},
		{name: "zip symlink to absolute fake /etc/shadow",
			build: zipOf(func(s sandbox) zipEnt { return zipEnt{"shadow", fs.ModeSymlink | 0o777, []byte(s.shadow)} }),
			is:    ErrUnsafeLink, want: []string{`"shadow"`, "absolute target"}},
		{name: "zip character device", build: zipOf(fixed(zipEnt{"null", fs.ModeDevice | fs.ModeCharDevice | 0o666, nil})),
			is: ErrEntryType, want: []string{`"null"`, "character device"}},
		{name: "zip FIFO", build: zipOf(fixed(zipEnt{"fifo", fs.ModeNamedPipe | 0o644, nil})),
			is: ErrEntryType, want: []string{`"fifo"`, "FIFO"}},
		{name: "tar too-large single file", build: tgz(fixed(treg("big.bin", big, 0o644))), lim: Limits{MaxFileBytes: 1 << 20},
			is: ErrLimit, want: []string{`"big.bin"`, "MaxFileBytes"}},
		{name: "zip too-large single file", build: zipOf(fixed(zreg("big.bin", big, 0o644))), lim: Limits{MaxFileBytes: 1 << 20, MaxRatio: -1},
			is: ErrLimit, want: []string{`"big.bin"`, "MaxFileBytes"}},
		{name: "tar total size over the limit",
			build: tgz(fixed(treg("a.bin", big, 0o644)), fixed(treg("b.bin", big, 0o644)), fixed(treg("c.bin", big, 0o644))),
			lim:   Limits{MaxTotalBytes: 5 << 20, MaxRatio: -1},
			is:    ErrLimit, want: []string{`"c.bin"`, "MaxTotalBytes"}},
		{name: "tar entry naming the root as a file", build: tgz(fixed(treg(".", "x", 0o644))),
			is: ErrUnsafePath, want: []string{`"."`, "bundle root"}},
	}
}

// TestExtractHostile checks that every hostile archive is refused with an
// error naming the entry and the reason, that nothing outside dest changed,
// and that the partial dest was removed.
func TestExtractHostile(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			r, size := tc.build(t, s)
			before := snapshot(t, s.parent, s.dest)
			a, err := Detect(r, size)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			counted := &countingReaderAt{r: r}
			a.r = counted
			m, err := Extract(a, s.dest, tc.lim)
			if err == nil {
				t.Fatalf("Extract succeeded, manifest %+v", m)
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Errorf("error %T is not an *EntryError", err)
			}
			if !containsAll(err.Error(), tc.want...) {
				t.Errorf("error %q does not contain all of %q", err, tc.want)
			}
			if tc.maxRead > 0 && counted.n > tc.maxRead {
				t.Errorf("read %d archive bytes of %d, want at most %d: not stopped early", counted.n, size, tc.maxRead)
			}
			if len(m.Files)+len(m.Dirs)+len(m.Links) != 0 {
				t.Errorf("manifest not empty on failure: %+v", m)
			}
			assertSameTree(t, before, snapshot(t, s.parent, s.dest))
			if _, err := os.Lstat(s.dest); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("partial dest left behind: %v", err)
			}
		})
	}
}

// TestExtractHostileIntoExistingDir checks cleanup when dest pre-exists:
// its content is removed, the directory itself is kept, and ExtractFresh
// removes the directory it made.
func TestExtractHostileIntoExistingDir(t *testing.T) {
	b := buildTarGz(t, treg("a/b/ok.txt", "fine", 0o644), tsym("lnk", "a"), treg("z", "x", 0o644), treg("../../etc/x", "pwned", 0o644))
	for _, fresh := range []bool{false, true} {
		t.Run(fmt.Sprint("fresh=", fresh), func(t *testing.T) {
			s := newSandbox(t)
			before := snapshot(t, s.parent, s.dest)
			var err error
			if fresh {
				var dir string
				dir, _, err = ExtractFresh(s.work, mustDetect(t, b), Limits{})
				if dir != "" {
					t.Errorf("dir = %q on failure", dir)
				}
			} else {
				if err := os.Mkdir(s.dest, 0o755); err != nil {
					t.Fatal(err)
				}
				_, err = Extract(mustDetect(t, b), s.dest, Limits{})
				if left := treeOf(t, s.dest); len(left) != 0 {
					t.Errorf("dest not emptied: %v", left)
				}
				os.Remove(s.dest)
			}
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v", err)
			}
			assertSameTree(t, before, snapshot(t, s.parent, s.dest))
		})
	}
}
