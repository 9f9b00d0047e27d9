-- gantry schema, version 1. Identical on SQLite and PostgreSQL.
-- Times are BIGINT nanoseconds since the Unix epoch (UTC); NULL = zero time.
-- Maps, facts and lists are JSON text.

CREATE TABLE hosts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    nkey        TEXT NOT NULL UNIQUE,
    labels      TEXT NOT NULL,
    facts       TEXT NOT NULL,
    status      TEXT NOT NULL,
    last_seen   BIGINT,
    enrolled_at BIGINT
);
-- A name is unique among hosts that are not revoked.
CREATE UNIQUE INDEX hosts_active_name ON hosts (name) WHERE status <> 'revoked';
CREATE INDEX hosts_name ON hosts (name, id);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    created_at BIGINT
);

CREATE TABLE join_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    labels     TEXT NOT NULL,
    expires_at BIGINT,
    max_uses   INTEGER NOT NULL,
    uses       INTEGER NOT NULL,
    created_at BIGINT
);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    selector        TEXT NOT NULL,
    script          TEXT NOT NULL,
    concurrency     INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    run_as          TEXT NOT NULL,
    schedule_id     TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX jobs_created ON jobs (created_at, id);
CREATE INDEX jobs_state ON jobs (state, created_at, id);

CREATE TABLE executions (
    id               TEXT PRIMARY KEY,
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    host_id          TEXT NOT NULL,
    host_name        TEXT NOT NULL,
    state            TEXT NOT NULL,
    exit_code        INTEGER,
    error_message    TEXT NOT NULL,
    stdout           TEXT NOT NULL,
    stderr           TEXT NOT NULL,
    stdout_truncated BOOLEAN NOT NULL,
    stderr_truncated BOOLEAN NOT NULL,
    dispatched_at    BIGINT,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX executions_job_host ON executions (job_id, host_name, id);
CREATE INDEX executions_job_state ON executions (job_id, state);

CREATE TABLE schedules (
    id              TEXT PRIMARY KEY,
    cron            TEXT NOT NULL,
    selector        TEXT NOT NULL,
    script          TEXT NOT NULL,
    concurrency     INTEGER NOT NULL,
    timeout_seconds INTEGER NOT NULL,
    run_as          TEXT NOT NULL,
    created_at      BIGINT,
    -- last_run_at is the slot (cron time) of the last run; MarkScheduleRun
    -- compares and sets it.
    last_run_at     BIGINT,
    next_run_at     BIGINT,
    last_job_id     TEXT NOT NULL
);
CREATE INDEX schedules_created ON schedules (created_at, id);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- BYTEA: PostgreSQL's binary type; SQLite gives the unknown type name
-- NUMERIC affinity, which stores blobs unchanged.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
