// Package haproxy is gantry's load balancer driver for HAProxy (Debian's
// 2.6 and later), registered as "haproxy" with package lb.
//
// It drives HAProxy through its runtime API (the stats socket, level
// admin), one connection per command: `show stat` and `show servers state`
// for counters and states, `set server … weight|state|health`, `add
// server` and `del server`. A weight or state change is applied in about a
// millisecond and takes effect for the next request.
//
// Two modes:
//
//   - Managed (lb.Options.Dir, no socket): the agent owns <data>/lb/haproxy
//     — haproxy.cfg (generated), admin.sock (or a short path under /run or
//     the temporary directory when the path is too long for a unix socket),
//     haproxy.pid, desired.json (the configuration with every server's
//     desired state and weight) and server-state. HAProxy runs daemonized
//     (-D -p) so that it outlives the agent; the agent finds it again by
//     its pid file, and starts it again from desired.json if it died.
//   - External (lb.Options.Socket): a hand-configured HAProxy, runtime
//     operations only; after each change `show servers state` is written
//     to the state file when one is given. Its haproxy.cfg needs
//     `server-state-file <that path>` in global and
//     `load-server-state-from-file global` in defaults, and a stats socket
//     with `level admin`, for a reload to keep gantry's changes.
//
// Design choices:
//
//   - Servers come and go at runtime (`add server` in maint, with every
//     check parameter spelled out because dynamic servers do not inherit
//     default-server in 2.6, then `enable health`; `del server` after a
//     drain), and are written to haproxy.cfg at the same time, without a
//     reload: a reload starts a new process whose counters start at zero
//     and whose servers' health must be carried over, and old processes
//     linger until their connections end. Scaling a group in or out is
//     therefore free.
//   - Only a change of the backends themselves (listen port, balance
//     algorithm, health check, header, a backend added or removed) rewrites
//     the file and reloads, after `haproxy -c`: `haproxy -D -f cfg -p pid
//     -x admin.sock -sf <old pids>`. -x hands the listening sockets over
//     from the old process, so no connection is refused during the reload
//     (without it, 1–2 resets per 20 reloads were measured under load).
//   - Runtime state is never lost: every Set also updates desired.json
//     (in memory at once, on disk by a background writer, so that a weight
//     change does not wait for an fsync);
//     before a reload the running process's `show servers state` is
//     written to server-state, which the new process loads
//     (load-server-state-from-file), and after any start or reload the
//     runtime is reconciled with desired.json (what the file cannot say,
//     e.g. drain, is set again).
package haproxy
