package bundle

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestExtractValid extracts well-formed archives with nested directories,
// implied directories, in-bundle symlinks and various modes.
func TestExtractValid(t *testing.T) {
	appspec := "version: 0.0\nos: linux\n"
	wantTree := map[string]string{
		"appspec.yml":         "-rw-r--r-- " + sha(appspec),
		"scripts":             "drwxr-xr-x",
		"scripts/start.sh":    "-rwxr-xr-x " + sha("#!/bin/sh\n"),
		"scripts/secret.env":  "-rw------- " + sha("K=v\n"),
		"scripts/world.txt":   "-rw-r--r-- " + sha("w"),
		"scripts/setuid":      "-rwxr-xr-x " + sha("s"),
		"private":             "drwx------",
		"private/deep":        "drwxr-xr-x",
		"private/deep/x.txt":  "-r--r--r-- " + sha("x"),
		"implied":             "drwxr-xr-x",
		"implied/a":           "drwxr-xr-x",
		"implied/a/b.txt":     "-rw-r--r-- " + sha("b"),
		"start":               "Lrwxrwxrwx -> scripts/start.sh",
		"scripts/up":          "Lrwxrwxrwx -> ../appspec.yml",
		"private/deep/toroot": "Lrwxrwxrwx -> ../..",
		"dangling":            "Lrwxrwxrwx -> not/yet",
		"empty":               "drwxr-xr-x",
	}
	wantMan := Manifest{
		Files: []File{
			{"appspec.yml", int64(len(appspec)), 0o644, sha(appspec)},
			{"implied/a/b.txt", 1, 0o644, sha("b")},
			{"private/deep/x.txt", 1, 0o444, sha("x")},
			{"scripts/secret.env", 4, 0o600, sha("K=v\n")},
			{"scripts/setuid", 1, 0o755, sha("s")},
			{"scripts/start.sh", 10, 0o755, sha("#!/bin/sh\n")},
			{"scripts/world.txt", 1, 0o644, sha("w")},
		},
		Dirs: []string{"empty", "implied", "implied/a", "private", "private/deep", "scripts"},
		Links: []Link{
			{"dangling", "not/yet"},
			{"private/deep/toroot", "../.."},
			{"scripts/up", "../appspec.yml"},
			{"start", "scripts/start.sh"},
		},
	}
	tarArchive := buildTarGz(t,
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "git commit"}}},
		tdir("./", 0o755),
		treg("./appspec.yml", appspec, 0o644),
		tdir("./scripts/", 0o775),
		treg("./scripts/start.sh", "#!/bin/sh\n", 0o755),
		treg("./scripts/secret.env", "K=v\n", 0o600),
		treg("./scripts/world.txt", "w", 0o666),
		treg("./scripts/setuid", "s", 0o6755|0o1000),
		tdir("./private/", 0o000),
		tdir("./private/deep/", 0o755),
		treg("./private/deep/x.txt", "x", 0o444),
		treg("implied/a/b.txt", "b", 0o644),
		tsym("start", "scripts/start.sh"),
		tsym("scripts/up", "./../appspec.yml"),
		tsym("private/deep/toroot", "../.."),
		tsym("dangling", "not//yet/"),
		tdir("empty/", 0o755),
		tdir("implied/", 0o755), // after being implied: allowed once
	)
	zipArchive := buildZip(t,
		zreg("appspec.yml", appspec, 0o644),
		zipEnt{"scripts/", fs.ModeDir | 0o775, nil},
		zreg("scripts/start.sh", "#!/bin/sh\n", 0o755),
		zreg("scripts/secret.env", "K=v\n", 0o600),
		zreg("scripts/world.txt", "w", 0o666),
		zreg("scripts/setuid", "s", fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky|0o755),
		zipEnt{"private/", fs.ModeDir, nil},
		zipEnt{"private/deep/", fs.ModeDir | 0o755, nil},
		zreg("private/deep/x.txt", "x", 0o444),
		zreg("implied/a/b.txt", "b", 0o644),
		zipEnt{"start", fs.ModeSymlink | 0o777, []byte("scripts/start.sh")},
		zipEnt{"scripts/up", fs.ModeSymlink | 0o777, []byte("./../appspec.yml")},
		zipEnt{"private/deep/toroot", fs.ModeSymlink | 0o777, []byte("../..")},
		zipEnt{"dangling", fs.ModeSymlink | 0o777, []byte("not//yet/")},
		zipEnt{"empty/", fs.ModeDir | 0o755, nil},
	)
	for _, tc := range []struct {
		name    string
		archive []byte
		format  Format
	}{
		{"tar.gz", tarArchive, FormatTarGz},
		{"zip", zipArchive, FormatZip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustDetect(t, tc.archive)
			if a.Format() != tc.format {
				t.Fatalf("format %v, want %v", a.Format(), tc.format)
			}
			parent := t.TempDir()
			dir, m, err := ExtractFresh(parent, a, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(dir) != parent || !strings.HasPrefix(filepath.Base(dir), "rev-") {
				t.Errorf("dir %q is not parent/rev-*", dir)
			}
			if got := treeOf(t, dir); !maps.Equal(got, wantTree) {
				for k, v := range got {
					if wantTree[k] != v {
						t.Errorf("%s: got %q, want %q", k, v, wantTree[k])
					}
				}
				for k := range wantTree {
					if _, ok := got[k]; !ok {
						t.Errorf("%s: missing", k)
					}
				}
			}
			if !reflect.DeepEqual(m, wantMan) {
				t.Errorf("manifest\n got %+v\nwant %+v", m, wantMan)
			}
			// The in-bundle links work.
			if b, err := os.ReadFile(filepath.Join(dir, "private/deep/toroot/scripts/up")); err != nil || string(b) != appspec {
				t.Errorf("reading through links: %q, %v", b, err)
			}
		})
	}
}

