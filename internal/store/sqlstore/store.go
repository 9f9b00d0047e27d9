package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/internal/store"
)

// Store implements store.Store over database/sql.
type Store struct {
	d Dialect
	r *sql.DB // reads
	w *sql.DB // writes and every transaction
}

var _ store.Store = (*Store)(nil)

// New returns a Store that reads through reads and writes through writes
// (the same *sql.DB when the engine has no reason to separate them), after
// applying pending schema migrations. The Store owns both handles: Close
// closes them.
func New(ctx context.Context, d Dialect, reads, writes *sql.DB) (*Store, error) {
	if d.IsUniqueViolation == nil || d.Bytewise == "" {
		return nil, errors.New("sqlstore: incomplete dialect")
	}
	s := &Store{d: d, r: reads, w: writes}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", d.Name, err)
	}
	return s, nil
}

// Close closes the database handles.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// q rebinds a query for the dialect.
func (s *Store) q(query string) string { return s.d.rebind(query) }

// inTx runs fn in a write transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// conflict turns unique violations into store.ErrConflict.
func (s *Store) conflict(err error) error {
	if err != nil && s.d.IsUniqueViolation(err) {
		return &conflictError{cause: err}
	}
	return err
}

// conflictError is a unique violation: it reads as store.ErrConflict
// ("already exists") and keeps the driver's error for errors.As and for
// logs, but not in its text, which callers prefix with what already exists
// and which may reach users ("UNIQUE constraint failed: applications.name
// (1555)" tells a user nothing).
type conflictError struct{ cause error }

func (e *conflictError) Error() string { return store.ErrConflict.Error() }

// Is makes the error match store.ErrConflict.
func (e *conflictError) Is(target error) bool { return target == store.ErrConflict }

// Unwrap returns the driver's error.
func (e *conflictError) Unwrap() error { return e.cause }

// exec runs one write statement outside a transaction and returns the number
// of rows it changed.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return 0, s.conflict(err)
	}
	return res.RowsAffected()
}

// exists reports whether table has a row with the given id.
func (s *Store) exists(ctx context.Context, table, id string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, s.q("SELECT 1 FROM "+table+" WHERE id = ?"), id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// notFound maps sql.ErrNoRows to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// ns converts a time to its column value: nanoseconds, or NULL for zero.
func ns(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// nsp converts an optional time to its column value.
func nsp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ns(*t)
}

// tm converts a column value back to a UTC time.
func tm(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

// tmp converts a column value back to an optional UTC time.
func tmp(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := tm(v)
	return &t
}

// jsonText encodes v as JSON text; nil maps become "{}".
func jsonText(v any) (string, error) {
	if m, ok := v.(map[string]string); ok && m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// labels decodes a JSON labels column; the result is never nil.
func labels(text string) (map[string]string, error) {
	m := map[string]string{}
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return nil, fmt.Errorf("decode labels: %w", err)
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

// cleanText makes s storable on every engine: valid UTF-8 without NUL bytes
// (PostgreSQL's text type rejects both). Invalid bytes and NULs become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// nilIfEmpty returns nil for "" so that COALESCE keeps the column.
func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
