package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

// testClientIP is the peer address httptest gives every request.
var testClientIP = netip.MustParseAddr("192.0.2.1")

// TestClientIP: X-Forwarded-For is believed only from a configured proxy; a
// spoofed header from anyone else (a private address included) changes
// nothing.
func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		peer    string
		xff     string
		want    string
	}{
		{"no proxies, no header", nil, "203.0.113.9", "", "203.0.113.9"},
		{"no proxies, spoofed header", nil, "203.0.113.9", "198.51.100.7", "203.0.113.9"},
		{"from the proxy", []string{"10.0.0.0/8"}, "10.1.2.3", "198.51.100.7", "198.51.100.7"},
		{"nearest untrusted hop", []string{"10.0.0.0/8"}, "10.1.2.3", "1.2.3.4, 198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"spoofed from outside the proxies", []string{"10.0.0.0/8"}, "203.0.113.9", "198.51.100.7", "203.0.113.9"},
		{"spoofed from a private address", []string{"10.0.0.0/8"}, "192.168.1.5", "198.51.100.7", "192.168.1.5"},
		{"spoofed from loopback", []string{"10.0.0.0/8"}, "127.0.0.1", "198.51.100.7", "127.0.0.1"},
		{"ipv6 proxy", []string{"2001:db8::/32"}, "[2001:db8::1]", "198.51.100.7", "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var trusted []netip.Prefix
			for _, p := range tt.trusted {
				trusted = append(trusted, netip.MustParsePrefix(p))
			}
			v := &recordingVerifier{}
			h := newTestHandler(t, v, handlerOpts{trusted: trusted})
			req := httptest.NewRequest(http.MethodPost, "/api/request-otp", strings.NewReader(`{"phoneNumber":"+14155552671"}`))
			req.Header.Set("Content-Type", "application/json")
			req.RemoteAddr = tt.peer + ":4242"
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if len(v.starts) != 1 || v.starts[0].ClientIP.String() != tt.want {
				t.Errorf("peer %s with X-Forwarded-For %q: client %v, want %s", tt.peer, tt.xff, v.starts, tt.want)
			}
		})
	}
}

