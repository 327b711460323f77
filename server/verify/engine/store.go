package engine

import (
	"context"
	"time"

	"verifyd/server/verify"
)

// Store keeps the engine's state: one Record per phone number, and an index
// from the SID of a number's current verification to the number.
//
// The interface is shaped for a shared store such as Redis, where the whole
// read-modify-write of one number must be a single transaction (WATCH/MULTI,
// or a Lua script): the engine decides, the store only makes the decision
// atomic. Implementations must be safe for concurrent use.
type Store interface {
	// Update reads the record for number, calls fn with a copy of it (nil
	// when there is none, or when its ExpiresAt has passed) and writes what
	// fn returns, atomically with respect to every other Update of the same
	// number. A nil result deletes the record. The SID index follows the
	// written record's Current in the same transaction: the old SID is
	// dropped when Current goes away or changes, the new one added.
	//
	// When fn returns an error nothing is written and Update returns that
	// error unchanged. fn may run more than once (an optimistic store retries
	// it after a conflicting write), so it must have no effect other than its
	// result, and it may own the record it is given.
	Update(ctx context.Context, number string, fn func(*Record) (*Record, error)) error

	// NumberOf answers the number whose current verification has sid, and
	// false when no live record holds that SID. err is for the store's own
	// failures only.
	NumberOf(ctx context.Context, sid string) (number string, ok bool, err error)
}

// Record is everything the engine knows about one phone number. It holds no
// code in the clear, and nothing from which a code can be recovered without
// the engine's secret.
//
// A store must keep times exactly (to the nanosecond, e.g. as UnixNano): the
// engine finds a send it has to take back by its time.
type Record struct {
	// Sends are the times of the sends to this number still inside the
	// rate-limit window, oldest first. They outlive verifications, so an
	// approved or maxed-out verification does not reset the send limit.
	Sends []time.Time

	// Current is the number's verification, nil when there is none.
	Current *Pending

	// ExpiresAt is when nothing in the record matters any more: the store
	// may drop it from then on (Redis: PEXPIREAT), and must treat it as
	// absent.
	ExpiresAt time.Time
}

// Pending is a verification that has not yet been approved, maxed out or
// replaced.
type Pending struct {
	SID       string
	Channel   verify.Channel // of the latest send
	CreatedAt time.Time      // the lifetime runs from here; resends do not extend it

	// SendAttempts counts the sends of this verification, including those
	// still in flight; a send that fails is taken back.
	SendAttempts int

	// Checks counts the wrong codes checked so far.
	Checks int

	// CodeHash is HMAC-SHA256(secret, SID + ":" + code), what a check
	// compares against.
	CodeHash []byte

	// SealedCode is the code sealed with AES-256-GCM under a key derived
	// from the secret, with the SID as additional data: only a resend opens
	// it, to send the same code again.
	SealedCode []byte
}

// Clone returns a deep copy of r, so that a store can hand out records
// without sharing memory with what it keeps. Clone of nil is nil.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Sends = append([]time.Time(nil), r.Sends...)
	if r.Current != nil {
		p := *r.Current
		p.CodeHash = append([]byte(nil), p.CodeHash...)
		p.SealedCode = append([]byte(nil), p.SealedCode...)
		c.Current = &p
	}
	return &c
}
