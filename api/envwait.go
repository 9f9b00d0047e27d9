package api

// The outcome of a change to an environment, after the lifecycle work it
// triggered: what `gantry up`, `scale`, `apply` and `destroy` wait for and
// report, and what the web console shows under an environment.
//
// The server computes whether an environment has settled (Progress) and
// records every lifecycle run with the state serial that triggered it
// (LifecycleRun.Serial) and, when it failed, why on each machine
// (LifecycleRun.Failures). A client that applied a change knows the
// serial the apply started from (the "plan" ApplyEvent's Serial): it polls
// GET /api/v1/envs/{env} until Progress.Settled, then reports
// Environment.FailuresSince(serial).

// EnvProgress says whether an environment's lifecycle work has settled:
// every machine online or failed, and the configure run for the machines
// online now recorded and ended. Pending names what is still going, one
// line each, for people.
type EnvProgress struct {
	Settled bool     `json:"settled"`
	Pending []string `json:"pending,omitempty"`
}

// EnvFailure is one failed piece of lifecycle work on one machine: its
// setup, its deployment, a configure or a shutdown run.
type EnvFailure struct {
	// Event is setup, deploy, configure or shutdown.
	Event string `json:"event"`
	// Group is the machine's group.
	Group string `json:"group,omitempty"`
	// Machine is the machine's host name (dev-web-1).
	Machine string `json:"machine,omitempty"`
	// RunID is the job (setup, configure, shutdown: gantry jobs show ID)
	// or the deployment (deploy: gantry deployments show ID).
	RunID string `json:"run_id,omitempty"`
	// Step is the deployment's lifecycle hook that failed (deploy only).
	Step     string `json:"step,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	// Error says what failed (the execution's state and error).
	Error string `json:"error"`
	// LogTail is the end of the script's output (stdout, then stderr).
	LogTail string `json:"log_tail,omitempty"`
}

// EnvOutcome is the result of `gantry up`, `scale`, `apply` and `destroy`
// once the lifecycle work the change triggered has ended (-o json prints
// it as the command's one document): the environment, the serial the
// change started from, and every failure since.
type EnvOutcome struct {
	Environment
	// SinceSerial is the state serial the change was applied to: runs
	// with a greater Serial are the change's.
	SinceSerial int64 `json:"since_serial"`
	// Failures are the failed lifecycle work of the change (empty: none).
	Failures []EnvFailure `json:"failures"`
	// TimedOut is set when the wait ended before the work settled.
	TimedOut bool `json:"timed_out,omitempty"`
}

// FailuresSince returns the lifecycle failures of an environment that a
// change applied at state serial since is answerable for: the failed
// machines (setup or deployment) and the failed runs recorded after since.
// Of a group's configure runs on a machine only the last one that ended
// counts (a failed run a later one fixed is not reported).
func (e Environment) FailuresSince(since int64) []EnvFailure {
	out := []EnvFailure{}
	seen := map[string]bool{}
	add := func(f EnvFailure) {
		k := f.RunID + "\x00" + f.Machine
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	for _, m := range e.Machines {
		if m.Phase != PhaseFailed {
			continue
		}
		if m.Failure != nil {
			add(*m.Failure)
		} else {
			add(EnvFailure{Event: "setup", Group: m.Group, Machine: m.Name, Error: m.Error})
		}
	}
	// The last ended configure run per group and machine decides.
	lastConfigure := map[string]int{}
	for i, r := range e.Events {
		if r.Event != "configure" || r.Serial <= since || (r.State != "succeeded" && r.State != "failed") {
			continue
		}
		for _, h := range r.Hosts {
			lastConfigure[r.Group+"\x00"+h] = i
		}
	}
	for i, r := range e.Events {
		if r.State != "failed" || r.Serial <= since {
			continue
		}
		fs := r.Failures
		if len(fs) == 0 {
			for _, h := range r.Hosts {
				fs = append(fs, EnvFailure{Event: r.Event, Group: r.Group, Machine: h, RunID: r.ID, Error: r.Reason})
			}
			if len(r.Hosts) == 0 {
				fs = append(fs, EnvFailure{Event: r.Event, Group: r.Group, RunID: r.ID, Error: r.Reason})
			}
		}
		for _, f := range fs {
			if r.Event == "configure" {
				if j, ok := lastConfigure[r.Group+"\x00"+f.Machine]; ok && j != i {
					continue
				}
			}
			add(f)
		}
	}
	return out
}