func TestRequestOTP(t *testing.T) {
	v := &recordingVerifier{}
	h := newTestHandler(t, v, handlerOpts{})
	rec := postJSON(h, "/api/request-otp", `{"phoneNumber": " +1 415-555-2671 "}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	got := decodeBody(t, rec)
	want := map[string]any{"verificationSid": testSID, "status": "pending", "phoneNumber": testNumber, "channel": "sms"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("body[%q] = %v, want %v", k, got[k], w)
		}
	}
	if _, ok := got["message"].(string); !ok {
		t.Errorf("body has no message: %v", got)
	}
	if len(v.starts) != 1 || v.starts[0].To.E164() != testNumber || v.starts[0].Channel != verify.ChannelSMS {
		t.Errorf("upstream saw %+v, want one start to %s by sms", v.starts, testNumber)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if rec.Header().Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id in the answer")
	}
}

func TestRequestOTPNormalisesAndPicks(t *testing.T) {
	tests := []struct {
		name           string
		opts           handlerOpts
		body           string
		acceptLanguage string
		wantTo         string
		wantChannel    verify.Channel
		wantLocale     string
	}{
		{"e164", handlerOpts{}, `{"phoneNumber":"+442071838750"}`, "", "+442071838750", "sms", ""},
		{"national with region", handlerOpts{region: "US"}, `{"phoneNumber":"(415) 555-2671"}`, "", testNumber, "sms", ""},
		{"international with region", handlerOpts{region: "US"}, `{"phoneNumber":"+44 20 7183 8750"}`, "", "+442071838750", "sms", ""},
		{"channel chosen", handlerOpts{channels: []string{"sms", "call"}}, `{"phoneNumber":"+14155552671","channel":"call"}`, "", testNumber, "call", ""},
		{"first channel by default", handlerOpts{channels: []string{"call", "sms"}}, `{"phoneNumber":"+14155552671"}`, "", testNumber, "call", ""},
		{"locale from header", handlerOpts{}, `{"phoneNumber":"+14155552671"}`, "de-DE,de;q=0.9,en;q=0.5", testNumber, "sms", "de"},
		{"regional locale from header", handlerOpts{}, `{"phoneNumber":"+14155552671"}`, "pt-BR", testNumber, "sms", "pt-BR"},
		{"unsupported header language", handlerOpts{}, `{"phoneNumber":"+14155552671"}`, "xx-YY", testNumber, "sms", ""},
		{"body locale wins", handlerOpts{}, `{"phoneNumber":"+14155552671","locale":"pt-br"}`, "de", testNumber, "sms", "pt-BR"},
		{"unknown fields ignored", handlerOpts{}, `{"phoneNumber":"+14155552671","extra":{"a":1}}`, "", testNumber, "sms", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &recordingVerifier{}
			h := newTestHandler(t, v, tt.opts)
			rec := postJSON(h, "/api/request-otp", tt.body, "Accept-Language", tt.acceptLanguage)
			if rec.Code != http.StatusOK {
				t.Fatalf("POST %s = %d %s, want 200", tt.body, rec.Code, rec.Body)
			}
			want := verify.StartRequest{To: verifytest.Number(tt.wantTo), Channel: tt.wantChannel, Locale: tt.wantLocale, ClientIP: testClientIP}
			if len(v.starts) != 1 || v.starts[0] != want {
				t.Errorf("POST %s sent %+v upstream, want %+v", tt.body, v.starts, want)
			}
		})
	}
}

// badRequest is one request that must be refused before anything reaches the
// verifier.
type badRequest struct {
	name        string
	path        string
	contentType string
	body        string
	wantStatus  int
	wantCode    string
}

func TestBadInputIsRefusedLocally(t *testing.T) {
	long := `{"phoneNumber":"+14155552671","pad":"` + strings.Repeat("x", 5000) + `"}`
	tests := []badRequest{
		{"empty number", "/api/request-otp", "", `{"phoneNumber":""}`, 400, "missing_phone_number"},
		{"no number", "/api/request-otp", "", `{}`, 400, "missing_phone_number"},
		{"letters", "/api/request-otp", "", `{"phoneNumber":"call me"}`, 400, "invalid_phone_number"},
		{"national without region", "/api/request-otp", "", `{"phoneNumber":"4155552671"}`, 400, "invalid_phone_number"},
		{"too short", "/api/request-otp", "", `{"phoneNumber":"+1415555"}`, 400, "invalid_phone_number"},
		{"invalid for its country", "/api/request-otp", "", `{"phoneNumber":"+11235552671"}`, 400, "invalid_phone_number"},
		{"unknown country code", "/api/request-otp", "", `{"phoneNumber":"+9991234567"}`, 400, "invalid_phone_number"},
		{"absurdly long", "/api/request-otp", "", `{"phoneNumber":"+1` + strings.Repeat("5", 100) + `"}`, 400, "invalid_phone_number"},
		{"number as JSON number", "/api/request-otp", "", `{"phoneNumber":14155552671}`, 400, "malformed_json"},
		{"channel not allowed", "/api/request-otp", "", `{"phoneNumber":"+14155552671","channel":"call"}`, 400, "channel_not_allowed"},
		{"unknown channel", "/api/request-otp", "", `{"phoneNumber":"+14155552671","channel":"email"}`, 400, "channel_not_allowed"},
		{"unsupported locale", "/api/request-otp", "", `{"phoneNumber":"+14155552671","locale":"xx"}`, 400, "invalid_locale"},
		{"malformed JSON", "/api/request-otp", "", `{"phoneNumber":`, 400, "malformed_json"},
		{"empty body", "/api/request-otp", "", ``, 400, "malformed_json"},
		{"not an object", "/api/request-otp", "", `["+14155552671"]`, 400, "malformed_json"},
		{"two objects", "/api/request-otp", "", `{"phoneNumber":"+14155552671"}{}`, 400, "malformed_json"},
		{"form post", "/api/request-otp", "application/x-www-form-urlencoded", `phoneNumber=%2B14155552671`, 415, "unsupported_media_type"},
		{"no content type", "/api/request-otp", "-", `{"phoneNumber":"+14155552671"}`, 415, "unsupported_media_type"},
		{"too large", "/api/request-otp", "", long, 413, "request_too_large"},

		{"code too short", "/api/verify-otp", "", `{"phoneNumber":"+14155552671","code":"123"}`, 400, "invalid_code"},
		{"code too long", "/api/verify-otp", "", `{"phoneNumber":"+14155552671","code":"12345678901"}`, 400, "invalid_code"},
		{"code with letters", "/api/verify-otp", "", `{"phoneNumber":"+14155552671","code":"12ab56"}`, 400, "invalid_code"},
		{"code missing", "/api/verify-otp", "", `{"phoneNumber":"+14155552671"}`, 400, "invalid_code"},
		{"negative code number", "/api/verify-otp", "", `{"phoneNumber":"+14155552671","code":-123456}`, 400, "invalid_code"},
		{"code as object", "/api/verify-otp", "", `{"phoneNumber":"+14155552671","code":{}}`, 400, "malformed_json"},
		{"no target", "/api/verify-otp", "", `{"code":"123456"}`, 400, "missing_phone_number"},
		{"bad number", "/api/verify-otp", "", `{"phoneNumber":"12","code":"123456"}`, 400, "invalid_phone_number"},
		{"bad sid", "/api/verify-otp", "", `{"verificationSid":"VE123","code":"123456"}`, 400, "invalid_verification_sid"},
		{"sid of another kind", "/api/verify-otp", "", `{"verificationSid":"VA0123456789abcdef0123456789abcdef","code":"123456"}`, 400, "invalid_verification_sid"},
		{"verify malformed", "/api/verify-otp", "", `{"code":`, 400, "malformed_json"},
		{"verify wrong type", "/api/verify-otp", "text/plain", `{}`, 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &recordingVerifier{}
			h := newTestHandler(t, v, handlerOpts{})
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			checkError(t, rec, tt.path, tt.wantStatus, tt.wantCode)
			if n := v.calls(); n != 0 {
				t.Errorf("POST %s %s reached the verifier %d times, want 0", tt.path, tt.body, n)
			}
		})
	}
}

// checkError asserts the JSON error shape every failure shares.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, path string, wantStatus int, wantCode string) map[string]any {
	t.Helper()
	if rec.Code != wantStatus {
		t.Errorf("POST %s status = %d, want %d (body %s)", path, rec.Code, wantStatus, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("POST %s Content-Type = %q, want JSON", path, ct)
	}
	body := decodeBody(t, rec)
	if body["code"] != wantCode {
		t.Errorf("POST %s code = %v, want %s", path, body["code"], wantCode)
	}
	if msg, _ := body["error"].(string); msg == "" {
		t.Errorf("POST %s has no error message: %v", path, body)
	}
	verified, hasVerified := body["verified"]
	if path == "/api/verify-otp" && (!hasVerified || verified != false) {
		t.Errorf("POST %s verified = %v, want false", path, verified)
	}
	if path == "/api/request-otp" && hasVerified {
		t.Errorf("POST %s carries verified = %v, want none", path, verified)
	}
	return body
}

func TestVerifyOTP(t *testing.T) {
	tests := []struct {
		name string
		body string
		want verify.CheckRequest
	}{
		{"by number", `{"phoneNumber":"+14155552671","code":"123456"}`, verify.CheckRequest{To: verifytest.Number(testNumber), Code: "123456"}},
		{"by sid", `{"verificationSid":"` + testSID + `","code":"1234"}`, verify.CheckRequest{SID: testSID, Code: "1234"}},
		{"number wins over sid", `{"phoneNumber":"+14155552671","verificationSid":"` + testSID + `","code":"1234"}`, verify.CheckRequest{To: verifytest.Number(testNumber), Code: "1234"}},
		{"code as a number", `{"phoneNumber":"+14155552671","code":123456}`, verify.CheckRequest{To: verifytest.Number(testNumber), Code: "123456"}},
		{"code pasted with spaces", `{"phoneNumber":"+14155552671","code":" 123 456 "}`, verify.CheckRequest{To: verifytest.Number(testNumber), Code: "123456"}},
		{"ten digits", `{"phoneNumber":"+14155552671","code":"1234567890"}`, verify.CheckRequest{To: verifytest.Number(testNumber), Code: "1234567890"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &recordingVerifier{}
			h := newTestHandler(t, v, handlerOpts{})
			rec := postJSON(h, "/api/verify-otp", tt.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("POST %s = %d %s, want 200", tt.body, rec.Code, rec.Body)
			}
			got := decodeBody(t, rec)
			if got["verified"] != true || got["status"] != "approved" || got["phoneNumber"] != testNumber {
				t.Errorf("POST %s answered %v, want verified approved for %s", tt.body, got, testNumber)
			}
			if msg, _ := got["message"].(string); msg == "" {
				t.Errorf("POST %s has no message", tt.body)
			}
			tt.want.ClientIP = testClientIP
			if len(v.checks) != 1 || v.checks[0] != tt.want {
				t.Errorf("POST %s sent %+v upstream, want %+v", tt.body, v.checks, tt.want)
			}
		})
	}
}

// TestErrorMapping runs every error a backend can answer through the real
// handler and checks the status, code and Retry-After on both routes.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
	}{
		{verify.ErrInvalidParameter, 400},
		{verify.ErrNotFound, 410},
		{verify.ErrTooManyAttempts, 429},
		{verify.ErrTooManySends.With(errors.New("60203"), 90*time.Second), 429},
		{verify.ErrTooManyConcurrent, 429},
		{verify.ErrUpstreamBusy.With(nil, 1500*time.Millisecond), 429},
		{verify.ErrLandline, 422},
		{verify.ErrChannelDisabled, 422},
		{verify.ErrDestinationBlocked, 403},
		{verify.ErrNumberBlocked, 403},
		{verify.ErrMisconfigured.With(errors.New("twilio 20003: Authenticate"), 0), 502},
		{verify.ErrUnavailable.With(errors.New("connection refused"), 0), 502},
		{verify.ErrTimeout, 504},
		{errors.New("a bug"), 500},
	}
	for _, tt := range tests {
		e := verify.AsError(tt.err)
		for _, path := range []string{"/api/request-otp", "/api/verify-otp"} {
			if e.Kind == verify.KindGone && path == "/api/request-otp" {
				continue // a start names no verification that could be gone
			}
			t.Run(e.Code+path, func(t *testing.T) {
				v := &recordingVerifier{
					startFn: func(verify.StartRequest) (verify.Verification, error) { return verify.Verification{}, tt.err },
					checkFn: func(verify.CheckRequest) (verify.Verification, error) { return verify.Verification{}, tt.err },
				}
				h := newTestHandler(t, v, handlerOpts{})
				rec := postJSON(h, path, `{"phoneNumber":"+14155552671","code":"123456"}`)
				body := checkError(t, rec, path, tt.wantStatus, e.Code)
				wantRetry := ""
				if e.RetryAfter > 0 {
					wantRetry = fmt.Sprint(int((e.RetryAfter + time.Second - 1) / time.Second))
					if got := fmt.Sprint(body["retryAfter"]); got != wantRetry {
						t.Errorf("retryAfter field = %s, want %s", got, wantRetry)
					}
				}
				if got := rec.Header().Get("Retry-After"); got != wantRetry {
					t.Errorf("Retry-After = %q, want %q", got, wantRetry)
				}
				if strings.Contains(rec.Body.String(), "20003") || strings.Contains(rec.Body.String(), "refused") {
					t.Errorf("the cause leaked to the client: %s", rec.Body)
				}
			})
		}
	}
}

// TestCheckOutcomes maps each status a check can answer.
func TestCheckOutcomes(t *testing.T) {
	tests := []struct {
		status     verify.Status
		wantStatus int
		wantCode   string
	}{
		{verify.StatusPending, 400, "wrong_code"},
		{verify.StatusExpired, 410, "verification_expired"},
		{verify.StatusCanceled, 410, "verification_canceled"},
		{verify.StatusDeleted, 410, "verification_canceled"},
		{verify.StatusMaxAttemptsReached, 410, "verification_max_attempts_reached"},
		{verify.StatusFailed, 410, "verification_failed"},
		{"something new", 502, "upstream_unavailable"},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			v := &recordingVerifier{checkFn: func(req verify.CheckRequest) (verify.Verification, error) {
				return verify.Verification{SID: testSID, To: req.To.E164(), Status: tt.status}, nil
			}}
			h := newTestHandler(t, v, handlerOpts{})
			rec := postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456"}`)
			checkError(t, rec, "/api/verify-otp", tt.wantStatus, tt.wantCode)
		})
	}
}

