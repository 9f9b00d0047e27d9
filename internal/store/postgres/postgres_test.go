package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for the admin connection

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/storetest"
)

// serverURL returns the test server's URL, or skips or fails the test.
func serverURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("GANTRY_TEST_POSTGRES_URL")
	if u == "" {
		if testing.Short() {
			t.Skip("GANTRY_TEST_POSTGRES_URL is not set")
		}
		t.Fatal("GANTRY_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server (make test starts one); run with -short to skip")
	}
	return u
}

// freshSchema creates a schema with a random name, dropped when the test
// ends, and returns the server URL with search_path set to it.
func freshSchema(t *testing.T) string {
	t.Helper()
	base := serverURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var b [8]byte
	rand.Read(b[:])
	schema := "gantry_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("GANTRY_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// openFresh opens a store in a new schema.
func openFresh(t *testing.T) (store.Store, string) {
	t.Helper()
	u := freshSchema(t)
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, u
}

// TestConformance runs the store conformance suite, one schema per test.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openFresh(t)
		return s
	})
}

// TestReopenAndConcurrentOpen checks that servers opening one database at
// once all succeed and that each migration is applied once.
func TestReopenAndConcurrentOpen(t *testing.T) {
	s, u := openFresh(t)
	if err := s.PutSetting(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Servers starting together: all migrate (or find it done) without error.
	errs := make(chan error)
	for range 4 {
		go func() {
			s, err := Open(t.Context(), u)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	s, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.GetSetting(t.Context(), "k"); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, maxVersion int
	if err := db.QueryRow("SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&n, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if n == 0 || n != maxVersion {
		t.Fatalf("schema_migrations: %d rows up to version %d; want each version once", n, maxVersion)
	}
}

// TestFreshSchemaIsolation checks that search_path in the URL is honoured.
func TestFreshSchemaIsolation(t *testing.T) {
	a, _ := openFresh(t)
	defer a.Close()
	b, _ := openFresh(t)
	defer b.Close()
	if err := a.PutSetting(t.Context(), "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetSetting(t.Context(), "k"); err == nil {
		t.Fatal("a setting written in one schema is visible in another: search_path is ignored")
	}
}
