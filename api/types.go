// Package api holds the JSON wire types of gantry's HTTP API and a small Go
// client for it. It imports nothing from internal/: the CLI and third-party
// programs talk to a server through this package only.
package api

import (
	"encoding/json"
	"time"
)

// Host states as reported by the server.
const (
	HostOnline  = "online"  // heartbeats arrive
	HostOffline = "offline" // 3 heartbeats missed, or never connected since enrollment
	HostRevoked = "revoked" // removed with `gantry hosts rm`; may never reconnect
)

// Facts are what an agent reports about its machine when it connects.
type Facts struct {
	Hostname     string   `json:"hostname"`
	OS           string   `json:"os"`
	Kernel       string   `json:"kernel,omitempty"`
	Arch         string   `json:"arch"`
	CPUs         int      `json:"cpus"`
	MemoryBytes  uint64   `json:"memory_bytes"`
	Addresses    []string `json:"addresses"`
	AgentVersion string   `json:"agent_version"`
}

// Host is one enrolled machine running the gantry agent.
type Host struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
	Facts      Facts             `json:"facts"`
	Status     string            `json:"status"`
	LastSeen   time.Time         `json:"last_seen,omitempty"`
	EnrolledAt time.Time         `json:"enrolled_at"`
	// StatusChangedAt is when Status last changed, by the server's clock
	// (absent if it never changed since enrollment).
	StatusChangedAt time.Time `json:"status_changed_at,omitzero"`
	// ClockSkewMillis is the host's clock minus the server's, in
	// milliseconds (positive: the host is ahead), as its agent last
	// measured it; absent until measured. See ClockSkew.
	ClockSkewMillis *int64 `json:"clock_skew_ms,omitempty"`
}

// JoinToken lets agents enroll. Token is set only in the response that
// creates it; the server keeps a hash.
type JoinToken struct {
	ID     string            `json:"id"`
	Token  string            `json:"token,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// AgentLabels are the label keys an agent enrolling with the token may
	// set itself (its --labels); any other key it asks for is refused.
	// Keys in Labels are pinned: the token's value always wins.
	AgentLabels []string  `json:"agent_labels,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	MaxUses     int       `json:"max_uses"` // 0 = unlimited until expiry
	Uses        int       `json:"uses"`
	CreatedAt   time.Time `json:"created_at"`
	// Internal marks a token gantry made itself (one per machine of an
	// environment, one per `gantry server --dev` agent): `gantry token ls`
	// hides it unless --all.
	Internal bool `json:"internal,omitempty"`
	// Owner is what the token was made for, e.g. "env:dev/group.web[1]"
	// (absent for a user's token); the server deletes the token when its
	// owner is destroyed.
	Owner string `json:"owner,omitempty"`
}

// CreateJoinTokenRequest is the body of POST /api/v1/join-tokens.
type CreateJoinTokenRequest struct {
	TTLSeconds int               `json:"ttl_seconds"` // 1 to 31536000; default 3600
	MaxUses    int               `json:"max_uses"`    // 1 to 1000000, default 1; 0 = unlimited
	Labels     map[string]string `json:"labels,omitempty"`
	// AgentLabels are the keys agents may set themselves (default none);
	// never a "gantry.*" key nor one a deployment group selects on.
	AgentLabels []string `json:"agent_labels,omitempty"`
	// Internal and Owner mark a token made by gantry's own tooling (dev
	// mode's agents): see JoinToken.
	Internal bool   `json:"internal,omitempty"`
	Owner    string `json:"owner,omitempty"`
}

// EnrollRequest is the body of POST /api/v1/enroll, sent by an agent once.
// The agent makes its own NATS key pair and sends only the public key.
type EnrollRequest struct {
	JoinToken string `json:"join_token"`
	Name      string `json:"name"`
	// Labels the agent asks for: only keys its join token lists in
	// AgentLabels (else enrollment is refused, 403 labels_not_allowed);
	// the token's pinned labels win.
	Labels map[string]string `json:"labels,omitempty"`
	Facts  Facts             `json:"facts"`
	NKey   string            `json:"nkey"` // NATS user public key (starts with U)
}

// EnrollResponse tells a new agent who it is and where the bus is.
type EnrollResponse struct {
	HostID          string   `json:"host_id"`
	NATSURLs        []string `json:"nats_urls"`
	ServerKey       string   `json:"server_key"`   // public key that signs commands
	HeartbeatMillis int64    `json:"heartbeat_ms"` // agents also learn it from every hello reply
	SubjectPrefix   string   `json:"subject_prefix"`
}

