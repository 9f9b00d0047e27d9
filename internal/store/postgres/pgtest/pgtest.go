// Package pgtest gives tests a PostgreSQL of their own: a fresh schema on
// the server named by GANTRY_TEST_POSTGRES_URL (make test starts one),
// dropped when the test ends. Without the variable a test fails with a clear
// message, or is skipped under -short.
package pgtest

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
)

// ServerURL returns the test server's URL, or skips or fails the test.
func ServerURL(t *testing.T) string {
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

// FreshSchema creates a schema with a random name, dropped when the test
// ends, and returns the server URL with search_path set to it.
func FreshSchema(t *testing.T) string {
	t.Helper()
	base := ServerURL(t)
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
