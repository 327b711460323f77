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

	"verifyd/server/verify"
)

type requestOTPBody struct {
	PhoneNumber string `json:"phoneNumber"`
	Channel     string `json:"channel"`
	Locale      string `json:"locale"`
}

type requestOTPResponse struct {
	VerificationSID  string `json:"verificationSid"`
	Status           string `json:"status"`
	PhoneNumber      string `json:"phoneNumber"`
	MaskedNumber     string `json:"maskedPhoneNumber"`
	Channel          string `json:"channel"`
	Locale           string `json:"locale,omitempty"`
	SendCodeAttempts int    `json:"sendCodeAttempts,omitempty"`
	Message          string `json:"message"`
}

type verifyOTPBody struct {
	PhoneNumber     string     `json:"phoneNumber"`
	VerificationSID string     `json:"verificationSid"`
	Code            flexString `json:"code"`
}

type verifyOTPResponse struct {
	Verified        bool   `json:"verified"`
	Status          string `json:"status"`
	PhoneNumber     string `json:"phoneNumber"`
	VerificationSID string `json:"verificationSid"`
	Message         string `json:"message"`
}

func handleRequestOTP(cfg Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		var body requestOTPBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		req, err := startRequest(cfg, body, c.Request().Header.Get("Accept-Language"))
		if err != nil {
			return err
		}
		req.ClientIP = clientIP(c)
		setLogTarget(c, req.To)
		v, err := cfg.Verifier.Start(c.Request().Context(), req)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, requestOTPResponse{
			VerificationSID:  v.SID,
			Status:           string(v.Status),
			PhoneNumber:      req.To,
			MaskedNumber:     maskForDisplay(req.To, req.Parsed),
			Channel:          string(req.Channel),
			Locale:           req.Locale,
			SendCodeAttempts: v.SendAttempts,
			// A second send within the code's life says so: it is a resend.
			Message: sentSentence(req.To, req.Parsed, req.Channel, v.SendAttempts > 1),
		})
	}
}

// startRequest validates a request for a code. Everything is checked here,
// before anything is sent upstream.
func startRequest(cfg Config, body requestOTPBody, acceptLanguage string) (verify.StartRequest, error) {
	num, err := cfg.Phones.Parse(body.PhoneNumber)
	if err != nil {
		return verify.StartRequest{}, err
	}
	channel, err := cfg.Channels.Pick(body.Channel)
	if err != nil {
		return verify.StartRequest{}, err
	}
	locale := cfg.Locales.FromAcceptLanguage(acceptLanguage)
	if body.Locale != "" {
		if locale, err = cfg.Locales.Exact(body.Locale); err != nil {
			return verify.StartRequest{}, err
		}
	}
	return verify.StartRequest{To: num.E164, Channel: channel, Locale: locale, Parsed: num}, nil
}

func handleVerifyOTP(cfg Config) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(ctxKeyVerifyRoute, true)
		var body verifyOTPBody
		if err := decodeJSON(c, &body); err != nil {
			return err
		}
		req, err := checkRequest(cfg, body)
		if err != nil {
			return err
		}
		req.ClientIP = clientIP(c)
		setLogTarget(c, req.To)
		v, err := cfg.Verifier.Check(c.Request().Context(), req)
		if err != nil {
			return err
		}
		if err := verify.Outcome(v); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, verifyOTPResponse{
			Verified:        true,
			Status:          string(v.Status),
			PhoneNumber:     v.To,
			VerificationSID: v.SID,
			Message:         "Your phone number is verified.",
		})
	}
}

// checkRequest validates a code check. When both a number and a SID are
// given, the number wins: it is what the client is asking about, and checking
// by SID could approve a different number than the one the client names.
func checkRequest(cfg Config, body verifyOTPBody) (verify.CheckRequest, error) {
	var req verify.CheckRequest
	switch {
	case body.PhoneNumber != "":
		num, err := cfg.Phones.Parse(body.PhoneNumber)
		if err != nil {
			return req, err
		}
		req.To, req.Parsed = num.E164, num
	case body.VerificationSID != "":
		if !verify.ValidSID(body.VerificationSID) {
			return req, verify.ErrInvalidSID
		}
		req.SID = body.VerificationSID
	default:
		return req, verify.ErrMissingTarget
	}
	code, err := verify.ParseCode(string(body.Code))
	if err != nil {
		return req, err
	}
	req.Code = code
	return req, nil
}

type healthResponse struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
	Limiter   string `json:"limiter,omitempty"`
}

// handleHealth answers UP while the process serves. A degraded limiter is
// reported but does not make the service DOWN: it keeps answering, open or
// closed as configured.
func handleHealth(now func() time.Time, limiterState func() string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		h := healthResponse{Status: "UP", Timestamp: now().UTC().Format(time.RFC3339)}
		if limiterState != nil {
			h.Limiter = limiterState()
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
