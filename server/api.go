package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"verifyd/server/flow"
	"verifyd/server/verify"
)

type requestOTPBody struct {
	PhoneNumber string `json:"phoneNumber"`
	// Country (ISO 3166 alpha-2) reads a national number in that country.
	Country string `json:"country"`
	Channel string `json:"channel"`
	Locale  string `json:"locale"`
	// Altcha is a solved step-up challenge (base64 ALTCHA payload), sent
	// again after a challenge_required answer.
	Altcha string `json:"altcha"`
}

type requestOTPResponse struct {
	VerificationSID  string `json:"verificationSid"`
	Status           string `json:"status"`
	PhoneNumber      string `json:"phoneNumber"`
	MaskedNumber     string `json:"maskedPhoneNumber"`
	DisplayNumber    string `json:"displayPhoneNumber"`
	Channel          string `json:"channel"`
	Locale           string `json:"locale,omitempty"`
	SendCodeAttempts int    `json:"sendCodeAttempts,omitempty"`
	Message          string `json:"message"`
}

type verifyOTPBody struct {
	PhoneNumber     string     `json:"phoneNumber"`
	Country         string     `json:"country"`
	VerificationSID string     `json:"verificationSid"`
	Code            flexString `json:"code"`
	Nonce           *string    `json:"nonce"`
}

type verifyOTPResponse struct {
	Verified         bool   `json:"verified"`
	Status           string `json:"status"`
	PhoneNumber      string `json:"phoneNumber"`
	VerificationSID  string `json:"verificationSid"`
	Message          string `json:"message"`
	Receipt          string `json:"receipt,omitempty"`
	ReceiptExpiresAt string `json:"receiptExpiresAt,omitempty"`
}

func handleRequestOTP(fl *flow.Flow, cats *catalogs) echo.HandlerFunc {
	return func(c echo.Context) error {
		var body requestOTPBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		num, err := fl.NumberIn(body.PhoneNumber, body.Country)
		if errors.Is(err, verify.ErrMissingTarget) {
			err = verify.ErrMissingPhone
		}
		if err != nil {
			return err
		}
		setLogTarget(c, num)
		sent, err := fl.Start(c.Request().Context(), flow.Start{
			To:             num,
			Channel:        body.Channel,
			Locale:         body.Locale,
			AcceptLanguage: c.Request().Header.Get("Accept-Language"),
			ClientIP:       clientIP(c),
			Proof:          body.Altcha,
		})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, requestOTPResponse{
			VerificationSID:  sent.SID,
			Status:           string(sent.Status),
			PhoneNumber:      num.E164(),
			MaskedNumber:     flow.Masked(num),
			DisplayNumber:    num.International(),
			Channel:          string(sent.Channel),
			Locale:           sent.Locale,
			SendCodeAttempts: sent.SendAttempts,
			Message:          sent.Message(cats.translate(cats.pick(c))),
		})
	}
}

// checkFailure is verify-otp's failure: its body also says "verified":
// false, which the single-page apps built on this API read.
type checkFailure struct{ error }

func (f checkFailure) Unwrap() error { return f.error }

func (checkFailure) shapeBody(b *errorBody) { b.Verified = new(bool) }

// checkFailures makes every failure of verify-otp a checkFailure, a panic
// included (the route recovers its own, inside this).
func checkFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			return checkFailure{err}
		}
		return nil
	}
}

func handleVerifyOTP(fl *flow.Flow, cats *catalogs) echo.HandlerFunc {
	check := func(c echo.Context) (verifyOTPResponse, error) {
		var body verifyOTPBody
		if err := decodeJSON(c, &body); err != nil {
			return verifyOTPResponse{}, err
		}
		in := flow.Check{SID: body.VerificationSID, Code: string(body.Code), ClientIP: clientIP(c)}
		if body.PhoneNumber != "" {
			num, err := fl.NumberIn(body.PhoneNumber, body.Country)
			if err != nil {
				return verifyOTPResponse{}, err
			}
			in.To = num
			setLogTarget(c, num)
		}
		if body.Nonce != nil {
			nonce, err := verify.ParseNonce(*body.Nonce)
			if err != nil {
				return verifyOTPResponse{}, err
			}
			in.Nonce = nonce
		}
		v, err := fl.Check(c.Request().Context(), in)
		if err != nil {
			return verifyOTPResponse{}, err
		}
		out := verifyOTPResponse{
			Verified:        true,
			Status:          string(v.Status),
			PhoneNumber:     v.To,
			VerificationSID: v.SID,
			Message:         cats.translate(cats.pick(c))(flow.VerifiedMessage),
		}
		if v.Receipt.Token != "" {
			out.Receipt = v.Receipt.Token
			out.ReceiptExpiresAt = v.Receipt.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return out, nil
	}
	return func(c echo.Context) error {
		out, err := check(c)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}

type healthResponse struct {
	Status       string            `json:"status"`
	Timestamp    string            `json:"timestamp"`
	Limiter      string            `json:"limiter,omitempty"`
	Dependencies map[string]string `json:"dependencies,omitempty"`
}

// handleHealth answers UP while the process serves. A degraded limiter or
// dependency is reported but does not make the service DOWN: it keeps
// answering, open or closed as configured. Dependencies are as the last
// readiness probe found them; /health itself probes nothing.
func handleHealth(now func() time.Time, limiterState func() string, checks []*cachedCheck) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		h := healthResponse{Status: "UP", Timestamp: now().UTC().Format(time.RFC3339)}
		if limiterState != nil {
			h.Limiter = limiterState()
		}
		if len(checks) > 0 {
			h.Dependencies = make(map[string]string, len(checks))
			for _, ch := range checks {
				h.Dependencies[ch.Name] = ch.last()
			}
		}
		return c.JSON(http.StatusOK, h)
	}
}

// decodeJSON reads one JSON object of at most maxBodyBytes into dst. Unknown
// fields are ignored so that clients may send more than we read.
func decodeJSON(c echo.Context, dst any) error {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errUnsupportedMediaType
	}
	if r.ContentLength > maxBodyBytes {
		return errTooLarge
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return errMalformed.With(err, 0)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		if e, ok := errors.AsType[*verify.Error](err); ok {
			return e
		}
		return errMalformed.With(err, 0)
	}
	if dec.More() {
		return errMalformed.With(errors.New("data after the JSON object"), 0)
	}
	return nil
}

// flexString accepts a JSON string or a JSON number, keeping the number's
// digits as written: single-page apps send codes both ways.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if _, err := strconv.ParseUint(string(n), 10, 64); err != nil {
		return verify.ErrInvalidCode
	}
	*s = flexString(n)
	return nil
}

// handleChallenge issues a proof-of-work challenge (ALTCHA's format, so its
// widget can use this URL), for a client that solves one before it asks.
func handleChallenge(issue func() (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		ch, err := issue()
		if err != nil {
			return verify.ErrInternal.With(err, 0)
		}
		return c.JSON(http.StatusOK, ch)
	}
}

// jwksMaxAge is how long a client may cache the key set. Short: a rotation
// adds the new key before it signs anything only if the operator waits this
// long, and clients that see an unknown kid refetch anyway.
const jwksMaxAge = "public, max-age=300"

// handleJWKS publishes the receipt keys (RFC 7517 JWK set). With receipts
// off the set is empty: there is nothing to trust.
func handleJWKS(jwks []byte) echo.HandlerFunc {
	if jwks == nil {
		jwks = []byte(`{"keys":[]}`)
	}
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", jwksMaxAge)
		return c.Blob(http.StatusOK, "application/jwk-set+json", jwks)
	}
}
