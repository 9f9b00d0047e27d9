package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
)

// encodeLB returns the load_balancer column of a group: JSON, or "".
func encodeLB(t *api.LBTarget) (string, error) {
	if t == nil {
		return "", nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode load balancer: %w", err)
	}
	return string(b), nil
}

// encodeTraffic returns the traffic column of a deployment: the JSON of t
// without its Changes (they have their own table), or "" for nil.
func encodeTraffic(t *api.DeployTraffic) (string, error) {
	if t == nil {
		return "", nil
	}
	c := *t
	c.Changes = nil
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode traffic: %w", err)
	}
	return cleanText(string(b)), nil
}

// insertTrafficChange appends one change of a deployment in tx.
func (s *Store) insertTrafficChange(ctx context.Context, tx *sql.Tx, depID string, c api.TrafficChange) error {
	c.At = c.At.UTC()
	c.DeploymentID = depID
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode traffic change: %w", err)
	}
	_, err = tx.ExecContext(ctx, s.q("INSERT INTO traffic_changes (id, deployment_id, at, body) VALUES (?, ?, ?, ?)"),
		ids.New("tc"), depID, ns(c.At), cleanText(string(b)))
	return err
}

// AddTrafficChange appends a change to a deployment's Traffic.Changes
// (ErrNotFound if there is no such deployment). It is accepted whatever
// the deployment's state: a change made as it ends is still recorded.
func (s *Store) AddTrafficChange(ctx context.Context, depID string, c api.TrafficChange) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM deployments WHERE id = ?"), depID).Scan(&one); err != nil {
			return notFound(err)
		}
		return s.insertTrafficChange(ctx, tx, depID, c)
	})
	if err != nil {
		return fmt.Errorf("deployment %s: add traffic change: %w", depID, err)
	}
	return nil
}

// loadTrafficChanges fills d.Traffic.Changes, in the order they were
// made (d.Traffic is made when there are changes and it is nil).
func (s *Store) loadTrafficChanges(ctx context.Context, d *api.Deployment) error {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT body FROM traffic_changes WHERE deployment_id = ? ORDER BY at, id COLLATE bytewise"), d.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var out []api.TrafficChange
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return err
		}
		var c api.TrafficChange
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			return fmt.Errorf("decode traffic change: %w", err)
		}
		c.At = c.At.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(out) > 0 {
		if d.Traffic == nil {
			d.Traffic = &api.DeployTraffic{}
		}
		d.Traffic.Changes = out
	}
	return nil
}
