package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// deployStates are all deployment states of package api. A state added
// there must be added here (and, if final, to the partial indexes of
// migration 0004 by a new migration).
var deployStates = []string{api.DeployRunning, api.DeployStopping, api.DeploySucceeded, api.DeployFailed, api.DeployStopped}

// hostDeployFinal are the final states of a deployment host.
var hostDeployFinal = []string{api.HostDeploySucceeded, api.HostDeployFailed, api.HostDeploySkipped}

// quoted returns 'a', 'b', … for SQL.
func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

// deployNotFinal is an SQL condition that holds while a deployment is not
// in a final state (api.DeployDone). It is the predicate of the partial
// indexes deployments_one_active and deployments_active.
var deployNotFinal = func() string {
	var final []string
	for _, st := range deployStates {
		if api.DeployDone(st) {
			final = append(final, st)
		}
	}
	return "state NOT IN (" + quoted(final) + ")"
}()

// hostNotFinal is an SQL condition that holds while a deployment host is
// not in a final state.
var hostNotFinal = "state NOT IN (" + quoted(hostDeployFinal) + ")"

const groupCols = "id, app, name, selector, config, health_check, auto_rollback, revision, created_at, load_balancer"

const deploymentCols = `id, app, group_id, group_name, revision, config, min_healthy, state, batch, kind,
rollback_of, rolled_back_by, description, stop_requested, force, error_message, created_at, finished_at,
strategy, traffic`

const deploymentHostCols = `deployment_id, host_id, host_name, batch, state, previous_revision, event,
error_message, started_at, finished_at, events`

func scanGroup(sc scanner) (api.DeploymentGroup, error) {
	var (
		g       api.DeploymentGroup
		hc, lb  string
		created sql.NullInt64
	)
	if err := sc.Scan(&g.ID, &g.App, &g.Name, &g.Selector, &g.Config, &hc, &g.AutoRollback, &g.Revision, &created, &lb); err != nil {
		return g, err
	}
	if lb != "" {
		g.LoadBalancer = new(api.LBTarget)
		if err := json.Unmarshal([]byte(lb), g.LoadBalancer); err != nil {
			return g, fmt.Errorf("group %s: decode load balancer: %w", g.ID, err)
		}
	}
	g.CreatedAt = tm(created)
	if hc != "" {
		g.HealthCheck = new(api.HealthCheck)
		if err := json.Unmarshal([]byte(hc), g.HealthCheck); err != nil {
			return g, fmt.Errorf("group %s: decode health check: %w", g.ID, err)
		}
	}
	return g, nil
}

func scanDeployment(sc scanner) (api.Deployment, error) {
	var (
		d                 api.Deployment
		created, finished sql.NullInt64
		traffic           string
	)
	err := sc.Scan(&d.ID, &d.App, &d.GroupID, &d.Group, &d.Revision, &d.Config, &d.MinHealthy, &d.State, &d.Batch,
		&d.Kind, &d.RollbackOf, &d.RolledBackBy, &d.Description, &d.StopRequested, &d.Force, &d.Error,
		&created, &finished, &d.Strategy, &traffic)
	d.CreatedAt, d.FinishedAt = tm(created), tmp(finished)
	if err == nil && traffic != "" {
		d.Traffic = new(api.DeployTraffic)
		if err := json.Unmarshal([]byte(traffic), d.Traffic); err != nil {
			return d, fmt.Errorf("deployment %s: decode traffic: %w", d.ID, err)
		}
	}
	return d, err
}

// scanDeploymentHost returns a host and the id of its deployment.
func scanDeploymentHost(sc scanner) (string, api.DeploymentHost, error) {
	var (
		depID             string
		h                 api.DeploymentHost
		events            string
		started, finished sql.NullInt64
	)
	if err := sc.Scan(&depID, &h.HostID, &h.HostName, &h.Batch, &h.State, &h.PreviousRevision, &h.Event, &h.Error,
		&started, &finished, &events); err != nil {
		return "", h, err
	}
	h.StartedAt, h.FinishedAt = tmp(started), tmp(finished)
	evs, err := decodeEvents(events)
	if err != nil {
		return "", h, fmt.Errorf("deployment %s host %s: %w", depID, h.HostID, err)
	}
	h.Events = evs
	return depID, h, nil
}