// Execution states of a job on one host.
const (
	ExecPending    = "pending"    // persisted, not yet sent
	ExecDispatched = "dispatched" // sent, agent has not confirmed start
	ExecRunning    = "running"    // agent confirmed start
	ExecSucceeded  = "succeeded"  // exit code 0
	ExecFailed     = "failed"     // non-zero exit or could not start
	ExecTimedOut   = "timed_out"  // killed at its timeout
	ExecOffline    = "offline"    // host offline when the job needed it
	ExecUnknown    = "unknown"    // host went silent mid-run and its lease ran out
)

// ExecDone reports whether an execution state is final.
func ExecDone(state string) bool {
	switch state {
	case ExecSucceeded, ExecFailed, ExecTimedOut, ExecOffline, ExecUnknown:
		return true
	}
	return false
}

// Job kinds.
const (
	JobKindExec   = "exec"   // a script
	JobKindDeploy = "deploy" // one batch of a deployment
	// JobKindLifecycle is an environment's lifecycle event (setup,
	// configure, shutdown): the job's script, with a per-host environment
	// and context in each execution's payload (a protocol.ExecCommand).
	JobKindLifecycle = "lifecycle"
)

// Job states.
const (
	JobRunning  = "running"
	JobFinished = "finished" // every host accounted for
)

// JobSpec is the body of POST /api/v1/jobs.
type JobSpec struct {
	Selector       string `json:"selector"`
	Script         string `json:"script"`
	Concurrency    int    `json:"concurrency,omitempty"`     // 0 = all at once, else 1 to 100000
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"` // 1 to 86400; 0 = default 600
	User           string `json:"user,omitempty"`            // run as this user (agent must be root)
}

// Job is a script run on every host matching a selector.
type Job struct {
	ID string `json:"id"`
	// Kind is "exec" (a script) or "deploy" (a deployment's batch, made by
	// the deployment engine and not listed with the jobs).
	Kind           string         `json:"kind,omitempty"`
	Selector       string         `json:"selector"`
	Script         string         `json:"script"`
	Concurrency    int            `json:"concurrency"`
	TimeoutSeconds int            `json:"timeout_seconds"`
	User           string         `json:"user,omitempty"`
	ScheduleID     string         `json:"schedule_id,omitempty"`
	State          string         `json:"state"`
	CreatedAt      time.Time      `json:"created_at"`
	FinishedAt     *time.Time     `json:"finished_at,omitempty"`
	Counts         map[string]int `json:"counts,omitempty"` // execution state -> hosts
	Executions     []Execution    `json:"executions,omitempty"`
}

