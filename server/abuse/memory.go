package abuse

import (
	"context"
	"sync"
	"time"
)

// sweepEvery bounds how often a MemoryStore drops keys whose events have all
// left their window, so memory follows the traffic of the last hour or so.
const sweepEvery = time.Minute

// MemoryStore keeps counters in this process: the default, for one instance.
type MemoryStore struct {
	mu        sync.Mutex
	events    map[string]*window
	lastSweep time.Time
}

type window struct {
	times []time.Time // ascending
	span  time.Duration
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{events: make(map[string]*window)}
}

// Allow implements Store.
func (m *MemoryStore) Allow(_ context.Context, now time.Time, rules []Rule) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)

	refused := Decision{Allowed: true}
	for i, r := range rules {
		w := m.events[r.Key]
		if w == nil {
			continue
		}
		w.trim(now, r.Window)
		if n := len(w.times); n >= r.Limit {
			// Room appears when the event at n-Limit leaves the window.
			wait := w.times[n-r.Limit].Add(r.Window).Sub(now)
			if refused.Allowed || wait > refused.RetryAfter {
				refused = Decision{Rule: i, RetryAfter: wait}
			}
		}
	}
	if !refused.Allowed {
		return refused, nil
	}
	for _, r := range rules {
		w := m.events[r.Key]
		if w == nil {
			w = &window{}
			m.events[r.Key] = w
		}
		w.times = append(w.times, now)
		w.span = max(w.span, r.Window)
	}
	return refused, nil
}

// trim drops events at or before now-span: the window is (now-span, now].
func (w *window) trim(now time.Time, span time.Duration) {
	i := 0
	for i < len(w.times) && !w.times[i].After(now.Add(-span)) {
		i++
	}
	w.times = w.times[i:]
}

func (m *MemoryStore) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for k, w := range m.events {
		if w.trim(now, w.span); len(w.times) == 0 {
			delete(m.events, k)
		}
	}
}

// Len answers how many keys hold events, for tests of the sweep.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}
