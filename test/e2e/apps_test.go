package e2e

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

const validAppspec = `version: 0.0
os: linux
files:
  - source: /
    destination: /srv/shop
hooks:
  ApplicationStart:
    - location: /scripts/start.sh
      timeout: 30
`

func writeBundle(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Applications and revisions: push validates, stores content-addressed,
// and refuses what would not deploy safely.
func TestPushRevisions(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.gantry("app", "create", "shop").ok(t)
	if r := c.gantry("app", "create", "Shop!"); r.code != 2 || !strings.Contains(r.stderr, "lower-case") {
		t.Errorf("bad app name: exit %d: %s", r.code, r.stderr)
	}
	good := writeBundle(t, map[string]string{"appspec.yml": validAppspec, "scripts/start.sh": "#!/bin/sh\necho started\n", "index.html": "hi\n"})
	r := c.gantry("push", "shop", good, "--description", "first", "-o", "json")
	r.ok(t)
	var rev api.Revision
	if err := json.Unmarshal([]byte(r.stdout), &rev); err != nil || !strings.HasPrefix(rev.ID, "r-") || !strings.HasPrefix(rev.Digest, "sha256:") {
		t.Fatalf("push: %v %s", err, r.stdout)
	}
	// The same content again is the same revision.
	r = c.gantry("push", "shop", good, "-o", "json")
	r.ok(t)
	var again api.Revision
	_ = json.Unmarshal([]byte(r.stdout), &again)
	if again.ID != rev.ID || again.Description != "first" {
		t.Errorf("second push of the same bundle: %+v, want revision %s", again, rev.ID)
	}
	r = c.gantry("revisions", "shop", "-o", "json")
	var revs []api.Revision
	_ = json.Unmarshal([]byte(r.stdout), &revs)
	if len(revs) != 1 || revs[0].ID != rev.ID {
		t.Errorf("revisions: %+v", revs)
	}
	r = c.gantry("revisions", "shop", rev.ID)
	r.ok(t)
	if !strings.Contains(r.stdout, "location: /scripts/start.sh") {
		t.Errorf("revision show lacks the appspec:\n%s", r.stdout)
	}

	// Refusals, each with a clear reason.
	bad := writeBundle(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\nhooks:\n  AfterInstal:\n    - location: a.sh\n"})
	if r := c.gantry("push", "shop", bad); r.code != 1 || !strings.Contains(r.stderr, "appspec.yml:4:3") || !strings.Contains(r.stderr, `did you mean "AfterInstall"`) {
		t.Errorf("malformed appspec: exit %d:\n%s", r.code, r.stderr)
	}
	missing := writeBundle(t, map[string]string{"appspec.yml": validAppspec})
	if r := c.gantry("push", "shop", missing); r.code == 0 || !strings.Contains(r.stderr, "scripts/start.sh") || !strings.Contains(r.stderr, "not a script in the bundle") {
		t.Errorf("missing hook script: exit %d:\n%s", r.code, r.stderr)
	}
	outside := filepath.Join(t.TempDir(), "evil")
	hostile := hostileTarGz(t, map[string]string{"appspec.yml": "version: 0.0\nos: linux\n", "../../../../../../../.." + outside: "pwned"})
	if r := c.gantry("push", "shop", hostile); r.code == 0 || !strings.Contains(r.stderr, "unsafe") {
		t.Errorf("hostile archive: exit %d:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(outside); err == nil {
		t.Errorf("a hostile archive wrote %s", outside)
	}
	if r := c.gantry("push", "nope", good); r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("unknown app: exit %d: %s", r.code, r.stderr)
	}
	if got := c.gantry("revisions", "shop", "-o", "json").stdout; strings.Count(got, `"id"`) != 1 {
		t.Errorf("a refused push left a revision:\n%s", got)
	}
}

// hostileTarGz writes a .tar.gz with the given raw entry names.
func hostileTarGz(t *testing.T, entries map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hostile.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, body := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	f.Close()
	return p
}
