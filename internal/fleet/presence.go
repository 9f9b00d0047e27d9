package fleet

import (
	"context"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
)

// HandleHello records an agent's facts and marks it online.
func (e *Engine) HandleHello(ctx context.Context, hostID string, h protocol.Hello) {
	if err := e.st.SetHostFacts(ctx, hostID, h.Facts); err != nil {
		e.log.Warn("store facts", "host", hostID, "err", err)
	}
	e.seen(ctx, hostID)
}

// HandleHeartbeat marks an agent alive.
func (e *Engine) HandleHeartbeat(ctx context.Context, hostID string) { e.seen(ctx, hostID) }

func (e *Engine) seen(ctx context.Context, hostID string) {
	now := e.now().UTC()
	e.mu.Lock()
	p := e.hosts[hostID]
	if p == nil {
		p = &presence{}
		e.hosts[hostID] = p
	}
	wasOnline := p.online
	p.online, p.lastSeen, p.dirty = true, now, true
	e.mu.Unlock()
	if !wasOnline {
		if err := e.st.SetHostStatus(ctx, hostID, api.HostOnline, now); err != nil {
			e.log.Warn("store host status", "host", hostID, "err", err)
		}
		e.log.Info("host online", "host", hostID)
		e.poke()
	}
}

// Forget drops a revoked host from presence; its pending executions are
// then accounted as offline.
func (e *Engine) Forget(hostID string) {
	e.mu.Lock()
	delete(e.hosts, hostID)
	e.mu.Unlock()
	e.poke()
}

// presenceLoop marks hosts offline after 3 missed heartbeats and flushes
// last-seen times to the store every few seconds.
func (e *Engine) presenceLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.Heartbeat / 2)
	defer t.Stop()
	lastFlush := e.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := e.now().UTC()
		var gone []string
		seen := map[string]time.Time{}
		flush := now.Sub(lastFlush) >= 10*time.Second
		e.mu.Lock()
		for id, p := range e.hosts {
			if p.online && now.Sub(p.lastSeen) > 3*e.cfg.Heartbeat {
				p.online = false
				gone = append(gone, id)
			}
			if flush && p.dirty {
				seen[id], p.dirty = p.lastSeen, false
			}
		}
		e.mu.Unlock()
		for _, id := range gone {
			e.log.Info("host offline: 3 heartbeats missed", "host", id)
			if err := e.st.SetHostStatus(ctx, id, api.HostOffline, now); err != nil {
				e.log.Warn("store host status", "host", id, "err", err)
			}
		}
		if len(seen) > 0 {
			if err := e.st.TouchHosts(ctx, seen); err != nil {
				e.log.Warn("store last-seen times", "err", err)
			}
		}
		if flush {
			lastFlush = now
		}
		if len(gone) > 0 {
			e.poke()
		}
	}
}
