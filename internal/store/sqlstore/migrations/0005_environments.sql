-- gantry schema, version 5: environments as code. One row per environment
-- instance (--env): its state (JSON of infra.State), the definition it was
-- last applied from (.tar.gz) with its variables (JSON), and its recent
-- lifecycle runs (JSON). serial grows by one with every state write, which
-- is a compare-and-set on the previous serial. The apply lock is a lease
-- named 'env/<name>' in the leases table.

CREATE TABLE environments (
    name       TEXT PRIMARY KEY,
    serial     BIGINT NOT NULL,
    state      TEXT NOT NULL,
    definition BYTEA NOT NULL,
    vars       TEXT NOT NULL,
    events     TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT,
    updated_at BIGINT
);
