package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// rawTar returns the uncompressed tar stream of a test .tar.gz.
func rawTar(t testing.TB, ents ...tarEnt) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(buildTarGz(t, ents...)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// FuzzExtract feeds arbitrary bytes to Detect, ReadFile and Extract, both as
// they are and gzip-compressed (so that the fuzzer reaches the tar parser
// past the gzip CRC). Nothing may panic, nothing may change outside dest,
// a failure must leave no dest, and a success must leave only what the
// manifest lists, with every symlink resolving inside dest.
func FuzzExtract(f *testing.F) {
	f.Add(rawTar(f, tdir("./", 0o755), treg("./appspec.yml", "version: 0.0\n", 0o644), tdir("./s/", 0o755), treg("./s/a.sh", "#!/bin/sh\n", 0o755), tsym("l", "s/a.sh")))
	f.Add(rawTar(f, tsym("evil", "../../etc"), treg("evil/shadow", "x", 0o644)))
	f.Add(rawTar(f, tsym("dot", "."), tsym("s", "dot/../x")))
	f.Add(rawTar(f, treg("../../etc/x", "x", 0o644)))
	f.Add(rawTar(f, ttype("h", tar.TypeLink, "/etc/shadow"), ttype("f", tar.TypeFifo, "")))
	f.Add(buildTarGz(f, treg("a", "b", 0o644)))
	f.Add(buildZip(f, zreg("appspec.yml", "version: 0.0\n", 0o644), zipEnt{"l", fs.ModeSymlink | 0o777, []byte("appspec.yml")}))
	f.Add(buildZip(f, zipEnt{"evil", fs.ModeSymlink | 0o777, []byte("../../etc")}, zreg("evil/shadow", "x", 0o644)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, gzipMember(t, data)} {
			checkExtract(t, b)
		}
	})
}

func checkExtract(t *testing.T, data []byte) {
	a, err := Detect(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return
	}
	ReadFile(a, "appspec.yml", 1<<16)
	s := newSandbox(t)
	before := snapshot(t, s.parent, s.dest)
	m, err := Extract(a, s.dest, Limits{MaxTotalBytes: 1 << 20, MaxEntries: 64, MaxRatio: 1000})
	assertSameTree(t, before, snapshot(t, s.parent, s.dest))
	if err != nil {
		if _, serr := os.Lstat(s.dest); !errors.Is(serr, fs.ErrNotExist) {
			t.Fatalf("dest left after error %v", err)
		}
		return
	}
	listed := map[string]string{}
	for _, f := range m.Files {
		listed[f.Path] = "file"
	}
	for _, d := range m.Dirs {
		listed[d] = "dir"
	}
	for _, l := range m.Links {
		listed[l.Path] = "link"
	}
	for p, desc := range treeOf(t, s.dest) {
		ms := strings.Fields(desc)[0]
		kind := map[string]string{"-": "file", "d": "dir", "L": "link"}[ms[:len(ms)-9]]
		perm := ms[len(ms)-9:]
		if listed[p] != kind {
			t.Fatalf("%s (%s) is not in the manifest as such (%q)", p, desc, listed[p])
		}
		delete(listed, p)
		if kind == "link" {
			if _, err := SafeJoin(s.dest, p); err != nil && !strings.Contains(err.Error(), "too many levels") {
				t.Fatalf("link %s escapes: %v", p, err)
			}
		}
		if kind != "link" && (perm[4] == 'w' || perm[7] == 'w') {
			t.Fatalf("%s has mode %s", p, ms)
		}
	}
	if len(listed) != 0 {
		t.Fatalf("manifest lists missing paths %v", listed)
	}
}
