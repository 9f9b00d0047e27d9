-- gantry schema, version 3: jobs of other kinds than scripts. A deployment's
-- batch is a job of kind 'deploy'; each execution keeps the command it sends
-- (payload, JSON) and the structured result the agent returns (JSON).

ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'exec';
ALTER TABLE executions ADD COLUMN payload TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN result TEXT NOT NULL DEFAULT '';