// Execution is a job's run on one host.
type Execution struct {
	ID              string     `json:"id"` // command id, unique across the fleet
	JobID           string     `json:"job_id"`
	HostID          string     `json:"host_id"`
	HostName        string     `json:"host_name"`
	State           string     `json:"state"`
	ExitCode        *int       `json:"exit_code,omitempty"`
	Error           string     `json:"error,omitempty"`
	Stdout          string     `json:"stdout,omitempty"`
	Stderr          string     `json:"stderr,omitempty"`
	StdoutTruncated bool       `json:"stdout_truncated,omitempty"`
	StderrTruncated bool       `json:"stderr_truncated,omitempty"`
	DispatchedAt    *time.Time `json:"dispatched_at,omitempty"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// Payload is the command of a non-exec job for this host (JSON), kept
	// to resend it; Result is its structured result.
	Payload json.RawMessage `json:"-"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// JobEvent is one line of GET /api/v1/jobs/{id}/events (NDJSON).
type JobEvent struct {
	Type     string `json:"type"` // "output", "state", "done"
	HostID   string `json:"host_id,omitempty"`
	HostName string `json:"host_name,omitempty"`
	Stream   string `json:"stream,omitempty"` // stdout | stderr
	// Offset is the position of Data in its stream: a reader that has
	// received fewer bytes missed some (live output is best effort; the
	// finished job holds the stored output).
	Offset    int64      `json:"offset,omitempty"`
	Data      string     `json:"data,omitempty"`
	Execution *Execution `json:"execution,omitempty"`
	Job       *Job       `json:"job,omitempty"`
}

// Schedule runs a job on a cron schedule.
type Schedule struct {
	ID             string     `json:"id"`
	Cron           string     `json:"cron"`
	Selector       string     `json:"selector"`
	Script         string     `json:"script"`
	Concurrency    int        `json:"concurrency,omitempty"`
	TimeoutSeconds int        `json:"timeout_seconds,omitempty"`
	User           string     `json:"user,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	LastRunAt      *time.Time `json:"last_run_at,omitempty"`
	NextRunAt      *time.Time `json:"next_run_at,omitempty"`
	LastJobID      string     `json:"last_job_id,omitempty"`
	// Disabled schedules start no jobs (`gantry schedule update ID
	// --disable`); NextRunAt is then absent.
	Disabled bool `json:"disabled,omitempty"`
	// UpdatedAt is when the expression, selector, script or state last
	// changed (absent if never).
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// LabelsRequest is the body of PATCH /api/v1/hosts/{id}/labels: keys to
// set and keys to remove.
type LabelsRequest struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"` // bad_request, unauthorized, forbidden, not_found, conflict, locked, stale_plan, invalid_definition, invalid_bundle, no_hosts, nothing_to_deploy, internal, …
	// Diagnostics are the problems of an environment definition
	// (code invalid_definition).
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

// Application is a named application whose revisions are deployed.
type Application struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Revision is one pushed bundle of an application, content-addressed: the
// same bundle pushed twice is the same revision.
type Revision struct {
	ID          string    `json:"id"` // "r-" + the first 12 hex digits of the digest
	App         string    `json:"app"`
	Digest      string    `json:"digest"` // sha256:<hex> of the bundle (.tar.gz or .zip) bytes
	Size        int64     `json:"size"`
	Description string    `json:"description,omitempty"`
	AppSpec     string    `json:"appspec,omitempty"` // the bundle's appspec.yml
	CreatedAt   time.Time `json:"created_at"`
}

// HealthCheck is a deployment group's health gate: after ValidateService,
// it must pass on a host within its timeout for the host to count as
// succeeded. Exactly one of HTTP, TCP and Command is set.
type HealthCheck struct {
	// HTTP is a URL fetched with GET from the host; it passes when the
	// response status is ExpectStatus.
	HTTP string `json:"http,omitempty"`
	// ExpectStatus is the HTTP status that passes (default 200).
	ExpectStatus int `json:"expect_status,omitempty"`
	// TCP is an address ("host:port", or a port for 127.0.0.1) that must
	// accept a connection.
	TCP string `json:"tcp,omitempty"`
	// Command is a program and its arguments, run without a shell; it
	// passes when it exits 0.
	Command []string `json:"command,omitempty"`
	// TimeoutSeconds is how long the check is retried before the host
	// fails: 1 to 3600 (default 60).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// IntervalMillis is the pause between attempts: 100 to 60000
	// (default 1000).
	IntervalMillis int `json:"interval_ms,omitempty"`
}

// DeploymentGroup is a set of hosts, chosen by a label selector, that an
// application's revisions are deployed to.
type DeploymentGroup struct {
	ID       string `json:"id"`
	App      string `json:"app"`
	Name     string `json:"name"`
	Selector string `json:"selector"`
	// Config is the default deployment configuration: OneAtATime,
	// HalfAtATime, AllAtOnce, or a minimum of healthy hosts ("4", "75%").
	Config string `json:"config"`
	// HealthCheck is the group's health gate, if any.
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// AutoRollback redeploys the last successful revision when a
	// deployment fails (default true on creation).
	AutoRollback bool `json:"auto_rollback"`
	// Revision is the group's current revision: the last one deployed
	// successfully to the group (empty before the first).
	Revision  string    `json:"revision,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LoadBalancer is the load balancer in front of the group's hosts, if
	// any: deployments then drain each host at BlockTraffic and let it in
	// again at AllowTraffic.
	LoadBalancer *LBTarget `json:"load_balancer,omitempty"`
}

// CreateGroupRequest is the body of POST /api/v1/apps/{app}/groups.
type CreateGroupRequest struct {
	Name        string       `json:"name"`
	Selector    string       `json:"selector"`
	Config      string       `json:"config,omitempty"`
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// NoAutoRollback turns automatic rollback off.
	NoAutoRollback bool `json:"no_auto_rollback,omitempty"`
	// LoadBalancer puts the group behind a load balancer (traffic events).
	LoadBalancer *LBTarget `json:"load_balancer,omitempty"`
}

// Deployment states.
const (
	DeployRunning   = "running"
	DeployStopping  = "stopping" // stop asked: no new batches; running hosts finish
	DeploySucceeded = "succeeded"
	DeployFailed    = "failed"
	DeployStopped   = "stopped"
)

// DeployDone reports whether a deployment state is final.
func DeployDone(state string) bool {
	return state == DeploySucceeded || state == DeployFailed || state == DeployStopped
}

// Deployment host states.
const (
	HostDeployPending    = "pending"     // waits for its batch
	HostDeployInProgress = "in_progress" // its batch runs
	HostDeploySucceeded  = "succeeded"
	HostDeployFailed     = "failed"  // an event or the health check failed, or the host was lost
	HostDeploySkipped    = "skipped" // never started: the deployment stopped first
)

// DeployRequest is the body of POST /api/v1/apps/{app}/groups/{group}/deployments.
type DeployRequest struct {
	// Revision to deploy; default the application's newest revision.
	Revision string `json:"revision,omitempty"`
	// Config overrides the group's deployment configuration.
	Config      string `json:"config,omitempty"`
	Description string `json:"description,omitempty"`
	// Strategy is StrategyInPlace (default), StrategyCanary or
	// StrategyBlueGreen; the last two need a group with a load balancer.
	Strategy string `json:"strategy,omitempty"`
	// Canary and BlueGreen tune those strategies (defaults when nil).
	Canary    *CanarySpec    `json:"canary,omitempty"`
	BlueGreen *BlueGreenSpec `json:"blue_green,omitempty"`
}

// Deployment is one revision rolled out to a group's hosts in batches.
type Deployment struct {
	ID       string `json:"id"`
	App      string `json:"app"`
	Group    string `json:"group"`
	GroupID  string `json:"group_id"`
	Revision string `json:"revision"`
	// Config is the deployment configuration used and MinHealthy the
	// minimum of healthy hosts it gave, fixed at creation.
	Config     string `json:"config"`
	MinHealthy int    `json:"min_healthy"`
	State      string `json:"state"`
	// Batch is the number of batches started so far.
	Batch int `json:"batch"`
	// RollbackOf is the failed deployment this one rolls back; Kind is
	// "deploy", "rollback" (automatic or by hand) or "catch-up" (a host
	// that joined the group).
	RollbackOf  string `json:"rollback_of,omitempty"`
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	// RolledBackBy is the rollback deployment started for this one.
	RolledBackBy string `json:"rolled_back_by,omitempty"`
	// StopRequested and Force record `gantry deployments stop [--force]`.
	StopRequested bool             `json:"stop_requested,omitempty"`
	Force         bool             `json:"force,omitempty"`
	Error         string           `json:"error,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	FinishedAt    *time.Time       `json:"finished_at,omitempty"`
	Counts        map[string]int   `json:"counts,omitempty"` // host state -> hosts
	Hosts         []DeploymentHost `json:"hosts,omitempty"`
	// Strategy is StrategyInPlace, StrategyCanary or StrategyBlueGreen
	// ("" reads as in-place).
	Strategy string `json:"strategy,omitempty"`
	// Traffic is the deployment's traffic side (load balancer changes,
	// canary or blue/green progress); nil without a load balancer.
	Traffic *DeployTraffic `json:"traffic,omitempty"`
}

// DeploymentHost is one host's part in a deployment.
type DeploymentHost struct {
	HostID   string `json:"host_id"`
	HostName string `json:"host_name"`
	// Batch is the batch the host was deployed in (1-based), 0 before.
	Batch int    `json:"batch"`
	State string `json:"state"`
	// PreviousRevision is the host's revision before this deployment.
	PreviousRevision string `json:"previous_revision,omitempty"`
	// Event is the lifecycle event running now or the last one run.
	Event      string           `json:"event,omitempty"`
	Error      string           `json:"error,omitempty"`
	StartedAt  *time.Time       `json:"started_at,omitempty"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
	Events     []LifecycleEvent `json:"events,omitempty"`
}

// LifecycleEvent is one lifecycle event on one host.
type LifecycleEvent struct {
	Name       string     `json:"name"`
	State      string     `json:"state"` // running, succeeded, failed, skipped
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ExitCode   int        `json:"exit_code"`
	LogTail    string     `json:"log_tail,omitempty"`
	Error      string     `json:"error,omitempty"`
}

// DeploymentEvent is one line of GET /api/v1/deployments/{id}/events
// (NDJSON): "host" when a host's state or event changes, "deployment"
// when the deployment's state or batch changes, "traffic" when gantry
// changed the load balancer (a drain, a host let in, a weight), "done"
// (with the whole deployment) at the end.
type DeploymentEvent struct {
	Type       string          `json:"type"`
	Host       *DeploymentHost `json:"host,omitempty"`
	Deployment *Deployment     `json:"deployment,omitempty"`
	// Traffic is the change of a "traffic" event.
	Traffic *TrafficChange `json:"traffic,omitempty"`
	// Analysis is the canary analysis of an "analysis" event (one per
	// analysis interval of a canary deployment).
	Analysis *CanaryAnalysis `json:"analysis,omitempty"`
}

// StopRequest is the body of POST /api/v1/deployments/{id}/stop.
type StopRequest struct {
	// Force kills running hooks instead of letting them finish.
	Force bool `json:"force,omitempty"`
}
