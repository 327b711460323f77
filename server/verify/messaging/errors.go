package messaging

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

// ErrUnsubscribed refuses a number whose owner replied STOP (21610).
var ErrUnsubscribed = &verify.Error{Kind: verify.KindForbidden, Code: "recipient_unsubscribed",
	Message: "This number has opted out of our text messages. Reply START to us to opt back in, or use a call."}

// twilioCodes maps the 2010 API's errors on create onto the same stable
// answers as Verify's.
var twilioCodes = map[int]*verify.Error{
	21211: verify.ErrInvalidPhone,       // invalid To
	21408: verify.ErrDestinationBlocked, // geo permissions
	21610: ErrUnsubscribed,              // STOP
	21612: verify.ErrLandline,           // not reachable by SMS from this sender
	21614: verify.ErrLandline,           // not a mobile number
	21215: verify.ErrDestinationBlocked, // calls: geo permissions
	21216: verify.ErrDestinationBlocked, // calls: high-risk or premium destination
	21602: verify.ErrMisconfigured,      // body missing
	21603: verify.ErrMisconfigured,      // From missing
	21606: verify.ErrMisconfigured,      // From not a valid sender for this destination
	21617: verify.ErrMisconfigured,      // body too long: our bug
	21205: verify.ErrMisconfigured,      // no TwiML: our bug
	20003: verify.ErrMisconfigured,      // authentication
	20404: verify.ErrMisconfigured,      // account not found (an API key without the account)
	20429: verify.ErrUpstreamBusy,       // not processed; retried before it gets here
}

// classify turns what an SDK call returned into a verify error, marking
// the sends that may have gone out: the request was written and no usable
// answer came (a timeout, a connection broken after writing, a success
// without a SID). Twilio answering an error, or a request that never left,
// sent nothing.
func classify(op string, err error, c *twiliohttp.Call, parent, ctx context.Context) error {
	if te, ok := errors.AsType[*client.TwilioRestError](err); ok {
		cause := fmt.Errorf("twilio %s: HTTP %d: %w", op, c.Status, te)
		if e, ok := twilioCodes[te.Code]; ok {
			return e.With(cause, c.RetryAfter)
		}
		status := c.Status
		if status == 0 {
			status = te.Status
		}
		switch {
		case status == http.StatusTooManyRequests:
			return verify.ErrUpstreamBusy.With(cause, c.RetryAfter)
		case status >= 400 && status < 500:
			return verify.ErrMisconfigured.With(cause, 0)
		}
		return verify.ErrUnavailable.With(cause, c.RetryAfter)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok && c.URL != "" {
		ue.URL = c.URL // the URL really called, not the SDK's default host
	}
	cause := fmt.Errorf("twilio %s: %w", op, err)
	maybe := (c.Status >= 200 && c.Status < 300) || (c.Status == 0 && !twiliohttp.NeverSent(err))
	var e *verify.Error
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		e = verify.ErrClientGone.With(cause, 0)
	case ctx.Err() != nil:
		e = verify.ErrTimeout.With(cause, 0)
	case c.Status == http.StatusUnauthorized || c.Status == http.StatusForbidden:
		e, maybe = verify.ErrMisconfigured.With(cause, 0), false
	default:
		e = verify.ErrUnavailable.With(cause, c.RetryAfter)
	}
	e.MaybeSent = maybe
	return e
}