// utcp returns t in UTC, or nil.
func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// encodeEvents returns the JSON text of a host's lifecycle events, with
// times in UTC; nil is an empty list.
func encodeEvents(evs []api.LifecycleEvent) (string, error) {
	out := make([]api.LifecycleEvent, len(evs))
	for i, e := range evs {
		e.StartedAt, e.FinishedAt = utcp(e.StartedAt), utcp(e.FinishedAt)
		out[i] = e
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encode events: %w", err)
	}
	return string(b), nil
}

// decodeEvents decodes an events column; an empty list is nil.
func decodeEvents(text string) ([]api.LifecycleEvent, error) {
	if text == "" {
		return nil, nil
	}
	var evs []api.LifecycleEvent
	if err := json.Unmarshal([]byte(text), &evs); err != nil {
		return nil, fmt.Errorf("decode events: %w", err)
	}
	if len(evs) == 0 {
		return nil, nil
	}
	for i := range evs {
		evs[i].StartedAt, evs[i].FinishedAt = utcp(evs[i].StartedAt), utcp(evs[i].FinishedAt)
	}
	return evs, nil
}

// CreateGroup stores a deployment group of an existing application.
func (s *Store) CreateGroup(ctx context.Context, g api.DeploymentGroup) error {
	hc := ""
	if g.HealthCheck != nil {
		b, err := json.Marshal(g.HealthCheck)
		if err != nil {
			return fmt.Errorf("create group %s of %s: encode health check: %w", g.Name, g.App, err)
		}
		hc = string(b)
	}
	lb, err := encodeLB(g.LoadBalancer)
	if err != nil {
		return fmt.Errorf("create group %s of %s: %w", g.Name, g.App, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM applications WHERE name = ?"), g.App).Scan(&one); err != nil {
			return fmt.Errorf("application %s: %w", g.App, notFound(err))
		}
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO deployment_groups ("+groupCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			g.ID, g.App, g.Name, g.Selector, g.Config, hc, g.AutoRollback, g.Revision, ns(g.CreatedAt), lb)
		return s.conflict(err)
	})
	if err != nil {
		return fmt.Errorf("create group %s of %s: %w", g.Name, g.App, err)
	}
	return nil
}

// UpdateGroupSettings changes a group's selector, configuration, health
// check, automatic rollback and load balancer (found by id).
func (s *Store) UpdateGroupSettings(ctx context.Context, g api.DeploymentGroup) error {
	hc := ""
	if g.HealthCheck != nil {
		b, err := json.Marshal(g.HealthCheck)
		if err != nil {
			return fmt.Errorf("update group %s: encode health check: %w", g.ID, err)
		}
		hc = string(b)
	}
	lb, err := encodeLB(g.LoadBalancer)
	if err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, err)
	}
	n, err := s.exec(ctx, "UPDATE deployment_groups SET selector = ?, config = ?, health_check = ?, auto_rollback = ?, load_balancer = ? WHERE id = ?",
		g.Selector, g.Config, hc, g.AutoRollback, lb, g.ID)
	if err != nil {
		return fmt.Errorf("update group %s: %w", g.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("group %s: %w", g.ID, store.ErrNotFound)
	}
	return nil
}

// GetGroup returns an application's group by name.
func (s *Store) GetGroup(ctx context.Context, app, name string) (api.DeploymentGroup, error) {
	g, err := scanGroup(s.r.QueryRowContext(ctx, s.q("SELECT "+groupCols+" FROM deployment_groups WHERE app = ? AND name = ?"), app, name))
	if err != nil {
		return api.DeploymentGroup{}, fmt.Errorf("group %s of %s: %w", name, app, notFound(err))
	}
	return g, nil
}

