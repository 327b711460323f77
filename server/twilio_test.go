package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify/twilioverify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// newTwilioStack is the whole path a request takes in production: the real
// handler, the Twilio backend over the real SDK, and a local stand-in of
// Verify v2 on the other end of a real connection.
func newTwilioStack(t *testing.T, timeout time.Duration) (http.Handler, *twiliotest.Server) {
	t.Helper()
	standin := twiliotest.NewServer(twiliotest.Options{})
	t.Cleanup(standin.Close)
	backend, err := twilioverify.New(twilioverify.Config{
		AccountSID:     standin.AccountSID(),
		Username:       standin.AccountSID(),
		Password:       standin.AuthToken(),
		ServiceSID:     standin.ServiceSID(),
		BaseURL:        standin.URL(),
		RequestTimeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)
	return newTestHandler(t, backend, handlerOpts{}), standin
}

// TestTwilioMapping drives every row of the error table that comes from
// Twilio through the whole stack: what the stand-in answers, the status and
// code the client gets.
func TestTwilioMapping(t *testing.T) {
	tests := []struct {
		name       string
		failure    twiliotest.Failure
		wantStatus int
		wantCode   string
		wantRetry  string
	}{
		{"60200 invalid parameter", twiliotest.Failure{Status: 400, Code: 60200, Message: "Invalid parameter"}, 400, "invalid_parameter", ""},
		{"20404 not found", twiliotest.Failure{Status: 404, Code: 20404, Message: "not found"}, 410, "verification_not_found", ""},
		{"60202 max checks", twiliotest.Failure{Status: 429, Code: 60202, Message: "Max check attempts reached"}, 429, "too_many_attempts", ""},
		{"60203 max sends", twiliotest.Failure{Status: 429, Code: 60203, Message: "Max send attempts reached", RetryAfter: "120"}, 429, "too_many_sends", "120"},
		{"60212 concurrent", twiliotest.Failure{Status: 429, Code: 60212, Message: "Too many concurrent requests"}, 429, "too_many_concurrent_requests", ""},
		{"20429 busy", twiliotest.Failure{Status: 429, Code: 20429, Message: "Too many requests", RetryAfter: "30"}, 429, "upstream_busy", "30"},
		{"60205 landline", twiliotest.Failure{Status: 400, Code: 60205, Message: "SMS is not supported by landline phone number"}, 422, "sms_not_supported", ""},
		{"60223 channel disabled", twiliotest.Failure{Status: 400, Code: 60223, Message: "Delivery channel disabled"}, 422, "channel_disabled", ""},
		{"60605 geo permissions", twiliotest.Failure{Status: 403, Code: 60605, Message: "Verification delivery attempt blocked"}, 403, "destination_blocked", ""},
		{"60410 fraud guard", twiliotest.Failure{Status: 403, Code: 60410, Message: "Verification delivery attempt blocked"}, 403, "number_blocked", ""},
		{"20003 credentials", twiliotest.Failure{Status: 401, Code: 20003, Message: "Authenticate"}, 502, "upstream_misconfigured", ""},
		{"unknown 4xx code", twiliotest.Failure{Status: 400, Code: 21608, Message: "Something of ours"}, 502, "upstream_misconfigured", ""},
		{"5xx", twiliotest.Failure{Status: 503, Code: 20500, Message: "Internal"}, 502, "upstream_unavailable", ""},
		{"html 502", twiliotest.Failure{Status: 502, RawBody: "<html><body>Bad Gateway</body></html>", ContentType: "text/html"}, 502, "upstream_unavailable", ""},
		{"garbled 200", twiliotest.Failure{Status: 200, RawBody: `{"sid": 12`, ContentType: "application/json"}, 502, "upstream_unavailable", ""},
		{"hang past the deadline", twiliotest.Failure{Hang: true}, 504, "upstream_timeout", ""},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/request-otp", "/api/verify-otp"} {
			t.Run(tt.name+path, func(t *testing.T) {
				wantStatus, wantCode := tt.wantStatus, tt.wantCode
				if tt.failure.Code == 20404 && path == "/api/request-otp" {
					// On a start, 20404 can only mean a wrong service SID.
					wantStatus, wantCode = 502, "upstream_misconfigured"
				}
				h, standin := newTwilioStack(t, 300*time.Millisecond)
				f := tt.failure
				standin.SetFailure(testNumber, &f)
				rec := postJSON(h, path, `{"phoneNumber":"+14155552671","code":"123456"}`)
				checkError(t, rec, path, wantStatus, wantCode)
				if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
					t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
				}
				if strings.Contains(rec.Body.String(), tt.failure.Message) && tt.failure.Message != "" {
					t.Errorf("Twilio's message reached the client: %s", rec.Body)
				}
			})
		}
	}
}

// TestTwilioClientGoneCancelsUpstream: a client that hangs up mid-call
// cancels the call to Twilio rather than leaving it running.
func TestTwilioClientGoneCancelsUpstream(t *testing.T) {
	h, standin := newTwilioStack(t, 10*time.Second)
	standin.SetFailure(testNumber, &twiliotest.Failure{Hang: true})
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/request-otp", strings.NewReader(`{"phoneNumber":"+14155552671"}`))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	verifytest.WaitFor(t, "the request to reach the stand-in", func() bool { return standin.Requests() == 1 })
	cancel()
	<-done
	verifytest.WaitFor(t, "the upstream call to be canceled", func() bool { return standin.Canceled() == 1 })
}