// TestExtractDest checks the requirements on the destination.
func TestExtractDest(t *testing.T) {
	b := buildTarGz(t, treg("appspec.yml", "version: 0.0\n", 0o644))
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dest string)
		ok    bool
		want  string
	}{
		{"missing, created", func(*testing.T, string) {}, true, ""},
		{"existing empty", func(t *testing.T, d string) { os.Mkdir(d, 0o755) }, true, ""},
		{"not empty", func(t *testing.T, d string) { os.Mkdir(d, 0o755); os.WriteFile(d+"/x", nil, 0o644) }, false, "not empty"},
		{"a file", func(t *testing.T, d string) { os.WriteFile(d, nil, 0o644) }, false, "not a directory"},
		{"a symlink to a directory", func(t *testing.T, d string) { os.Symlink(t.TempDir(), d) }, false, "not a directory"},
		{"parent missing", func(t *testing.T, d string) {}, false, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			if tc.name == "parent missing" {
				dest = filepath.Join(dest, "sub")
			}
			tc.setup(t, dest)
			m, err := Extract(mustDetect(t, b), dest, Limits{})
			if tc.ok {
				if err != nil || len(m.Files) != 1 {
					t.Fatalf("Extract: %v, %+v", err, m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLimitsDefaults checks DefaultLimits and the zero/negative rules.
func TestLimitsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want Limits
	}{
		{Limits{}, DefaultLimits()},
		{Limits{MaxTotalBytes: 10}, Limits{10, DefaultMaxEntries, 10, DefaultMaxRatio}},
		{Limits{MaxTotalBytes: -1, MaxEntries: -1, MaxRatio: -1}, Limits{-1, -1, -1, -1}},
		{Limits{MaxFileBytes: 5}, Limits{DefaultMaxTotalBytes, DefaultMaxEntries, 5, DefaultMaxRatio}},
	} {
		if got := tc.in.normalized(); got != tc.want {
			t.Errorf("%+v.normalized() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	if d := DefaultLimits(); d.MaxTotalBytes != 1<<30 || d.MaxEntries != 50000 || d.MaxRatio != 100 {
		t.Errorf("DefaultLimits() = %+v", d)
	}
}

// TestExtractCompressibleSmall checks that the ratio spares small bundles
// and applies above its 1 MiB slack.
func TestExtractCompressibleSmall(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		lim  Limits
		ok   bool
	}{
		{"1000 KiB of zeros", 1000 << 10, Limits{}, true},
		{"4 MiB of zeros", 4 << 20, Limits{}, false},
		{"4 MiB of zeros, ratio disabled", 4 << 20, Limits{MaxRatio: -1}, true},
		{"4 MiB of zeros, ratio 10000", 4 << 20, Limits{MaxRatio: 10000}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := buildTarGz(t, treg("zeros", string(make([]byte, tc.size)), 0o644))
			_, err := Extract(mustDetect(t, b), filepath.Join(t.TempDir(), "d"), tc.lim)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v, want ErrLimit", err)
			}
		})
	}
}
