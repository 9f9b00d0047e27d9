// Package infra is gantry's environments-as-code engine: it plans and
// applies environment definitions (internal/infra/config) against
// providers (internal/provider), keeps each environment's state in the
// store, and runs its machines' lifecycle events.
//
// The pieces, each in its own file:
//
//   - envs.go: the entry points the API calls (Plan, Apply, Get, List).
//   - plan.go: refresh (read every recorded resource back, find drift and
//     orphans), then the comparison that gives create, update, replace and
//     destroy with the attributes that force a replacement.
//   - apply.go: the applier. It takes the lock, walks the blocks in
//     dependency order in parallel, and records every step in the state as
//     it finishes (compare-and-set on the serial, writes batched to at
//     most one per 100 ms), so a failed or killed apply leaves a state that
//     matches reality.
//   - state.go: the state's JSON model.
//   - lifecycle.go, jobs.go, runs.go: the controller that derives every
//     machine's phase from durable records and runs setup once, starts the
//     group's deployment, coalesces configure, and runs shutdown before a
//     machine goes. It also keeps the record of these runs.
//   - lb.go: the load balancers of environments (load_balancer blocks):
//     their configuration sent through the traffic controller (Config.LB),
//     target machines let in once online and drained out before they go,
//     and the target group's deployment group pointed at them.
//
// Plans and applies run in the server rather than in the CLI because the
// lifecycle must react to machines coming and going with nobody running a
// command, `gantry scale` needs only the environment's name, and the
// providers' reach (the Docker socket, SSH keys, forwarders into container
// networks) is where the agents' server is. docs/design/environments.md
// has the whole design, its guarantees and its limits.
package infra
