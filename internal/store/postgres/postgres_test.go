package postgres

import (
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for the admin connection

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/postgres/pgtest"
	"github.com/gantry-dev/gantry/internal/store/storetest"
)

// openFresh opens a store in a new schema.
func openFresh(t *testing.T) (store.Store, string) {
	t.Helper()
	u := pgtest.FreshSchema(t)
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
