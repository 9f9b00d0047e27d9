package api

import (
	"encoding/json"
	"time"
)

// Plan actions.
const (
	ActionCreate  = "create"  // +
	ActionUpdate  = "update"  // ~ in place
	ActionReplace = "replace" // -/+
	ActionDelete  = "delete"  // -
)

// Machine lifecycle phases (OpsWorks semantics): a machine is created,
// its agent joins, setup runs, the group's revision is deployed, and then
// it is online; configure runs everywhere when a machine enters or leaves
// online.
const (
	PhaseCreating  = "creating"  // the provider is making it
	PhaseJoining   = "joining"   // waiting for its agent to enroll and connect
	PhaseSetup     = "setup"     // the setup script runs
	PhaseDeploying = "deploying" // waiting for the group's revision
	PhaseOnline    = "online"    // set up, deployed and healthy
	PhaseOffline   = "offline"   // was online; its agent is silent
	PhaseFailed    = "failed"    // setup or its deployment failed (Error says why)
	PhaseShutdown  = "shutdown"  // the shutdown script runs before it is destroyed
)

// EnvRequest is the body of the plan, apply and destroy routes: a
// definition directory packed as a .tar.gz (bundle.Pack) and the
// instance's variables.
type EnvRequest struct {
	// Definition is the packed definition directory (*.hcl, envs/, and the
	// files they read).
	Definition []byte `json:"definition,omitempty"`
	// Vars are --var k=v assignments, in order.
	Vars []string `json:"vars,omitempty"`
	// Destroy plans the destruction of every resource.
	Destroy bool `json:"destroy,omitempty"`
	// Scale overrides group counts (gantry scale GROUP=N), by group name;
	// with Scale and no Definition the last applied definition is used.
	Scale map[string]int `json:"scale,omitempty"`
	// Plan, on apply, is a saved plan to apply as it is (refused if the
	// state moved since it was made).
	Plan *Plan `json:"plan,omitempty"`
	// LockTimeoutSeconds waits that long for another apply's lock (0 = fail at once).
	LockTimeoutSeconds int `json:"lock_timeout_seconds,omitempty"`
	// Who is recorded with the lock ("user@host"), for the message another
	// apply gets.
	Who string `json:"who,omitempty"`
	// Source is where Definition was read from (the client's absolute
	// directory path); an apply records it so that destroy DIR and scale
	// DIR can tell a different directory. Informational only.
	Source string `json:"source,omitempty"`
	// Match, with Destroy or Scale, is the packed definition directory the
	// caller believes was applied (gantry destroy DIR, gantry scale DIR):
	// the request is refused unless it matches the applied definition
	// (same content, or same Source and same groups). The applied
	// definition is used either way.
	Match []byte `json:"match,omitempty"`
}

// Plan is what an apply would do. A saved plan (gantry plan --out) is
// this JSON; it carries the definition and variables it was made from.
type Plan struct {
	Env string `json:"env"`
	// Serial is the state serial the plan was made against: applying it
	// is refused if the state has moved since.
	Serial  int64        `json:"serial"`
	Changes []PlanChange `json:"changes"`
	// Outputs are the outputs as known at plan time (unknown ones are
	// "(known after apply)").
	Outputs map[string]json.RawMessage `json:"outputs,omitempty"`
	Summary PlanSummary                `json:"summary"`
	// Definition and Vars are what the plan was made from.
	Definition []byte         `json:"definition,omitempty"`
	Vars       []string       `json:"vars,omitempty"`
	Scale      map[string]int `json:"scale,omitempty"`
	Destroy    bool           `json:"destroy,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	// Source is where the definition was read from (EnvRequest.Source).
	Source string `json:"source,omitempty"`
	// Warnings are things the caller should know that do not stop the
	// plan (a DIR edited since it was applied, …).
	Warnings []string `json:"warnings,omitempty"`
}

// PlanSummary counts a plan's changes by action.
type PlanSummary struct {
	Create  int `json:"create"`
	Update  int `json:"update"`
	Replace int `json:"replace"`
	Delete  int `json:"delete"`
}

// PlanChange is one resource's change.
type PlanChange struct {
	// Address is the resource: "network.app", "group.web[2]", "group.web"
	// (the group itself: its deployment group and scripts), "host.legacy".
	Address string `json:"address"`
	Action  string `json:"action"`
	// Reason explains a create of a resource that is in the state
	// ("deleted outside gantry") or a replace.
	Reason string `json:"reason,omitempty"`
	// Attrs are the changed (or, on create, all) attributes.
	Attrs []AttrChange `json:"attrs,omitempty"`
}

// AttrChange is one attribute of a change. Old and New are display
// strings; Unknown means the new value is known only after apply.
type AttrChange struct {
	Name    string `json:"name"`
	Old     string `json:"old,omitempty"`
	New     string `json:"new,omitempty"`
	Unknown bool   `json:"unknown,omitempty"`
	// ForcesReplace marks the attributes that make a change a replace.
	ForcesReplace bool `json:"forces_replace,omitempty"`
	// Diff is the unified diff of a changed script (setup, configure,
	// shutdown), whose Old and New are only digests.
	Diff string `json:"diff,omitempty"`
}

// Environment is an environment instance as the server has it.
type Environment struct {
	Name      string    `json:"name"`
	Serial    int64     `json:"serial"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Lock is the holder of the apply lock, "" when free.
	Lock      string              `json:"lock,omitempty"`
	Resources []EnvResource       `json:"resources"`
	Machines  []EnvMachine        `json:"machines"`
	Outputs   map[string]any      `json:"outputs,omitempty"`
	Events    []LifecycleRun      `json:"events,omitempty"`
	Groups    map[string]EnvGroup `json:"groups,omitempty"`
	// Progress says whether the lifecycle work (setup, deploy, configure)
	// has settled, and what is still going (see EnvProgress).
	Progress *EnvProgress `json:"progress,omitempty"`
}

