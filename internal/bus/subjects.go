package bus

import "strings"

// Subject names. Host ids are made by the server from [a-z0-9-] only, so
// they are always a single subject token.
const (
	cmdPrefix   = "gantry.cmd."
	agentPrefix = "gantry.agent."
	// QueueGroup is the queue group servers use for agent subjects, so that
	// each agent message is handled once even with several servers.
	QueueGroup = "gantry-server"
)

// Agent message kinds (last subject token).
const (
	KindHello     = "hello"
	KindHeartbeat = "hb"
	KindOutput    = "out"
	KindStatus    = "status"
	// KindTraffic is a request of an agent running a deploy step behind a
	// load balancer: take this host out of it, or let it in again
	// (protocol.TrafficRequest, answered with a protocol.TrafficReply).
	KindTraffic = "traffic"
)

// CommandSubject is where hostID receives its commands.
func CommandSubject(hostID string) string { return cmdPrefix + hostID }

// AgentSubject is where hostID publishes messages of the given kind.
func AgentSubject(hostID, kind string) string { return agentPrefix + hostID + "." + kind }

// AgentWildcard matches one kind of message from every host.
func AgentWildcard(kind string) string { return agentPrefix + "*." + kind }

// InboxPrefix is the reply-inbox prefix of hostID's connection.
func InboxPrefix(hostID string) string { return "_INBOX." + hostID }

// ReplyAllowed reports whether the server may answer a request of hostID on
// reply: only under that host's own inbox prefix (InboxPrefix(hostID)+"."),
// where only that host may subscribe, and only on a literal subject (no
// wildcard, empty or blank token). A request naming any other reply subject
// — another host's agent, command or inbox subject, or the server's own —
// is handled but never answered: the server may publish anywhere, so
// answering would let one host speak for another.
func ReplyAllowed(hostID, reply string) bool {
	if !validToken(hostID) {
		return false
	}
	rest, ok := strings.CutPrefix(reply, InboxPrefix(hostID)+".")
	if !ok {
		return false
	}
	for tok := range strings.SplitSeq(rest, ".") {
		if !validToken(tok) {
			return false
		}
	}
	return true
}

// validToken reports whether tok is one literal subject token.
func validToken(tok string) bool {
	return tok != "" && tok != "*" && tok != ">" && !strings.ContainsAny(tok, ". \t\r\n")
}

// HostFromSubject returns the host id of an agent subject, or "".
func HostFromSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, agentPrefix)
	if !ok {
		return ""
	}
	host, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return host
}

// agentPermissions are the only subjects a host's identity may use.
func agentPermissions(hostID string) (pub, sub []string) {
	return []string{agentPrefix + hostID + ".>"}, []string{CommandSubject(hostID), InboxPrefix(hostID) + ".>"}
}