func TestRoutingErrors(t *testing.T) {
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{})
	tests := []struct {
		method, path string
		wantStatus   int
		wantCode     string
	}{
		{http.MethodGet, "/api/nothing", 404, "not_found"},
		{http.MethodGet, "/static/missing.css", 404, "not_found"},
		{http.MethodGet, "/static/", 404, "not_found"},
		{http.MethodGet, "/api/request-otp", 405, "method_not_allowed"},
		{http.MethodPut, "/api/verify-otp", 405, "method_not_allowed"},
		{http.MethodDelete, "/health", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.wantStatus {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.wantStatus)
		}
		if body := decodeBody(t, rec); body["code"] != tt.wantCode {
			t.Errorf("%s %s code = %v, want %s", tt.method, tt.path, body["code"], tt.wantCode)
		}
		if tt.wantStatus == 405 && rec.Header().Get("Allow") == "" {
			t.Errorf("%s %s has no Allow header", tt.method, tt.path)
		}
	}
}

func TestHealth(t *testing.T) {
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /health = %d, want 200", rec.Code)
	}
	got := decodeBody(t, rec)
	if got["status"] != "UP" || got["timestamp"] != "2026-11-23T12:00:00Z" {
		t.Errorf("GET /health = %v, want UP at 2026-11-23T12:00:00Z", got)
	}
}

