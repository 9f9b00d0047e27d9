package api

import "time"

// Admin states of a load balancer's server: the state gantry sets.
const (
	// LBReady: the server takes traffic in proportion to its weight.
	LBReady = "ready"
	// LBDrain: no new sessions; sessions in flight finish; health checks go on.
	LBDrain = "drain"
	// LBMaint: no traffic at all and no health checks.
	LBMaint = "maint"
)

// Deployment strategies (DeployRequest.Strategy, Deployment.Strategy).
const (
	StrategyInPlace   = "in-place"   // batches of hosts, each drained and let in again (default)
	StrategyCanary    = "canary"     // some hosts first, at growing weights, analysed, then the rest
	StrategyBlueGreen = "blue-green" // a replacement fleet, then traffic moves to it
)

// LBCheck is a load balancer's own health check of its servers.
type LBCheck struct {
	// Path is fetched with GET (an HTTP check); "" checks that the port
	// accepts a connection.
	Path string `json:"path,omitempty"`
	// IntervalMillis between checks (default 1000).
	IntervalMillis int `json:"interval_ms,omitempty"`
	// Rise is the number of consecutive passed checks that make a server
	// UP (default 2); Fall the failed ones that make it DOWN (default 2).
	Rise int `json:"rise,omitempty"`
	Fall int `json:"fall,omitempty"`
}

// LBServer is one server of a backend as gantry wants it.
type LBServer struct {
	// Name is the server's name in the load balancer: the gantry host
	// name of the machine behind it.
	Name string `json:"name"`
	// Addr is its IP address or DNS name; Port its application port.
	Addr string `json:"addr"`
	Port int    `json:"port"`
	// Weight is 0 to 256 (default 100).
	Weight int `json:"weight,omitempty"`
	// State is the admin state a server gets when it is added (LBMaint
	// for new machines). Configure never changes the state of a server
	// that is already there: deployments and joins change it.
	State string `json:"state,omitempty"`
}

// LBBackend is one balanced service: the port the load balancer listens
// on and the servers behind it.
type LBBackend struct {
	// Name is the backend's name: the balanced group's name ("web").
	Name string `json:"name"`
	// Listen is the port the load balancer listens on (all addresses).
	Listen int `json:"listen"`
	// Balance is the algorithm: roundrobin (default), leastconn, first
	// or random.
	Balance string  `json:"balance,omitempty"`
	Check   LBCheck `json:"check"`
	// Header, if set, is a response header that names the address of the
	// server that answered (e.g. X-Backend).
	Header  string     `json:"header,omitempty"`
	Servers []LBServer `json:"servers"`
}

// LBConfig is everything gantry manages on one load balancer machine.
type LBConfig struct {
	Backends []LBBackend `json:"backends"`
}

// LBServerStatus is one server as the load balancer reports it.
type LBServerStatus struct {
	Backend string `json:"backend"`
	Name    string `json:"name"`
	Addr    string `json:"addr,omitempty"`
	Port    int    `json:"port,omitempty"`
	Weight  int    `json:"weight"`
	// State is the admin state: ready, drain or maint.
	State string `json:"state"`
	// Health is the operational state: UP, DOWN, or "" without checks.
	Health string `json:"health,omitempty"`
	// Check is the last health check's result (L7OK, L4CON, …).
	Check string `json:"check,omitempty"`
	// Sessions in flight now; Total since the load balancer started.
	Sessions int   `json:"sessions"`
	Total    int64 `json:"total"`
	// Responses counts HTTP responses, HTTP5xx those with a 5xx status.
	Responses int64 `json:"responses"`
	HTTP5xx   int64 `json:"http_5xx"`
	// Errors counts connection and response errors toward the server.
	Errors int64 `json:"errors"`
	// RespTimeMillis is the average response time of its last 1024
	// requests.
	RespTimeMillis int `json:"resp_time_ms"`
}

