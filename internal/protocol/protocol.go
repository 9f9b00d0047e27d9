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
	// CmdLB drives the load balancer on the host. It is a request: the
	// agent answers on the message's reply subject with an LBResult. It is
	// idempotent (it sets states, it does not run scripts), so it is not
	// journaled.
	CmdLB = "lb"
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
	LB        *LBCommand     `json:"lb,omitempty"`
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
	// Traffic adds the six traffic events: the group is behind a load
	// balancer, and at BlockTraffic and AllowTraffic the agent asks the
	// server (TrafficRequest) to take the host out and let it in again.
	Traffic bool `json:"traffic,omitempty"`
	// TrafficTimeoutMillis is how long the agent waits for the server's
	// answer to a TrafficRequest (the drain timeout and the wait for the
	// host to be UP, with margins); 0: 10 minutes.
	TrafficTimeoutMillis int64 `json:"traffic_timeout_ms,omitempty"`
	// Role is "" to deploy Revision, or RoleOriginal.
	Role string `json:"role,omitempty"`
}

// RoleOriginal is the deploy command of an original host of a blue/green
// deployment once the traffic has moved: it runs BeforeBlockTraffic,
// BlockTraffic and AfterBlockTraffic (appspec.BlueGreenOriginalEvents),
// their hooks from the revision installed on the host; no bundle is
// fetched and nothing is installed.
const RoleOriginal = "blue-green-original"

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

// LB operations (LBCommand.Op).
const (
	// LBConfigure makes the load balancer serve Config (a managed one):
	// servers added (in their given state) or removed at runtime, the
	// configuration rewritten, and a seamless reload only when a backend
	// itself changed.
	LBConfigure = "configure"
	// LBStatus reports the servers of Backend ("" for all).
	LBStatus = "status"
	// LBSet sets Server's Weight (when >= 0) and State (when not "").
	LBSet = "set"
	// LBWeights sets the weights of several servers of Backend at once.
	LBWeights = "weights"
	// LBDrain puts Server in drain, waits until its sessions are 0 or
	// Timeout passed, then puts it in maint (with State drain: leaves it
	// in drain, with Weight when >= 0). Refused when it would leave
	// Backend without a ready server that is UP.
	LBDrain = "drain"
	// LBAllow lets Server in: health forced down, state ready, then it
	// waits (up to Timeout) for the load balancer's own checks to make it
	// UP (rise checks in a row), with Weight when >= 0.
	LBAllow = "allow"
	// LBRemove drains Server (as LBDrain, without the last-server guard)
	// and deletes it.
	LBRemove = "remove"
)

// LBCommand is one operation on the host's load balancer.
type LBCommand struct {
	// Driver is the load balancer's kind ("haproxy").
	Driver string `json:"driver"`
	// Socket and StateFile address a load balancer gantry does not
	// configure (see api.LBTarget); "" for the one the agent manages.
	Socket    string `json:"socket,omitempty"`
	StateFile string `json:"state_file,omitempty"`
	Op        string `json:"op"`
	// Config is the whole managed configuration (LBConfigure).
	Config  *api.LBConfig `json:"config,omitempty"`
	Backend string        `json:"backend,omitempty"`
	Server  string        `json:"server,omitempty"`
	// Weight is the new weight (LBSet, LBAllow); -1 leaves it.
	Weight int    `json:"weight"`
	State  string `json:"state,omitempty"`
	// Weights are server name → weight (LBWeights).
	Weights map[string]int `json:"weights,omitempty"`
	// TimeoutMillis caps LBDrain's wait for sessions and LBAllow's for UP.
	TimeoutMillis int64 `json:"timeout_ms,omitempty"`
}

// LBResult is the agent's answer to an LBCommand.
type LBResult struct {
	// Error says why the operation failed or was refused ("" on success).
	Error string `json:"error,omitempty"`
	// Detail says what was done, e.g. "drained 3 sessions in 2.9s".
	Detail string `json:"detail,omitempty"`
	// TimedOut is set when a drain's sessions were still open at its
	// timeout (the server was put in maint anyway), or an allowed server
	// was not UP in time (an error).
	TimedOut bool `json:"timed_out,omitempty"`
	// Servers are the servers of the backend after the operation.
	Servers       []api.LBServerStatus `json:"servers,omitempty"`
	ElapsedMillis int64                `json:"elapsed_ms"`
}

// TrafficRequest is sent by an agent running a deploy step with Traffic,
// at BlockTraffic and AllowTraffic, on AgentSubject(host, KindTraffic):
// the server checks that the step is running on that host, drives the
// load balancer and answers with a TrafficReply.
type TrafficRequest struct {
	ExecID       string `json:"exec_id"`
	DeploymentID string `json:"deployment_id"`
	// Event is appspec.EventBlockTraffic or appspec.EventAllowTraffic.
	Event string `json:"event"`
}

// MaxTrafficRequestBytes is the largest encoded TrafficRequest the server
// reads (a real one is a few hundred bytes).
const MaxTrafficRequestBytes = 4 << 10

// TrafficReply answers a TrafficRequest.
type TrafficReply struct {
	Error string `json:"error,omitempty"`
	// Log is what was done (it becomes the event's log).
	Log string `json:"log,omitempty"`
}