func TestPagesAndAssets(t *testing.T) {
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{})
	for _, path := range []string{"/", "/static/style.css"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 {
			t.Errorf("GET %s = %d, want 200", path, rec.Code)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options = %q, want nosniff", path, got)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("GET / CSP = %q, want frame-ancestors 'none'", csp)
	}
}

func TestCORS(t *testing.T) {
	const allowed = "https://app.example.com"
	tests := []struct {
		name       string
		origins    []string
		origin     string
		wantAllow  string
		wantStatus int
	}{
		{"allowed origin", []string{allowed}, allowed, allowed, http.StatusNoContent},
		{"other origin", []string{allowed}, "https://evil.example", "", http.StatusNoContent},
		{"none configured", nil, allowed, "", http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, &recordingVerifier{}, handlerOpts{origins: tt.origins})
			req := httptest.NewRequest(http.MethodOptions, "/api/request-otp", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("preflight from %s: Allow-Origin = %q, want %q", tt.origin, got, tt.wantAllow)
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("preflight from %s: status %d, want %d", tt.origin, rec.Code, tt.wantStatus)
			}
			if tt.wantAllow != "" && !strings.Contains(strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers")), "content-type") {
				t.Errorf("preflight from %s does not allow Content-Type", tt.origin)
			}

			// The actual POST carries the header only for an allowed origin.
			post := httptest.NewRequest(http.MethodPost, "/api/request-otp", strings.NewReader(`{"phoneNumber":"+14155552671"}`))
			post.Header.Set("Content-Type", "application/json")
			post.Header.Set("Origin", tt.origin)
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, post)
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("POST from %s: Allow-Origin = %q, want %q", tt.origin, got, tt.wantAllow)
			}
		})
	}
}

