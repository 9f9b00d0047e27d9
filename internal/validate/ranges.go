package validate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every *Error: errors.Is(err, ErrInvalid) tells a
// refused value from other failures.
var ErrInvalid = errors.New("invalid value")

// Error is a refused value: the field it was given in and what is wrong
// with it, including what would be valid.
type Error struct {
	// Field is the name of the field as the user wrote it
	// ("timeout_seconds", "health_check.tcp", "labels"); "" when unknown.
	Field string
	// Msg says what is wrong and what would be valid, without the field.
	Msg string
}

// Error is "field: msg".
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap makes every *Error match ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Unit is what the integer of a Range counts.
type Unit int

// Units of ranges.
const (
	Count   Unit = iota // a plain number (hosts, uses, …)
	Seconds             // whole seconds
	Millis              // whole milliseconds
	Bytes               // bytes
	Percent             // a percentage
)

// Range is the documented range of an integer field.
type Range struct {
	// Field is the field's name in the API ("timeout_seconds").
	Field string
	// Min and Max bound the value, both included.
	Min, Max int64
	// Unit is what the number counts; it decides how the bounds are shown.
	Unit Unit
	// Zero, when set, says what 0 means where 0 lies outside [Min, Max]
	// ("the default, 600 (10m)"); 0 is then accepted too.
	Zero string
}

// Check refuses v outside the range (0 is accepted when Zero is set).
func (r Range) Check(v int64) error {
	return r.CheckAs(r.Field, v)
}

// CheckAs is Check for a value given under another name (an HCL attribute,
// a CLI flag).
func (r Range) CheckAs(field string, v int64) error {
	if v == 0 && r.Zero != "" {
		return nil
	}
	if v < r.Min || v > r.Max {
		return r.Refuse(field, strconv.FormatInt(v, 10))
	}
	return nil
}

// Refuse is the error for a value, shown as given, that is not in the
// range (one too large for an int64, a duration string).
func (r Range) Refuse(field, shown string) *Error {
	return errorf(field, "%s is out of range: want %s", shown, r.Want())
}

// RefuseDuration is Refuse for a duration range given as a duration (HCL's
// "90s"): the bounds are shown as durations.
func (r Range) RefuseDuration(field, shown string) *Error {
	unit := time.Second
	if r.Unit == Millis {
		unit = time.Millisecond
	}
	want := DurationString(time.Duration(r.Min)*unit) + " to " + DurationString(time.Duration(r.Max)*unit)
	if r.Zero != "" {
		want += "; 0 means " + r.Zero
	}
	return errorf(field, "%s is out of range: want %s", shown, want)
}

// Want describes the range: "1 to 86400 (24h); 0 means the default, 600 (10m)".
func (r Range) Want() string {
	s := fmt.Sprintf("%d to %d", r.Min, r.Max)
	switch r.Unit {
	case Seconds:
		s += " (" + r.span(time.Second) + ")"
	case Millis:
		s += " (" + r.span(time.Millisecond) + ")"
	case Bytes:
		s += " bytes (" + sizeString(r.Max) + ")"
	case Percent:
		s = fmt.Sprintf("%d%% to %d%%", r.Min, r.Max)
	}
	if r.Zero != "" {
		s += "; 0 means " + r.Zero
	}
	return s
}

// span shows the bounds of a duration range: "24h", or "100ms to 1m".
func (r Range) span(unit time.Duration) string {
	hi := DurationString(time.Duration(r.Max) * unit)
	if r.Min*int64(unit) <= int64(time.Second) && unit == time.Second {
		return hi
	}
	return DurationString(time.Duration(r.Min)*unit) + " to " + hi
}

