package verify

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error; the HTTP layer maps each kind to one status.
type Kind int

// The kinds of failure. The comment gives the HTTP status each maps to.
const (
	KindInternal      Kind = iota // 500: a bug of ours
	KindInvalid                   // 400: bad input, caught locally or by Twilio (60200)
	KindWrongCode                 // 400: the code was wrong; the verification is still pending
	KindGone                      // 410: the verification is over (approved, expired, canceled, maxed out)
	KindTooMany                   // 429: a limit was hit; RetryAfter says how long to wait when known
	KindUnsupported               // 422: the number cannot receive on this channel
	KindForbidden                 // 403: the destination is blocked
	KindMisconfigured             // 502: our own credentials or configuration are wrong
	KindUnavailable               // 502: the upstream is unreachable, failing or garbled
	KindTimeout                   // 504: the upstream did not answer before our deadline
	KindCanceled                  // the caller went away; nobody reads the answer
	KindDegraded                  // 503: a dependency of ours is down and we refuse rather than risk it

	// The request itself is not one verifyd reads (the HTTP layer finds
	// these; they are kinds of the one Error all the same).
	KindUnsupportedMediaType // 415: a body that is not JSON by its type
	KindTooLarge             // 413: a body over the limit
	KindNotFound             // 404: no such route
	KindMethodNotAllowed     // 405: the route does not take this method
)

// Error is the one error type of verifyd's domain. Message is safe to show a
// user; Code is stable snake_case for programs; Err is the cause, for the log
// only.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	RetryAfter time.Duration // 0 when unknown
	Err        error
	// MaybeSent marks a failed start whose request went out without an
	// answer that can be read: its code may still arrive. See MaybeSent.
	MaybeSent bool
	// Challenge, when set, is what the client must solve before asking
	// again (a proof-of-work step-up); the JSON answer carries it.
	Challenge any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches errors of the same Code, so errors.Is(err, ErrWrongCode) holds for
// copies that carry a cause or a RetryAfter.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// With returns a copy of e that carries cause and retryAfter.
func (e *Error) With(cause error, retryAfter time.Duration) *Error {
	c := *e
	c.Err = cause
	c.RetryAfter = retryAfter
	return &c
}

// MaybeSent reports whether a failed start may still have sent its code:
// the request went out and no answer came (a timeout, the caller gone), or
// one came that could not be read. Every other failure certainly sent
// nothing (the upstream answered an error, or the request never left), and
// whatever it counted against the sender may be given back.
func MaybeSent(err error) bool {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return true // unknown: assume the worst, which costs money
	}
	return e.MaybeSent || e.Kind == KindTimeout || e.Kind == KindCanceled || e.Kind == KindInternal
}

// AsError returns err as an *Error, wrapping anything else as an internal
// error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrInternal.With(err, 0)
}

const (
	msgUnavailable = "Verification is temporarily unavailable. Please try again in a moment."
	msgTooMany     = "Too many attempts. Please wait before trying again."
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// The errors verifyd answers with. Backends return these (with a cause and a
// RetryAfter where they have one); the HTTP layer renders them.
var (
	ErrInternal = &Error{Kind: KindInternal, Code: "internal_error",
		Message: "Something went wrong on our side. Please try again."}

	ErrInvalidPhone = &Error{Kind: KindInvalid, Code: "invalid_phone_number",
		Message: "Enter a valid phone number in international format, for example +14155552671."}
	ErrInvalidCode = &Error{Kind: KindInvalid, Code: "invalid_code",
		Message: "Enter the code you received: 4 to 10 digits."}
	ErrInvalidSID = &Error{Kind: KindInvalid, Code: "invalid_verification_sid",
		Message: "The verification reference is not valid."}
	ErrMissingTarget = &Error{Kind: KindInvalid, Code: "missing_phone_number",
		Message: "Enter the phone number the code was sent to."}
	// ErrMissingPhone is ErrMissingTarget where a code is asked for: the
	// same code, the sentence of that step.
	ErrMissingPhone = &Error{Kind: KindInvalid, Code: "missing_phone_number",
		Message: "Enter your phone number."}
	ErrChannelNotAllowed = &Error{Kind: KindInvalid, Code: "channel_not_allowed",
		Message: "This delivery method is not available."}
	ErrInvalidLocale = &Error{Kind: KindInvalid, Code: "invalid_locale",
		Message: "This language is not supported."}
	ErrInvalidCountry = &Error{Kind: KindInvalid, Code: "invalid_country",
		Message: "Choose the country of the phone number."}
	ErrInvalidNonce = &Error{Kind: KindInvalid, Code: "invalid_nonce",
		Message: "The nonce must be 1 to 128 letters, digits, '-' or '_'."}
	ErrInvalidParameter = &Error{Kind: KindInvalid, Code: "invalid_parameter",
		Message: "The request was not accepted. Check the phone number and try again."}

	ErrWrongCode = &Error{Kind: KindWrongCode, Code: "wrong_code",
		Message: "That code is not right. Check it and try again."}

	ErrNotFound = &Error{Kind: KindGone, Code: "verification_not_found",
		Message: "This code is no longer valid. Request a new code."}
	ErrExpired = &Error{Kind: KindGone, Code: "verification_expired",
		Message: "This code has expired. Request a new code."}
	ErrMaxAttemptsReached = &Error{Kind: KindGone, Code: "verification_max_attempts_reached",
		Message: "Too many wrong codes. Request a new code."}
	ErrCanceled = &Error{Kind: KindGone, Code: "verification_canceled",
		Message: "This verification was canceled. Request a new code."}
	ErrFailed = &Error{Kind: KindGone, Code: "verification_failed",
		Message: "This verification failed. Request a new code."}

	ErrTooManyAttempts = &Error{Kind: KindTooMany, Code: "too_many_attempts",
		Message: "Too many wrong codes. Request a new code."}
	ErrTooManySends = &Error{Kind: KindTooMany, Code: "too_many_sends",
		Message: "Too many codes were sent to this number. Please wait before requesting another."}
	ErrTooManyConcurrent = &Error{Kind: KindTooMany, Code: "too_many_concurrent_requests",
		Message: msgTooMany}
	ErrUpstreamBusy = &Error{Kind: KindTooMany, Code: "upstream_busy",
		Message: "We are busy right now. Please try again in a moment."}

	ErrLandline = &Error{Kind: KindUnsupported, Code: "sms_not_supported",
		Message: "This number cannot receive text messages. Try a mobile number or a voice call."}
	ErrChannelDisabled = &Error{Kind: KindUnsupported, Code: "channel_disabled",
		Message: "This delivery method is not available right now."}

	ErrDestinationBlocked = &Error{Kind: KindForbidden, Code: "destination_blocked",
		Message: "We cannot send codes to this country."}
	ErrNumberBlocked = &Error{Kind: KindForbidden, Code: "number_blocked",
		Message: "We cannot send codes to this number right now."}

	ErrMisconfigured = &Error{Kind: KindMisconfigured, Code: "upstream_misconfigured",
		Message: msgUnavailable}
	ErrUnavailable = &Error{Kind: KindUnavailable, Code: "upstream_unavailable",
		Message: msgUnavailable}
	ErrTimeout = &Error{Kind: KindTimeout, Code: "upstream_timeout",
		Message: "Verification is taking too long. Please try again."}
	ErrClientGone = &Error{Kind: KindCanceled, Code: "client_closed_request",
		Message: "The request was canceled."}
)