func TestPanicIsAnInternalError(t *testing.T) {
	v := &recordingVerifier{startFn: func(verify.StartRequest) (verify.Verification, error) { panic("boom") }}
	var logs bytes.Buffer
	h := newTestHandler(t, v, handlerOpts{logs: &logs})
	rec := postJSON(h, "/api/request-otp", `{"phoneNumber":"+14155552671"}`)
	checkError(t, rec, "/api/request-otp", 500, "internal_error")
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("the panic leaked to the client: %s", rec.Body)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}

	// verify-otp keeps its failure shape, and a page stays a page.
	v.checkFn = func(verify.CheckRequest) (verify.Verification, error) { panic("boom") }
	rec = postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456"}`)
	if got := decodeBody(t, rec); rec.Code != 500 || got["verified"] != false {
		t.Errorf("a panic in verify-otp answered %d %v, want 500 with verified false", rec.Code, got)
	}
	b := &browser{t: t, h: h}
	b.get("/")
	b.post("/request", url.Values{"phone": {"+14155552671"}})
	if b.status != 500 || !strings.Contains(b.page, "Something went wrong") || !strings.Contains(b.page, "<html") {
		t.Errorf("a panic on the form answered %d:\n%s", b.status, b.page)
	}
}

// TestLogs checks the access line and that no full number reaches the log,
// even when an upstream message quotes it.
func TestLogs(t *testing.T) {
	v := &recordingVerifier{startFn: func(req verify.StartRequest) (verify.Verification, error) {
		return verify.Verification{}, verify.ErrMisconfigured.With(fmt.Errorf("twilio 20003: cannot send to %s", req.To.E164()), 0)
	}}
	var logs bytes.Buffer
	h := newTestHandler(t, v, handlerOpts{logs: &logs})
	postJSON(h, "/api/request-otp", `{"phoneNumber":"+14155552671"}`, "X-Request-Id", "req-42")
	postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"987654"}`)
	out := logs.String()
	for _, secret := range []string{"4155552671", "987654"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"request_id":"req-42"`, `"to":"+1********71"`, `"error_code":"upstream_misconfigured"`,
		`"level":"ERROR"`, `"status":502`, `"status":200`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestAccessLogMasksTheQuery: secret parameters and phone numbers in a
