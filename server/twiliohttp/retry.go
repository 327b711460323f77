package twiliohttp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client"
)

// CodeConcurrency is Twilio's 20429: too many concurrent requests, not
// processed, safe to repeat.
const CodeConcurrency = 20429

const (
	// backoffBase is the first retry's nominal wait; it doubles each time.
	backoffBase = 100 * time.Millisecond
	// maxRetryAfter is the longest Retry-After waited out inside a request.
	// Longer ones are passed to the user instead: holding their request that
	// long helps nobody.
	maxRetryAfter = 2 * time.Second
)

// ErrRetryWait marks a retry whose wait the caller's context cut short.
var ErrRetryWait = errors.New("waiting to retry")

// Do runs fn (one SDK call) through a fresh Call to base over next, under
// ctx, retrying it only when Twilio answered 20429, at most maxRetries
// times: Twilio says such a request was not processed, so even a send is
// safe to repeat. A timeout, a 5xx or a dropped connection may hide a sent
// message, so they are never retried. observe, when set, is told of every
// attempt. Do answers the last Call and fn's last error (wrapped in
// ErrRetryWait when the context ended while waiting to retry).
func Do(ctx context.Context, base *url.URL, next http.RoundTripper, maxRetries int,
	fn func(*Call) error, observe func(*Call, error, time.Duration)) (*Call, error) {
	for attempt := 0; ; attempt++ {
		c := &Call{Ctx: ctx, Base: base, Next: next}
		began := time.Now()
		err := fn(c)
		if observe != nil {
			observe(c, err, time.Since(began))
		}
		if err == nil {
			return c, nil
		}
		if attempt < maxRetries && IsConcurrencyLimit(err) {
			if wait, ok := backoff(ctx, attempt, c.RetryAfter); ok {
				if sleep(ctx, wait) {
					continue
				}
				return c, errors.Join(ErrRetryWait, err)
			}
		}
		return c, err
	}
}

// IsConcurrencyLimit reports whether err is Twilio's 20429.
func IsConcurrencyLimit(err error) bool {
	var te *client.TwilioRestError
	return errors.As(err, &te) && te.Code == CodeConcurrency
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
