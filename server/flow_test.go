package server_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify"
)

// TestFlowOutcomesThroughBothSurfaces runs one table of outcomes through
// the JSON API and through the form: the same flow answers both, so each
// outcome has the same status and the same sentence on each surface.
func TestFlowOutcomesThroughBothSurfaces(t *testing.T) {
	tests := []struct {
		name     string
		status   verify.Status // what the check answers
		checkErr error
		code     string // what is typed
		want     int
		wantCode string // the API's code; "" on success
		sentence string // what both surfaces say
	}{
		{"approved", verify.StatusApproved, nil, "123456", 200, "", "verified"},
		{"wrong code", verify.StatusPending, nil, "123456", 400, "wrong_code", "That code is not right."},
		{"not digits", verify.StatusApproved, nil, "12ab", 400, "invalid_code", "4 to 10 digits"},
		{"expired", verify.StatusExpired, nil, "123456", 410, "verification_expired", "This code has expired."},
		{"maxed out", verify.StatusMaxAttemptsReached, nil, "123456", 410, "verification_max_attempts_reached", "Too many wrong codes."},
		{"gone upstream", "", verify.ErrNotFound, "123456", 410, "verification_not_found", "no longer valid"},
		{"too many checks", "", verify.ErrTooManyAttempts.With(nil, 90*time.Second), "123456", 429, "too_many_attempts", "Too many wrong codes. Request a new code. You can try again in 90 seconds."},
		{"upstream down", "", verify.ErrUnavailable, "123456", 502, "upstream_unavailable", "temporarily unavailable"},
		{"upstream slow", "", verify.ErrTimeout, "123456", 504, "upstream_timeout", "taking too long"},
	}
	for _, tt := range tests {
		newV := func() *recordingVerifier {
			return &recordingVerifier{checkFn: func(req verify.CheckRequest) (verify.Verification, error) {
				return verify.Verification{SID: testSID, To: req.To.E164(), Channel: verify.ChannelSMS, Status: tt.status}, tt.checkErr
			}}
		}
		t.Run(tt.name+"/api", func(t *testing.T) {
			h := newTestHandler(t, newV(), handlerOpts{})
			apiSays(t, postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"`+tt.code+`"}`), tt.want, tt.wantCode, tt.sentence)
		})
		t.Run(tt.name+"/form", func(t *testing.T) {
			b := newBrowser(t, newV(), handlerOpts{})
			b.get("/")
			b.post("/request", url.Values{"phone": {"+14155552671"}})
			b.post("/verify", url.Values{"code": {tt.code}})
			step := "step-code"
			if tt.want == 200 {
				step = "step-done"
			}
			b.expect(tt.want, step, tt.sentence)
		})
	}

	// Sending, through both: the same sentence about where the code went.
	for _, tt := range []struct {
		name     string
		startErr error
		want     int
		sentence string
	}{
		{"sent", nil, 200, "We sent a code to +1 415-555-2671 by text message."},
		{"blocked", verify.ErrDestinationBlocked, 403, "We cannot send codes to this country."},
		{"too many sends", verify.ErrTooManySends.With(nil, 5*time.Minute), 429, "Please wait before requesting another. You can try again in 5 minutes."},
	} {
		newV := func() *recordingVerifier {
			return &recordingVerifier{startFn: func(req verify.StartRequest) (verify.Verification, error) {
				if tt.startErr != nil {
					return verify.Verification{}, tt.startErr
				}
				return verify.Verification{SID: testSID, To: req.To.E164(), Channel: req.Channel, Status: verify.StatusPending, SendAttempts: 1}, nil
			}}
		}
		t.Run("start "+tt.name+"/api", func(t *testing.T) {
			apiSays(t, postJSON(newTestHandler(t, newV(), handlerOpts{}), "/api/request-otp", `{"phoneNumber":"+14155552671"}`), tt.want, "", tt.sentence)
		})
		t.Run("start "+tt.name+"/form", func(t *testing.T) {
			b := newBrowser(t, newV(), handlerOpts{})
			b.get("/")
			b.post("/request", url.Values{"phone": {"+14155552671"}})
			step := "step-phone"
			if tt.want == 200 {
				step = "step-code"
			}
			b.expect(tt.want, step, tt.sentence)
		})
	}
}

// apiSays checks an API answer: its status, its code when wantCode is
// set, and its sentence (message on success, error otherwise), which is
// the page's, wait included; a wait comes as retryAfter too.
func apiSays(t *testing.T, rec *httptest.ResponseRecorder, want int, wantCode, sentence string) {
	t.Helper()
	got := decodeBody(t, rec)
	text, _ := got["error"].(string)
	if want == 200 {
		text, _ = got["message"].(string)
	}
	if strings.Contains(sentence, "You can try again in ") && got["retryAfter"] == nil {
		t.Errorf("API: %v has no retryAfter", got)
	}
	if rec.Code != want || (wantCode != "" && got["code"] != wantCode) || !strings.Contains(text, sentence) {
		t.Errorf("API: %d %v, want %d %s saying %q", rec.Code, got, want, wantCode, sentence)
	}
}
