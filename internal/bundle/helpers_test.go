package bundle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tarEnt is one entry of a test tar archive.
type tarEnt struct {
	hdr  tar.Header
	body []byte
}

func treg(name, body string, mode int64) tarEnt {
	return tarEnt{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, []byte(body)}
}

func tdir(name string, mode int64) tarEnt {
	return tarEnt{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func tsym(name, target string) tarEnt {
	return tarEnt{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func ttype(name string, typ byte, link string) tarEnt {
	return tarEnt{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, Devmajor: 1, Devminor: 3}}
}

// buildTarGz makes a .tar.gz in memory with archive/tar.
func buildTarGz(t testing.TB, ents ...tarEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		h := e.hdr
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zipEnt is one entry of a test zip archive.
type zipEnt struct {
	name string
	mode fs.FileMode
	body []byte
}

func zreg(name, body string, mode fs.FileMode) zipEnt { return zipEnt{name, mode, []byte(body)} }

// buildZip makes a .zip in memory with archive/zip.
func buildZip(t testing.TB, ents ...zipEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: time.Unix(1700000000, 0)}
		fh.SetMode(e.mode)
		if e.mode.IsDir() {
			fh.Method = zip.Store
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatalf("zip header %q: %v", e.name, err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gzipMember compresses b into one complete gzip member.
func gzipMember(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}

// deflated compresses n zero bytes with raw deflate (for zip entries).
func deflatedZeros(t testing.TB, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "x", Method: zip.Deflate})
	w.Write(make([]byte, n))
	zw.Close()
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zr.File[0].OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := io.ReadAll(rc)
	return c
}

// lazyGzip is a virtual archive: head, then chunk repeated n times, then
// tail, never materialised. Concatenated gzip members form one stream.
type lazyGzip struct {
	head, chunk, tail []byte
	n                 int64
}

func (l *lazyGzip) Size() int64 {
	return int64(len(l.head)) + l.n*int64(len(l.chunk)) + int64(len(l.tail))
}

func (l *lazyGzip) ReadAt(p []byte, off int64) (int, error) {
	size := l.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < size {
		var src []byte
		switch body := l.n * int64(len(l.chunk)); {
		case off < int64(len(l.head)):
			src = l.head[off:]
		case off < int64(len(l.head))+body:
			src = l.chunk[(off-int64(len(l.head)))%int64(len(l.chunk)):]
		default:
			src = l.tail[off-int64(len(l.head))-body:]
		}
		k := copy(p[n:], src)
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// sandbox is a parent directory holding sentinel files (a fake /etc) and
// the extraction destination parent/work/dest, two levels down, so that
// "../../etc/x" from dest lands on the sentinels.
type sandbox struct {
	parent, etc, shadow, work, dest string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	p := t.TempDir()
	s := sandbox{parent: p, etc: filepath.Join(p, "etc"), work: filepath.Join(p, "work")}
	s.shadow = filepath.Join(s.etc, "shadow")
	s.dest = filepath.Join(s.work, "dest")
	for _, d := range []string{s.etc, s.work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.shadow, []byte("root:$6$secret:19000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.etc, "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot describes every file under dir, except the subtree skip: type,
// permissions, and content hash or link target.
func snapshot(t testing.TB, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertSameTree fails if the snapshots differ.
func assertSameTree(t testing.TB, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	keys := slices.Sorted(maps.Keys(after))
	for _, k := range keys {
		if before[k] != after[k] {
			t.Errorf("outside dest: %s: %q, was %q", k, after[k], before[k])
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("outside dest: %s removed", k)
		}
	}
}

// treeOf describes the tree under dir with paths relative to it.
func treeOf(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, d := range snapshot(t, dir, "") {
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			out[filepath.ToSlash(rel)] = d
		}
	}
	return out
}

func mustDetect(t testing.TB, b []byte) Archive {
	t.Helper()
	a, err := Detect(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	return a
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
