package fleet

// Presence: a host is online from its first hello or heartbeat, and offline
// after 3 missed heartbeats.
//
// Ordering. Status changes are decided in memory under the engine's lock,
// each with its time (changedAt, strictly increasing per host), and written
// to the store outside the lock. Two writes of one host can then reach the
// store in either order (a heartbeat's "online" and the presence loop's
// "offline" run on different goroutines), so the store applies a status
// write only if it is not older than the stored change
// (Store.SetHostStatus): a late "offline" never overwrites a newer
// "online". A writer also always writes the host's current state, read
// under the lock, never the state it decided earlier; and a write that
// failed is retried by the next tick, so that store and memory converge.
//
// Pauses. When the presence loop itself runs late (the server process was
// stopped, or starved), the heartbeats that arrived meanwhile are still
// queued in its sockets: judging hosts before reading them would mark every
// host offline. A late tick therefore gives every host a grace period of 3
// heartbeats from now instead of judging it (Nomad gives its heartbeat
// timers such a grace after a leader change).

import (
	"context"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
)

// presence is what the engine knows of one host's liveness.
type presence struct {
	name     string
	online   bool
	lastSeen time.Time
	dirty    bool // lastSeen not yet flushed to the store
	// grace, if later than lastSeen, is when the 3 missed heartbeats start
	// to count instead (after the presence loop ran late).
	grace time.Time
	// changedAt is the time of the last status change; it only grows, and
	// orders the store writes.
	changedAt time.Time
	// storedAt is the changedAt of the last status write the store took.
	storedAt time.Time
	// skew is the clock skew last reported; skewStored tells whether it is
	// in the store.
	skew       time.Duration
	skewStored bool
}

// loadPresence is a host's presence at engine start. Hosts get a fresh
// grace period: their agents reconnect and heartbeat, or they go offline
// after 3 intervals.
func loadPresence(h store.HostRecord, now time.Time) *presence {
	p := &presence{name: h.Name, online: h.Status == api.HostOnline, lastSeen: now,
		changedAt: h.StatusChangedAt, storedAt: h.StatusChangedAt}
	if skew, ok := h.ClockSkew(); ok {
		p.skew, p.skewStored = skew, true
	}
	return p
}

// setOnline changes the status in memory at now (or just after the last
// change, should the clock have gone back).
func (p *presence) setOnline(online bool, now time.Time) {
	p.online = online
	if !now.After(p.changedAt) {
		now = p.changedAt.Add(time.Nanosecond)
	}
	p.changedAt = now
}

func (p *presence) status() string {
	if p.online {
		return api.HostOnline
	}
	return api.HostOffline
}

// HandleHello records an agent's facts and marks it online.
func (e *Engine) HandleHello(ctx context.Context, hostID string, h protocol.Hello) {
	if err := e.st.SetHostFacts(ctx, hostID, h.Facts); err != nil {
		e.log.Warn("store facts", "host", hostID, "err", err)
	}
	e.seen(ctx, hostID)
}

// HandleHeartbeat marks an agent alive.
func (e *Engine) HandleHeartbeat(ctx context.Context, hostID string) { e.seen(ctx, hostID) }

// skewStep is the least change of a host's reported clock skew that is
// written to the store (measurements jitter by the round trip).
const skewStep = time.Second

// HandleClock records the clock skew an agent measured (its heartbeats
// carry it). It is written to the store when it first arrives and when it
// moves by a second or more.
func (e *Engine) HandleClock(ctx context.Context, hostID string, c protocol.Clock) {
	skew := time.Duration(c.SkewMillis) * time.Millisecond
	e.mu.Lock()
	p := e.hosts[hostID]
	write := p != nil && (!p.skewStored || (skew-p.skew).Abs() >= skewStep)
	if write {
		p.skew, p.skewStored = skew, true
	}
	e.mu.Unlock()
	if !write {
		return
	}
	if skew.Abs() > api.MaxClockSkew {
		e.log.Warn("host clock is off", "host", hostID, "clock", api.DescribeClockSkew(skew), "limit", api.MaxClockSkew)
	}
	if err := e.st.SetHostClockSkew(ctx, hostID, skew); err != nil {
		e.log.Warn("store clock skew", "host", hostID, "err", err)
		e.mu.Lock()
		p.skewStored = false // try again with the next report
		e.mu.Unlock()
	}
}