// LBTarget is the load balancer in front of a deployment group's hosts.
// Each host is the server of Backend named by its gantry host name (or,
// for a hand-written configuration, whose address is one of the host's).
type LBTarget struct {
	// Host is the gantry host name of the load balancer machine, whose
	// agent drives it.
	Host string `json:"host"`
	// Backend is the backend (haproxy) the group's hosts are servers of.
	Backend string `json:"backend"`
	// Driver is the load balancer's kind: "haproxy" (the default).
	Driver string `json:"driver,omitempty"`
	// Socket is the runtime API socket of a load balancer gantry does not
	// configure (hand-onboarded); "" for one gantry manages (environments).
	Socket string `json:"socket,omitempty"`
	// StateFile is the server-state-file of a hand-configured haproxy,
	// rewritten after every change so that a reload keeps it.
	StateFile string `json:"state_file,omitempty"`
	// DrainTimeoutSeconds caps the wait for a drained host's sessions to
	// end (default 30).
	DrainTimeoutSeconds int `json:"drain_timeout_seconds,omitempty"`
}

// CanaryStep is one weight of a canary and how long it holds.
type CanaryStep struct {
	// Weight is the share of requests, in percent (1 to 100), that the
	// canary hosts get.
	Weight int `json:"weight"`
	// PauseMillis is how long the step lasts, analysed meanwhile; 0 waits
	// for `gantry deployments promote`.
	PauseMillis int64 `json:"pause_ms"`
}

// CanarySpec is a canary deployment's steps and analysis.
type CanarySpec struct {
	// Hosts is the number of canary hosts (default 1).
	Hosts int          `json:"hosts,omitempty"`
	Steps []CanaryStep `json:"steps"`
	// IntervalMillis is the analysis interval (default 10000).
	IntervalMillis int64 `json:"interval_ms,omitempty"`
	// MaxErrorRate is the highest 5xx (and error) rate of the canary that
	// passes, 0 to 1 (default 0.01).
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxLatencyRatio is the highest ratio of the canary's average
	// response time to the stable hosts' that passes (default 2; 0 for
	// the default, negative turns it off).
	MaxLatencyRatio float64 `json:"max_latency_ratio,omitempty"`
	// FailureLimit is the number of failed analyses tolerated (Argo's
	// failureLimit, default 0: the first failure rolls back).
	FailureLimit int `json:"failure_limit,omitempty"`
	// MinRequests is the number of canary requests an interval needs to
	// be data (default 20).
	MinRequests int64 `json:"min_requests,omitempty"`
	// OnNoData is what an interval without data means: "wait" (default:
	// it does not count, but a step that ends without any data fails),
	// "fail", or "pass".
	OnNoData string `json:"on_no_data,omitempty"`
}

// BlueGreenSpec is a blue/green deployment's replacement fleet and
// traffic shift.
type BlueGreenSpec struct {
	// ReplacementSelector chooses the replacement hosts (hand-onboarded
	// groups); an environment's group leaves it empty: the environment
	// makes the replacement machines itself.
	ReplacementSelector string `json:"replacement_selector,omitempty"`
	// KeepOriginalMillis is how long the original hosts are kept, ready to
	// take traffic back (default 5 min; 0 with NoKeep).
	KeepOriginalMillis int64 `json:"keep_original_ms,omitempty"`
	// NoKeep lets the originals go as soon as the traffic has moved
	// (keep_original = 0); KeepOriginalMillis is then ignored.
	NoKeep bool `json:"no_keep,omitempty"`
	// StepPercent moves traffic in linear steps of this share (0: all at
	// once) every StepIntervalMillis.
	StepPercent        int   `json:"step_percent,omitempty"`
	StepIntervalMillis int64 `json:"step_interval_ms,omitempty"`
}

// CanaryAnalysis is one analysis of a canary interval.
type CanaryAnalysis struct {
	At     time.Time `json:"at"`
	Step   int       `json:"step"`   // 0-based step index
	Weight int       `json:"weight"` // canary share in percent
	// Canary and stable counts over the interval.
	CanaryRequests int64   `json:"canary_requests"`
	CanaryErrors   int64   `json:"canary_errors"`
	StableRequests int64   `json:"stable_requests"`
	StableErrors   int64   `json:"stable_errors"`
	ErrorRate      float64 `json:"error_rate"`
	CanaryLatency  float64 `json:"canary_latency_ms"`
	StableLatency  float64 `json:"stable_latency_ms"`
	// Verdict is "pass", "fail" or "no_data"; Reason says why.
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
}