// ListGroups returns an application's groups ordered by name (ErrNotFound
// if the application does not exist), or every group ordered by
// application and name when app is "".
func (s *Store) ListGroups(ctx context.Context, app string) ([]api.DeploymentGroup, error) {
	query := "SELECT " + groupCols + " FROM deployment_groups"
	var args []any
	if app != "" {
		if _, err := s.GetApplication(ctx, app); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		query += " WHERE app = ? ORDER BY name COLLATE bytewise"
		args = append(args, app)
	} else {
		query += " ORDER BY app COLLATE bytewise, name COLLATE bytewise"
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []api.DeploymentGroup
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// CreateDeployment stores a deployment and its hosts in one transaction.
// An empty deployment State becomes api.DeployRunning, an empty host State
// api.HostDeployPending. The partial unique index deployments_one_active
// makes the one-active-deployment-per-group rule atomic: a second insert
// waits for the first to commit (PostgreSQL) or runs after it (SQLite's
// single writer), then fails as a unique violation, i.e. ErrConflict.
func (s *Store) CreateDeployment(ctx context.Context, d api.Deployment, hosts []api.DeploymentHost) error {
	if d.State == "" {
		d.State = api.DeployRunning
	}
	traffic, err := encodeTraffic(d.Traffic)
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO deployments ("+deploymentCols+
			") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			d.ID, d.App, d.GroupID, d.Group, d.Revision, d.Config, d.MinHealthy, d.State, d.Batch, d.Kind,
			d.RollbackOf, d.RolledBackBy, cleanText(d.Description), d.StopRequested, d.Force, cleanText(d.Error),
			ns(d.CreatedAt), nsp(d.FinishedAt), d.Strategy, traffic)
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("deployment %s: id exists or group %s has an unfinished deployment: %w", d.ID, d.GroupID, &conflictError{cause: err})
			}
			return err
		}
		if d.Traffic != nil {
			for _, c := range d.Traffic.Changes {
				if err := s.insertTrafficChange(ctx, tx, d.ID, c); err != nil {
					return err
				}
			}
		}
		return s.insertDeploymentHosts(ctx, tx, d.ID, hosts)
	})
	if err != nil {
		return fmt.Errorf("create deployment %s: %w", d.ID, err)
	}
	return nil
}

// insertDeploymentHosts inserts hosts of deployment id in tx; an empty
// State becomes api.HostDeployPending. A host already in the deployment
// is ErrConflict.
func (s *Store) insertDeploymentHosts(ctx context.Context, tx *sql.Tx, id string, hosts []api.DeploymentHost) error {
	if len(hosts) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, s.q("INSERT INTO deployment_hosts ("+deploymentHostCols+
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, h := range hosts {
		if h.State == "" {
			h.State = api.HostDeployPending
		}
		evs, err := encodeEvents(h.Events)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.HostID, err)
		}
		_, err = st.ExecContext(ctx, id, h.HostID, h.HostName, h.Batch, h.State, h.PreviousRevision, h.Event,
			cleanText(h.Error), nsp(h.StartedAt), nsp(h.FinishedAt), evs)
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("host %s is in the deployment already: %w", h.HostID, &conflictError{cause: err})
			}
			return fmt.Errorf("host %s: %w", h.HostID, err)
		}
	}
	return nil
}

// AddDeploymentHosts adds hosts to a running deployment and sets its
// min_healthy in one transaction. The UPDATE that sets min_healthy only
// matches a running deployment and locks its row (PostgreSQL; SQLite has
// a single writer), so a concurrent state change is ordered before or
// after the whole addition. ErrNotFound if the deployment does not
// exist; ErrConflict if it is not running or a host is in it already.
func (s *Store) AddDeploymentHosts(ctx context.Context, id string, minHealthy int, hosts []api.DeploymentHost) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE deployments SET min_healthy = ? WHERE id = ? AND state = ?"),
			minHealthy, id, api.DeployRunning)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var state string
			if err := tx.QueryRowContext(ctx, s.q("SELECT state FROM deployments WHERE id = ?"), id).Scan(&state); err != nil {
				return notFound(err)
			}
			return fmt.Errorf("deployment is %s, not %s: %w", state, api.DeployRunning, store.ErrConflict)
		}
		return s.insertDeploymentHosts(ctx, tx, id, hosts)
	})
	if err != nil {
		return fmt.Errorf("add %d hosts to deployment %s: %w", len(hosts), id, err)
	}
	return nil
}