// DurationString shows d without zero units: "24h", "1m30s", "100ms".
func DurationString(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// The documented ranges. docs/limits.md shows them (see Limits).
var (
	// JobTimeout is a job's or schedule's timeout_seconds.
	JobTimeout = Range{Field: "timeout_seconds", Min: 1, Max: 86400, Unit: Seconds, Zero: "the default, 600 (10m)"}
	// JobConcurrency is how many hosts a job runs on at a time.
	JobConcurrency = Range{Field: "concurrency", Min: 1, Max: 100000, Zero: "all matching hosts at once"}
	// ScriptSize is the size of a job's script.
	ScriptSize = Range{Field: "script", Min: 1, Max: 256 << 10, Unit: Bytes}
	// LifecycleTimeout is an environment group's setup_timeout,
	// configure_timeout and shutdown_timeout.
	LifecycleTimeout = Range{Field: "timeout", Min: 1, Max: 86400, Unit: Seconds}
	// DrainTimeout caps the wait for a drained load balancer server's
	// sessions to end (BlockTraffic, scale-in).
	DrainTimeout = Range{Field: "load_balancer.drain_timeout_seconds", Min: 1, Max: 3600, Unit: Seconds, Zero: "the default, 30 (30s)"}
	// HealthTimeout is how long a health check may take to pass on a host.
	HealthTimeout = Range{Field: "health_check.timeout_seconds", Min: 1, Max: 3600, Unit: Seconds, Zero: "the default, 60 (1m)"}
	// HealthInterval is the pause between a health check's attempts.
	HealthInterval = Range{Field: "health_check.interval_ms", Min: 100, Max: 60000, Unit: Millis, Zero: "the default, 1000 (1s)"}
	// HealthStatus is the HTTP status an http health check expects.
	HealthStatus = Range{Field: "health_check.expect_status", Min: 100, Max: 599, Zero: "the default, 200"}
	// Port is a TCP port of a health check address or URL.
	Port = Range{Field: "port", Min: 1, Max: 65535}
	// MinHealthyCount is a deployment configuration's minimum of healthy
	// hosts given as a count ("4").
	MinHealthyCount = Range{Field: "config", Min: 0, Max: 10000}
	// MinHealthyPercent is the same given as a percentage ("75%").
	MinHealthyPercent = Range{Field: "config", Min: 0, Max: 100, Unit: Percent}
	// GroupCount is the number of machines of an environment group (count,
	// and gantry scale GROUP=N).
	GroupCount = Range{Field: "count", Min: 0, Max: 10000}
	// LockTimeout is how long an apply waits for another one's lock.
	LockTimeout = Range{Field: "lock_timeout_seconds", Min: 0, Max: 3600, Unit: Seconds}
	// JoinTokenTTL is how long a join token stays valid.
	JoinTokenTTL = Range{Field: "ttl_seconds", Min: 1, Max: 31536000, Unit: Seconds}
	// JoinTokenUses is how many hosts may enroll with one join token.
	JoinTokenUses = Range{Field: "max_uses", Min: 1, Max: 1000000, Zero: "unlimited until the token expires"}
	// APITokenTTL is how long an API token works (ten years at most).
	APITokenTTL = Range{Field: "ttl_seconds", Min: 1, Max: 315360000, Unit: Seconds, Zero: "never expires"}
	// Labels is the number of labels a host, token or group may carry.
	Labels = Range{Field: "labels", Min: 0, Max: 64}
	// KeepRevisions bounds the agent's --keep-revisions.
	KeepRevisions = Range{Field: "--keep-revisions", Min: 1, Max: 1000}
	// ListLimit is the limit query parameter of list routes.
	ListLimit = Range{Field: "limit", Min: 1, Max: 1000}
	// ScheduleInterval bounds the server's --min-schedule-interval.
	ScheduleInterval = Range{Field: "--min-schedule-interval", Min: 1, Max: 86400, Unit: Seconds}
	// Heartbeat bounds the server's --heartbeat.
	Heartbeat = Range{Field: "--heartbeat", Min: 100, Max: 3600000, Unit: Millis}
)

// DefaultMinScheduleInterval is the shortest interval between two runs of a
// schedule unless the server is started with --min-schedule-interval.
const DefaultMinScheduleInterval = 10 * time.Second
