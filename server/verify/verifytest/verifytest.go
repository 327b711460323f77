// Package verifytest holds the small helpers verifyd's tests share: a clock
// that moves only when told, polling with a deadline instead of sleeping,
// and a code that is surely wrong. It is imported by tests only.
package verifytest

import (
	"sync"
	"testing"
	"time"

	"verifyd/server/verify"
)

// Clock is an injected clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock answers a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now is the clock's time; pass it where code takes a func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test if it has not within 10 seconds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// WrongCode answers a code of the same length that differs from code in
// every digit.
func WrongCode(code string) string {
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+1)%10
	}
	return string(b)
}

// Number parses an international number the way verifyd does, and panics
// on one that is not valid: for fixtures that are valid by construction.
func Number(e164 string) verify.Number {
	n, err := verify.PhoneParser{}.Parse(e164)
	if err != nil {
		panic("verifytest.Number(" + e164 + "): " + err.Error())
	}
	return n
}
