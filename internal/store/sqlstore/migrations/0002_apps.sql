-- gantry schema, version 2: applications, revisions and content-addressed
-- blobs (revision bundles). Identical on SQLite and PostgreSQL (BYTEA has
-- no special meaning to SQLite: blobs are stored as blobs).

CREATE TABLE applications (
    name       TEXT PRIMARY KEY,
    created_at BIGINT
);

CREATE TABLE revisions (
    app         TEXT NOT NULL REFERENCES applications (name) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    description TEXT NOT NULL,
    appspec     TEXT NOT NULL,
    created_at  BIGINT,
    PRIMARY KEY (app, id)
);
CREATE INDEX revisions_newest ON revisions (app, created_at);

-- A blob is complete once its blob_meta row exists (written last, in the
-- same transaction as its chunks).
CREATE TABLE blob_meta (
    digest     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    chunks     INTEGER NOT NULL,
    created_at BIGINT
);
CREATE TABLE blob_chunks (
    digest TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (digest, seq)
);