// loadDeploymentHosts returns the hosts of the given deployments, grouped
// by deployment and ordered by host name.
func (s *Store) loadDeploymentHosts(ctx context.Context, ids []string) (map[string][]api.DeploymentHost, error) {
	out := map[string][]api.DeploymentHost{}
	err := eachChunk(ids, func(args []any) error {
		rows, err := s.r.QueryContext(ctx, s.q("SELECT "+deploymentHostCols+" FROM deployment_hosts WHERE deployment_id IN ("+
			placeholders(len(args))+") ORDER BY deployment_id, host_name COLLATE bytewise, host_id COLLATE bytewise"), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			depID, h, err := scanDeploymentHost(rows)
			if err != nil {
				return err
			}
			out[depID] = append(out[depID], h)
		}
		return rows.Err()
	})
	return out, err
}

// withHosts attaches hosts to a deployment and counts them by state.
func withHosts(d *api.Deployment, hosts []api.DeploymentHost) {
	d.Hosts = hosts
	d.Counts = map[string]int{}
	for _, h := range hosts {
		d.Counts[h.State]++
	}
}

// queryDeployments runs a query that selects deploymentCols.
func (s *Store) queryDeployments(ctx context.Context, query string, args ...any) ([]api.Deployment, error) {
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// GetDeployment returns a deployment with Counts and its hosts ordered by
// name, with their events.
func (s *Store) GetDeployment(ctx context.Context, id string) (api.Deployment, error) {
	d, err := scanDeployment(s.r.QueryRowContext(ctx, s.q("SELECT "+deploymentCols+" FROM deployments WHERE id = ?"), id))
	if err != nil {
		return api.Deployment{}, fmt.Errorf("get deployment %s: %w", id, notFound(err))
	}
	hosts, err := s.loadDeploymentHosts(ctx, []string{id})
	if err != nil {
		return api.Deployment{}, fmt.Errorf("get deployment %s: hosts: %w", id, err)
	}
	withHosts(&d, hosts[id])
	if err := s.loadTrafficChanges(ctx, &d); err != nil {
		return api.Deployment{}, fmt.Errorf("get deployment %s: traffic changes: %w", id, err)
	}
	return d, nil
}

// defaultDeploymentLimit is ListDeployments' limit when none is given.
const defaultDeploymentLimit = 100

// ListDeployments returns at most limit deployments (100 if limit <= 0),
// newest first (ties by id, descending), of one application or of all
// (app ""), with Counts but without hosts.
func (s *Store) ListDeployments(ctx context.Context, app string, limit int) ([]api.Deployment, error) {
	if limit <= 0 {
		limit = defaultDeploymentLimit
	}
	query := "SELECT " + deploymentCols + " FROM deployments"
	var args []any
	if app != "" {
		query += " WHERE app = ?"
		args = append(args, app)
	}
	query += " ORDER BY created_at DESC, id COLLATE bytewise DESC LIMIT ?"
	args = append(args, limit)
	deps, err := s.queryDeployments(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	ids := make([]string, len(deps))
	for i := range deps {
		ids[i] = deps[i].ID
	}
	counts, err := s.countStates(ctx, "deployment_hosts", "deployment_id", ids)
	if err != nil {
		return nil, fmt.Errorf("list deployments: counts: %w", err)
	}
	for i := range deps {
		deps[i].Counts = counts[deps[i].ID]
	}
	return deps, nil
}

// ListActiveDeployments returns the deployments that are not final,
// oldest first, with their hosts ordered by name, and Counts.
func (s *Store) ListActiveDeployments(ctx context.Context) ([]api.Deployment, error) {
	deps, err := s.queryDeployments(ctx, "SELECT "+deploymentCols+" FROM deployments WHERE "+deployNotFinal+
		" ORDER BY created_at, id COLLATE bytewise")
	if err != nil {
		return nil, fmt.Errorf("list active deployments: %w", err)
	}
	ids := make([]string, len(deps))
	for i := range deps {
		ids[i] = deps[i].ID
	}
	hosts, err := s.loadDeploymentHosts(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list active deployments: hosts: %w", err)
	}
	for i := range deps {
		withHosts(&deps[i], hosts[deps[i].ID])
		if err := s.loadTrafficChanges(ctx, &deps[i]); err != nil {
			return nil, fmt.Errorf("list active deployments: traffic changes: %w", err)
		}
	}
	return deps, nil
}

// UpdateDeployment changes a deployment that is not final; an update of a
// final deployment is ignored. When the deployment becomes succeeded, its
// group's revision becomes the deployment's, in the same transaction.
func (s *Store) UpdateDeployment(ctx context.Context, u store.DeploymentUpdate) error {
	var state, errText, rolledBackBy, batch, stop, force, traffic any
	if u.Traffic != nil {
		t, err := encodeTraffic(u.Traffic)
		if err != nil {
			return fmt.Errorf("update deployment %s: %w", u.ID, err)
		}
		traffic = t
	}
	if u.State != nil {
		state = *u.State
	}
	if u.Batch != nil {
		batch = *u.Batch
	}
	if u.StopRequested != nil {
		stop = *u.StopRequested
	}
	if u.Force != nil {
		force = *u.Force
	}
	if u.Error != nil {
		errText = cleanText(*u.Error)
	}
	if u.RolledBackBy != nil {
		rolledBackBy = *u.RolledBackBy
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var newState, groupID, revision string
		err := tx.QueryRowContext(ctx, s.q(`UPDATE deployments SET
    state = COALESCE(?, state),
    batch = COALESCE(?, batch),
    stop_requested = COALESCE(?, stop_requested),
    force = COALESCE(?, force),
    error_message = COALESCE(?, error_message),
    rolled_back_by = COALESCE(?, rolled_back_by),
    finished_at = COALESCE(?, finished_at),
    traffic = COALESCE(?, traffic)
WHERE id = ? AND `+deployNotFinal+`
RETURNING state, group_id, revision`),
			state, batch, stop, force, errText, rolledBackBy, nsp(u.FinishedAt), traffic, u.ID).Scan(&newState, &groupID, &revision)
		if errors.Is(err, sql.ErrNoRows) {
			// Final (ignored) or unknown.
			var one int
			return notFound(tx.QueryRowContext(ctx, s.q("SELECT 1 FROM deployments WHERE id = ?"), u.ID).Scan(&one))
		}
		if err != nil {
			return s.conflict(err)
		}
		if newState != api.DeploySucceeded {
			return nil
		}
		_, err = tx.ExecContext(ctx, s.q("UPDATE deployment_groups SET revision = ? WHERE id = ?"), revision, groupID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", u.ID, err)
	}
	return nil
}

// UpdateDeploymentHosts applies host updates in one transaction, in order
// for updates of the same host. Updates of hosts in a final state, and of
// unknown hosts, are ignored. A host that becomes succeeded gets the
// deployment's revision in host_revisions, at its FinishedAt (or now).
func (s *Store) UpdateDeploymentHosts(ctx context.Context, ups []store.DeploymentHostUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	type prepared struct {
		u      store.DeploymentHostUpdate
		events any
	}
	ps := make([]prepared, len(ups))
	for i, u := range ups {
		ps[i].u = u
		if u.Events != nil {
			evs, err := encodeEvents(u.Events)
			if err != nil {
				return fmt.Errorf("update deployment %s host %s: %w", u.DeploymentID, u.HostID, err)
			}
			ps[i].events = evs
		}
	}
	// Lock rows in one order so that concurrent batches cannot deadlock;
	// the stable sort keeps the order of updates of one host.
	sort.SliceStable(ps, func(i, k int) bool {
		a, b := ps[i].u, ps[k].u
		if a.DeploymentID != b.DeploymentID {
			return a.DeploymentID < b.DeploymentID
		}
		return a.HostID < b.HostID
	})
	now := time.Now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.q(`UPDATE deployment_hosts SET
    state = COALESCE(?, state),
    batch = COALESCE(?, batch),
    event = COALESCE(?, event),
    error_message = COALESCE(?, error_message),
    started_at = COALESCE(?, started_at),
    finished_at = COALESCE(?, finished_at),
    events = COALESCE(?, events)
WHERE deployment_id = ? AND host_id = ? AND `+hostNotFinal))
		if err != nil {
			return err
		}
		defer st.Close()
		// Hosts that became succeeded, in order; their revisions are
		// written after the loop in a few multi-row statements.
		var succeeded []succeededHost
		for _, p := range ps {
			u := p.u
			var batch any
			if u.Batch != 0 {
				batch = u.Batch
			}
			res, err := st.ExecContext(ctx, nilIfEmpty(u.State), batch, nilIfEmpty(u.Event), nilIfEmpty(cleanText(u.Error)),
				nsp(u.StartedAt), nsp(u.FinishedAt), p.events, u.DeploymentID, u.HostID)
			if err != nil {
				return fmt.Errorf("deployment %s host %s: %w", u.DeploymentID, u.HostID, err)
			}
			if u.State != api.HostDeploySucceeded {
				continue
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // final already, or unknown
			}
			when := now
			if u.FinishedAt != nil {
				when = *u.FinishedAt
			}
			succeeded = append(succeeded, succeededHost{u.DeploymentID, u.HostID, when})
		}
		return s.recordHostRevisions(ctx, tx, succeeded)
	})
	if err != nil {
		return fmt.Errorf("update %d deployment hosts: %w", len(ups), err)
	}
	return nil
}

