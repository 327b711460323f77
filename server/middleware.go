package server

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"verifyd/server/verify"
)

const (
	ctxKeyRequestID = "verifyd.requestID"
	ctxKeyError     = "verifyd.error"
	ctxKeyTarget    = "verifyd.target"
)

// requestID takes a well-formed X-Request-Id from the caller (a load balancer
// usually sets one) or makes one, and echoes it in the answer.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = rand.Text()
		}
		c.Set(ctxKeyRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(ctxKeyRequestID).(string)
	return id
}

// setLogTarget records the number a request is about; the access line
// shows it masked.
func setLogTarget(c echo.Context, n verify.Number) {
	c.Set(ctxKeyTarget, n)
}

// accessLog writes one line per request, with the request id, the masked
// number it was about and the error code and cause when it failed.
func accessLog(logger *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError:  true, // the error handler decides the status before we log it
		LogStatus:    true,
		LogLatency:   true,
		LogMethod:    true,
		LogURIPath:   true,
		LogRoutePath: true,
		LogRemoteIP:  true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			attrs := []slog.Attr{
				slog.String("request_id", requestIDOf(c)),
				slog.String("method", v.Method),
				// What the client typed, masked like a number: a path or a
				// query may carry one (GET /+14155552671).
				slog.String("path", redact(v.URIPath)),
				slog.String("route", v.RoutePath),
				slog.Int("status", v.Status),
				slog.Float64("duration_ms", float64(v.Latency.Microseconds())/1000),
				slog.String("remote_ip", v.RemoteIP),
				slog.Int64("bytes_out", c.Response().Size),
			}
			if q := c.Request().URL.RawQuery; q != "" {
				logged, masked := maskQuery(q)
				attrs = append(attrs, slog.String("query", truncate(logged, maxLoggedQuery)))
				if len(masked) > 0 {
					attrs = append(attrs, slog.Any("masked", masked))
				}
			}
			if to, ok := c.Get(ctxKeyTarget).(verify.Number); ok {
				attrs = append(attrs, slog.String("to", to.String()))
			}
			level := slog.LevelInfo
			if e, ok := c.Get(ctxKeyError).(*verify.Error); ok {
				attrs = append(attrs, slog.String("error_code", e.Code))
				if cause := causeOf(e); cause != "" {
					attrs = append(attrs, slog.String("cause", redact(cause)))
				}
				if statusFor(e.Kind) >= 500 {
					level = slog.LevelWarn
				}
			}
			logger.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		},
	})
}

// maxLoggedQuery bounds a logged query string: the line stays one line of
// reasonable size whatever a client sends.
const maxLoggedQuery = 256

// secretParams are the query parameters whose values never reach the log,
// whatever they hold.
var secretParams = map[string]bool{"code": true, "otp": true, "receipt": true, "nonce": true, "token": true,
	"csrf": true, "password": true, "secret": true, "phone": true, "phonenumber": true, "phone_number": true,
	"to": true, "number": true, "tel": true}

// maskQuery answers a query string fit for the log, and the names of the
// parameters it masked: a secret parameter's value entirely, any other's
// phone-like runs (read with "+" as a space, as forms send it, and as a
// plus, as some clients do). The whole query is masked when it cannot be
// read as parameters.
func maskQuery(raw string) (string, []string) {
	var b strings.Builder
	var masked []string
	for i, part := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		value, err := url.QueryUnescape(v)
		plus, perr := url.PathUnescape(v) // "+" kept a plus
		if err != nil || perr != nil {
			value, plus = v, v
		}
		b.WriteString(url.QueryEscape(name))
		if v == "" && !strings.Contains(part, "=") {
			continue
		}
		b.WriteByte('=')
		switch {
		case secretParams[strings.ToLower(name)]:
			b.WriteString("[masked]")
		case redact(value) != value || redact(plus) != plus:
			b.WriteString(url.QueryEscape(redact(plus)))
		default:
			b.WriteString(url.QueryEscape(value))
			continue
		}
		masked = append(masked, name)
	}
	return b.String(), masked
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// recoverPanics turns a panic in a handler into an internal error, so one bad
// request cannot take the process down.
func recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			stack := make([]byte, 4<<10)
			stack = stack[:runtime.Stack(stack, false)]
			err = verify.ErrInternal.With(fmt.Errorf("panic: %v\n%s", r, stack), 0)
		}()
		return next(c)
	}
}

// securityHeaders apply to every answer; pages add their own policy.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

// noStore keeps API answers out of every cache: they are about one person.
func noStore(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		return next(c)
	}
}
