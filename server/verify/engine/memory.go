package engine

import (
	"context"
	"sync"
	"time"
)

// sweepEvery bounds how often a write scans the whole map for expired
// records: often enough that memory follows the live numbers within a minute,
// rarely enough that the O(n) scan is amortised over many writes.
const sweepEvery = time.Minute

// MemoryStore is a Store in a map, for the development backend and tests. It
// forgets everything when the process exits.
//
// One mutex serialises every Update: fn is a few microseconds of hashing, and
// a store that needs more throughput than that is the Redis one. Expired
// records are purged lazily, during writes, with no background goroutine.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	records   map[string]*Record // by number
	sids      map[string]string  // SID of a record's Current → number
	nextSweep time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store that judges expiry by now (nil means
// time.Now). Give it the engine's clock: a store on another clock would purge
// records the engine still counts, or keep ones it has forgotten.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{
		now:     now,
		records: make(map[string]*Record),
		sids:    make(map[string]string),
	}
}

// Update implements Store.
func (s *MemoryStore) Update(ctx context.Context, number string, fn func(*Record) (*Record, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.now()
	s.sweep(now)
	old := s.live(number, now)

	// fn gets its own copy, and we keep our own copy of its result, so that
	// neither an error half-way through fn nor a caller holding on to the
	// record can change what is stored.
	next, err := fn(old.Clone())
	if err != nil {
		return err
	}
	if old != nil && old.Current != nil &&
		(next == nil || next.Current == nil || next.Current.SID != old.Current.SID) {
		delete(s.sids, old.Current.SID)
	}
	if next == nil {
		delete(s.records, number)
		return nil
	}
	next = next.Clone()
	s.records[number] = next
	if next.Current != nil {
		s.sids[next.Current.SID] = number
	}
	return nil
}

// NumberOf implements Store.
func (s *MemoryStore) NumberOf(ctx context.Context, sid string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	number, ok := s.sids[sid]
	if !ok || s.live(number, s.now()) == nil {
		return "", false, nil
	}
	return number, true, nil
}

// Len reports how many records the store holds, expired ones not yet purged
// included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// live answers number's record, dropping it if it has expired. s.mu is held.
func (s *MemoryStore) live(number string, now time.Time) *Record {
	r := s.records[number]
	if r != nil && !now.Before(r.ExpiresAt) {
		s.drop(number, r)
		return nil
	}
	return r
}

// sweep drops every expired record, at most once per sweepEvery, so that
// numbers that are never seen again do not stay in memory. s.mu is held.
func (s *MemoryStore) sweep(now time.Time) {
	if now.Before(s.nextSweep) {
		return
	}
	s.nextSweep = now.Add(sweepEvery)
	for number, r := range s.records {
		if !now.Before(r.ExpiresAt) {
			s.drop(number, r)
		}
	}
}

// drop deletes a record and its SID index entry. s.mu is held.
func (s *MemoryStore) drop(number string, r *Record) {
	delete(s.records, number)
	if r.Current != nil && s.sids[r.Current.SID] == number {
		delete(s.sids, r.Current.SID)
	}
}
