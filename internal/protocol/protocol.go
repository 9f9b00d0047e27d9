// Package protocol holds the messages exchanged between the gantry server and
// its agents over the bus. It is a leaf: engines use it without importing
// the concrete bus.
package protocol

import (
	"encoding/json"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Command kinds.
const (
	CmdExec   = "exec"   // run a script
	CmdDeploy = "deploy" // run one host's step of a deployment
	CmdCancel = "cancel" // kill a running command (deployments stop --force)
)

// StreamLifecycle is the Output stream of a deploy command's progress: each
// chunk's Data is one JSON api.LifecycleEvent (best effort, for live
// display; the final Status carries them all).
const StreamLifecycle = "lifecycle"

// Command is an order for one host. It is signed as a whole.
type Command struct {
	ID        string         `json:"id"` // execution id; unique; the agent runs it at most once
	HostID    string         `json:"host_id"`
	Kind      string         `json:"kind"`
	IssuedAt  time.Time      `json:"issued_at"`
	ExpiresAt time.Time      `json:"expires_at"` // agents refuse it after this
	Exec      *ExecCommand   `json:"exec,omitempty"`
	Deploy    *DeployCommand `json:"deploy,omitempty"`
	Cancel    *CancelCommand `json:"cancel,omitempty"`
}

// DeployCommand is one host's step of a deployment: fetch the bundle,
// verify it, and run the lifecycle events in order.
type DeployCommand struct {
	JobID        string `json:"job_id"`
	DeploymentID string `json:"deployment_id"`
	Application  string `json:"application"`
	GroupName    string `json:"group_name"`
	GroupID      string `json:"group_id"`
	Revision     string `json:"revision"`
	// Digest is the bundle's sha256:<hex>; the agent refuses other bytes.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// BundlePath is the server path (with its capability query) the
	// bundle is fetched from, relative to the server URL the agent
	// enrolled with.
	BundlePath string `json:"bundle_path"`
	// HealthCheck is run after ValidateService; nil for none.
	HealthCheck *api.HealthCheck `json:"health_check,omitempty"`
	OutputCap   int              `json:"output_cap"`
}

// CancelCommand kills a running command's processes.
type CancelCommand struct {
	ExecID string `json:"exec_id"`
}

// DeployResult is the Result of a deploy command's final Status.
type DeployResult struct {
	Succeeded   bool                 `json:"succeeded"`
	FailedEvent string               `json:"failed_event,omitempty"`
	Error       string               `json:"error,omitempty"`
	Events      []api.LifecycleEvent `json:"events"`
	// Previous is the revision the host had before (from its own record).
	Previous string `json:"previous,omitempty"`
}

// ExecCommand runs a script.
type ExecCommand struct {
	JobID          string `json:"job_id"`
	Script         string `json:"script"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	User           string `json:"user,omitempty"`
	OutputCap      int    `json:"output_cap"` // bytes kept per stream
	// Env is extra environment for the script (lifecycle events:
	// GANTRY_ENV, GANTRY_EVENT, …); it cannot override the GANTRY_JOB_ID,
	// GANTRY_EXECUTION_ID, GANTRY_HOST_ID and GANTRY_HOST_NAME the agent sets.
	Env map[string]string `json:"env,omitempty"`
	// Context, if set, is written by the agent to a file of its own (mode
	// 0600) whose path the script gets in GANTRY_CONTEXT; removed after.
	Context json.RawMessage `json:"context,omitempty"`
}

// Hello is sent by an agent each time it connects.
type Hello struct {
	Facts     api.Facts `json:"facts"`
	StartedAt time.Time `json:"started_at"`
}

// HelloReply answers a Hello: the server's current settings for the agent,
// so that changing them on the server reaches agents enrolled before.
type HelloReply struct {
	// HeartbeatMillis is the heartbeat interval the server expects.
	HeartbeatMillis int64 `json:"heartbeat_ms"`
	// ServerTime is the server's clock when it replied: the agent measures
	// its clock skew from it (half the round trip is the error bound).
	ServerTime time.Time `json:"server_time"`
}

// Heartbeat is sent by an agent every heartbeat interval.
type Heartbeat struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Clock is the agent's latest measurement of its clock against the
	// server's (from its last hello reply); nil until it has one.
	Clock *Clock `json:"clock,omitempty"`
}

// MaxHeartbeatBytes is the largest encoded Heartbeat whose content (the
// clock report) the server reads; a larger one still counts as a sign of
// life.
const MaxHeartbeatBytes = 1 << 10

// Clock is an agent's clock skew as measured from a hello reply: the
// agent's clock at the midpoint of the round trip minus HelloReply's
// ServerTime.
type Clock struct {
	// SkewMillis is the agent's clock minus the server's, in milliseconds:
	// positive when the agent's clock is ahead.
	SkewMillis int64 `json:"skew_ms"`
	// ErrorMillis bounds the measurement's error: half the round trip.
	ErrorMillis int64 `json:"error_ms"`
}

// Output is a chunk of a running command's output, sent best effort for
// live display; the final Status carries the stored copy.
type Output struct {
	ExecID string `json:"exec_id"`
	JobID  string `json:"job_id"`
	Stream string `json:"stream"` // stdout | stderr
	Seq    uint64 `json:"seq"`
	// Offset is how many bytes of this stream were sent before this chunk,
	// so that a reader can tell a gap from a continuation.
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

// Status reports a command's progress. It is sent as a request; the server
// replies with Ack once it is stored, and the agent resends until then.
type Status struct {
	ExecID          string     `json:"exec_id"`
	JobID           string     `json:"job_id,omitempty"`
	State           string     `json:"state"` // api.ExecRunning or a final api.Exec* state
	ExitCode        *int       `json:"exit_code,omitempty"`
	Error           string     `json:"error,omitempty"`
	Stdout          []byte     `json:"stdout,omitempty"`
	Stderr          []byte     `json:"stderr,omitempty"`
	StdoutTruncated bool       `json:"stdout_truncated,omitempty"`
	StderrTruncated bool       `json:"stderr_truncated,omitempty"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// Result is a command kind's structured result (DeployResult).
	Result json.RawMessage `json:"result,omitempty"`
}

// Ack is the server's reply to a Status.
type Ack struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}
