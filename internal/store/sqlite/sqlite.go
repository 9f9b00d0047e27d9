// Package sqlite opens gantry's store in a SQLite file, using the pure-Go
// driver modernc.org/sqlite. The queries live in package sqlstore; this
// package only configures connections and names the dialect.
//
// The file is opened in WAL mode with foreign keys on, synchronous=NORMAL
// and a busy timeout. Writes go through a pool of exactly one connection
// whose transactions begin IMMEDIATE, so writers inside one process queue in
// Go instead of failing with SQLITE_BUSY; reads use a separate read-only pool
// and proceed concurrently with the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gantry-dev/gantry/internal/store"
	"github.com/gantry-dev/gantry/internal/store/sqlstore"
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// process (or a checkpoint) before giving up with SQLITE_BUSY.
const busyTimeoutMS = 10000

// readers is the size of the read pool.
const readers = 4

// Dialect is the SQLite dialect of sqlstore.
var Dialect = sqlstore.Dialect{
	Name:              "sqlite",
	Placeholder:       sqlstore.Question,
	IsUniqueViolation: isUniqueViolation,
	Bytewise:          "BINARY",
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// Open opens (creating it with mode 0600 if needed) the SQLite database at
// path and applies pending migrations.
func Open(path string) (store.Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path", path)
	}
	// Create the file ourselves so that it gets mode 0600; SQLite gives its
	// -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}

	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)", busyTimeoutMS)
	w, err := sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL before any
	// reader opens it.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s, err := sqlstore.New(context.Background(), Dialect, r, w)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}
