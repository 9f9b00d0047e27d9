// Package store defines gantry's durable state: the records and the
// repository interface that the SQLite and PostgreSQL back ends implement
// with the same schema and behaviour (package sqlstore holds the shared SQL;
// sqlite and postgres only open a connection and name their dialect).
//
// Wire types from package api double as records where they match one to one
// (hosts, jobs, executions, schedules): a second set of structs with the same
// fields would only add copying. Fields that must never leave the server
// (token hashes, NATS keys) live in the records declared here.
//
// Engines do not import this package's implementations; they declare the
// narrow interface they need and receive a Store from the composition root.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Errors every implementation returns (wrapped or not) for the same cases.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("already exists")
	ErrExpired   = errors.New("token expired")
	ErrUsedUp    = errors.New("token used up")
	ErrLeaseHeld = errors.New("lease held by another holder")
)

// HostRecord is a host with its server-side secrets.
type HostRecord struct {
	api.Host
	NKey string // NATS public key the agent authenticates with; unique
}

// APIToken is a bearer token for the HTTP API; only its SHA-256 is kept.
type APIToken struct {
	ID        string
	Name      string
	Hash      string // hex SHA-256 of the token
	Role      string // "admin" for now
	CreatedAt time.Time
	// Owner is the name of the token that created this one ("" for the
	// token the server made at its first start or from GANTRY_ADMIN_TOKEN).
	Owner string
	// ExpiresAt is when the token stops working; zero = never.
	ExpiresAt time.Time
}

