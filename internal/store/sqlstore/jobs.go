package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// execStates are all execution states of package api. A state added there
// must be added here, or UpdateExecutions will not treat it as final.
var execStates = []string{api.ExecPending, api.ExecDispatched, api.ExecRunning, api.ExecSucceeded, api.ExecFailed,
	api.ExecTimedOut, api.ExecOffline, api.ExecUnknown}

// notFinal is an SQL condition that holds while an execution is not in a
// final state (api.ExecDone).
var notFinal = func() string {
	var final []string
	for _, st := range execStates {
		if api.ExecDone(st) {
			final = append(final, "'"+st+"'")
		}
	}
	return "state NOT IN (" + strings.Join(final, ", ") + ")"
}()

const jobCols = "id, kind, selector, script, concurrency, timeout_seconds, run_as, schedule_id, state, created_at, finished_at"

const execCols = `id, job_id, host_id, host_name, state, exit_code, error_message, stdout, stderr,
stdout_truncated, stderr_truncated, dispatched_at, started_at, finished_at, payload, result`

func scanJob(sc scanner) (api.Job, error) {
	var (
		j                 api.Job
		created, finished sql.NullInt64
	)
	err := sc.Scan(&j.ID, &j.Kind, &j.Selector, &j.Script, &j.Concurrency, &j.TimeoutSeconds, &j.User, &j.ScheduleID,
		&j.State, &created, &finished)
	j.CreatedAt, j.FinishedAt = tm(created), tmp(finished)
	return j, err
}

func scanExec(sc scanner) (api.Execution, error) {
	var (
		e                             api.Execution
		exit                          sql.NullInt64
		dispatched, started, finished sql.NullInt64
		payload, result               string
	)
	err := sc.Scan(&e.ID, &e.JobID, &e.HostID, &e.HostName, &e.State, &exit, &e.Error, &e.Stdout, &e.Stderr,
		&e.StdoutTruncated, &e.StderrTruncated, &dispatched, &started, &finished, &payload, &result)
	if payload != "" {
		e.Payload = json.RawMessage(payload)
	}
	if result != "" {
		e.Result = json.RawMessage(result)
	}
	if exit.Valid {
		code := int(exit.Int64)
		e.ExitCode = &code
	}
	e.DispatchedAt, e.StartedAt, e.FinishedAt = tmp(dispatched), tmp(started), tmp(finished)
	return e, err
}

