// Package watch delivers live events to subscribers keyed by a record id (a
// job, a deployment) without ever blocking the publisher: each watcher has
// an unbounded queue up to MaxQueued events, and one that falls that far
// behind is dropped (its stream ends without "done" and the client reloads
// the record).
package watch

import (
	"context"
	"sync"
)

// MaxQueued is how many events a watcher may have waiting before it is
// dropped as too slow.
const MaxQueued = 1 << 20

// Watcher is one live subscriber. Events queue without bound up to
// MaxQueued, so a burst (a 10,000-host job) never drops a reader that keeps
// up on average.
type Watcher[T any] struct {
	mu     sync.Mutex
	queue  []T
	closed bool
	ready  chan struct{} // has a value when the queue is non-empty or closed
}

func (w *Watcher[T]) signal() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// push queues an event; false if the watcher is closed or overflows.
func (w *Watcher[T]) push(ev T) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	if len(w.queue) >= MaxQueued {
		w.closed = true
		w.queue = nil
		w.signal()
		return false
	}
	w.queue = append(w.queue, ev)
	w.signal()
	return true
}

func (w *Watcher[T]) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.signal()
}

// Next waits for events and returns all that are queued. ok is false once
// the watcher is closed and drained, or ctx ends.
func (w *Watcher[T]) Next(ctx context.Context) (events []T, ok bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			events, w.queue = w.queue, nil
			w.mu.Unlock()
			return events, true
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return nil, false
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-w.ready:
		}
	}
}

// Hub holds the watchers of many keys. The zero value is ready to use.
type Hub[T any] struct {
	mu sync.Mutex
	m  map[string]map[*Watcher[T]]struct{}
}

// Add subscribes a new watcher to key; cancel releases it.
func (h *Hub[T]) Add(key string) (w *Watcher[T], cancel func()) {
	w = &Watcher[T]{ready: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]map[*Watcher[T]]struct{}{}
	}
	if h.m[key] == nil {
		h.m[key] = map[*Watcher[T]]struct{}{}
	}
	h.m[key][w] = struct{}{}
	h.mu.Unlock()
	return w, func() {
		h.mu.Lock()
		delete(h.m[key], w)
		if len(h.m[key]) == 0 {
			delete(h.m, key)
		}
		h.mu.Unlock()
		w.close()
	}
}

// Publish delivers events to key's watchers; a watcher that overflows is
// dropped.
func (h *Hub[T]) Publish(key string, evs ...T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.m[key] {
		for _, ev := range evs {
			if !w.push(ev) {
				delete(h.m[key], w)
				break
			}
		}
	}
}

// Close ends the streams of key's watchers (after what they have queued).
func (h *Hub[T]) Close(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.m[key] {
		w.close()
	}
	delete(h.m, key)
}
