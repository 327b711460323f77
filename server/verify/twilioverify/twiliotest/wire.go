package twiliotest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// errorBody is Twilio's error answer; the SDK decodes it into
// client.TwilioRestError, reading the status from the body, not the line.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func newErrorBody(status, code int, msg string) errorBody {
	return errorBody{
		Code:     code,
		Message:  msg,
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		Status:   status,
	}
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, newErrorBody(status, code, msg))
}

// writeJSON answers v with an explicit Content-Length, as Twilio does, so a
// client that reads the body to its end can reuse the connection.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed types reach here.
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// date formats t as Twilio's JSON does (RFC 3339, UTC, whole seconds); the
// SDK decodes these into time.Time and fails on any other form.
func date(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// verificationBody is verify.v2.service.verification, every field present,
// nulls included, as Twilio answers.
type verificationBody struct {
	SID              string         `json:"sid"`
	ServiceSID       string         `json:"service_sid"`
	AccountSID       string         `json:"account_sid"`
	To               string         `json:"to"`
	Channel          string         `json:"channel"`
	Status           string         `json:"status"`
	Valid            bool           `json:"valid"`
	Lookup           map[string]any `json:"lookup"`
	Amount           *string        `json:"amount"`
	Payee            *string        `json:"payee"`
	SendCodeAttempts []sendAttempt  `json:"send_code_attempts"`
	DateCreated      string         `json:"date_created"`
	DateUpdated      string         `json:"date_updated"`
	Sna              any            `json:"sna"`
	URL              string         `json:"url"`
}

func (h *Handler) verificationBody(base string, v *verification, status string) verificationBody {
	return verificationBody{
		SID:              v.sid,
		ServiceSID:       h.serviceSID,
		AccountSID:       h.accountSID,
		To:               v.to,
		Channel:          v.channel,
		Status:           status,
		Valid:            status == "approved",
		Lookup:           map[string]any{},
		SendCodeAttempts: append([]sendAttempt(nil), v.sends...),
		DateCreated:      date(v.created),
		DateUpdated:      date(v.updated),
		URL:              base + "/v2/Services/" + h.serviceSID + "/Verifications/" + v.sid,
	}
}

// checkBody is verify.v2.service.verification_check.
type checkBody struct {
	SID                   string  `json:"sid"`
	ServiceSID            string  `json:"service_sid"`
	AccountSID            string  `json:"account_sid"`
	To                    string  `json:"to"`
	Channel               string  `json:"channel"`
	Status                string  `json:"status"`
	Valid                 bool    `json:"valid"`
	Amount                *string `json:"amount"`
	Payee                 *string `json:"payee"`
	DateCreated           string  `json:"date_created"`
	DateUpdated           string  `json:"date_updated"`
	SnaAttemptsErrorCodes []any   `json:"sna_attempts_error_codes"`
}

func (h *Handler) checkBody(v *verification, status string) checkBody {
	b := checkBody{
		SID:         v.sid,
		ServiceSID:  h.serviceSID,
		AccountSID:  h.accountSID,
		To:          v.to,
		Channel:     v.channel,
		Status:      status,
		Valid:       status == "approved",
		DateCreated: date(v.created),
		DateUpdated: date(v.updated),
	}
	// Twilio answers an empty list after an sna verification, null otherwise.
	if v.channel == "sna" {
		b.SnaAttemptsErrorCodes = []any{}
	}
	return b
}

// serviceBody is a plausible verify.v2.service: a 6-digit code, custom
// codes allowed, no lookup, PSD2 or push configured.
func serviceBody(base, sid, account string, created time.Time) map[string]any {
	self := base + "/v2/Services/" + sid
	return map[string]any{
		"sid":                               sid,
		"account_sid":                       account,
		"friendly_name":                     "verifyd",
		"code_length":                       6,
		"lookup_enabled":                    false,
		"psd2_enabled":                      false,
		"skip_sms_to_landlines":             false,
		"dtmf_input_required":               false,
		"tts_name":                          nil,
		"do_not_share_warning_enabled":      false,
		"custom_code_enabled":               true,
		"push":                              map[string]any{"include_date": false, "apn_credential_sid": nil, "fcm_credential_sid": nil},
		"totp":                              map[string]any{"issuer": nil, "time_step": nil, "code_length": nil, "skew": nil},
		"default_template_sid":              nil,
		"whatsapp":                          map[string]any{"msg_service_sid": nil, "from": nil},
		"passkeys":                          nil,
		"verify_event_subscription_enabled": false,
		"date_created":                      date(created),
		"date_updated":                      date(created),
		"url":                               self,
		"links": map[string]any{
			"verification_checks":      self + "/VerificationCheck",
			"verifications":            self + "/Verifications",
			"rate_limits":              self + "/RateLimits",
			"messaging_configurations": self + "/MessagingConfigurations",
			"entities":                 self + "/Entities",
			"webhooks":                 self + "/Webhooks",
			"access_tokens":            self + "/AccessTokens",
		},
	}
}
