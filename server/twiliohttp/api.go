package twiliohttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client"

	"verifyd/server/verify"
)

// API is one Twilio API as a backend calls it: where, over which
// transport, how long a call may take, how often a 20429 is retried, and
// what the API's own error codes mean.
type API struct {
	Base       *url.URL
	Transport  http.RoundTripper
	Timeout    time.Duration // bounds one Run, retries included
	MaxRetries int
	// ByCode answers what a Twilio error answer to op means: its code,
	// and the HTTP status as received (0 when none came; see ByStatus).
	ByCode func(op string, te *client.TwilioRestError, status int) *verify.Error
	// Observe, when set, is told of every HTTP attempt, retries included,
	// for metrics. It must be quick and safe for concurrent use.
	Observe func(Attempt)
}

// Attempt is one HTTP exchange with Twilio, as API.Observe sees it.
type Attempt struct {
	Operation  string        // the operation's metric name
	Result     string        // "ok", or the verify error code it maps to
	TwilioCode int           // Twilio's error code, 0 if none
	Duration   time.Duration // from the request to the parsed answer
}

// Run makes one SDK call (fn) for op under parent, bounded by Timeout,
// through Do: only Twilio's 20429 is retried. It answers nil or a
// verify error; metric names op in Attempts. A caller already gone is not
// even asked about.
func (a *API) Run(parent context.Context, op, metric string, fn func(*Call) error) error {
	ctx, cancel := context.WithTimeout(parent, a.Timeout)
	defer cancel()
	if e := ContextError(parent, ctx, parent.Err()); e != nil {
		return e
	}
	c, err := Do(ctx, a.Base, a.Transport, a.MaxRetries, fn, func(c *Call, err error, d time.Duration) {
		if a.Observe == nil {
			return
		}
		at := Attempt{Operation: metric, Result: "ok", Duration: d}
		if err != nil {
			at.Result = verify.AsError(a.classify(op, err, c, parent, ctx)).Code
			if te, ok := errors.AsType[*client.TwilioRestError](err); ok {
				at.TwilioCode = te.Code
			}
		}
		a.Observe(at)
	})
	if err == nil {
		return nil
	}
	return a.classify(op, err, c, parent, ctx)
}

// classify turns what an SDK call returned into a verify error. parent is
// the caller's context, ctx the one with our deadline. The cause keeps
// Twilio's code and message for the log; neither the SDK's errors nor ours
// carry credentials (they travel in a header, and a base URL may not hold
// userinfo).
func (a *API) classify(op string, err error, c *Call, parent, ctx context.Context) error {
	if errors.Is(err, ErrRetryWait) {
		// The caller left or our deadline passed while waiting to retry.
		if e := ContextError(parent, ctx, fmt.Errorf("twilio %s: %w", op, err)); e != nil {
			return e
		}
	}
	if te, ok := errors.AsType[*client.TwilioRestError](err); ok {
		cause := fmt.Errorf("twilio %s: HTTP %d: %w", op, c.Status, te)
		return a.ByCode(op, te, c.Status).With(cause, c.RetryAfter)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && c.URL != "" {
		// The SDK's http.Client names the URL it built, on Twilio's own
		// host; the log must name the one the request really went to.
		ue.URL = c.URL
	}
	cause := fmt.Errorf("twilio %s: %w", op, err)
	e := ContextError(parent, ctx, cause)
	switch {
	case e != nil:
	case c.Status == http.StatusUnauthorized || c.Status == http.StatusForbidden:
		// Refused credentials, whatever the body (a gateway's HTML page):
		// retrying will not help, fixing our configuration will.
		return verify.ErrMisconfigured.With(cause, 0)
	default:
		// Refused or reset connections, TLS failures, non-JSON or garbled
		// bodies: Twilio (or what stands in front of it) is not answering
		// sanely.
		e = verify.ErrUnavailable.With(cause, c.RetryAfter)
	}
	// Whether a code may have gone out: not when the connection was never
	// made, nor when an error status came back; yes when a success status
	// came with a body we could not read, or the connection broke after
	// the request was written.
	e.MaybeSent = (c.Status >= 200 && c.Status < 300) || (c.Status == 0 && !NeverSent(err))
	return e
}

// ContextError answers the error for a call cut short by a context, or nil
// when neither context ended: the caller going away is not a timeout, and
// whose deadline passed (ours or the caller's) does not matter to the user.
func ContextError(parent, ctx context.Context, cause error) *verify.Error {
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		return verify.ErrClientGone.With(cause, 0)
	case ctx.Err() != nil:
		return verify.ErrTimeout.With(cause, 0)
	}
	return nil
}

// ByStatus answers a Twilio error answer whose code the API does not name,
// by its HTTP status (status as received; the SDK's TwilioRestError.Status
// is read from the body, which a proxy's JSON error page may not fill).
func ByStatus(te *client.TwilioRestError, status int) *verify.Error {
	if status == 0 {
		status = te.Status
	}
	switch {
	case status >= 500:
		return verify.ErrUnavailable
	case status == http.StatusTooManyRequests:
		// Some limit we do not know by code; still a "wait", not our fault.
		return verify.ErrUpstreamBusy
	case status >= 400:
		// An unknown 4xx (401 and 403 included) says our request or
		// account is wrong; the user cannot fix it.
		return verify.ErrMisconfigured
	}
	return verify.ErrUnavailable
}
