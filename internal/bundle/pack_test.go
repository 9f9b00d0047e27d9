package bundle

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTree makes a bundle directory: nested directories, an executable, an
// empty directory, in-bundle symlinks.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	files := []struct {
		path, body string
		mode       os.FileMode
	}{
		{"appspec.yml", "version: 0.0\nos: linux\n", 0o644},
		{"scripts/start.sh", "#!/bin/sh\necho start\n", 0o755},
		{"scripts/lib/common.sh", "x=1\n", 0o644},
		{"conf/app.env", "SECRET=1\n", 0o600},
		{"conf/shared.conf", "group-writable\n", 0o664},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"empty", "scripts/lib/more"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{"start": "scripts/start.sh", "scripts/lib/up": "../../appspec.yml", "scripts/self": "."}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
}

func pack(t *testing.T, dir string) ([]byte, Digest) {
	t.Helper()
	var buf bytes.Buffer
	d, err := Pack(dir, &buf)
	if err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes(), d
}

// TestPackDeterministic checks that the same content gives the same bytes
// whatever the times, the location and group-write bits, and that content
// changes change the digest.
func TestPackDeterministic(t *testing.T) {
	dir1 := t.TempDir()
	writeTree(t, dir1)
	b1, d1 := pack(t, dir1)
	if got, _ := DigestOf(bytes.NewReader(b1)); got != d1 {
		t.Fatalf("digest %s is not the SHA-256 of the bytes (%s)", d1, got)
	}
	b2, d2 := pack(t, dir1)
	if d1 != d2 || !bytes.Equal(b1, b2) {
		t.Fatalf("packing twice: %s then %s", d1, d2)
	}

	dir2 := t.TempDir()
	writeTree(t, dir2)
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	filepath.Walk(dir2, func(p string, fi os.FileInfo, _ error) error {
		if fi.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	os.Chmod(filepath.Join(dir2, "conf/shared.conf"), 0o644) // 0664 and 0644 pack alike
	if _, d := pack(t, dir2); d != d1 {
		t.Errorf("other copy with other mtimes: %s, want %s", d, d1)
	}

	for _, change := range []struct {
		name string
		do   func(dir string) error
	}{
		{"content", func(d string) error {
			return os.WriteFile(filepath.Join(d, "appspec.yml"), []byte("version: 0.1\n"), 0o644)
		}},
		{"exec bit", func(d string) error { return os.Chmod(filepath.Join(d, "scripts/lib/common.sh"), 0o755) }},
		{"new empty dir", func(d string) error { return os.Mkdir(filepath.Join(d, "new"), 0o755) }},
		{"link target", func(d string) error {
			os.Remove(filepath.Join(d, "start"))
			return os.Symlink("appspec.yml", filepath.Join(d, "start"))
		}},
	} {
		t.Run(change.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir)
			if err := change.do(dir); err != nil {
				t.Fatal(err)
			}
			if _, d := pack(t, dir); d == d1 {
				t.Errorf("digest unchanged after changing %s", change.name)
			}
		})
	}
}

// TestPackRoundTrip packs a tree and extracts it: same tree, modes masked.
func TestPackRoundTrip(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src)
	b, d := pack(t, src)
	a := mustDetect(t, b)
	if a.Format() != FormatTarGz {
		t.Fatalf("format %v", a.Format())
	}
	if got, err := a.Digest(); err != nil || got != d {
		t.Fatalf("Archive.Digest = %s, %v; want %s", got, err, d)
	}
	dir, m, err := ExtractFresh(t.TempDir(), a, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := treeOf(t, src)
	want["conf/shared.conf"] = strings.Replace(want["conf/shared.conf"], "-rw-rw-r--", "-rw-r--r--", 1)
	if got := treeOf(t, dir); !maps.Equal(got, want) {
		t.Errorf("round trip:\n got %v\nwant %v", got, want)
	}
	if len(m.Files) != 5 || len(m.Links) != 3 || len(m.Dirs) != 5 {
		t.Errorf("manifest %+v", m)
	}
}

// TestPackRefuses checks that special files and escaping links are refused
// with an error naming the path.
func TestPackRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
		is    error
		want  []string
	}{
		{"symlink escaping", func(t *testing.T, d, o string) { os.Symlink("../../outside/secret", filepath.Join(d, "scripts/esc")) },
			ErrUnsafeLink, []string{`"scripts/esc"`, "resolves outside"}},
		{"absolute symlink", func(t *testing.T, d, o string) { os.Symlink(filepath.Join(o, "secret"), filepath.Join(d, "abs")) },
			ErrUnsafeLink, []string{`"abs"`, "absolute target"}},
		{"absolute symlink into the bundle", func(t *testing.T, d, o string) { os.Symlink(filepath.Join(d, "appspec.yml"), filepath.Join(d, "abs")) },
			ErrUnsafeLink, []string{`"abs"`, "absolute target"}},
		{"symlink escaping through a symlink", func(t *testing.T, d, o string) { os.Symlink("self/../../x", filepath.Join(d, "scripts/esc")) },
			ErrUnsafeLink, []string{`"scripts/esc"`, `".." after a normal component`}},
		{"FIFO", func(t *testing.T, d, o string) {
			if err := syscall.Mkfifo(filepath.Join(d, "scripts/fifo"), 0o644); err != nil {
				t.Skip("mkfifo:", err)
			}
		}, ErrEntryType, []string{`"scripts/fifo"`, "FIFO"}},
		{"name with a backslash", func(t *testing.T, d, o string) { os.WriteFile(filepath.Join(d, `a\b`), nil, 0o644) },
			ErrUnsafePath, []string{`"a\\b"`, "backslash"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir, outside := filepath.Join(parent, "bundle"), filepath.Join(parent, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
			os.Mkdir(dir, 0o755)
			writeTree(t, dir)
			tc.setup(t, dir, outside)
			_, err := Pack(dir, &bytes.Buffer{})
			if err == nil {
				t.Fatal("Pack succeeded")
			}
			var pe *PackError
			if !errors.Is(err, tc.is) || !errors.As(err, &pe) || !containsAll(err.Error(), tc.want...) {
				t.Fatalf("err = %v, want %v with %q", err, tc.is, tc.want)
			}
		})
	}
	if _, err := Pack(filepath.Join(t.TempDir(), "missing"), &bytes.Buffer{}); err == nil {
		t.Error("Pack of a missing directory succeeded")
	}
}

// TestParseDigest checks digest parsing and formatting.
func TestParseDigest(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		in   string
		want Digest
		ok   bool
	}{
		{"sha256:" + hex64, Digest(hex64), true},
		{hex64, Digest(hex64), true},
		{"sha256:" + strings.ToUpper(hex64), Digest(hex64), true},
		{"sha256:" + hex64[:63], "", false},
		{"sha256:" + hex64 + "0", "", false},
		{"sha512:" + hex64, "", false},
		{"sha256:" + strings.Repeat("g", 64), "", false},
		{"", "", false},
	} {
		got, err := ParseDigest(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDigest(%q) = %q, %v", tc.in, got, err)
		}
		if tc.ok && (got.String() != "sha256:"+hex64 || got.Hex() != hex64) {
			t.Errorf("String() = %q, Hex() = %q", got.String(), got.Hex())
		}
	}
	d, err := DigestOf(strings.NewReader(""))
	if err != nil || d.String() != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("DigestOf(empty) = %s, %v", d, err)
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, nil, 0o644)
	if f, err := DigestFile(p); err != nil || f != d {
		t.Errorf("DigestFile = %s, %v", f, err)
	}
}
