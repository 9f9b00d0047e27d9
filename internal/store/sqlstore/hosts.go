package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

const hostCols = "id, name, nkey, labels, facts, status, last_seen, enrolled_at"

func scanHost(sc scanner) (store.HostRecord, error) {
	var (
		h                    store.HostRecord
		lbl, facts           string
		lastSeen, enrolledAt sql.NullInt64
	)
	if err := sc.Scan(&h.ID, &h.Name, &h.NKey, &lbl, &facts, &h.Status, &lastSeen, &enrolledAt); err != nil {
		return h, err
	}
	var err error
	if h.Labels, err = labels(lbl); err != nil {
		return h, err
	}
	if err := json.Unmarshal([]byte(facts), &h.Facts); err != nil {
		return h, fmt.Errorf("decode facts: %w", err)
	}
	h.LastSeen, h.EnrolledAt = tm(lastSeen), tm(enrolledAt)
	return h, nil
}

// EnrollHost consumes one use of the join token with the given hash and
// creates the host, in one transaction. An empty Status becomes
// api.HostOffline and a zero EnrolledAt becomes now.
func (s *Store) EnrollHost(ctx context.Context, tokenHash string, now time.Time, h store.HostRecord) error {
	if h.Status == "" {
		h.Status = api.HostOffline
	}
	if h.EnrolledAt.IsZero() {
		h.EnrolledAt = now
	}
	lbl, err := jsonText(h.Labels)
	if err != nil {
		return fmt.Errorf("enroll host %s: %w", h.Name, err)
	}
	facts, err := json.Marshal(h.Facts)
	if err != nil {
		return fmt.Errorf("enroll host %s: %w", h.Name, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		// One conditional UPDATE consumes the use, so that concurrent
		// enrollments can never exceed MaxUses.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE join_tokens SET uses = uses + 1
WHERE hash = ? AND expires_at > ? AND (max_uses = 0 OR uses < max_uses)`), tokenHash, now.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var (
				expires       sql.NullInt64
				maxUses, uses int
			)
			err := tx.QueryRowContext(ctx, s.q("SELECT expires_at, max_uses, uses FROM join_tokens WHERE hash = ?"),
				tokenHash).Scan(&expires, &maxUses, &uses)
			switch {
			case err != nil:
				return fmt.Errorf("join token: %w", notFound(err))
			case !expires.Valid || expires.Int64 <= now.UnixNano():
				return fmt.Errorf("join token: %w", store.ErrExpired)
			default:
				return fmt.Errorf("join token (%d of %d uses): %w", uses, maxUses, store.ErrUsedUp)
			}
		}
		// The token's labels are the administrator's: they win over the
		// labels the agent asked for.
		var tokLabels string
		if err := tx.QueryRowContext(ctx, s.q("SELECT labels FROM join_tokens WHERE hash = ?"), tokenHash).Scan(&tokLabels); err != nil {
			return err
		}
		if merged, err := labels(tokLabels); err != nil {
			return fmt.Errorf("join token labels: %w", err)
		} else if len(merged) > 0 {
			for k, v := range h.Labels {
				if _, set := merged[k]; !set {
					merged[k] = v
				}
			}
			if lbl, err = jsonText(merged); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q("INSERT INTO hosts ("+hostCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
			h.ID, h.Name, h.NKey, lbl, string(facts), h.Status, ns(h.LastSeen), ns(h.EnrolledAt))
		return s.conflict(err)
	})
	if err != nil {
		return fmt.Errorf("enroll host %s: %w", h.Name, err)
	}
	return nil
}

// GetHost returns a host by id, revoked or not.
func (s *Store) GetHost(ctx context.Context, id string) (store.HostRecord, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, s.q("SELECT "+hostCols+" FROM hosts WHERE id = ?"), id))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host %s: %w", id, notFound(err))
	}
	return h, nil
}

// GetHostByName finds a non-revoked host by name.
func (s *Store) GetHostByName(ctx context.Context, name string) (store.HostRecord, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx,
		s.q("SELECT "+hostCols+" FROM hosts WHERE name = ? AND status <> ?"), name, api.HostRevoked))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host named %s: %w", name, notFound(err))
	}
	return h, nil
}

// GetHostByNKey finds a host, revoked or not, by its NATS public key.
func (s *Store) GetHostByNKey(ctx context.Context, nkey string) (store.HostRecord, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, s.q("SELECT "+hostCols+" FROM hosts WHERE nkey = ?"), nkey))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host by nkey %s: %w", nkey, notFound(err))
	}
	return h, nil
}

// ListHosts returns hosts ordered by name (then id); revoked ones only if
// includeRevoked.
func (s *Store) ListHosts(ctx context.Context, includeRevoked bool) ([]store.HostRecord, error) {
	const order = " ORDER BY name COLLATE bytewise, id COLLATE bytewise"
	query := "SELECT " + hostCols + " FROM hosts WHERE status <> ?" + order
	args := []any{api.HostRevoked}
	if includeRevoked {
		query, args = "SELECT "+hostCols+" FROM hosts"+order, nil
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var hs []store.HostRecord
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hs, nil
}

// updateHost runs an UPDATE on one host and returns ErrNotFound if the host
// does not exist. A host that exists but did not match the rest of the
// WHERE clause is not an error.
func (s *Store) updateHost(ctx context.Context, what, id, query string, args ...any) error {
	n, err := s.exec(ctx, query, args...)
	if err == nil && n == 0 {
		var ok bool
		if ok, err = s.exists(ctx, "hosts", id); err == nil && !ok {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("%s of host %s: %w", what, id, err)
	}
	return nil
}

// SetHostLabels replaces the labels of a host.
func (s *Store) SetHostLabels(ctx context.Context, id string, lbl map[string]string) error {
	text, err := jsonText(lbl)
	if err != nil {
		return fmt.Errorf("set labels of host %s: %w", id, err)
	}
	return s.updateHost(ctx, "set labels", id, "UPDATE hosts SET labels = ? WHERE id = ?", text, id)
}

// SetHostFacts replaces the facts of a host.
func (s *Store) SetHostFacts(ctx context.Context, id string, facts api.Facts) error {
	text, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("set facts of host %s: %w", id, err)
	}
	return s.updateHost(ctx, "set facts", id, "UPDATE hosts SET facts = ? WHERE id = ?", string(text), id)
}

// SetHostStatus writes status and last-seen time. A revoked host is left
// unchanged, without error.
func (s *Store) SetHostStatus(ctx context.Context, id, status string, lastSeen time.Time) error {
	return s.updateHost(ctx, "set status", id,
		"UPDATE hosts SET status = ?, last_seen = ? WHERE id = ? AND status <> ?",
		status, ns(lastSeen), id, api.HostRevoked)
}

// TouchHosts writes last-seen times of many hosts in one transaction.
// Unknown and revoked hosts are skipped.
func (s *Store) TouchHosts(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids) // one lock order for concurrent callers
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.q("UPDATE hosts SET last_seen = ? WHERE id = ? AND status <> ?"))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, id := range ids {
			if _, err := st.ExecContext(ctx, ns(seen[id]), id, api.HostRevoked); err != nil {
				return fmt.Errorf("host %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch %d hosts: %w", len(seen), err)
	}
	return nil
}

// RevokeHost marks a host revoked (idempotent). Its name becomes free; its
// NKey stays taken.
func (s *Store) RevokeHost(ctx context.Context, id string) error {
	return s.updateHost(ctx, "revoke", id, "UPDATE hosts SET status = ? WHERE id = ?", api.HostRevoked, id)
}

// CreateAPIToken stores an API token; ErrConflict if the id or hash exists.
func (s *Store) CreateAPIToken(ctx context.Context, t store.APIToken) error {
	_, err := s.exec(ctx, "INSERT INTO api_tokens (id, name, hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
		t.ID, t.Name, t.Hash, t.Role, ns(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.Name, err)
	}
	return nil
}

// GetAPITokenByHash finds an API token by the SHA-256 of its secret.
func (s *Store) GetAPITokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	var (
		t       store.APIToken
		created sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, s.q("SELECT id, name, hash, role, created_at FROM api_tokens WHERE hash = ?"), hash).
		Scan(&t.ID, &t.Name, &t.Hash, &t.Role, &created)
	if err != nil {
		return store.APIToken{}, fmt.Errorf("get api token: %w", notFound(err))
	}
	t.CreatedAt = tm(created)
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

// CreateJoinToken stores a join token (its hash, never the token);
// ErrConflict if the id or hash exists.
func (s *Store) CreateJoinToken(ctx context.Context, t store.JoinTokenRecord) error {
	lbl, err := jsonText(t.Labels)
	if err == nil {
		_, err = s.exec(ctx, `INSERT INTO join_tokens (id, hash, labels, expires_at, max_uses, uses, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`, t.ID, t.Hash, lbl, ns(t.ExpiresAt), t.MaxUses, t.Uses, ns(t.CreatedAt))
	}
	if err != nil {
		return fmt.Errorf("create join token %s: %w", t.ID, err)
	}
	return nil
}

// ListJoinTokens returns all join tokens, expired and used up included,
// oldest first. Token is always empty.
func (s *Store) ListJoinTokens(ctx context.Context) ([]api.JoinToken, error) {
	rows, err := s.r.QueryContext(ctx,
		s.q("SELECT id, labels, expires_at, max_uses, uses, created_at FROM join_tokens ORDER BY created_at, id COLLATE bytewise"))
	if err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	defer rows.Close()
	var ts []api.JoinToken
	for rows.Next() {
		var (
			t                api.JoinToken
			lbl              string
			expires, created sql.NullInt64
		)
		if err := rows.Scan(&t.ID, &lbl, &expires, &t.MaxUses, &t.Uses, &created); err != nil {
			return nil, fmt.Errorf("list join tokens: %w", err)
		}
		if t.Labels, err = labels(lbl); err != nil {
			return nil, fmt.Errorf("list join tokens: %w", err)
		}
		t.ExpiresAt, t.CreatedAt = tm(expires), tm(created)
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list join tokens: %w", err)
	}
	return ts, nil
}
