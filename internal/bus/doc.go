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
// secret that never leaves the process. Revoking a host drops its live
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
