package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"verifyd/server/flow"
	"verifyd/server/verify"
)

// Errors of the HTTP layer itself, in the domain's shape so that one
// function renders every failure.
var (
	errMalformed = &verify.Error{Kind: verify.KindInvalid, Code: "malformed_json",
		Message: "The request body is not valid JSON."}
	errUnsupportedMediaType = &verify.Error{Kind: verify.KindUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "Send the request body as application/json."}
	errTooLarge = &verify.Error{Kind: verify.KindTooLarge, Code: "request_too_large",
		Message: "The request body is too large."}
	errNotFound = &verify.Error{Kind: verify.KindNotFound, Code: "not_found",
		Message: "There is nothing here."}
	errMethodNotAllowed = &verify.Error{Kind: verify.KindMethodNotAllowed, Code: "method_not_allowed",
		Message: "This method is not allowed here."}
)

// ErrShuttingDown answers a request still in flight when the shutdown's
// time is up: cmd cancels the requests' base context with it as the
// cause, the upstream call stops, and the client hears why instead of
// having its connection cut.
var ErrShuttingDown = &verify.Error{Kind: verify.KindDegraded, Code: "shutting_down",
	Message: "The service is restarting. Please try again in a moment.", RetryAfter: time.Second}

// statusFor is the one mapping from a kind of failure to an HTTP status.
func statusFor(k verify.Kind) int {
	switch k {
	case verify.KindInvalid, verify.KindWrongCode:
		return http.StatusBadRequest
	case verify.KindGone:
		return http.StatusGone
	case verify.KindTooMany:
		return http.StatusTooManyRequests
	case verify.KindUnsupported:
		return http.StatusUnprocessableEntity
	case verify.KindForbidden:
		return http.StatusForbidden
	case verify.KindMisconfigured, verify.KindUnavailable:
		return http.StatusBadGateway
	case verify.KindTimeout:
		return http.StatusGatewayTimeout
	case verify.KindDegraded:
		return http.StatusServiceUnavailable
	case verify.KindCanceled:
		// nginx's "client closed request": nobody reads it, but the access
		// log tells a cancellation from a failure.
		return 499
	case verify.KindUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case verify.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case verify.KindNotFound:
		return http.StatusNotFound
	case verify.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON shape of every failure.
type errorBody struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	Verified   *bool  `json:"verified,omitempty"`
	RetryAfter int    `json:"retryAfter,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
	// Challenge is a proof-of-work challenge to solve before asking again
	// (challenge_required, challenge_failed).
	Challenge any `json:"challenge,omitempty"`
}

// bodyShaper is an error whose handler adds its own fields to the JSON
// failure body (verify-otp's "verified": false).
type bodyShaper interface {
	error
	shapeBody(*errorBody)
}

// httpError is every failed answer as the renderer sees it: the status and
// the domain error, whose Message is what the client reads and whose cause
// goes to the log only.
type httpError struct {
	status int
	*verify.Error
}

// toHTTPError turns whatever a handler or echo returned into an httpError.
func toHTTPError(err error) httpError {
	e := toDomainError(err)
	return httpError{status: statusFor(e.Kind), Error: e}
}

// toDomainError turns whatever a handler or echo returned into a domain
// error.
func toDomainError(err error) *verify.Error {
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		switch he.Code {
		case http.StatusNotFound:
			return errNotFound
		case http.StatusMethodNotAllowed:
			return errMethodNotAllowed
		case http.StatusRequestEntityTooLarge:
			return errTooLarge
		case http.StatusUnsupportedMediaType:
			return errUnsupportedMediaType
		case http.StatusBadRequest:
			return errMalformed.With(err, 0)
		}
	}
	if errors.Is(err, context.Canceled) {
		return verify.ErrClientGone.With(err, 0)
	}
	return verify.AsError(err)
}

// errorHandler is the one renderer of failures. A failure on a page route
// comes back as the page it happened on; every other one is JSON. It logs
// only what an operator must act on (our bugs and our upstream
// configuration); everything else reaches the log through the access line.
func errorHandler(logger *slog.Logger, pages *forms, cats *catalogs) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		he := toHTTPError(err)
		if errors.Is(context.Cause(c.Request().Context()), ErrShuttingDown) {
			he = httpError{status: statusFor(ErrShuttingDown.Kind), Error: ErrShuttingDown.With(err, ErrShuttingDown.RetryAfter)}
		}
		c.Set(ctxKeyError, he.Error)
		if he.Kind == verify.KindInternal || he.Kind == verify.KindMisconfigured {
			logger.ErrorContext(c.Request().Context(), "request failed",
				"request_id", requestIDOf(c), "code", he.Code, "cause", redact(causeOf(he.Error)))
		}
		var retryAfter int
		if he.RetryAfter > 0 {
			retryAfter = int(math.Ceil(he.RetryAfter.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		if pf, ok := errors.AsType[*pageFailure](err); ok && pages != nil {
			_ = pages.renderFailure(c, he, pf.page)
			return
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(he.status)
			return
		}
		// The sentence in the person's language (Accept-Language), with
		// the wait, as the page says it; the code stays the same for
		// programs.
		t := cats.translate(cats.pick(c))
		body := errorBody{Error: flow.FailureText(t, he.Error), Code: he.Code, RetryAfter: retryAfter, RequestID: requestIDOf(c),
			Challenge: he.Challenge}
		if s, ok := errors.AsType[bodyShaper](err); ok {
			s.shapeBody(&body)
		}
		_ = c.JSON(he.status, body)
	}
}

func causeOf(e *verify.Error) string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

// phoneLike matches anything that could be a phone number in text bound for
// the log: a URL path, a query string, an upstream message quoting the
// number it refused.
var phoneLike = regexp.MustCompile(`\+?\d[\d ().\-%A-F]{5,}\d`)

// ipv4Like is a dotted quad, which a log must keep readable.
var ipv4Like = regexp.MustCompile(`^\d{1,3}(\.\d{1,3}){3}$`)

// redact masks phone-number-like runs in text bound for the log. It leaves
// alone what only looks like one: an IPv4 address, and digits inside a
// longer token such as a SID (VE0123…) or a request id.
func redact(s string) string {
	locs := phoneLike.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, l := range locs {
		start, end := l[0], l[1]
		m := s[start:end]
		if wordByte(s, start-1) || wordByte(s, end) || ipv4Like.MatchString(m) || digits(m) < 7 {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(verify.Mask(m))
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// wordByte reports whether s[i] is a letter or digit (false off the ends).
func wordByte(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func digits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			n++
		}
	}
	return n
}