func (e *Engine) seen(ctx context.Context, hostID string) {
	now := e.now().UTC()
	e.mu.Lock()
	p := e.hosts[hostID]
	if p == nil {
		p = &presence{}
		e.hosts[hostID] = p
	}
	came := !p.online
	if came {
		p.setOnline(true, now)
	}
	p.lastSeen, p.dirty = now, true
	e.mu.Unlock()
	if came {
		e.log.Info("host online", "host", hostID)
		e.writeStatus(ctx, hostID)
		e.poke()
	}
}

// writeStatus writes the host's current status, with the time it took it,
// unless the store has it already. Concurrent calls may land in any order:
// the store keeps the newest.
func (e *Engine) writeStatus(ctx context.Context, hostID string) {
	e.mu.Lock()
	p := e.hosts[hostID]
	if p == nil || !p.storedAt.Before(p.changedAt) {
		e.mu.Unlock()
		return
	}
	status, at := p.status(), p.changedAt
	e.mu.Unlock()
	if err := e.st.SetHostStatus(ctx, hostID, status, at); err != nil {
		e.log.Warn("store host status: retried on the next tick", "host", hostID, "status", status, "err", err)
		return
	}
	e.mu.Lock()
	if p.storedAt.Before(at) {
		p.storedAt = at
	}
	e.mu.Unlock()
}

// Forget drops a revoked host from presence; its pending executions are
// then accounted as offline.
func (e *Engine) Forget(hostID string) {
	e.mu.Lock()
	delete(e.hosts, hostID)
	e.mu.Unlock()
	e.poke()
}

// presenceLoop runs presenceTick every half heartbeat.
func (e *Engine) presenceLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.Heartbeat / 2)
	defer t.Stop()
	last, lastFlush := e.now(), e.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := e.now()
		flush := now.Sub(lastFlush) >= 10*time.Second
		e.presenceTick(ctx, now.UTC(), e.tickLate(now.Sub(last)), flush)
		last = now
		if flush {
			lastFlush = now
		}
	}
}

// tickLate reports whether a tick that comes this long after the previous
// one is late: more than a heartbeat after it was due.
func (e *Engine) tickLate(since time.Duration) bool {
	return since > e.cfg.Heartbeat/2+e.cfg.Heartbeat
}

// presenceTick marks hosts offline after 3 missed heartbeats, retries
// status writes that failed, and, if flush, writes last-seen times to the
// store. late means this tick comes more than a heartbeat after it was
// due: hosts get a grace period of 3 heartbeats from now instead of being
// judged.
func (e *Engine) presenceTick(ctx context.Context, now time.Time, late, flush bool) {
	var gone, unstored []string
	seen := map[string]time.Time{}
	e.mu.Lock()
	if late {
		e.log.Warn("presence check ran late (server paused or starved): hosts get 3 heartbeats of grace", "hosts", len(e.hosts))
	}
	for id, p := range e.hosts {
		if late {
			p.grace = now
		}
		since := p.lastSeen
		if p.grace.After(since) {
			since = p.grace
		}
		switch {
		case p.online && now.Sub(since) > 3*e.cfg.Heartbeat:
			p.setOnline(false, now)
			gone = append(gone, id)
		case p.storedAt.Before(p.changedAt):
			unstored = append(unstored, id)
		}
		if flush && p.dirty {
			seen[id], p.dirty = p.lastSeen, false
		}
	}
	e.mu.Unlock()
	for _, id := range gone {
		e.log.Info("host offline: 3 heartbeats missed", "host", id)
		e.writeStatus(ctx, id)
	}
	for _, id := range unstored {
		e.writeStatus(ctx, id)
	}
	if len(seen) > 0 {
		if err := e.st.TouchHosts(ctx, seen); err != nil {
			e.log.Warn("store last-seen times", "err", err)
		}
	}
	if len(gone) > 0 {
		e.poke()
	}
}
