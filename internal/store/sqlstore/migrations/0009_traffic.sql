-- gantry schema, version 9: traffic control (load balancers in front of
-- deployment groups; canary and blue/green deployments).
--
-- deployment_groups.load_balancer: JSON of api.LBTarget, or '' for a group
-- without a load balancer.
ALTER TABLE deployment_groups ADD COLUMN load_balancer TEXT NOT NULL DEFAULT '';

-- deployments.strategy: api.StrategyInPlace, StrategyCanary or
-- StrategyBlueGreen ('' for deployments made before this version: in place).
-- deployments.traffic: JSON of api.DeployTraffic without its Changes, or ''.
ALTER TABLE deployments ADD COLUMN strategy TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN traffic TEXT NOT NULL DEFAULT '';

-- Every change a deployment made to a load balancer (a drain, a host let
-- in again, a weight), appended as it happens: JSON of api.TrafficChange.
-- GetDeployment returns them, in order, as the deployment's
-- Traffic.Changes. They go with their deployment.
CREATE TABLE traffic_changes (
    id            TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    at            BIGINT,
    body          TEXT NOT NULL
);
CREATE INDEX traffic_changes_deployment ON traffic_changes (deployment_id, at, id);
