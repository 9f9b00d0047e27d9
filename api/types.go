// Package api holds the JSON wire types of gantry's HTTP API and a small Go
// client for it. It imports nothing from internal/: the CLI and third-party
// programs talk to a server through this package only.
package api

import "time"

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
}

// JoinToken lets agents enroll. Token is set only in the response that
// creates it; the server keeps a hash.
type JoinToken struct {
	ID        string            `json:"id"`
	Token     string            `json:"token,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	ExpiresAt time.Time         `json:"expires_at"`
	MaxUses   int               `json:"max_uses"` // 0 = unlimited until expiry
	Uses      int               `json:"uses"`
	CreatedAt time.Time         `json:"created_at"`
}

// CreateJoinTokenRequest is the body of POST /api/v1/join-tokens.
type CreateJoinTokenRequest struct {
	TTLSeconds int               `json:"ttl_seconds"` // default 3600
	MaxUses    int               `json:"max_uses"`    // default 1; 0 = unlimited
	Labels     map[string]string `json:"labels,omitempty"`
}

// EnrollRequest is the body of POST /api/v1/enroll, sent by an agent once.
// The agent makes its own NATS key pair and sends only the public key.
type EnrollRequest struct {
	JoinToken string            `json:"join_token"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Facts     Facts             `json:"facts"`
	NKey      string            `json:"nkey"` // NATS user public key (starts with U)
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

// Job states.
const (
	JobRunning  = "running"
	JobFinished = "finished" // every host accounted for
)

// JobSpec is the body of POST /api/v1/jobs.
type JobSpec struct {
	Selector       string `json:"selector"`
	Script         string `json:"script"`
	Concurrency    int    `json:"concurrency,omitempty"`     // 0 = all at once
	TimeoutSeconds int    `json:"timeout_seconds,omitempty"` // default 600
	User           string `json:"user,omitempty"`            // run as this user (agent must be root)
}

// Job is a script run on every host matching a selector.
type Job struct {
	ID             string         `json:"id"`
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
	Code  string `json:"code"` // bad_request, unauthorized, forbidden, not_found, conflict, internal
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
