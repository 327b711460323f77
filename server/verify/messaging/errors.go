package messaging

import (
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
	21211:                      verify.ErrInvalidPhone,       // invalid To
	21408:                      verify.ErrDestinationBlocked, // geo permissions
	21610:                      ErrUnsubscribed,              // STOP
	21612:                      verify.ErrLandline,           // not reachable by SMS from this sender
	21614:                      verify.ErrLandline,           // not a mobile number
	21215:                      verify.ErrDestinationBlocked, // calls: geo permissions
	21216:                      verify.ErrDestinationBlocked, // calls: high-risk or premium destination
	21602:                      verify.ErrMisconfigured,      // body missing
	21603:                      verify.ErrMisconfigured,      // From missing
	21606:                      verify.ErrMisconfigured,      // From not a valid sender for this destination
	21617:                      verify.ErrMisconfigured,      // body too long: our bug
	21205:                      verify.ErrMisconfigured,      // no TwiML: our bug
	20003:                      verify.ErrMisconfigured,      // authentication
	20404:                      verify.ErrMisconfigured,      // account not found (an API key without the account)
	twiliohttp.CodeConcurrency: verify.ErrUpstreamBusy,       // not processed; retried before it gets here
}

// byCode answers a Twilio error answer (see twiliohttp.API.ByCode).
func byCode(_ string, te *client.TwilioRestError, status int) *verify.Error {
	if e, ok := twilioCodes[te.Code]; ok {
		return e
	}
	return twiliohttp.ByStatus(te, status)
}