// Expired reports whether the token has expired at now.
func (t APIToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// IdempotencyKey is the record of one create request sent with an
// Idempotency-Key header: who sent it (Caller: the API token's id), the key,
// a hash of the request (method, path and body), and once the request has
// run, the id of what it created and the status it answered.
type IdempotencyKey struct {
	Caller      string
	Key         string
	RequestHash string
	// ResourceID is "" while the first request with the key runs.
	ResourceID string
	Status     int
	CreatedAt  time.Time
	// ExpiresAt is when the key may be used again for a new request.
	ExpiresAt time.Time
}

// JoinTokenRecord is a join token with its hash.
type JoinTokenRecord struct {
	api.JoinToken
	Hash string // hex SHA-256 of the token
}

// ExecUpdate changes one execution. Nil pointers and empty strings leave a
// field as it is, except State which is always written. An update never
// moves an execution out of a final state (api.ExecDone): such updates are
// ignored, which makes result delivery idempotent.
type ExecUpdate struct {
	ID              string
	State           string
	ExitCode        *int
	Error           string
	Stdout          *string
	Stderr          *string
	StdoutTruncated bool
	StderrTruncated bool
	DispatchedAt    *time.Time
	StartedAt       *time.Time
	FinishedAt      *time.Time
	// Result is a structured result (JSON) of a non-exec command.
	Result json.RawMessage
}

// DeploymentUpdate changes one deployment. Nil fields are left as they
// are. An update never moves a deployment out of a final state
// (api.DeployDone): such updates are ignored.
type DeploymentUpdate struct {
	ID            string
	State         *string
	Batch         *int
	StopRequested *bool
	Force         *bool
	Error         *string
	RolledBackBy  *string
	FinishedAt    *time.Time
	// Traffic replaces the deployment's traffic side (strategy progress),
	// except its Changes, which only AddTrafficChange appends to.
	Traffic *api.DeployTraffic
}

// DeploymentHostUpdate changes one host of a deployment. Empty strings,
// zero Batch and nil pointers and slices leave a field as it is; Events,
// when not nil, replaces the host's event list. An update never moves a host
// out of a final state (succeeded, failed, skipped): such updates are
// ignored, which makes repeated results harmless.
type DeploymentHostUpdate struct {
	DeploymentID string
	HostID       string
	State        string
	Batch        int
	Event        string
	Error        string
	StartedAt    *time.Time
	FinishedAt   *time.Time
	Events       []api.LifecycleEvent
}

// HostRevision is the revision last deployed successfully to a host in a
// group.
type HostRevision struct {
	HostID       string
	Revision     string
	DeploymentID string
	At           time.Time
}

// Lease is a fenced lease on a singleton loop: Epoch grows by one every
// time the lease changes holder, and is written with every claim so that a
// paused old holder cannot act twice.
type Lease struct {
	Name      string
	Holder    string
	Epoch     int64
	ExpiresAt time.Time
}

// Environment is an environment instance: its state and what it was last
// applied from. The engine (internal/infra) owns the JSON formats.
type Environment struct {
	Name string
	// Serial grows with every state write (compare-and-set).
	Serial int64
	// State is the JSON of the engine's state.
	State []byte
	// Definition is the packed definition directory last applied.
	Definition []byte
	// Vars is the JSON of the --var assignments last applied.
	Vars []byte
	// Events is the JSON of recent lifecycle runs.
	Events    []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store is all durable state. Every method is safe for concurrent use.
type Store interface {
	// Hosts
	// EnrollHost consumes one use of the join token with the given hash
	// (ErrNotFound, ErrExpired, ErrUsedUp) and creates the host, in one
	// transaction. The host gets the token's labels, over those in h
	// (which the caller has already limited to the token's AgentLabels:
	// the store does not judge them). ErrConflict if the NKey or the name
	// is taken.
	EnrollHost(ctx context.Context, tokenHash string, now time.Time, h HostRecord) error
	GetHost(ctx context.Context, id string) (HostRecord, error)
	// GetHostByName finds a non-revoked host by name.
	GetHostByName(ctx context.Context, name string) (HostRecord, error)
	GetHostByNKey(ctx context.Context, nkey string) (HostRecord, error)
	// ListHosts returns hosts ordered by name; revoked ones only if asked.
	ListHosts(ctx context.Context, includeRevoked bool) ([]HostRecord, error)
	SetHostLabels(ctx context.Context, id string, labels map[string]string) error
	SetHostFacts(ctx context.Context, id string, facts api.Facts) error
	// SetHostStatus records that the host's status changed to status at
	// time at (StatusChangedAt). Writes are ordered by at: a write older
	// than the stored change is skipped without error, so that a late
	// "offline" never overwrites a newer "online". Online also raises
	// LastSeen to at. It never changes a revoked host.
	SetHostStatus(ctx context.Context, id, status string, at time.Time) error
	// SetHostClockSkew records the host's clock skew (its clock minus the
	// server's) as its agent measured it. It never changes a revoked host.
	SetHostClockSkew(ctx context.Context, id string, skew time.Duration) error
	// TouchHosts raises last-seen times of many hosts in one transaction;
	// a time older than the stored one is skipped.
	TouchHosts(ctx context.Context, seen map[string]time.Time) error
	RevokeHost(ctx context.Context, id string) error

	// API tokens
	CreateAPIToken(ctx context.Context, t APIToken) error
	GetAPITokenByHash(ctx context.Context, hash string) (APIToken, error)
	CountAPITokens(ctx context.Context) (int, error)
	// ListAPITokens returns every API token, expired ones included, oldest
	// first.
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	// DeleteAPIToken removes an API token at once (ErrNotFound if no token
	// has the id).
	DeleteAPIToken(ctx context.Context, id string) error

	// Join tokens
	// CreateJoinToken stores a join token (ErrConflict if the id or hash
	// exists).
	CreateJoinToken(ctx context.Context, t JoinTokenRecord) error
	// ListJoinTokens returns every join token, oldest first, without
	// secrets.
	ListJoinTokens(ctx context.Context) ([]api.JoinToken, error)
	// GetJoinTokenByHash returns a join token, expired or used up
	// included; ErrNotFound if no token has the hash.
	GetJoinTokenByHash(ctx context.Context, hash string) (JoinTokenRecord, error)
	// DeleteJoinToken removes a join token (ErrNotFound if no token has
	// the id); hosts enrolled with it stay enrolled.
	DeleteJoinToken(ctx context.Context, id string) error
	// DeleteJoinTokensOf removes every join token whose Owner is owner
	// (never those of owner ""), used or not, and returns how many it
	// removed: the machine they were made for is gone.
	DeleteJoinTokensOf(ctx context.Context, owner string) (int, error)

	// Idempotency keys
	// ClaimIdempotencyKey stores k (ResourceID "") if no unexpired record
	// has its (Caller, Key), and returns (k, true). Otherwise it stores
	// nothing and returns the existing record and false: the caller then
	// compares RequestHash and answers with ResourceID, or waits while it
	// is "". Two concurrent claims of one key never both return true. An
	// expired record (ExpiresAt <= now) is replaced.
	ClaimIdempotencyKey(ctx context.Context, k IdempotencyKey, now time.Time) (IdempotencyKey, bool, error)
	// FinishIdempotencyKey records what the claimed key's request created
	// and the status it answered (ErrNotFound if the claim is gone).
	FinishIdempotencyKey(ctx context.Context, caller, key, resourceID string, status int) error
	// ReleaseIdempotencyKey drops an unfinished claim (its request failed
	// before creating anything), so that a retry runs the request again. A
	// finished record is left alone; a missing one is no error.
	ReleaseIdempotencyKey(ctx context.Context, caller, key string) error
	// PurgeIdempotencyKeys deletes the records expired at now and returns
	// how many it deleted.
	PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int, error)

	// Jobs
	// CreateJob stores a job and its executions in one transaction.
	CreateJob(ctx context.Context, j api.Job, execs []api.Execution) error
	// GetJob returns the job with its executions ordered by host name.
	GetJob(ctx context.Context, id string) (api.Job, error)
	// ListJobs returns the newest jobs first, without executions but with Counts.
	ListJobs(ctx context.Context, limit int) ([]api.Job, error)
	// UpdateExecutions applies updates in one transaction (see ExecUpdate).
	UpdateExecutions(ctx context.Context, ups []ExecUpdate) error
	// GetExecution returns one execution.
	GetExecution(ctx context.Context, id string) (api.Execution, error)
	// ListUnfinishedJobs returns running jobs with their executions.
	ListUnfinishedJobs(ctx context.Context) ([]api.Job, error)
	// FinishJob marks a job finished (idempotent).
	FinishJob(ctx context.Context, id string, at time.Time) error

	// Schedules
	CreateSchedule(ctx context.Context, s api.Schedule) error
	ListSchedules(ctx context.Context) ([]api.Schedule, error)
	GetSchedule(ctx context.Context, id string) (api.Schedule, error)
	DeleteSchedule(ctx context.Context, id string) error
	// UpdateSchedule replaces the cron expression, selector, script,
	// concurrency, timeout, user, Disabled and UpdatedAt of the schedule
	// with s.ID (ErrNotFound if none); its runs so far are kept.
	UpdateSchedule(ctx context.Context, s api.Schedule) error
	// MarkScheduleRun records that the schedule fired at `at` for `slot`
	// (the cron time it fired for) and created job jobID. It returns false
	// without writing if that slot was already recorded, so that two
	// servers never run one slot twice.
	MarkScheduleRun(ctx context.Context, id string, slot time.Time, jobID string) (bool, error)

	// Leases
	// AcquireLease takes or renews the named lease for holder until
	// now+ttl. It returns ErrLeaseHeld while another holder's lease is
	// unexpired. Taking it over from another holder increments Epoch.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)

	// Applications and revisions
	// CreateApplication: ErrConflict if the name exists.
	CreateApplication(ctx context.Context, a api.Application) error
	GetApplication(ctx context.Context, name string) (api.Application, error)
	// ListApplications returns applications ordered by name.
	ListApplications(ctx context.Context) ([]api.Application, error)
	// CreateRevision: ErrNotFound if the application does not exist,
	// ErrConflict if it already has a revision with that id.
	CreateRevision(ctx context.Context, r api.Revision) error
	GetRevision(ctx context.Context, app, id string) (api.Revision, error)
	// ListRevisions returns an application's revisions, newest first,
	// without their appspec text.
	ListRevisions(ctx context.Context, app string) ([]api.Revision, error)
	// DeleteApplication removes an application with its groups, their
	// deployments and host revisions, its revisions, and the stored
	// bundles no other application's revision uses, in one transaction.
	// ErrNotFound if it does not exist; ErrConflict (naming the
	// deployment) while one of its deployments is not final. Whether the
	// application is in use is the caller's to judge.
	DeleteApplication(ctx context.Context, name string) error

	// Blobs: content-addressed byte streams (revision bundles).
	// PutBlob stores r under digest (the caller has verified it) in one
	// transaction, in chunks; a blob that exists already is left as is.
	PutBlob(ctx context.Context, digest string, r io.Reader) (size int64, err error)
	// OpenBlob streams a stored blob; ErrNotFound if absent.
	OpenBlob(ctx context.Context, digest string) (io.ReadCloser, int64, error)

	// Deployment groups and deployments
	// CreateGroup: ErrNotFound if the application does not exist,
	// ErrConflict if it has a group of that name.
	CreateGroup(ctx context.Context, g api.DeploymentGroup) error
	GetGroup(ctx context.Context, app, name string) (api.DeploymentGroup, error)
	// UpdateGroupSettings changes the selector, config, health check,
	// auto-rollback and load balancer of the group with g.ID (ErrNotFound
	// if none).
	UpdateGroupSettings(ctx context.Context, g api.DeploymentGroup) error
	// ListGroups returns an application's groups ordered by name, or every
	// group (ordered by app, then name) when app is "".
	ListGroups(ctx context.Context, app string) ([]api.DeploymentGroup, error)
	// DeleteGroup removes a deployment group with its deployments and its
	// hosts' revisions, in one transaction. ErrNotFound if it does not
	// exist; ErrConflict (naming the deployment) while a deployment to it
	// is not final.
	DeleteGroup(ctx context.Context, app, name string) error
	// CreateDeployment stores a deployment and its hosts in one
	// transaction. ErrConflict if the id exists or if the group has a
	// deployment that is not final (one at a time per group).
	CreateDeployment(ctx context.Context, d api.Deployment, hosts []api.DeploymentHost) error
	// AddDeploymentHosts adds hosts to deployment id and sets its
	// MinHealthy to minHealthy, in one transaction (for a deployment
	// created before its hosts existed, such as a blue/green deployment
	// whose replacement hosts come online later). An empty host State
	// becomes api.HostDeployPending. ErrNotFound if the deployment does
	// not exist; ErrConflict, changing nothing, if one of the hosts is in
	// it already or if the deployment is not running (stopping or final).
	AddDeploymentHosts(ctx context.Context, id string, minHealthy int, hosts []api.DeploymentHost) error
	// GetDeployment returns a deployment with Counts and its hosts (ordered
	// by name) with their events.
	GetDeployment(ctx context.Context, id string) (api.Deployment, error)
	// ListDeployments returns the newest deployments first, of one
	// application or of all (app ""), with Counts but without hosts.
	ListDeployments(ctx context.Context, app string, limit int) ([]api.Deployment, error)
	// ListActiveDeployments returns the deployments that are not final,
	// oldest first, with their hosts.
	ListActiveDeployments(ctx context.Context) ([]api.Deployment, error)
	// UpdateDeployment changes a deployment (see DeploymentUpdate). When
	// it becomes succeeded, the group's revision becomes the deployment's,
	// in the same transaction.
	UpdateDeployment(ctx context.Context, u DeploymentUpdate) error
	// UpdateDeploymentHosts applies host updates in one transaction (see
	// DeploymentHostUpdate). A host that becomes succeeded gets the
	// deployment's revision as its revision in the group (HostRevisions),
	// in the same transaction.
	UpdateDeploymentHosts(ctx context.Context, ups []DeploymentHostUpdate) error
	// HostRevisions returns, for a group, each host's last successfully
	// deployed revision, by host id.
	HostRevisions(ctx context.Context, groupID string) (map[string]HostRevision, error)
	// AddTrafficChange appends a change made to a load balancer to a
	// deployment's Traffic.Changes (in any state of the deployment;
	// ErrNotFound if it does not exist). GetDeployment and
	// ListActiveDeployments return the changes in the order they were
	// added; CreateDeployment stores those d.Traffic already has.
	AddTrafficChange(ctx context.Context, depID string, c api.TrafficChange) error

	// GetLease returns the named lease as stored, expired or not;
	// ErrNotFound if it is not held.
	GetLease(ctx context.Context, name string) (Lease, error)
	// ReleaseLease gives up the named lease if holder holds it (no error
	// otherwise).
	ReleaseLease(ctx context.Context, name, holder string) error

	// Environments
	GetEnvironment(ctx context.Context, name string) (Environment, error)
	// ListEnvironments returns every environment ordered by name, without
	// Definition.
	ListEnvironments(ctx context.Context) ([]Environment, error)
	// SaveEnvironment writes e's state, definition and vars with serial
	// e.Serial (> prev) if the stored serial is still prev; prev 0 creates
	// it. ErrConflict if the serial moved (or, for prev 0, it exists).
	SaveEnvironment(ctx context.Context, e Environment, prev int64) error
	// SetEnvironmentEvents replaces the lifecycle runs (JSON) without
	// changing the serial. ErrNotFound if the environment does not exist.
	SetEnvironmentEvents(ctx context.Context, name string, events []byte) error
	// DeleteEnvironment removes an environment (gone already is no error).
	DeleteEnvironment(ctx context.Context, name string) error

	// Settings: small server-wide values (e.g. schema markers).
	GetSetting(ctx context.Context, key string) ([]byte, error)
	PutSetting(ctx context.Context, key string, value []byte) error

	Close() error
}