// query never reach the log, "+" read as a space or not, and the line says
// which parameters were masked.
func TestAccessLogMasksTheQuery(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{logs: &logs})
	for _, target := range []string{
		"/?code=987654&lang=de",
		"/?receipt=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl&nonce=app-session-77",
		"/?token=tok-31337-secret",
		"/?who=+14155552671",   // "+" as forms send it: a space
		"/?who=%2B14155552671", // an escaped plus
		"/?return_to=https%3A%2F%2Fapp.example%2Fcb%3Fphone%3D4155552671",
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	out := logs.String()
	for _, leak := range []string{"987654", "eyJhbGciOiJFZERTQSJ9", "app-session-77", "tok-31337", "4155552671", "5552671"} {
		if strings.Contains(out, leak) {
			t.Errorf("the access log carries %q:\n%s", leak, out)
		}
	}
	for _, want := range []string{`"query":"code=[masked]&lang=de"`, `"masked":["code"]`, `"masked":["receipt","nonce"]`,
		`"masked":["token"]`, `"masked":["who"]`, `"masked":["return_to"]`} {
		if !strings.Contains(out, want) {
			t.Errorf("the access log lacks %s:\n%s", want, out)
		}
	}
}

func TestRedactKeepsIPsAndSIDs(t *testing.T) {
	v := &recordingVerifier{}
	var logs bytes.Buffer
	h := newTestHandler(t, v, handlerOpts{logs: &logs})
	for _, target := range []string{"/+14155552671", "/call/(415)%20555-2671", "/?phone=%2B14155552671&x=1",
		"/?sid=VE0123456789abcdef0123456789abcdef", "/nope/192.168.100.200"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	out := logs.String()
	for _, leak := range []string{"4155552671", "555-2671", "5552671"} {
		if strings.Contains(out, leak) {
			t.Errorf("the access log carries a number (%s):\n%s", leak, out)
		}
	}
	for _, keep := range []string{"VE0123456789abcdef0123456789abcdef", "192.168.100.200", `"path":"/+1********71"`} {
		if !strings.Contains(out, keep) {
			t.Errorf("the access log lost %s:\n%s", keep, out)
		}
	}
}

func TestHeadWhereverGet(t *testing.T) {
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{receipts: newTestIssuer(t)})
	for _, path := range []string{"/", "/health", "/healthz", "/readyz", "/openapi.yaml", "/.well-known/jwks.json"} {
		get, head := httptest.NewRecorder(), httptest.NewRecorder()
		h.ServeHTTP(get, httptest.NewRequest(http.MethodGet, path, nil))
		h.ServeHTTP(head, httptest.NewRequest(http.MethodHead, path, nil))
		if head.Code != get.Code || head.Header().Get("Content-Type") != get.Header().Get("Content-Type") {
			t.Errorf("HEAD %s = %d %q, GET = %d %q", path, head.Code, head.Header().Get("Content-Type"), get.Code, get.Header().Get("Content-Type"))
		}
	}
}

