package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gantry-dev/gantry/internal/store"
)

const envCols = "name, serial, state, definition, vars, events, created_at, updated_at"

func scanEnv(sc scanner) (store.Environment, error) {
	var e store.Environment
	var state, vars, events string
	var created, updated sql.NullInt64
	if err := sc.Scan(&e.Name, &e.Serial, &state, &e.Definition, &vars, &events, &created, &updated); err != nil {
		return e, err
	}
	e.State, e.Vars, e.Events = []byte(state), []byte(vars), []byte(events)
	e.CreatedAt, e.UpdatedAt = tm(created), tm(updated)
	return e, nil
}

// GetEnvironment returns one environment.
func (s *Store) GetEnvironment(ctx context.Context, name string) (store.Environment, error) {
	e, err := scanEnv(s.r.QueryRowContext(ctx, s.q("SELECT "+envCols+" FROM environments WHERE name = ?"), name))
	if err != nil {
		return e, fmt.Errorf("environment %s: %w", name, notFound(err))
	}
	return e, nil
}

// ListEnvironments returns every environment ordered by name, without
// their definitions (GetEnvironment has them): the lifecycle controller
// lists environments twice a second.
func (s *Store) ListEnvironments(ctx context.Context) ([]store.Environment, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT name, serial, state, NULL, vars, events, created_at, updated_at FROM environments ORDER BY name COLLATE "+s.d.Bytewise))
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	defer rows.Close()
	var out []store.Environment
	for rows.Next() {
		e, err := scanEnv(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SaveEnvironment writes an environment's state, definition and variables
// with serial e.Serial, if its stored serial is still prev (0: it must not
// exist yet). Otherwise it returns ErrConflict.
func (s *Store) SaveEnvironment(ctx context.Context, e store.Environment, prev int64) error {
	if e.Serial <= prev {
		return fmt.Errorf("save environment %s: serial %d must be greater than %d", e.Name, e.Serial, prev)
	}
	if prev == 0 {
		_, err := s.exec(ctx, "INSERT INTO environments ("+envCols+") VALUES (?, ?, ?, ?, ?, '[]', ?, ?)",
			e.Name, e.Serial, string(e.State), e.Definition, string(e.Vars), ns(e.CreatedAt), ns(e.UpdatedAt))
		if err != nil {
			return fmt.Errorf("create environment %s: %w", e.Name, err)
		}
		return nil
	}
	n, err := s.exec(ctx, "UPDATE environments SET serial = ?, state = ?, definition = ?, vars = ?, updated_at = ? WHERE name = ? AND serial = ?",
		e.Serial, string(e.State), e.Definition, string(e.Vars), ns(e.UpdatedAt), e.Name, prev)
	if err != nil {
		return fmt.Errorf("save environment %s: %w", e.Name, err)
	}
	if n == 0 {
		return fmt.Errorf("save environment %s at serial %d: %w (the state moved)", e.Name, prev, store.ErrConflict)
	}
	return nil
}

// SetEnvironmentEvents replaces an environment's lifecycle runs; the
// serial does not change.
func (s *Store) SetEnvironmentEvents(ctx context.Context, name string, events []byte) error {
	n, err := s.exec(ctx, "UPDATE environments SET events = ? WHERE name = ?", string(events), name)
	if err != nil {
		return fmt.Errorf("save events of environment %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("environment %s: %w", name, store.ErrNotFound)
	}
	return nil
}

// DeleteEnvironment removes an environment (it is not an error if it is
// gone already).
func (s *Store) DeleteEnvironment(ctx context.Context, name string) error {
	if _, err := s.exec(ctx, "DELETE FROM environments WHERE name = ?", name); err != nil {
		return fmt.Errorf("delete environment %s: %w", name, err)
	}
	return nil
}

// ReleaseLease gives up a lease if holder holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.exec(ctx, "DELETE FROM leases WHERE name = ? AND holder = ?", name, holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// GetLease returns a lease as stored (it may have expired); ErrNotFound if
// it was never taken or was released.
func (s *Store) GetLease(ctx context.Context, name string) (store.Lease, error) {
	l := store.Lease{Name: name}
	var expires int64
	err := s.r.QueryRowContext(ctx, s.q("SELECT holder, epoch, expires_at FROM leases WHERE name = ?"), name).Scan(&l.Holder, &l.Epoch, &expires)
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", name, notFound(err))
	}
	l.ExpiresAt = time.Unix(0, expires).UTC()
	return l, nil
}
