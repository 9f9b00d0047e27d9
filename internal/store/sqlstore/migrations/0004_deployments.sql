-- gantry schema, version 4: deployment groups, deployments, their hosts and
-- each host's last successfully deployed revision per group. Identical on
-- SQLite and PostgreSQL. Times are BIGINT nanoseconds (UTC), NULL = zero;
-- structured values are JSON text.
--
-- The final deployment states ('succeeded', 'failed', 'stopped':
-- api.DeployDone) are spelled out in the partial indexes below; a final
-- state added to package api must be added here by a new migration.

CREATE TABLE deployment_groups (
    id            TEXT PRIMARY KEY,
    app           TEXT NOT NULL REFERENCES applications (name) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    selector      TEXT NOT NULL,
    config        TEXT NOT NULL,
    -- JSON of api.HealthCheck, or '' for none.
    health_check  TEXT NOT NULL,
    auto_rollback BOOLEAN NOT NULL,
    -- The last revision deployed successfully to the group ('' before).
    revision      TEXT NOT NULL DEFAULT '',
    created_at    BIGINT,
    UNIQUE (app, name)
);

CREATE TABLE deployments (
    id             TEXT PRIMARY KEY,
    app            TEXT NOT NULL,
    group_id       TEXT NOT NULL,
    group_name     TEXT NOT NULL,
    revision       TEXT NOT NULL,
    config         TEXT NOT NULL,
    min_healthy    INTEGER NOT NULL,
    state          TEXT NOT NULL,
    batch          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    rollback_of    TEXT NOT NULL,
    rolled_back_by TEXT NOT NULL,
    description    TEXT NOT NULL,
    stop_requested BOOLEAN NOT NULL,
    force          BOOLEAN NOT NULL,
    error_message  TEXT NOT NULL,
    created_at     BIGINT,
    finished_at    BIGINT
);
-- One deployment that is not final per group: CreateDeployment's conflict
-- check, atomic on both engines.
CREATE UNIQUE INDEX deployments_one_active ON deployments (group_id)
    WHERE state NOT IN ('succeeded', 'failed', 'stopped');
-- ListActiveDeployments (same predicate, so both engines can use it).
CREATE INDEX deployments_active ON deployments (created_at, id)
    WHERE state NOT IN ('succeeded', 'failed', 'stopped');
-- ListDeployments, of one application and of all.
CREATE INDEX deployments_app_created ON deployments (app, created_at, id);
CREATE INDEX deployments_created ON deployments (created_at, id);

CREATE TABLE deployment_hosts (
    deployment_id     TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    host_id           TEXT NOT NULL,
    host_name         TEXT NOT NULL,
    batch             INTEGER NOT NULL,
    state             TEXT NOT NULL,
    previous_revision TEXT NOT NULL,
    event             TEXT NOT NULL,
    error_message     TEXT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    -- JSON array of api.LifecycleEvent.
    events            TEXT NOT NULL,
    PRIMARY KEY (deployment_id, host_id)
);
CREATE INDEX deployment_hosts_name ON deployment_hosts (deployment_id, host_name, host_id);
CREATE INDEX deployment_hosts_state ON deployment_hosts (deployment_id, state);

CREATE TABLE host_revisions (
    group_id      TEXT NOT NULL,
    host_id       TEXT NOT NULL,
    revision      TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    at            BIGINT,
    PRIMARY KEY (group_id, host_id)
);
