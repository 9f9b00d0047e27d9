// Package bus is gantry's message bus: an embedded NATS server (or an
// external one), the subjects, the typed messages, per-host identities and
// command signing.
//
// # Identities and permissions
//
// Every agent makes its own NATS nkey pair at enrollment and sends the server
// only the public key. On the embedded server, a custom authenticator
// (Authenticator) verifies the nonce signature of each connection, looks the
// key up among enrolled, non-revoked hosts and grants exactly:
//
//	publish:   gantry.agent.<host>.>           (hello, heartbeats, output, status)
//	subscribe: gantry.cmd.<host>, _INBOX.<host>.>   (its commands, its replies)
//
// so one host can neither read another's commands nor speak for it. The
// server's own connection is in-process and authenticates with a random
// secret that never leaves the process.
//
// # What the server believes
//
// The server attributes every agent message to the host named by the
// subject's host token (HostFromSubject): the permissions above make it the
// host the bus authenticated on that connection. It never takes a host id
// from a payload, and the engines refuse what concerns another host: a
// status or live output for another host's execution, lifecycle progress
// for another host's step of a deployment.
//
// The server's connection may publish on any subject, so it answers a
// request only under the requester's own inbox (ReplyAllowed: the reply
// subject must start with InboxPrefix(host)+"." and be literal). Otherwise
// host A could name B's hello, heartbeat, command or inbox subject as the
// reply subject of its own request and have the server publish there for
// it (this kept a stopped B "online" and wiped B's facts). Such a request
// is still handled for A, but not answered, and the refusal is logged (at
// most once a minute per host). The server's own inbox (the nats.go default
// "_INBOX.<nuid>", used for nothing today) is out of every agent's reach:
// agents may publish only under gantry.agent.<own id>.>, and host ids
// ("h-" + base32) never equal a nuid (no "-").
//
// Host-reported data is held to caps before the server stores or forwards
// it (internal/protocol/limits.go):
//
//	hello          ≤ 64 KiB encoded; larger: a sign of life, facts not stored
//	facts          text facts ≤ 256 bytes each (cut); ≤ 256 addresses of
//	               ≤ 64 bytes (the rest dropped); CPUs 0..65536
//	output chunk   ≤ 64 KiB of data (≤ 132 KiB encoded); larger: dropped;
//	               stream stdout, stderr or lifecycle only
//	lifecycle      event name 1..64 printable ASCII, a known state, log tail
//	               ≤ 8 KiB and error ≤ 4 KiB (cut), ≤ 32 events per step
//	status         output ≤ the output cap (fleet Config.OutputCap, 1 MiB)
//	               per stream plus 256 bytes for the agent's marker (cut and
//	               marked truncated); error ≤ 4 KiB (cut); structured result
//	               ≤ 256 KiB (larger: refused)
//	any message    ≤ MaxPayload (8 MiB), enforced by NATS
//
// # Results
//
// A status report is acknowledged (protocol.Ack OK) only once it is stored
// or recognised as already stored; refused for good (OK false: the agent
// drops it) when it can never be taken; and not answered at all when it
// could not be stored now, so that the agent sends it again. This holds
// during the server's start-up too: reports wait until the fleet engine
// has loaded its unfinished jobs (fleet.Engine.SubmitStatus). Revoking a host drops its live
// connections at once (DisconnectClientByID) and the key is refused from
// then on. Only client connections are accepted (no routes or leaf nodes).
//
// # Commands
//
// Commands are signed by the server (ed25519, an nkeys "server" key) and the
// signature travels in the Gantry-Sig header over the exact message body.
// Agents verify the signature, that the command is addressed to them and
// that it has not expired; the agent's journal turns repeated deliveries of
// one command id into a replay of the recorded result, never a second run.
package bus
