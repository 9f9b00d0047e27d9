package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/internal/bus"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// subscribe routes agent messages to the engine. The subject's host token
// is trusted (the bus only lets a host publish under its own id).
func (s *Server) subscribe() error {
	nc := s.bus.Conn
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
			var h protocol.Hello
			if json.Unmarshal(m.Data, &h) == nil {
				s.fleet.HandleHello(ctx, host, h)
				s.infra.Kick()
			}
			if m.Reply != "" {
				b, _ := json.Marshal(protocol.HelloReply{HeartbeatMillis: s.fleet.Heartbeat().Milliseconds(), ServerTime: time.Now().UTC()})
				_ = m.Respond(b)
			}
		}),
		handle(bus.KindHeartbeat, func(host string, m *nats.Msg) { s.fleet.HandleHeartbeat(ctx, host) }),
		handle(bus.KindOutput, func(host string, m *nats.Msg) {
			var o protocol.Output
			switch {
			case json.Unmarshal(m.Data, &o) != nil:
			case o.Stream == protocol.StreamLifecycle:
				s.deploy.HandleProgress(host, o)
			default:
				s.fleet.HandleOutput(host, o)
			}
		}),
		handle(bus.KindStatus, func(host string, m *nats.Msg) {
			var st protocol.Status
			if err := json.Unmarshal(m.Data, &st); err != nil {
				s.ack(m, fmt.Errorf("decode status: %w", err))
				return
			}
			// Stored in batches; acknowledged once stored.
			s.fleet.SubmitStatus(ctx, host, st, func(err error) { s.ack(m, err) })
		}),
	)
	if err != nil {
		return fmt.Errorf("subscribe to agent subjects: %w", err)
	}
	return nc.Flush()
}

func (s *Server) ack(m *nats.Msg, err error) {
	if m.Reply == "" {
		return
	}
	a := protocol.Ack{OK: err == nil}
	if err != nil {
		a.Error = err.Error()
	}
	b, _ := json.Marshal(a)
	_ = m.Respond(b)
}

