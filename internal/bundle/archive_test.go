package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetect checks recognition by content, not by extension.
func TestDetect(t *testing.T) {
	var plainTar bytes.Buffer
	tw := tar.NewWriter(&plainTar)
	tw.WriteHeader(&tar.Header{Name: "a", Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Close()
	for _, tc := range []struct {
		name string
		data []byte
		want Format
		err  string
	}{
		{"tar.gz", buildTarGz(t, treg("appspec.yml", "v", 0o644)), FormatTarGz, ""},
		{"empty tar.gz", buildTarGz(t), FormatTarGz, ""},
		{"zip", buildZip(t, zreg("appspec.yml", "v", 0o644)), FormatZip, ""},
		{"empty zip", buildZip(t), FormatZip, ""},
		{"plain tar", plainTar.Bytes(), FormatUnknown, "uncompressed tar"},
		{"gzip of text", gzipMember(t, []byte(strings.Repeat("hello world\n", 100))), FormatUnknown, "not a tar archive"},
		{"truncated gzip", buildTarGz(t, treg("a", "v", 0o644))[:12], FormatUnknown, "gzip"},
		{"zip magic, garbage", append([]byte("PK\x03\x04"), make([]byte, 100)...), FormatUnknown, "zip"},
		{"text", []byte("version: 0.0\nos: linux\n"), FormatUnknown, "unrecognised content"},
		{"too short", []byte("PK"), FormatUnknown, "only 2 bytes"},
		{"empty", nil, FormatUnknown, "only 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Detect(bytes.NewReader(tc.data), int64(len(tc.data)))
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want ErrFormat with %q", err, tc.err)
				}
				return
			}
			if err != nil || a.Format() != tc.want || a.Size() != int64(len(tc.data)) {
				t.Fatalf("Detect = %v (%d), %v", a.Format(), a.Size(), err)
			}
			// Also by file, with a misleading extension.
			p := filepath.Join(t.TempDir(), "bundle.txt")
			os.WriteFile(p, tc.data, 0o644)
			fa, err := Open(p)
			if err != nil || fa.Format() != tc.want {
				t.Fatalf("Open = %v, %v", fa.Format(), err)
			}
			if err := fa.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Open(dir) = %v", err)
	}
	if _, err := Extract(Archive{}, t.TempDir(), Limits{}); err == nil {
		t.Error("Extract(zero Archive) succeeded")
	}
}

// TestReadFile checks reading appspec.yml without extracting.
func TestReadFile(t *testing.T) {
	spec := "version: 0.0\nos: linux\n"
	for _, tc := range []struct {
		name    string
		archive []byte
		file    string
		max     int64
		want    string
		is      error
	}{
		{"tar.gz", buildTarGz(t, tdir("./", 0o755), treg("./scripts/x", "x", 0o755), treg("./appspec.yml", spec, 0o644)), "appspec.yml", 0, spec, nil},
		{"zip", buildZip(t, zreg("scripts/x", "x", 0o755), zreg("appspec.yml", spec, 0o644)), "appspec.yml", 0, spec, nil},
		{"nested", buildZip(t, zreg("a/b.txt", "b", 0o644)), "./a/b.txt", 0, "b", nil},
		{"tar.gz missing", buildTarGz(t, treg("other.yml", spec, 0o644)), "appspec.yml", 0, "", fs.ErrNotExist},
		{"zip missing", buildZip(t, zreg("sub/appspec.yml", spec, 0o644)), "appspec.yml", 0, "", fs.ErrNotExist},
		{"tar.gz too large", buildTarGz(t, treg("appspec.yml", spec, 0o644)), "appspec.yml", 5, "", ErrLimit},
		{"zip too large", buildZip(t, zreg("appspec.yml", spec, 0o644)), "appspec.yml", 5, "", ErrLimit},
		{"tar.gz symlink", buildTarGz(t, treg("real.yml", spec, 0o644), tsym("appspec.yml", "real.yml")), "appspec.yml", 0, "", ErrEntryType},
		{"zip symlink", buildZip(t, zipEnt{"appspec.yml", fs.ModeSymlink | 0o777, []byte("/etc/shadow")}), "appspec.yml", 0, "", ErrEntryType},
		{"zip duplicate", buildZip(t, zreg("appspec.yml", "a", 0o644), zreg("./appspec.yml", "b", 0o644)), "appspec.yml", 0, "", ErrDuplicate},
		{"hostile neighbours skipped", buildTarGz(t, treg("../../x", "x", 0o644), ttype("dev", tar.TypeChar, ""), treg("appspec.yml", spec, 0o644)), "appspec.yml", 0, spec, nil},
		{"unsafe name asked", buildTarGz(t, treg("appspec.yml", spec, 0o644)), "../appspec.yml", 0, "", ErrUnsafePath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFile(mustDetect(t, tc.archive), tc.file, tc.max)
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("err = %v, want %v", err, tc.is)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("ReadFile = %q, %v", got, err)
			}
		})
	}
}

// TestSafeJoin checks hook locations against lexical and symlink escapes.
func TestSafeJoin(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "rev")
	outside := filepath.Join(parent, "outside")
	for _, d := range []string{root + "/scripts/sub", outside} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(root, "scripts/start.sh"), nil, 0o755)
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	links := map[string]string{
		"in":           "scripts",
		"scripts/up":   "..",
		"scripts/top":  "../..",
		"esc":          "../outside",
		"abs":          outside,
		"absin":        filepath.Join(root, "scripts"),
		"loop1":        "loop2",
		"loop2":        "loop1",
		"viaup":        "scripts/up/scripts",
		"scripts/deep": "sub/../../..",
		"chain":        "in/top",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		rel  string
		ok   bool
		want string
	}{
		{"scripts/start.sh", true, "scripts/start.sh"},
		{"./scripts//start.sh", true, "scripts/start.sh"},
		{"scripts/../file", true, "file"},
		{"in/start.sh", true, "in/start.sh"},
		{"scripts/up/file", true, "scripts/up/file"},
		{"viaup/start.sh", true, "viaup/start.sh"},
		{"missing/dir/x.sh", true, "missing/dir/x.sh"},
		{"file/x", true, "file/x"},
		{".", true, ""},
		{"", false, "empty"},
		{"/etc/passwd", false, "absolute"},
		{"../outside", false, "outside the root"},
		{"scripts/../../outside", false, "outside the root"},
		{"scripts/top/outside", false, "outside the root"},
		{"scripts/top", false, "outside the root"},
		{"chain/outside", false, "outside the root"},
		{"esc/x", false, "outside the root"},
		{"scripts/deep", false, "outside the root"},
		{"abs/x", false, "absolute target"},
		{"absin/start.sh", false, "absolute target"},
		{"loop1", false, "too many levels"},
		{"a\x00b", false, "NUL"},
		{`scripts\start.sh`, false, "backslash"},
	} {
		got, err := SafeJoin(root, tc.rel)
		if !tc.ok {
			if err == nil || !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SafeJoin(%q) = %q, %v; want error with %q", tc.rel, got, err, tc.want)
			}
			continue
		}
		if want := filepath.Join(root, tc.want); err != nil || got != want {
			t.Errorf("SafeJoin(%q) = %q, %v; want %q", tc.rel, got, err, want)
		}
	}
	if _, err := SafeJoin(filepath.Join(parent, "missing"), "x"); err == nil {
		t.Error("SafeJoin with a missing root succeeded")
	}
}
