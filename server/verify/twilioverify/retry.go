package twilioverify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/verify"
)

const (
	// backoffBase is the first retry's nominal wait; it doubles each time.
	backoffBase = 100 * time.Millisecond
	// maxRetryAfter is the longest Retry-After we wait out inside a request.
	// Longer ones are passed to the user (as RetryAfter) instead: holding
	// their request that long helps nobody.
	maxRetryAfter = 2 * time.Second
)

// do runs fn (one SDK call) under the caller's context bounded by
// RequestTimeout, retrying it only when Twilio answered 20429: Twilio says
// such a request was not processed, so even a start is safe to repeat. A
// timeout, a 5xx or a dropped connection may hide a sent SMS, so they are
// never retried.
func (b *Backend) do(parent context.Context, op operation, fn func(*openapi.ApiService) error) error {
	ctx, cancel := context.WithTimeout(parent, b.cfg.RequestTimeout)
	defer cancel()
	if err := ctxError(parent, ctx, parent.Err()); err != nil {
		return err // nobody waits for the answer: do not even ask
	}
	for attempt := 0; ; attempt++ {
		c := &call{ctx: ctx, base: b.base, next: b.transport}
		began := time.Now()
		err := fn(b.api(c))
		b.observe(op, err, c, parent, ctx, time.Since(began))
		if err == nil {
			return nil
		}
		if attempt < b.maxRetries && isConcurrencyLimit(err) {
			if wait, ok := backoff(ctx, attempt, c.retryAfter); ok {
				if sleep(ctx, wait) {
					continue
				}
				// The caller left or our deadline passed while waiting.
				return ctxError(parent, ctx, fmt.Errorf("twilio %s: waiting to retry: %w", op, err))
			}
		}
		return classify(op, err, c, parent, ctx)
	}
}

func isConcurrencyLimit(err error) bool {
	var te *client.TwilioRestError
	return errors.As(err, &te) && te.Code == codeConcurrency
}

// backoff answers how long to wait before retry number attempt+1, and false
// when not to retry: Retry-After too long, or the deadline would pass.
// Without Retry-After the wait is exponential with jitter, so callers hitting
// the limit together do not come back together.
func backoff(ctx context.Context, attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if retryAfter > maxRetryAfter {
		return 0, false
	}
	d := backoffBase << attempt
	d = d/2 + rand.N(d/2+1)
	d = max(d, retryAfter)
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(d).After(deadline) {
		return 0, false
	}
	return d, true
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// observe reports one attempt to Config.Observe.
func (b *Backend) observe(op operation, err error, c *call, parent, ctx context.Context, d time.Duration) {
	if b.cfg.Observe == nil {
		return
	}
	a := Attempt{Operation: op.metricName(), Result: "ok", Duration: d}
	if err != nil {
		a.Result = verify.AsError(classify(op, err, c, parent, ctx)).Code
		var te *client.TwilioRestError
		if errors.As(err, &te) {
			a.TwilioCode = te.Code
		}
	}
	b.cfg.Observe(a)
}