// TrafficChange is one change gantry made to a load balancer.
type TrafficChange struct {
	At      time.Time `json:"at"`
	Backend string    `json:"backend"`
	Server  string    `json:"server"`
	// Action: drain, maint, ready, weight, add, remove.
	Action string `json:"action"`
	Weight int    `json:"weight,omitempty"`
	// Detail: e.g. "drained 3 sessions in 2.9s", "UP after 2 checks".
	Detail         string `json:"detail,omitempty"`
	ElapsedMillis  int64  `json:"elapsed_ms,omitempty"`
	Error          string `json:"error,omitempty"`
	DeploymentID   string `json:"deployment_id,omitempty"`
	Environment    string `json:"env,omitempty"`
	LoadBalancerID string `json:"lb_host,omitempty"`
}

// DeployTraffic is a deployment's traffic side: its strategy's progress.
type DeployTraffic struct {
	Canary    *CanarySpec    `json:"canary,omitempty"`
	BlueGreen *BlueGreenSpec `json:"blue_green,omitempty"`
	// Phase: canary (steps running), promoting (the rest of the hosts),
	// promoted, aborted; blue/green: provisioning (an environment makes
	// the replacement machines), deploying, shifting, blocking (the
	// originals run their block-traffic events), kept (originals kept),
	// releasing (the losing fleet is removed), done.
	Phase string `json:"phase,omitempty"`
	// Step is the current canary step (0-based); Weight the canary's (or
	// the replacement fleet's) share of traffic in percent.
	Step   int `json:"step"`
	Weight int `json:"weight"`
	// CanaryHosts are the canary's hosts (names); Replacement and
	// Original the blue/green fleets.
	CanaryHosts []string `json:"canary_hosts,omitempty"`
	Replacement []string `json:"replacement,omitempty"`
	Original    []string `json:"original,omitempty"`
	// OriginalHosts are the original hosts' block-traffic steps
	// (BeforeBlockTraffic, BlockTraffic, AfterBlockTraffic) once the
	// traffic has moved: state, events and error of each.
	OriginalHosts []DeploymentHost `json:"original_hosts,omitempty"`
	Analyses      []CanaryAnalysis `json:"analyses,omitempty"`
	Failures      int              `json:"failures"`
	// StepStartedAt is when the current step (or kept period) began.
	StepStartedAt *time.Time `json:"step_started_at,omitempty"`
	// Reason says why the strategy promoted, aborted or finished (a
	// canary's failed analysis, "promoted by hand", …).
	Reason string `json:"reason,omitempty"`
	// ManagedFleet is true for a blue/green deployment of an environment's
	// group: the environment makes the replacement machines (phase
	// provisioning) and removes the fleet that lost (phase releasing).
	ManagedFleet bool `json:"managed_fleet,omitempty"`
	// Outcome is the state a releasing deployment ends in once the losing
	// fleet is removed (succeeded: the originals go; failed or stopped:
	// the replacements go).
	Outcome string `json:"outcome,omitempty"`
	// Status says what a provisioning or releasing deployment waits for
	// ("web-2 setting up", "removing 2 machines").
	Status string `json:"status,omitempty"`
	// PromoteRequested / AbortRequested record promote and abort.
	PromoteRequested bool            `json:"promote_requested,omitempty"`
	AbortRequested   bool            `json:"abort_requested,omitempty"`
	Changes          []TrafficChange `json:"changes,omitempty"`
}

// LBView is GET /api/v1/envs/{env}/lb and /api/v1/apps/{app}/groups/{group}/lb:
// a load balancer's backends as it reports them.
type LBView struct {
	Host    string           `json:"host"`
	Driver  string           `json:"driver"`
	Servers []LBServerStatus `json:"servers"`
}
