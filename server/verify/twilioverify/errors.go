package twilioverify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/twilio/twilio-go/client"

	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
)

// operation names a backend call in error causes and decides what a 20404
// means.
type operation string

const (
	opStart operation = "start verification"
	opCheck operation = "check verification"
	opPing  operation = "fetch service"
)

// Twilio error codes this package acts on (see TWILIO.md).
const (
	codeAuth               = 20003
	codeNotFound           = 20404
	codeConcurrency        = 20429
	codeInvalidUsername    = 21222
	codeInvalidPassword    = 21224
	codeInvalidParameter   = 60200
	codeMaxChecks          = 60202
	codeMaxSends           = 60203
	codeLandline           = 60205
	codeTooManyConcurrent  = 60212
	codeChannelDisabled    = 60223
	codeFraudGuard         = 60410
	codeDestinationBlocked = 60605
)

// twilioCodes maps the codes that mean the same whatever the operation.
var twilioCodes = map[int]*verify.Error{
	codeInvalidParameter:   verify.ErrInvalidParameter,
	codeMaxChecks:          verify.ErrTooManyAttempts,
	codeMaxSends:           verify.ErrTooManySends,
	codeTooManyConcurrent:  verify.ErrTooManyConcurrent,
	codeConcurrency:        verify.ErrUpstreamBusy,
	codeLandline:           verify.ErrLandline,
	codeChannelDisabled:    verify.ErrChannelDisabled,
	codeDestinationBlocked: verify.ErrDestinationBlocked,
	codeFraudGuard:         verify.ErrNumberBlocked,
	codeAuth:               verify.ErrMisconfigured,
	codeInvalidUsername:    verify.ErrMisconfigured,
	codeInvalidPassword:    verify.ErrMisconfigured,
}

// classify turns what an SDK call returned into a verify error. parent is the
// caller's context, ctx the one with our deadline. The cause keeps Twilio's
// code and message for the log; neither the SDK's errors nor ours carry
// credentials (they travel in a header, and BaseURL may not hold userinfo).
// metricName is the operation's label in metrics.
func (o operation) metricName() string {
	switch o {
	case opStart:
		return "start"
	case opCheck:
		return "check"
	}
	return "fetch_service"
}

func classify(op operation, err error, c *twiliohttp.Call, parent, ctx context.Context) error {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		cause := fmt.Errorf("twilio %s: HTTP %d: %w", op, c.Status, te)
		return fromTwilio(op, te, c.Status).With(cause, c.RetryAfter)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && c.URL != "" {
		// The SDK's http.Client names the URL it built, on Twilio's own
		// host; the log must name the one the request really went to.
		ue.URL = c.URL
	}
	cause := fmt.Errorf("twilio %s: %w", op, err)
	if e := ctxError(parent, ctx, cause); e != nil {
		return e
	}
	if c.Status == http.StatusUnauthorized || c.Status == http.StatusForbidden {
		// Refused credentials, whatever the body (a gateway's HTML page):
		// retrying will not help, fixing our configuration will.
		return verify.ErrMisconfigured.With(cause, 0)
	}
	// Refused or reset connections, TLS failures, non-JSON or garbled
	// bodies: Twilio (or what stands in front of it) is not answering sanely.
	e := verify.ErrUnavailable.With(cause, c.RetryAfter)
	// Whether a code may have gone out: not when the connection was never
	// made, nor when an error status came back; yes when a success status
	// came with a body we could not read, or the connection broke after
	// the request was written.
	e.MaybeSent = (c.Status >= 200 && c.Status < 300) || (c.Status == 0 && !twiliohttp.NeverSent(err))
	return e
}

// ctxError answers the error for a call cut short by a context, or nil when
// neither context ended: the caller going away is not a timeout, and whose
// deadline passed (ours or the caller's) does not matter to the user.
func ctxError(parent, ctx context.Context, cause error) error {
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		return verify.ErrClientGone.With(cause, 0)
	case ctx.Err() != nil:
		return verify.ErrTimeout.With(cause, 0)
	}
	return nil
}

// fromTwilio maps a Twilio error answer. status is the HTTP status as
// received; the SDK's TwilioRestError.Status is read from the body, which a
// proxy's JSON error page may not fill.
func fromTwilio(op operation, te *client.TwilioRestError, status int) *verify.Error {
	if te.Code == codeNotFound {
		// A start or a service fetch names no verification: 20404 there
		// means the service SID is wrong, which no user can fix by asking
		// for a new code.
		if op == opCheck {
			return verify.ErrNotFound
		}
		return verify.ErrMisconfigured
	}
	if e, ok := twilioCodes[te.Code]; ok {
		return e
	}
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
