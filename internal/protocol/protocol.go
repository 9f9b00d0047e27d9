// Package protocol holds the messages exchanged between the gantry server and
// its agents over the bus. It is a leaf: engines use it without importing
// the concrete bus.
package protocol

import (
	"time"

	"github.com/gantry-dev/gantry/api"
)

// Command kinds.
const (
	CmdExec = "exec" // run a script
)

// Command is an order for one host. It is signed as a whole.
type Command struct {
	ID        string       `json:"id"` // execution id; unique; the agent runs it at most once
	HostID    string       `json:"host_id"`
	Kind      string       `json:"kind"`
	IssuedAt  time.Time    `json:"issued_at"`
	ExpiresAt time.Time    `json:"expires_at"` // agents refuse it after this
	Exec      *ExecCommand `json:"exec,omitempty"`
}

// ExecCommand runs a script.
type ExecCommand struct {
	JobID          string `json:"job_id"`
	Script         string `json:"script"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	User           string `json:"user,omitempty"`
	OutputCap      int    `json:"output_cap"` // bytes kept per stream
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
}

// Heartbeat is sent by an agent every heartbeat interval.
type Heartbeat struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
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
}

// Ack is the server's reply to a Status.
type Ack struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}
