package twilioverify

import (
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
	codeConcurrency        = twiliohttp.CodeConcurrency
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

// fromTwilio maps a Twilio error answer to op (see twiliohttp.API.ByCode).
func fromTwilio(op string, te *client.TwilioRestError, status int) *verify.Error {
	if te.Code == codeNotFound {
		// A start or a service fetch names no verification: 20404 there
		// means the service SID is wrong, which no user can fix by asking
		// for a new code.
		if operation(op) == opCheck {
			return verify.ErrNotFound
		}
		return verify.ErrMisconfigured
	}
	if e, ok := twilioCodes[te.Code]; ok {
		return e
	}
	return twiliohttp.ByStatus(te, status)
}
