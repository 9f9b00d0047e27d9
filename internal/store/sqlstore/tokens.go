package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

const apiTokenCols = "id, name, hash, role, created_at, owner, expires_at"

func scanAPIToken(sc scanner) (store.APIToken, error) {
	var (
		t                store.APIToken
		created, expires sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Name, &t.Hash, &t.Role, &created, &t.Owner, &expires); err != nil {
		return t, err
	}
	t.CreatedAt, t.ExpiresAt = tm(created), tm(expires)
	return t, nil
}

// CreateAPIToken stores an API token; ErrConflict if the id or hash exists.
func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	_, err := s.exec(ctx, "INSERT INTO api_tokens ("+apiTokenCols+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		t.ID, t.Name, t.Hash, t.Role, ns(t.CreatedAt), t.Owner, ns(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.Name, err)
	}
	return nil
}

// GetAPITokenByHash finds an API token, expired or not, by the SHA-256 of
// its secret.
func (s *Store) GetAPITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	t, err := scanAPIToken(s.r.QueryRowContext(ctx, s.q("SELECT "+apiTokenCols+" FROM api_tokens WHERE hash = ?"), hash))
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get api token: %w", notFound(err))
	}
	return t, nil
}

// CountAPITokens returns the number of API tokens.
func (s *Store) CountAPITokens(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_tokens").Scan(&n); err != nil {
		return 0, fmt.Errorf("count api tokens: %w", err)
	}
	return n, nil
}

// ListAPITokens returns every API token, oldest first (then by id).
func (s *Store) ListAPITokens(ctx context.Context) ([]store.APIToken, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+apiTokenCols+" FROM api_tokens ORDER BY created_at, id COLLATE bytewise"))
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	defer rows.Close()
	var ts []store.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list api tokens: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	return ts, nil
}

// DeleteAPIToken removes an API token; ErrNotFound if none has the id.
func (s *Store) DeleteAPIToken(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "api_tokens", "api token", id)
}

// deleteByID deletes the row of table with the id; ErrNotFound if none.
func (s *Store) deleteByID(ctx context.Context, table, what, id string) error {
	n, err := s.exec(ctx, "DELETE FROM "+table+" WHERE id = ?", id)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", what, id, err)
	}
	return nil
}

// CreateJoinToken stores a join token (its hash, never the token);
// ErrConflict if the id or hash exists.
func (s *Store) CreateJoinToken(ctx context.Context, t store.JoinTokenRecord) error {
	lbl, err := jsonText(t.Labels)
	var agent []byte
	if err == nil {
		agent, err = json.Marshal(nonNil(t.AgentLabels))
	}
	if err == nil {
		_, err = s.exec(ctx, `INSERT INTO join_tokens (id, hash, labels, agent_labels, expires_at, max_uses, uses, created_at, internal, owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Hash, lbl, string(agent), ns(t.ExpiresAt), t.MaxUses, t.Uses, ns(t.CreatedAt), t.Internal, t.Owner)
	}
	if err != nil {
		return fmt.Errorf("create join token %s: %w", t.ID, err)
	}
	return nil
}

// nonNil returns s, or an empty slice for nil (stored as [] not null).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const joinTokenCols = "id, hash, labels, agent_labels, expires_at, max_uses, uses, created_at, internal, owner"

func scanJoinToken(sc scanner) (store.JoinTokenRecord, error) {
	var (
		t                store.JoinTokenRecord
		lbl, agent       string
		expires, created sql.NullInt64
	)
	if err := sc.Scan(&t.ID, &t.Hash, &lbl, &agent, &expires, &t.MaxUses, &t.Uses, &created, &t.Internal, &t.Owner); err != nil {
		return t, err
	}
	var err error
	if t.Labels, err = labels(lbl); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(agent), &t.AgentLabels); err != nil {
		return t, fmt.Errorf("decode agent labels: %w", err)
	}
	if len(t.AgentLabels) == 0 {
		t.AgentLabels = nil
	}
	t.ExpiresAt, t.CreatedAt = tm(expires), tm(created)
	return t, nil
}

// ListJoinTokens returns all join tokens, expired and used up included,
// oldest first. Token is always empty.
func (s *Store) ListJoinTokens(ctx context.Context) ([]api.JoinToken, error) {
	rows, err := s.r.QueryContext(ctx,
		s.q("SELECT "+joinTokenCols+" FROM join_tokens ORDER BY created_at, id COLLATE bytewise"))
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	defer rows.Close()
	var ts []api.JoinToken
	for rows.Next() {
		t, err := scanJoinToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list join tokens: %w", err)
		}
		ts = append(ts, t.JoinToken)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return ts, nil
}

// GetJoinTokenByHash returns a join token, expired or used up included.
func (s *Store) GetJoinTokenByHash(ctx context.Context, hash string) (store.JoinTokenRecord, error) {
	t, err := scanJoinToken(s.r.QueryRowContext(ctx, s.q("SELECT "+joinTokenCols+" FROM join_tokens WHERE hash = ?"), hash))
	if err != nil {
		return store.JoinTokenRecord{}, fmt.Errorf("get join token: %w", notFound(err))
	}
	return t, nil
}

// DeleteJoinToken removes a join token; hosts enrolled with it stay.
func (s *Store) DeleteJoinToken(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "join_tokens", "join token", id)
}
