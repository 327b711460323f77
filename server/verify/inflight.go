package verify

import (
	"context"
	"time"
)

// ErrOverloaded refuses a request while as many calls as allowed are already
// waiting on the upstream: answering at once keeps memory, goroutines and
// connections bounded when Twilio hangs, and tells the client to come back.
var ErrOverloaded = &Error{Kind: KindDegraded, Code: "overloaded",
	Message: "We are busy right now. Please try again in a moment.", RetryAfter: time.Second}

// Gate bounds the calls in flight to the backend. It is safe for
// concurrent use.
type Gate struct {
	slots chan struct{}
	wait  time.Duration
}

// NewGate lets max calls in at once; a call beyond them waits at most wait
// for a place.
func NewGate(max int, wait time.Duration) *Gate {
	return &Gate{slots: make(chan struct{}, max), wait: wait}
}

// Enter takes a place, and answers the function that gives it back. A call
// that finds no place within the wait answers ErrOverloaded; one whose
// caller goes away meanwhile, ErrClientGone.
func (g *Gate) Enter(ctx context.Context) (leave func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	case <-ctx.Done():
		return nil, ErrClientGone.With(ctx.Err(), 0)
	case <-t.C:
		return nil, ErrOverloaded
	}
}

func (g *Gate) leave() { <-g.slots }
