package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gantry-dev/gantry/internal/store"
)

// ClaimIdempotencyKey stores k unless an unexpired record has its (Caller,
// Key). In one transaction: an expired record is deleted, then an INSERT
// that does nothing on a primary-key conflict claims the key; if it
// inserted nothing, the record that holds the key is returned. On
// PostgreSQL the INSERT of a concurrent claim waits for the first
// transaction and then does nothing, so one claim wins.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, k store.IdempotencyKey, now time.Time) (store.IdempotencyKey, bool, error) {
	var (
		got     store.IdempotencyKey
		claimed bool
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM idempotency_keys WHERE caller = ? AND idem_key = ? AND expires_at <= ?"),
			k.Caller, k.Key, now.UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO idempotency_keys (caller, idem_key, request_hash, resource_id, status, created_at, expires_at)
VALUES (?, ?, ?, '', 0, ?, ?) ON CONFLICT (caller, idem_key) DO NOTHING`), k.Caller, k.Key, k.RequestHash, k.CreatedAt.UnixNano(), k.ExpiresAt.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			got, claimed = k, true
			got.ResourceID, got.Status = "", 0
			return nil
		}
		var created, expires int64
		err = tx.QueryRowContext(ctx, s.q(`SELECT caller, idem_key, request_hash, resource_id, status, created_at, expires_at
FROM idempotency_keys WHERE caller = ? AND idem_key = ?`), k.Caller, k.Key).
			Scan(&got.Caller, &got.Key, &got.RequestHash, &got.ResourceID, &got.Status, &created, &expires)
		got.CreatedAt, got.ExpiresAt = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
		return notFound(err)
	})
	if err != nil {
		return store.IdempotencyKey{}, false, fmt.Errorf("claim idempotency key %q: %w", k.Key, err)
	}
	if claimed {
		got.CreatedAt, got.ExpiresAt = got.CreatedAt.UTC(), got.ExpiresAt.UTC()
	}
	return got, claimed, nil
}

// FinishIdempotencyKey records the resource and status of a claimed key.
func (s *Store) FinishIdempotencyKey(ctx context.Context, caller, key, resourceID string, status int) error {
	n, err := s.exec(ctx, "UPDATE idempotency_keys SET resource_id = ?, status = ? WHERE caller = ? AND idem_key = ?",
		resourceID, status, caller, key)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("finish idempotency key %q: %w", key, err)
	}
	return nil
}

// ReleaseIdempotencyKey deletes an unfinished claim.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, caller, key string) error {
	if _, err := s.exec(ctx, "DELETE FROM idempotency_keys WHERE caller = ? AND idem_key = ? AND resource_id = ''", caller, key); err != nil {
		return fmt.Errorf("release idempotency key %q: %w", key, err)
	}
	return nil
}

// PurgeIdempotencyKeys deletes the records expired at now.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM idempotency_keys WHERE expires_at <= ?", now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return int(n), nil
}
