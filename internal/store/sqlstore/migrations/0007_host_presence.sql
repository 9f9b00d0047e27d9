-- gantry schema, version 7: ordered presence writes and clock skew.
-- status_changed_at (ns, the server's clock) is the time of the host's last
-- status change: a status write applies only if it is not older than the
-- stored one, so a late "offline" never overwrites a newer "online".
-- clock_skew_ms is the host's clock minus the server's as its agent last
-- measured it (NULL until measured).
ALTER TABLE hosts ADD COLUMN status_changed_at BIGINT;
ALTER TABLE hosts ADD COLUMN clock_skew_ms BIGINT;
