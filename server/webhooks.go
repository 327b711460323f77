package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twilio/twilio-go/client"

	"verifyd/server/delivery"
	"verifyd/server/flow"
	"verifyd/server/verify"
)

// StatusCallbackPath is where Twilio posts the messaging backend's status
// callbacks; PUBLIC_URL + this is the URL they are signed for.
const StatusCallbackPath = "/webhooks/twilio/status"

// maxCallbackBytes bounds a status callback's body: Twilio's are a few
// hundred bytes.
const maxCallbackBytes = 8 << 10

var (
	errUnsigned = &verify.Error{Kind: verify.KindForbidden, Code: "invalid_signature",
		Message: "This request is not signed by Twilio."}
	errNotACallback = &verify.Error{Kind: verify.KindInvalid, Code: "invalid_callback",
		Message: "This request is not a status callback."}
)

// handleStatusCallback takes Twilio's status callback of a message or a
// call: its X-Twilio-Signature is checked with twilio-go's validator, over
// the URL rebuilt from the public base URL (never the request's Host, which
// a proxy may change or a caller may forge) and the posted parameters,
// with the account's auth token. Unsigned or forged callbacks get 403,
// oversized or malformed ones 400; none changes anything. A good one
// answers 204 at once.
func handleStatusCallback(fl *flow.Flow, callbackURL, authToken string, now func() time.Time) echo.HandlerFunc {
	validator := client.NewRequestValidator(authToken)
	return func(c echo.Context) error {
		r := c.Request()
		r.Body = http.MaxBytesReader(c.Response(), r.Body, maxCallbackBytes)
		if err := r.ParseForm(); err != nil {
			return errNotACallback.With(err, 0)
		}
		params := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			params[k] = strings.Join(v, ",")
		}
		url := callbackURL
		if q := r.URL.RawQuery; q != "" {
			url += "?" + q
		}
		sig := r.Header.Get("X-Twilio-Signature")
		if sig == "" || !validator.Validate(url, params, sig) {
			return errUnsigned.With(errors.New("X-Twilio-Signature missing or not Twilio's"), 0)
		}
		st, err := delivery.FromCallback(params, now())
		if err != nil {
			return errNotACallback.With(err, 0)
		}
		if err := fl.StatusCallback(r.Context(), c.QueryParam("v"), st); err != nil {
			if errors.Is(err, verify.ErrInvalidSID) {
				return errNotACallback.With(err, 0)
			}
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// deliveryResponse is GET /api/delivery's answer: no number.
type deliveryResponse struct {
	VerificationSID string `json:"verificationSid"`
	Status          string `json:"status"`
	Channel         string `json:"channel,omitempty"`
	ErrorCode       int    `json:"errorCode,omitempty"`
	CallAvailable   bool   `json:"callAvailable"`
}

// handleDelivery answers what became of a verification's latest send.
func handleDelivery(fl *flow.Flow) echo.HandlerFunc {
	return func(c echo.Context) error {
		d, err := fl.Delivery(c.Request().Context(), c.QueryParam("verificationSid"), clientIP(c))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, deliveryResponse{VerificationSID: d.SID, Status: string(d.Status),
			Channel: string(d.Channel), ErrorCode: d.ErrorCode, CallAvailable: d.CallNow})
	}
}
