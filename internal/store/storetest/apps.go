package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var appTests = []test{
	{"Apps/CreateGetList", testAppsCreateGetList},
	{"Apps/Revisions", testRevisions},
	{"Blobs/RoundTrip", testBlobsRoundTrip},
	{"Blobs/Idempotent", testBlobsIdempotent},
}

func testAppsCreateGetList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, n := range []string{"web", "api", "Zeta"} {
		ok(t, s.CreateApplication(ctx, api.Application{Name: n, CreatedAt: at(time.Minute)}), "CreateApplication %s", n)
	}
	if err := s.CreateApplication(ctx, api.Application{Name: "web"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate application: %v, want ErrConflict", err)
	} else if msg := err.Error(); !strings.HasSuffix(msg, "already exists") || strings.Contains(msg, "constraint") {
		// The message may reach users: the driver's text stays out of it.
		t.Errorf("duplicate application: %q, want it to end in \"already exists\" without the driver's text", msg)
	}
	a, err := s.GetApplication(ctx, "api")
	ok(t, err, "GetApplication")
	if a.Name != "api" || !a.CreatedAt.Equal(at(time.Minute)) {
		t.Errorf("GetApplication = %+v", a)
	}
	if _, err := s.GetApplication(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing application: %v", err)
	}
	all, err := s.ListApplications(ctx)
	ok(t, err, "ListApplications")
	var names []string
	for _, a := range all {
		names = append(names, a.Name)
	}
	if len(names) != 3 || names[0] != "Zeta" || names[1] != "api" || names[2] != "web" {
		t.Errorf("ListApplications order = %v, want byte order [Zeta api web]", names)
	}
}

func testRevisions(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateApplication(ctx, api.Application{Name: "web", CreatedAt: t0}), "CreateApplication")
	r1 := api.Revision{ID: "r-1", App: "web", Digest: "sha256:aa", Size: 10, Description: "first", AppSpec: "version: 0.0\n", CreatedAt: at(time.Second)}
	r2 := api.Revision{ID: "r-2", App: "web", Digest: "sha256:bb", Size: 20, AppSpec: "version: 0.0\nos: linux\n", CreatedAt: at(2 * time.Second)}
	ok(t, s.CreateRevision(ctx, r1), "CreateRevision r1")
	ok(t, s.CreateRevision(ctx, r2), "CreateRevision r2")
	if err := s.CreateRevision(ctx, r1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate revision: %v, want ErrConflict", err)
	}
	if err := s.CreateRevision(ctx, api.Revision{ID: "r-x", App: "nope", Digest: "d"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revision of a missing application: %v, want ErrNotFound", err)
	}
	got, err := s.GetRevision(ctx, "web", "r-1")
	ok(t, err, "GetRevision")
	want := r1
	want.CreatedAt = utc(r1.CreatedAt)
	same(t, got, want, "GetRevision")
	list, err := s.ListRevisions(ctx, "web")
	ok(t, err, "ListRevisions")
	if len(list) != 2 || list[0].ID != "r-2" || list[1].ID != "r-1" {
		t.Fatalf("ListRevisions = %+v, want newest first", list)
	}
	if list[0].AppSpec != "" {
		t.Errorf("ListRevisions carries the appspec text")
	}
	if _, err := s.ListRevisions(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revisions of a missing application: %v", err)
	}
	if _, err := s.GetRevision(ctx, "web", "r-9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing revision: %v", err)
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func testBlobsRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, size := range []int{0, 1, 1 << 20, 3<<20 + 17} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i/251)
		}
		d := digestOf(data)
		n, err := s.PutBlob(ctx, d, bytes.NewReader(data))
		ok(t, err, "PutBlob %d bytes", size)
		if n != int64(size) {
			t.Errorf("PutBlob size = %d, want %d", n, size)
		}
		rc, n, err := s.OpenBlob(ctx, d)
		ok(t, err, "OpenBlob")
		got, err := io.ReadAll(rc)
		rc.Close()
		ok(t, err, "read blob")
		if n != int64(size) || !bytes.Equal(got, data) {
			t.Errorf("blob of %d bytes came back as %d bytes (declared %d)", size, len(got), n)
		}
	}
	if _, _, err := s.OpenBlob(ctx, "sha256:none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
}

func testBlobsIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	data := bytes.Repeat([]byte("gantry"), 300000)
	d := digestOf(data)
	for i := 0; i < 2; i++ {
		n, err := s.PutBlob(ctx, d, bytes.NewReader(data))
		ok(t, err, "PutBlob #%d", i)
		if n != int64(len(data)) {
			t.Errorf("PutBlob #%d size = %d", i, n)
		}
	}
	rc, _, err := s.OpenBlob(ctx, d)
	ok(t, err, "OpenBlob")
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, data) {
		t.Errorf("blob changed after a second put: %d bytes", len(got))
	}
	// A failing reader stores nothing.
	bad := io.MultiReader(bytes.NewReader(data[:1<<20+5]), iotestErr{})
	if _, err := s.PutBlob(ctx, "sha256:partial", bad); err == nil {
		t.Fatal("PutBlob with a failing reader succeeded")
	}
	if _, _, err := s.OpenBlob(ctx, "sha256:partial"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed put left a blob: %v", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
