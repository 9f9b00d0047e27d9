package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/fleet"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// subscribe routes agent messages to the engines.
//
// Identity: every message is attributed to the host named by its subject's
// host token, which the bus lets only that host's identity publish under;
// never to a payload field. The engines then refuse anything that concerns
// another host (a status or output for another host's execution).
//
// Replies: the server answers only under the requesting host's own inbox
// prefix (bus.ReplyAllowed). The server's connection may publish anywhere,
// so answering on a reply subject the request chose would let host A make
// the server publish on B's subjects (B's hello or heartbeat, B's commands).
// Such requests are still handled for the sending host, but never answered;
// the refusal is logged at most once a minute per host.
//
// Sizes: host-reported data is held to the caps of internal/protocol
// (limits.go) before anything is stored or forwarded.
func (s *Server) subscribe() error {
	nc := s.bus.Conn
	r := &replier{log: s.log, last: map[string]time.Time{}}
	handle := func(kind string, f func(hostID string, m *nats.Msg)) error {
		_, err := nc.QueueSubscribe(bus.AgentWildcard(kind), bus.QueueGroup, func(m *nats.Msg) {
			if host := bus.HostFromSubject(m.Subject); host != "" {
				f(host, m)
			}
		})
		return err
	}
	ctx := context.Background()
	err := errors.Join(
		handle(bus.KindHello, func(host string, m *nats.Msg) {
			// Replied first: the agent measures its clock from the reply
			// before the commands that going online may bring.
			b, _ := json.Marshal(protocol.HelloReply{HeartbeatMillis: s.fleet.Heartbeat().Milliseconds(), ServerTime: time.Now().UTC()})
			r.respond(host, m, b)
			s.handleHello(ctx, host, m)
		}),
		handle(bus.KindHeartbeat, func(host string, m *nats.Msg) {
			s.fleet.HandleHeartbeat(ctx, host)
			// The clock skew the agent measured, if it says.
			var hb protocol.Heartbeat
			if len(m.Data) <= protocol.MaxHeartbeatBytes && json.Unmarshal(m.Data, &hb) == nil && hb.Clock != nil {
				s.fleet.HandleClock(ctx, host, *hb.Clock)
			}
		}),
		handle(bus.KindOutput, func(host string, m *nats.Msg) {
			var o protocol.Output
			switch {
			case len(m.Data) > protocol.MaxOutputMessage, json.Unmarshal(m.Data, &o) != nil, len(o.Data) > protocol.MaxOutputChunk:
				r.refuse(host, "output chunk over its size cap or unreadable", "bytes", len(m.Data))
			case o.Stream == protocol.StreamLifecycle:
				s.deploy.HandleProgress(host, o)
			case o.Stream == "stdout", o.Stream == "stderr":
				s.fleet.HandleOutput(host, o)
			}
		}),
		handle(bus.KindTraffic, func(host string, m *nats.Msg) {
			// A drain waits for the host's sessions to end (up to its
			// timeout): handled apart, so that other hosts' requests are
			// not queued behind it. The engine handles one request per
			// host at a time.
			var req protocol.TrafficRequest
			if len(m.Data) > protocol.MaxTrafficRequestBytes || json.Unmarshal(m.Data, &req) != nil {
				r.refuse(host, "traffic request over its size cap or unreadable", "bytes", len(m.Data))
				return
			}
			go func() {
				rep := s.deploy.Traffic(ctx, host, req)
				b, _ := json.Marshal(rep)
				r.respond(host, m, b)
			}()
		}),
		handle(bus.KindStatus, func(host string, m *nats.Msg) {
			var st protocol.Status
			if err := json.Unmarshal(m.Data, &st); err != nil {
				r.ack(host, m, fmt.Errorf("%w: decode status: %v", fleet.ErrRefused, err))
				return
			}
			// Acknowledged only once stored (or recognised as stored).
			s.fleet.SubmitStatus(ctx, host, st, func(err error) { r.ack(host, m, err) })
		}),
	)
	if err != nil {
		return fmt.Errorf("subscribe to agent subjects: %w", err)
	}
	return nc.Flush()
}

// handleHello stores a host's facts (within their caps) and marks it online.
func (s *Server) handleHello(ctx context.Context, host string, m *nats.Msg) {
	var h protocol.Hello
	switch {
	case len(m.Data) > protocol.MaxHelloBytes:
		// Still a sign of life; its facts are not read.
		s.log.Warn("hello over its size cap: facts not stored", "host", host, "bytes", len(m.Data), "cap", protocol.MaxHelloBytes)
		s.fleet.HandleHeartbeat(ctx, host)
		return
	case json.Unmarshal(m.Data, &h) != nil:
		return
	}
	var clipped bool
	if h.Facts, clipped = protocol.ClipFacts(h.Facts); clipped {
		s.log.Warn("facts over their caps were cut", "host", host)
	}
	s.fleet.HandleHello(ctx, host, h)
	s.infra.Kick()
}

// replier answers agents' requests under their own inbox only, and logs
// refusals at most once a minute per host.
type replier struct {
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time // host and message -> last logged
}

// refuseLogEvery is the least time between two logged refusals of a host.
const refuseLogEvery = time.Minute

// respond answers m if its reply subject is under host's own inbox.
func (r *replier) respond(host string, m *nats.Msg, data []byte) {
	switch {
	case m.Reply == "":
	case !bus.ReplyAllowed(host, m.Reply):
		r.refuse(host, "request with a reply subject outside the host's own inbox: not answered", "subject", m.Subject, "reply", m.Reply)
	default:
		_ = m.Respond(data)
	}
}

// ack answers a status report: OK once it is stored; a refusal
// (fleet.ErrRefused: the agent drops the report); nothing at all if it could
// not be stored now, so that the agent sends it again.
func (r *replier) ack(host string, m *nats.Msg, err error) {
	if err != nil && !errors.Is(err, fleet.ErrRefused) {
		r.log.Warn("status not stored: not acknowledged, the agent will resend it", "host", host, "err", err)
		return
	}
	a := protocol.Ack{OK: err == nil}
	if err != nil {
		a.Error = err.Error()
	}
	b, _ := json.Marshal(a)
	r.respond(host, m, b)
}

// refuse logs a refused message of host, at most once a minute per host
// and kind of refusal.
func (r *replier) refuse(host, msg string, args ...any) {
	now, key := time.Now(), host+"\x00"+msg
	r.mu.Lock()
	if now.Sub(r.last[key]) < refuseLogEvery {
		r.mu.Unlock()
		return
	}
	if len(r.last) >= 4096 { // bounded: forget old entries
		for h, t := range r.last {
			if now.Sub(t) >= refuseLogEvery {
				delete(r.last, h)
			}
		}
	}
	r.last[key] = now
	r.mu.Unlock()
	r.log.Warn(msg, append([]any{"host", host}, args...)...)
}
