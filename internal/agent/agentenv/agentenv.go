// Package agentenv builds the environment of the agent processes gantry
// starts on the server's own machine: dev-mode agents (internal/cli/dev.go)
// and the local provider's machines (internal/providers/local).
//
// Such an agent must not inherit the server's environment: it holds the
// admin token (GANTRY_ADMIN_TOKEN), database URLs and whatever else the
// server was started with, and every job and hook the agent runs could
// read it from /proc/$PPID/environ. An agent gets only the few variables
// that make a process behave normally (PATH, HOME, locale, time zone) and
// what it is explicitly given (its join token).
//
// It imports nothing from gantry, so that both callers can use it.
package agentenv

import "strings"

// DefaultPath is the PATH an agent gets when the parent has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Kept are the variables of the parent's environment an agent keeps, when
// set.
var Kept = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ"}

// Minimal returns the environment for an agent process: the Kept variables
// of parent (usually os.Environ()) that are set, PATH=DefaultPath if parent
// has no PATH, then extra (KEY=VALUE entries, e.g.
// "GANTRY_JOIN_TOKEN=..."), which win over parent's. Nothing else of
// parent is passed on.
func Minimal(parent []string, extra ...string) []string {
	var env []string
	hasPath := false
	for _, kv := range parent {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, want := range Kept {
			if k == want {
				env = append(env, kv)
				hasPath = hasPath || k == "PATH"
				break
			}
		}
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	return append(env, extra...)
}
