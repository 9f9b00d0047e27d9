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

// hostReadCols are the columns scanHost reads: hostCols and those that only
// presence writes (migration 0007).
const hostReadCols = hostCols + ", status_changed_at, clock_skew_ms"

func scanHost(sc scanner) (store.HostRecord, error) {
	var (
		h                    store.HostRecord
		lbl, facts           string
		lastSeen, enrolledAt sql.NullInt64
		changedAt, skew      sql.NullInt64
	)
	if err := sc.Scan(&h.ID, &h.Name, &h.NKey, &lbl, &facts, &h.Status, &lastSeen, &enrolledAt, &changedAt, &skew); err != nil {
		return h, err
	}
	var err error
	if h.Labels, err = labels(lbl); err != nil {
		return h, err
	}
	if err := json.Unmarshal([]byte(facts), &h.Facts); err != nil {
		return h, fmt.Errorf("decode facts: %w", err)
	}
	h.LastSeen, h.EnrolledAt, h.StatusChangedAt = tm(lastSeen), tm(enrolledAt), tm(changedAt)
	if skew.Valid {
		h.ClockSkewMillis = &skew.Int64
	}
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
	h, err := scanHost(s.r.QueryRowContext(ctx, s.q("SELECT "+hostReadCols+" FROM hosts WHERE id = ?"), id))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host %s: %w", id, notFound(err))
	}
	return h, nil
}

// GetHostByName finds a non-revoked host by name.
func (s *Store) GetHostByName(ctx context.Context, name string) (store.HostRecord, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx,
		s.q("SELECT "+hostReadCols+" FROM hosts WHERE name = ? AND status <> ?"), name, api.HostRevoked))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host named %s: %w", name, notFound(err))
	}
	return h, nil
}

// GetHostByNKey finds a host, revoked or not, by its NATS public key.
func (s *Store) GetHostByNKey(ctx context.Context, nkey string) (store.HostRecord, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, s.q("SELECT "+hostReadCols+" FROM hosts WHERE nkey = ?"), nkey))
	if err != nil {
		return store.HostRecord{}, fmt.Errorf("get host by nkey %s: %w", nkey, notFound(err))
	}
	return h, nil
}

// ListHosts returns hosts ordered by name (then id); revoked ones only if
// includeRevoked.
func (s *Store) ListHosts(ctx context.Context, includeRevoked bool) ([]store.HostRecord, error) {
	const order = " ORDER BY name COLLATE bytewise, id COLLATE bytewise"
	query := "SELECT " + hostReadCols + " FROM hosts WHERE status <> ?" + order
	args := []any{api.HostRevoked}
	if includeRevoked {
		query, args = "SELECT "+hostReadCols+" FROM hosts"+order, nil
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

// SetHostStatus records that the host's status changed to status at time
// at. Writes are ordered by at: one older than the stored change is skipped
// without error, so that a late write never overwrites a newer one. An
// online status also raises last_seen to at. A revoked host is left
// unchanged, without error.
func (s *Store) SetHostStatus(ctx context.Context, id, status string, at time.Time) error {
	seen := "last_seen"
	if status == api.HostOnline {
		seen = "CASE WHEN last_seen IS NULL OR last_seen < ? THEN ? ELSE last_seen END"
	}
	args := []any{status, ns(at)}
	if status == api.HostOnline {
		args = append(args, ns(at), ns(at))
	}
	args = append(args, id, api.HostRevoked, ns(at))
	return s.updateHost(ctx, "set status", id, `UPDATE hosts SET status = ?, status_changed_at = ?, last_seen = `+seen+`
WHERE id = ? AND status <> ? AND (status_changed_at IS NULL OR status_changed_at <= ?)`, args...)
}

// SetHostClockSkew records the host's clock skew as its agent measured it
// (its clock minus the server's). A revoked host is left unchanged.
func (s *Store) SetHostClockSkew(ctx context.Context, id string, skew time.Duration) error {
	return s.updateHost(ctx, "set clock skew", id,
		"UPDATE hosts SET clock_skew_ms = ? WHERE id = ? AND status <> ?", skew.Milliseconds(), id, api.HostRevoked)
}

// TouchHosts raises last-seen times of many hosts in one transaction (a
// time older than the stored one is skipped). Unknown and revoked hosts are
// skipped.
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
		st, err := tx.PrepareContext(ctx, s.q("UPDATE hosts SET last_seen = ? WHERE id = ? AND status <> ? AND (last_seen IS NULL OR last_seen < ?)"))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, id := range ids {
			if _, err := st.ExecContext(ctx, ns(seen[id]), id, api.HostRevoked, ns(seen[id])); err != nil {
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
