package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

const scheduleCols = `id, cron, selector, script, concurrency, timeout_seconds, run_as, created_at,
last_run_at, next_run_at, last_job_id, disabled, updated_at`

func scanSchedule(sc scanner) (api.Schedule, error) {
	var (
		sch                             api.Schedule
		created, last, nextRun, updated sql.NullInt64
	)
	err := sc.Scan(&sch.ID, &sch.Cron, &sch.Selector, &sch.Script, &sch.Concurrency, &sch.TimeoutSeconds,
		&sch.User, &created, &last, &nextRun, &sch.LastJobID, &sch.Disabled, &updated)
	sch.CreatedAt, sch.LastRunAt, sch.NextRunAt, sch.UpdatedAt = tm(created), tmp(last), tmp(nextRun), tmp(updated)
	return sch, err
}

// CreateSchedule stores a schedule; ErrConflict if the id exists.
func (s *Store) CreateSchedule(ctx context.Context, sch api.Schedule) error {
	_, err := s.exec(ctx, "INSERT INTO schedules ("+scheduleCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		sch.ID, sch.Cron, sch.Selector, sch.Script, sch.Concurrency, sch.TimeoutSeconds, sch.User,
		ns(sch.CreatedAt), nsp(sch.LastRunAt), nsp(sch.NextRunAt), sch.LastJobID, sch.Disabled, nsp(sch.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create schedule %s: %w", sch.ID, err)
	}
	return nil
}

// ListSchedules returns all schedules, oldest first.
func (s *Store) ListSchedules(ctx context.Context) ([]api.Schedule, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+scheduleCols+" FROM schedules ORDER BY created_at, id COLLATE bytewise"))
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer rows.Close()
	var out []api.Schedule
	for rows.Next() {
		sch, err := scanSchedule(rows)
		if err != nil {
			return nil, fmt.Errorf("list schedules: %w", err)
		}
		out = append(out, sch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// GetSchedule returns one schedule.
func (s *Store) GetSchedule(ctx context.Context, id string) (api.Schedule, error) {
	sch, err := scanSchedule(s.r.QueryRowContext(ctx, s.q("SELECT "+scheduleCols+" FROM schedules WHERE id = ?"), id))
	if err != nil {
		return api.Schedule{}, fmt.Errorf("get schedule %s: %w", id, notFound(err))
	}
	return sch, nil
}

// DeleteSchedule deletes a schedule; ErrNotFound if there is none. Jobs it
// created stay.
func (s *Store) DeleteSchedule(ctx context.Context, id string) error {
	return s.deleteByID(ctx, "schedules", "schedule", id)
}

// MarkScheduleRun records slot as the schedule's LastRunAt and jobID as its
// LastJobID, if slot is later than the recorded slot; otherwise it returns
// false without writing (a slot never runs twice, and never runs after a
// later one). The compare and the set are one UPDATE.
func (s *Store) MarkScheduleRun(ctx context.Context, id string, slot time.Time, jobID string) (bool, error) {
	n, err := s.exec(ctx, `UPDATE schedules SET last_run_at = ?, last_job_id = ?
WHERE id = ? AND (last_run_at IS NULL OR last_run_at < ?)`, slot.UnixNano(), jobID, id, slot.UnixNano())
	if err == nil && n == 0 {
		var ok bool
		if ok, err = s.exists(ctx, "schedules", id); err == nil && !ok {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return false, fmt.Errorf("mark run of schedule %s at %s: %w", id, slot.UTC().Format(time.RFC3339), err)
	}
	return n == 1, nil
}

// AcquireLease takes or renews the named lease for holder until now+ttl.
// A lease is expired from its ExpiresAt on. The same holder renews without
// changing Epoch; another holder gets ErrLeaseHeld until the lease expires
// and then takes it over with Epoch+1. The first holder ever gets Epoch 1.
//
// Both steps are single atomic statements: an INSERT that does nothing if
// the lease exists, then a conditional UPDATE that only the current holder
// or, after expiry, one contender can win.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (store.Lease, error) {
	l := store.Lease{Name: name, Holder: holder, Epoch: 1, ExpiresAt: now.Add(ttl).UTC()}
	n, err := s.exec(ctx, `INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING`, name, holder, l.Epoch, l.ExpiresAt.UnixNano())
	if err != nil {
		return store.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if n == 1 {
		return l, nil
	}
	err = s.w.QueryRowContext(ctx, s.q(`UPDATE leases
SET epoch = CASE WHEN holder = ? THEN epoch ELSE epoch + 1 END, holder = ?, expires_at = ?
WHERE name = ? AND (holder = ? OR expires_at <= ?)
RETURNING epoch`), holder, holder, l.ExpiresAt.UnixNano(), name, holder, now.UnixNano()).Scan(&l.Epoch)
	if errors.Is(err, sql.ErrNoRows) {
		var (
			other   string
			expires int64
		)
		err = store.ErrLeaseHeld
		if s.r.QueryRowContext(ctx, s.q("SELECT holder, expires_at FROM leases WHERE name = ?"), name).
			Scan(&other, &expires) == nil {
			err = fmt.Errorf("%w: %s until %s", err, other, time.Unix(0, expires).UTC().Format(time.RFC3339Nano))
		}
	}
	if err != nil {
		return store.Lease{}, fmt.Errorf("acquire lease %s for %s: %w", name, holder, err)
	}
	return l, nil
}

// GetSetting returns a setting; ErrNotFound if it was never put.
func (s *Store) GetSetting(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.r.QueryRowContext(ctx, s.q("SELECT value FROM settings WHERE name = ?"), key).Scan(&v); err != nil {
		return nil, fmt.Errorf("get setting %s: %w", key, notFound(err))
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutSetting creates or replaces a setting.
func (s *Store) PutSetting(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	_, err := s.exec(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("put setting %s: %w", key, err)
	}
	return nil
}
