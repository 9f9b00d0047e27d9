package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// Removal of applications, deployment groups and machine join tokens, and
// changes to schedules: the end of each object's lifecycle. Deletes that
// span tables run in one transaction and refuse while a deployment is not
// final, so that the deployment engine never loses the records it works
// on.

// activeDeploymentIn returns the id of a deployment that is not final
// among those matching cond (a condition on the deployments table with
// its arguments), or "".
func (s *Store) activeDeploymentIn(ctx context.Context, tx *sql.Tx, cond string, args ...any) (string, error) {
	var id string
	err := tx.QueryRowContext(ctx, s.q("SELECT id FROM deployments WHERE "+cond+" AND "+deployNotFinal+" ORDER BY created_at, id COLLATE bytewise LIMIT 1"), args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// deleteGroupsTx removes the given groups' host revisions and deployments
// (their hosts go by cascade) and the groups themselves.
func (s *Store) deleteGroupsTx(ctx context.Context, tx *sql.Tx, groupIDs []string) error {
	for _, id := range groupIDs {
		for _, q := range []string{
			"DELETE FROM host_revisions WHERE group_id = ?",
			"DELETE FROM deployment_hosts WHERE deployment_id IN (SELECT id FROM deployments WHERE group_id = ?)",
			"DELETE FROM deployments WHERE group_id = ?",
			"DELETE FROM deployment_groups WHERE id = ?",
		} {
			if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteGroup removes a deployment group with its deployments and host
// revisions; ErrConflict while a deployment to it is not final.
func (s *Store) DeleteGroup(ctx context.Context, app, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := tx.QueryRowContext(ctx, s.q("SELECT id FROM deployment_groups WHERE app = ? AND name = ?"), app, name).Scan(&id); err != nil {
			return notFound(err)
		}
		active, err := s.activeDeploymentIn(ctx, tx, "group_id = ?", id)
		if err != nil {
			return err
		}
		if active != "" {
			return fmt.Errorf("%w: deployment %s is in progress", store.ErrConflict, active)
		}
		return s.deleteGroupsTx(ctx, tx, []string{id})
	})
	if err != nil {
		return fmt.Errorf("delete group %s of %s: %w", name, app, err)
	}
	return nil
}

// DeleteApplication removes an application and everything that is its
// own: groups, deployments, host revisions, revisions and the bundles no
// other application uses.
func (s *Store) DeleteApplication(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM applications WHERE name = ?"), name).Scan(&one); err != nil {
			return notFound(err)
		}
		active, err := s.activeDeploymentIn(ctx, tx, "app = ?", name)
		if err != nil {
			return err
		}
		if active != "" {
			return fmt.Errorf("%w: deployment %s is in progress", store.ErrConflict, active)
		}
		groups, err := s.column(ctx, tx, "SELECT id FROM deployment_groups WHERE app = ?", name)
		if err != nil {
			return err
		}
		if err := s.deleteGroupsTx(ctx, tx, groups); err != nil {
			return err
		}
		// Deployments whose group went earlier (none today) go with
		// their application.
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM deployment_hosts WHERE deployment_id IN (SELECT id FROM deployments WHERE app = ?)"), name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM deployments WHERE app = ?"), name); err != nil {
			return err
		}
		digests, err := s.column(ctx, tx, `SELECT DISTINCT digest FROM revisions WHERE app = ?
AND digest NOT IN (SELECT digest FROM revisions WHERE app <> ?)`, name, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q("DELETE FROM revisions WHERE app = ?"), name); err != nil {
			return err
		}
		for _, d := range digests {
			// blob_meta first: a blob without it is incomplete, never read.
			if _, err := tx.ExecContext(ctx, s.q("DELETE FROM blob_meta WHERE digest = ?"), d); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q("DELETE FROM blob_chunks WHERE digest = ?"), d); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q("DELETE FROM applications WHERE name = ?"), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete application %s: %w", name, err)
	}
	return nil
}

// column runs a query of one text column in tx.
func (s *Store) column(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// DeleteJoinTokensOf removes the join tokens made for owner.
func (s *Store) DeleteJoinTokensOf(ctx context.Context, owner string) (int, error) {
	if owner == "" {
		return 0, nil
	}
	n, err := s.exec(ctx, "DELETE FROM join_tokens WHERE owner = ?", owner)
	if err != nil {
		return 0, fmt.Errorf("delete join tokens of %s: %w", owner, err)
	}
	return int(n), nil
}

// UpdateSchedule replaces a schedule's settings; its runs are kept.
func (s *Store) UpdateSchedule(ctx context.Context, sch api.Schedule) error {
	n, err := s.exec(ctx, `UPDATE schedules SET cron = ?, selector = ?, script = ?, concurrency = ?, timeout_seconds = ?,
run_as = ?, disabled = ?, updated_at = ? WHERE id = ?`,
		sch.Cron, sch.Selector, sch.Script, sch.Concurrency, sch.TimeoutSeconds, sch.User, sch.Disabled, nsp(sch.UpdatedAt), sch.ID)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", sch.ID, err)
	}
	return nil
}
