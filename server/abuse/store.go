// Package abuse keeps abuse and SMS-pumping fraud from reaching the
// verification backend: per-number, per-client and global send limits,
// per-client check limits, a destination country allowlist and the refusal of
// number types that pumping abuses. Its Guard wraps any verify.Verifier, so
// the JSON API and the form share every rule.
//
// Counters live in a Store: in memory for one instance, in Redis for several.
// The package decides; it does not know HTTP.
package abuse

import (
	"context"
	"time"
)

// Rule is one sliding-window limit: at most Limit events under Key in any
// Window.
type Rule struct {
	Key    string
	Limit  int
	Window time.Duration
}

// Decision is a Store's answer to Allow.
type Decision struct {
	Allowed bool
	// Rule is the index of the rule that refused (the one that frees up
	// last when several do), and RetryAfter how long until it would allow.
	Rule       int
	RetryAfter time.Duration
	// Event names the event recorded when Allowed, for Undo.
	Event string
}

// Store counts events. Allow is one atomic decision: either every rule has
// room, and one event is recorded under each, or nothing is recorded. Two
// instances sharing a Store therefore enforce one limit.
type Store interface {
	Allow(ctx context.Context, now time.Time, rules []Rule) (Decision, error)
	// Undo takes the event back from the keys it was recorded under: a
	// send that certainly did not go out must not count.
	Undo(ctx context.Context, keys []string, event string) error
	// Count answers the events under r.Key in r.Window, recording nothing.
	Count(ctx context.Context, now time.Time, r Rule) (int, error)
	// Forget drops every event under keys.
	Forget(ctx context.Context, keys ...string) error
	Tallies
}