// TestPreflightIsAnAnswer: a CORS preflight carries the request id and the
// security headers, and is logged and counted like any request.
func TestPreflightIsAnAnswer(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{origins: []string{"https://app.example.com"}, logs: &logs})
	req := httptest.NewRequest(http.MethodOptions, "/api/request-otp", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("X-Request-Id", "preflight-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("preflight = %d %v", rec.Code, rec.Header())
	}
	if rec.Header().Get("X-Request-Id") != "preflight-1" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("preflight headers %v, want the request id and the security headers", rec.Header())
	}
	if !strings.Contains(logs.String(), `"request_id":"preflight-1","method":"OPTIONS"`) {
		t.Errorf("no access line for the preflight:\n%s", logs.String())
	}
}

// TestCountryField: a national number is read in the country the client
// chose, an international one as such, and an unknown country is refused
// before anything is sent.
func TestCountryField(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		status     int
		want       string // E.164 sent upstream, or the error code
	}{
		{"US national", `{"phoneNumber":"(415) 555-2671","country":"US"}`, 200, "+14155552671"},
		{"GB national", `{"phoneNumber":"07400 123456","country":"gb"}`, 200, "+447400123456"},
		{"GB with the international prefix", `{"phoneNumber":"00 44 7400 123456","country":"GB"}`, 200, "+447400123456"},
		{"international whatever the country", `{"phoneNumber":"+44 7400 123456","country":"US"}`, 200, "+447400123456"},
		{"national without a country", `{"phoneNumber":"07400 123456"}`, 400, "invalid_phone_number"},
		{"a national number of another country", `{"phoneNumber":"07400 123456","country":"US"}`, 400, "invalid_phone_number"},
		{"unknown country", `{"phoneNumber":"07400 123456","country":"XX"}`, 400, "invalid_country"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &recordingVerifier{}
			rec := postJSON(newTestHandler(t, v, handlerOpts{}), "/api/request-otp", tt.body)
			got := decodeBody(t, rec)
			if rec.Code != tt.status {
				t.Fatalf("POST %s = %d %v, want %d", tt.body, rec.Code, got, tt.status)
			}
			if tt.status == 200 && (len(v.starts) != 1 || v.starts[0].To.E164() != tt.want) {
				t.Errorf("POST %s sent %v upstream, want %s", tt.body, v.starts, tt.want)
			}
			if tt.status != 200 && (got["code"] != tt.want || v.calls() != 0) {
				t.Errorf("POST %s = %v with %d calls upstream, want %s and none", tt.body, got, v.calls(), tt.want)
			}
		})
	}
	// verify-otp reads the number the same way.
	v := &recordingVerifier{}
	rec := postJSON(newTestHandler(t, v, handlerOpts{}), "/api/verify-otp", `{"phoneNumber":"07400 123456","country":"GB","code":"123456"}`)
	if rec.Code != 200 || len(v.checks) != 1 || v.checks[0].To.E164() != "+447400123456" {
		t.Errorf("verify-otp with a GB national number = %d, checks %v", rec.Code, v.checks)
	}
}