// EnvGroup is a group's summary.
type EnvGroup struct {
	Count int `json:"count"`
	// Online counts machines in PhaseOnline.
	Online int `json:"online"`
	// App and DeployGroup name the deployment group ("" without deploy).
	App         string `json:"app,omitempty"`
	DeployGroup string `json:"deploy_group,omitempty"`
	Revision    string `json:"revision,omitempty"`
}

// EnvResource is one resource in the state.
type EnvResource struct {
	Address    string            `json:"address"`
	Kind       string            `json:"kind"` // network, machine
	Provider   string            `json:"provider"`
	ProviderID string            `json:"provider_id"`
	Attrs      map[string]string `json:"attrs,omitempty"`
}

// EnvMachine is one machine and its lifecycle phase.
type EnvMachine struct {
	Address  string `json:"address"` // group.web[0], host.legacy
	Group    string `json:"group"`
	Index    int    `json:"index"`
	Name     string `json:"name"` // host name
	HostID   string `json:"host_id,omitempty"`
	IP       string `json:"ip,omitempty"`
	Phase    string `json:"phase"`
	Revision string `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
	// Failure details a failed machine's cause: the setup job or the
	// deployment that failed on it, with the end of its log.
	Failure *EnvFailure `json:"failure,omitempty"`
	// LB is the machine's state in its group's load balancer, for a group
	// that has one: "ready 100" (state and weight), "maint", "drain",
	// "absent" (not a server there); "" when not known.
	LB string `json:"lb,omitempty"`
	// Fleet is the machine's part in a blue/green deployment of its group
	// in progress: "original" or "replacement" (FleetDeployment is the
	// deployment); "" otherwise.
	Fleet           string `json:"fleet,omitempty"`
	FleetDeployment string `json:"fleet_deployment,omitempty"`
}

// LifecycleRun is one run of a lifecycle event (setup, configure,
// shutdown) on some machines of an environment.
type LifecycleRun struct {
	ID    string `json:"id"`    // the job id
	Event string `json:"event"` // setup, configure, shutdown
	// State: running, succeeded, failed, superseded (a later configure
	// replaced it before it ran or while it ran).
	State string   `json:"state"`
	Hosts []string `json:"hosts"`
	// Online lists the machines online when a configure run started (the
	// membership it configures).
	Online    []string   `json:"online,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Group is the group whose script ran.
	Group string `json:"group,omitempty"`
	// Serial is the environment's state serial when the run was started:
	// a run with a Serial greater than the serial an apply started from
	// was triggered by that apply (or a later one).
	Serial int64 `json:"serial,omitempty"`
	// Failures say, per machine, why a failed run failed.
	Failures []EnvFailure `json:"failures,omitempty"`
	// Signature identifies the membership a configure run was made for
	// (the online machines' names and host ids).
	Signature string `json:"signature,omitempty"`
}

// ApplyEvent is one line of the NDJSON stream of an apply, destroy or up:
// "resource" when a resource starts or ends, "machine" when a machine's
// phase changes (up), "log" for a message, "done" at the end with the
// environment (Error set if it failed).
type ApplyEvent struct {
	Type        string       `json:"type"`
	Address     string       `json:"address,omitempty"`
	Action      string       `json:"action,omitempty"`
	State       string       `json:"state,omitempty"` // started, done, failed
	Message     string       `json:"message,omitempty"`
	Error       string       `json:"error,omitempty"`
	Machine     *EnvMachine  `json:"machine,omitempty"`
	Environment *Environment `json:"environment,omitempty"`
	Elapsed     float64      `json:"elapsed_seconds,omitempty"`
	// Summary counts the changes of the plan being applied (Type "plan").
	Summary *PlanSummary `json:"summary,omitempty"`
	// Serial, on the "plan" event, is the state serial the apply starts
	// from: lifecycle runs with a greater Serial are the apply's (see
	// Environment.FailuresSince).
	Serial int64 `json:"serial,omitempty"`
}

// Diagnostic is a problem in a definition file, with its position.
type Diagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Snippet string `json:"snippet,omitempty"`
}
