-- gantry schema, version 8: a complete lifecycle for tokens and schedules.
--
-- join_tokens.internal: the token was made by gantry itself (a machine of
-- an environment, a `gantry server --dev` agent), not by a user; `gantry
-- token ls` hides such tokens unless --all. join_tokens.owner: what the
-- token was made for, e.g. 'env:dev/group.web[1]' ('' for a user's token);
-- the token is deleted when its owner is destroyed.
ALTER TABLE join_tokens ADD COLUMN internal BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE join_tokens ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX join_tokens_owner ON join_tokens (owner);
-- Tokens an environment made before this version carry its resource label
-- (machines' tokens are the only ones that do): internal too. Their owner
-- stays '' (they expire 30 minutes after they were made).
UPDATE join_tokens SET internal = TRUE WHERE labels LIKE '%"gantry.resource":%';

-- schedules.disabled: a disabled schedule starts no jobs (`gantry schedule
-- update ID --disable`). schedules.updated_at (ns): when its expression,
-- selector or script last changed; slots before it are never run, so a
-- changed expression does not fire at once for a slot of the new one that
-- already passed (NULL: never changed).
ALTER TABLE schedules ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE schedules ADD COLUMN updated_at BIGINT;
