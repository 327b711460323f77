package abuse

import (
	"context"
	"crypto/rand"
	"slices"
	"sort"
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
	tallies   memoryTallies
}

type window struct {
	times []time.Time // ascending
	ids   []string    // the events' names, beside their times
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
	refused.Event = rand.Text()
	for _, r := range rules {
		w := m.events[r.Key]
		if w == nil {
			w = &window{}
			m.events[r.Key] = w
		}
		// Kept in time order: a clock that steps back inserts in place.
		i, _ := slices.BinarySearchFunc(w.times, now, time.Time.Compare)
		w.times = slices.Insert(w.times, i, now)
		w.ids = slices.Insert(w.ids, i, refused.Event)
		w.span = max(w.span, r.Window)
	}
	return refused, nil
}

// Count implements Store.
func (m *MemoryStore) Count(_ context.Context, now time.Time, r Rule) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.events[r.Key]
	if w == nil {
		return 0, nil
	}
	// Only read: events older than this window may be in another's.
	cut := now.Add(-r.Window)
	return len(w.times) - sort.Search(len(w.times), func(i int) bool { return w.times[i].After(cut) }), nil
}

// Forget implements Store.
func (m *MemoryStore) Forget(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.events, k)
	}
	return nil
}

// Undo implements Store.
func (m *MemoryStore) Undo(_ context.Context, keys []string, event string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		w := m.events[k]
		if w == nil {
			continue
		}
		if i := slices.Index(w.ids, event); i >= 0 {
			w.times = slices.Delete(w.times, i, i+1)
			w.ids = slices.Delete(w.ids, i, i+1)
		}
	}
	return nil
}

// trim drops events at or before now-span: the window is (now-span, now].
func (w *window) trim(now time.Time, span time.Duration) {
	i := 0
	for i < len(w.times) && !w.times[i].After(now.Add(-span)) {
		i++
	}
	w.times = w.times[i:]
	w.ids = w.ids[i:]
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
