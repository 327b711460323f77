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

// LimitInFlight bounds the calls in flight through next to max. A call
// beyond it waits at most wait for a place, then answers ErrOverloaded;
// shed, when set, is told of each one.
func LimitInFlight(next Verifier, max int, wait time.Duration, shed func()) Verifier {
	return &inFlight{next: next, slots: make(chan struct{}, max), wait: wait, shed: shed}
}

type inFlight struct {
	next  Verifier
	slots chan struct{}
	wait  time.Duration
	shed  func()
}

func (l *inFlight) acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ErrClientGone.With(ctx.Err(), 0)
	case <-t.C:
		if l.shed != nil {
			l.shed()
		}
		return ErrOverloaded
	}
}

func (l *inFlight) Start(ctx context.Context, req StartRequest) (Verification, error) {
	if err := l.acquire(ctx); err != nil {
		return Verification{}, err
	}
	defer func() { <-l.slots }()
	return l.next.Start(ctx, req)
}

func (l *inFlight) Check(ctx context.Context, req CheckRequest) (Verification, error) {
	if err := l.acquire(ctx); err != nil {
		return Verification{}, err
	}
	defer func() { <-l.slots }()
	return l.next.Check(ctx, req)
}
