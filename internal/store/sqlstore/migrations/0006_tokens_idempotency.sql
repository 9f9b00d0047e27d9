-- gantry schema, version 6: token limits and idempotent creates.
--
-- join_tokens.agent_labels: JSON list of the label keys an agent enrolling
-- with the token may set itself (default none; the token's own labels are
-- pinned and always win).
-- api_tokens.owner: name of the token that created it ('' for the
-- bootstrap token); api_tokens.expires_at: NULL = never expires.
ALTER TABLE join_tokens ADD COLUMN agent_labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_tokens ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- idempotency_keys: one row per (caller, Idempotency-Key) of a create
-- request. The primary key makes two concurrent requests with one key
-- claim it once. resource_id is '' while the first request runs; then the
-- id of what it created and the status it answered. Rows are purged after
-- expires_at.
CREATE TABLE idempotency_keys (
    caller       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (caller, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