// CreateJob stores a job and its executions in one transaction. An empty
// job State becomes api.JobRunning, an empty execution State
// api.ExecPending; every execution gets the job's id.
func (s *Store) CreateJob(ctx context.Context, j api.Job, execs []api.Execution) error {
	if j.State == "" {
		j.State = api.JobRunning
	}
	if j.Kind == "" {
		j.Kind = api.JobKindExec
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO jobs ("+jobCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			j.ID, j.Kind, j.Selector, j.Script, j.Concurrency, j.TimeoutSeconds, j.User, j.ScheduleID, j.State,
			ns(j.CreatedAt), nsp(j.FinishedAt))
		if err != nil {
			return s.conflict(err)
		}
		if len(execs) == 0 {
			return nil
		}
		st, err := tx.PrepareContext(ctx, s.q("INSERT INTO executions ("+execCols+
			") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range execs {
			if e.State == "" {
				e.State = api.ExecPending
			}
			var exit any
			if e.ExitCode != nil {
				exit = *e.ExitCode
			}
			_, err := st.ExecContext(ctx, e.ID, j.ID, e.HostID, e.HostName, e.State, exit,
				cleanText(e.Error), cleanText(e.Stdout), cleanText(e.Stderr), e.StdoutTruncated, e.StderrTruncated,
				nsp(e.DispatchedAt), nsp(e.StartedAt), nsp(e.FinishedAt), string(e.Payload), string(e.Result))
			if err != nil {
				return fmt.Errorf("execution %s: %w", e.ID, s.conflict(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// chunk is the most ids one query binds (well below both engines' limits).
const chunk = 500

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// eachChunk calls fn with the ids in slices of at most chunk, as query args.
func eachChunk(ids []string, fn func(args []any) error) error {
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		if err := fn(args); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// loadExecs returns the executions of the given jobs, grouped by job and
// ordered by host name.
func (s *Store) loadExecs(ctx context.Context, jobIDs []string) (map[string][]api.Execution, error) {
	out := map[string][]api.Execution{}
	err := eachChunk(jobIDs, func(args []any) error {
		rows, err := s.r.QueryContext(ctx, s.q("SELECT "+execCols+" FROM executions WHERE job_id IN ("+
			placeholders(len(args))+") ORDER BY job_id, host_name COLLATE bytewise, id COLLATE bytewise"), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanExec(rows)
			if err != nil {
				return err
			}
			out[e.JobID] = append(out[e.JobID], e)
		}
		return rows.Err()
	})
	return out, err
}

// withExecs attaches executions to a job and counts them by state.
func withExecs(j *api.Job, execs []api.Execution) {
	j.Executions = execs
	j.Counts = map[string]int{}
	for _, e := range execs {
		j.Counts[e.State]++
	}
}

// GetJob returns the job with its executions ordered by host name, and
// Counts.
func (s *Store) GetJob(ctx context.Context, id string) (api.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, s.q("SELECT "+jobCols+" FROM jobs WHERE id = ?"), id))
	if err != nil {
		return api.Job{}, fmt.Errorf("get job %s: %w", id, notFound(err))
	}
	execs, err := s.loadExecs(ctx, []string{id})
	if err != nil {
		return api.Job{}, fmt.Errorf("get job %s: executions: %w", id, err)
	}
	withExecs(&j, execs[id])
	return j, nil
}

// ListJobs returns the newest jobs of kind exec first (at most limit; all
// if limit <= 0), without executions but with Counts. Counts are read from
// the (job_id, state) index; outputs are never loaded.
func (s *Store) ListJobs(ctx context.Context, limit int) ([]api.Job, error) {
	query := "SELECT " + jobCols + " FROM jobs WHERE kind = ? ORDER BY created_at DESC, id COLLATE bytewise DESC"
	args := []any{api.JobKindExec}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	jobs, err := s.queryJobs(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	counts, err := s.countStates(ctx, "executions", "job_id", ids)
	if err != nil {
		return nil, fmt.Errorf("list jobs: counts: %w", err)
	}
	for i := range jobs {
		jobs[i].Counts = counts[jobs[i].ID]
	}
	return jobs, nil
}

// countStates counts the rows of table by state for each of the given
// parent ids (the column keyCol), from its (keyCol, state) index. Every id
// gets a map, empty when it has no rows.
func (s *Store) countStates(ctx context.Context, table, keyCol string, ids []string) (map[string]map[string]int, error) {
	out := make(map[string]map[string]int, len(ids))
	for _, id := range ids {
		out[id] = map[string]int{}
	}
	err := eachChunk(ids, func(args []any) error {
		rows, err := s.r.QueryContext(ctx, s.q("SELECT "+keyCol+", state, COUNT(state) FROM "+table+" WHERE "+keyCol+" IN ("+
			placeholders(len(args))+") GROUP BY "+keyCol+", state"), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id, state string
				n         int
			)
			if err := rows.Scan(&id, &state, &n); err != nil {
				return err
			}
			out[id][state] = n
		}
		return rows.Err()
	})
	return out, err
}

// queryJobs runs a query that selects jobCols.
func (s *Store) queryJobs(ctx context.Context, query string, args ...any) ([]api.Job, error) {
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []api.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// UpdateExecutions applies updates in one transaction, in order for updates
// of the same execution. Updates of executions in a final state, and of
// unknown executions, are ignored.
func (s *Store) UpdateExecutions(ctx context.Context, ups []store.ExecUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	for _, u := range ups {
		if u.State == "" {
			return fmt.Errorf("update execution %s: empty state", u.ID)
		}
	}
	// Lock rows in one order so that concurrent batches cannot deadlock;
	// the stable sort keeps the order of updates of one execution.
	ups = append([]store.ExecUpdate(nil), ups...)
	sort.SliceStable(ups, func(i, k int) bool { return ups[i].ID < ups[k].ID })
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.q(`UPDATE executions SET
    state = ?,
    exit_code = COALESCE(?, exit_code),
    error_message = COALESCE(?, error_message),
    stdout = COALESCE(?, stdout),
    stderr = COALESCE(?, stderr),
    stdout_truncated = (stdout_truncated OR ?),
    stderr_truncated = (stderr_truncated OR ?),
    dispatched_at = COALESCE(?, dispatched_at),
    started_at = COALESCE(?, started_at),
    finished_at = COALESCE(?, finished_at),
    result = COALESCE(?, result)
WHERE id = ? AND `+notFinal))
		if err != nil {
			return err
		}
		defer st.Close()
		for _, u := range ups {
			var exit, stdout, stderr, result any
			if u.ExitCode != nil {
				exit = *u.ExitCode
			}
			if u.Stdout != nil {
				stdout = cleanText(*u.Stdout)
			}
			if u.Stderr != nil {
				stderr = cleanText(*u.Stderr)
			}
			if u.Result != nil {
				result = string(u.Result)
			}
			_, err := st.ExecContext(ctx, u.State, exit, nilIfEmpty(cleanText(u.Error)), stdout, stderr,
				u.StdoutTruncated, u.StderrTruncated, nsp(u.DispatchedAt), nsp(u.StartedAt), nsp(u.FinishedAt), result, u.ID)
			if err != nil {
				return fmt.Errorf("execution %s: %w", u.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update %d executions: %w", len(ups), err)
	}
	return nil
}

// GetExecution returns one execution.
func (s *Store) GetExecution(ctx context.Context, id string) (api.Execution, error) {
	e, err := scanExec(s.r.QueryRowContext(ctx, s.q("SELECT "+execCols+" FROM executions WHERE id = ?"), id))
	if err != nil {
		return api.Execution{}, fmt.Errorf("get execution %s: %w", id, notFound(err))
	}
	return e, nil
}

// ListUnfinishedJobs returns running jobs, oldest first, with their
// executions ordered by host name, and Counts.
func (s *Store) ListUnfinishedJobs(ctx context.Context) ([]api.Job, error) {
	jobs, err := s.queryJobs(ctx, "SELECT "+jobCols+" FROM jobs WHERE state = ? ORDER BY created_at, id COLLATE bytewise", api.JobRunning)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	execs, err := s.loadExecs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: executions: %w", err)
	}
	for i := range jobs {
		withExecs(&jobs[i], execs[jobs[i].ID])
	}
	return jobs, nil
}

// FinishJob marks a job finished at `at`. It is idempotent: a finished job
// keeps its first FinishedAt.
func (s *Store) FinishJob(ctx context.Context, id string, at time.Time) error {
	n, err := s.exec(ctx, "UPDATE jobs SET state = ?, finished_at = ? WHERE id = ? AND state <> ?",
		api.JobFinished, ns(at), id, api.JobFinished)
	if err == nil && n == 0 {
		var ok bool
		if ok, err = s.exists(ctx, "jobs", id); err == nil && !ok {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("finish job %s: %w", id, err)
	}
	return nil
}
