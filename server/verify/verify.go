// Package verify is the domain of verifyd: what a phone verification is, the
// Verifier interface every backend implements, the errors a backend may
// return, and the normalisation of phone numbers and channels.
//
// It knows nothing of HTTP, Twilio or configuration sources; the backends live
// in their own packages (twilioverify, engine) and the HTTP surface in server.
package verify

import (
	"context"
	"net/netip"
	"time"
)

// Channel is how a code is delivered.
type Channel string

// Channels verifyd can offer for phone numbers.
const (
	ChannelSMS      Channel = "sms"
	ChannelCall     Channel = "call"
	ChannelWhatsApp Channel = "whatsapp"
)

// Valid reports whether c is a channel verifyd knows.
func (c Channel) Valid() bool {
	switch c {
	case ChannelSMS, ChannelCall, ChannelWhatsApp:
		return true
	}
	return false
}

// Status is the state of a verification, with Twilio Verify's names.
type Status string

// The statuses of a verification.
const (
	StatusPending            Status = "pending"
	StatusApproved           Status = "approved"
	StatusCanceled           Status = "canceled"
	StatusMaxAttemptsReached Status = "max_attempts_reached"
	StatusDeleted            Status = "deleted"
	StatusFailed             Status = "failed"
	StatusExpired            Status = "expired"
)

// StartRequest asks a backend to send a code.
type StartRequest struct {
	To      Number  // the destination, as PhoneParser made it
	Channel Channel // already checked against the allowed channels
	Locale  string  // a Twilio Verify locale, or "" for the service default
	// ClientIP is the address of the person asking (after trusted proxies),
	// for per-client limits; the zero Addr when unknown.
	ClientIP netip.Addr
	// Proof is a solved step-up challenge (an ALTCHA payload), when the
	// client was asked for one; "" otherwise.
	Proof string
}

// CheckRequest asks a backend whether a code is right. Exactly one of To and
// SID is set.
type CheckRequest struct {
	To   Number // the zero Number when checking by SID
	SID  string // a verification SID ("VE" + 32 hex)
	Code string // 4 to 10 digits
	// ClientIP is as in StartRequest.
	ClientIP netip.Addr
}

// Verification is what a backend answers to a start or a check.
type Verification struct {
	SID     string
	To      string // E.164
	Channel Channel
	Status  Status
	// SendAttempts counts the sends of this verification, including the one
	// that answered; 0 when the backend does not say.
	SendAttempts int
	CreatedAt    time.Time
}

// Verifier starts and checks verifications. Implementations are safe for
// concurrent use and honour ctx for cancellation and deadlines.
//
// A wrong but well-formed code is not an error: Check answers the
// verification with StatusPending, as Twilio Verify does. Outcome turns a
// check's answer into the caller's verdict.
type Verifier interface {
	Start(ctx context.Context, req StartRequest) (Verification, error)
	Check(ctx context.Context, req CheckRequest) (Verification, error)
}

// Outcome is the verdict on a check's answer: nil when the code was right,
// ErrWrongCode when the verification is still pending, and an error of kind
// Gone for every status after which no code can succeed.
func Outcome(v Verification) error {
	switch v.Status {
	case StatusApproved:
		return nil
	case StatusPending:
		return ErrWrongCode
	case StatusExpired:
		return ErrExpired
	case StatusMaxAttemptsReached:
		return ErrMaxAttemptsReached
	case StatusCanceled, StatusDeleted:
		return ErrCanceled
	case StatusFailed:
		return ErrFailed
	}
	return &Error{Kind: KindUnavailable, Code: "upstream_unavailable",
		Message: msgUnavailable, Err: errorf("check answered unknown status %q", v.Status)}
}
