// Package postgres opens gantry's store in a PostgreSQL database through
// pgx's database/sql driver. The queries live in package sqlstore; this
// package only opens the pool and names the dialect.
//
// The URL may carry connection parameters understood by pgx, including
// search_path (e.g. "postgres://u:p@host/db?search_path=gantry"), in which
// case the tables live in the first schema of that path.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlstore"
)

// maxConns bounds the pool; gantry's load is a handful of concurrent
// transactions.
const maxConns = 16

// Dialect is the PostgreSQL dialect of sqlstore.
var Dialect = sqlstore.Dialect{
	Name:              "postgres",
	Placeholder:       sqlstore.Dollar,
	IsUniqueViolation: isUniqueViolation,
	Bytewise:          `"C"`,
	// Servers starting together migrate one after the other; the key is
	// per schema so that databases in different schemas do not wait.
	MigrationLock: "SELECT pg_advisory_xact_lock(hashtext('gantry.migrate.' || current_schema()))",
}

func isUniqueViolation(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505" // unique_violation
}

// Open connects to the database at url and applies pending migrations.
func Open(ctx context.Context, url string) (store.Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err) // pgx redacts the password
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s, err := sqlstore.New(ctx, Dialect, db, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}