// succeededHost is a host that became succeeded in a deployment at a time.
type succeededHost struct {
	deploymentID, hostID string
	at                   time.Time
}

// revisionChunk is the most host_revisions rows one upsert writes (5
// parameters each, well below both engines' limits).
const revisionChunk = 200

// recordHostRevisions upserts host_revisions for hosts that became
// succeeded: the revision and group of their deployment, at their time.
// When one group and host occur twice (hosts of two deployments of a group
// in one batch), the later time wins.
func (s *Store) recordHostRevisions(ctx context.Context, tx *sql.Tx, hosts []succeededHost) error {
	if len(hosts) == 0 {
		return nil
	}
	type target struct{ groupID, revision string }
	deps := map[string]target{}
	var ids []string
	for _, h := range hosts {
		if _, seen := deps[h.deploymentID]; !seen {
			deps[h.deploymentID] = target{}
			ids = append(ids, h.deploymentID)
		}
	}
	err := eachChunk(ids, func(args []any) error {
		rows, err := tx.QueryContext(ctx, s.q("SELECT id, group_id, revision FROM deployments WHERE id IN ("+
			placeholders(len(args))+")"), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var t target
			if err := rows.Scan(&id, &t.groupID, &t.revision); err != nil {
				return err
			}
			deps[id] = t
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("host revisions: %w", err)
	}
	// One row per (group, host): an upsert may not touch a row twice.
	type key struct{ groupID, hostID string }
	index := map[key]int{}
	var (
		rows  [][]any
		whens []time.Time
	)
	for _, h := range hosts {
		t := deps[h.deploymentID]
		row := []any{t.groupID, h.hostID, t.revision, h.deploymentID, ns(h.at)}
		k := key{t.groupID, h.hostID}
		if i, dup := index[k]; dup {
			if !h.at.Before(whens[i]) {
				rows[i], whens[i] = row, h.at
			}
			continue
		}
		index[k] = len(rows)
		rows = append(rows, row)
		whens = append(whens, h.at)
	}
	for len(rows) > 0 {
		n := min(len(rows), revisionChunk)
		args := make([]any, 0, 5*n)
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO host_revisions (group_id, host_id, revision, deployment_id, at) VALUES "+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")+`
ON CONFLICT (group_id, host_id) DO UPDATE SET
    revision = excluded.revision, deployment_id = excluded.deployment_id, at = excluded.at`), args...)
		if err != nil {
			return fmt.Errorf("host revisions: %w", err)
		}
		rows = rows[n:]
	}
	return nil
}

// HostRevisions returns a group's hosts' last successfully deployed
// revisions, by host id (empty, not nil, if there are none).
func (s *Store) HostRevisions(ctx context.Context, groupID string) (map[string]store.HostRevision, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT host_id, revision, deployment_id, at FROM host_revisions WHERE group_id = ?"), groupID)
	if err != nil {
		return nil, fmt.Errorf("host revisions of group %s: %w", groupID, err)
	}
	defer rows.Close()
	out := map[string]store.HostRevision{}
	for rows.Next() {
		var (
			r    store.HostRevision
			when sql.NullInt64
		)
		if err := rows.Scan(&r.HostID, &r.Revision, &r.DeploymentID, &when); err != nil {
			return nil, fmt.Errorf("host revisions of group %s: %w", groupID, err)
		}
		r.At = tm(when)
		out[r.HostID] = r
	}
	return out, rows.Err()
}
