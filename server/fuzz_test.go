package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"verifyd/server/verify"
)

// FuzzAPI sends arbitrary bodies to both JSON routes through the real
// handler: every answer is a JSON 200 or 4xx, anything that reached the
// verifier was normalised, and nothing panics.
func FuzzAPI(f *testing.F) {
	for _, s := range []string{
		`{"phoneNumber":"+14155552671"}`,
		`{"phoneNumber":"+14155552671","code":"123456"}`,
		`{"verificationSid":"VE0123456789abcdef0123456789abcdef","code":123456}`,
		`{"phoneNumber":"(415) 555-2671","channel":"SMS","locale":"pt-br"}`,
		`{"code":1e400}`, `{"phoneNumber":null}`, `[]`, `"`, ``,
	} {
		f.Add(s, "de-DE,de;q=0.9")
	}
	// Built once: an input must cost a request, not a handler (which made
	// the fuzzer stall at a few executions a second).
	v := &recordingVerifier{}
	h := newRawHandler(f, v, handlerOpts{region: "US"})
	f.Fuzz(func(t *testing.T, body, acceptLanguage string) {
		v.take() // what an earlier input left (a failing input stops the run)
		for _, path := range []string{"/api/request-otp", "/api/verify-otp"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept-Language", acceptLanguage)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 200 && (rec.Code < 400 || rec.Code > 499) {
				t.Fatalf("POST %s %q = %d %s", path, body, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("POST %s %q answered non-JSON %q", path, body, rec.Body)
			}
		}
		starts, checks := v.take()
		for _, s := range starts {
			if _, err := (verify.PhoneParser{}).Parse(s.To.E164()); err != nil || !s.Channel.Valid() {
				t.Fatalf("body %q started %+v", body, s)
			}
		}
		for _, c := range checks {
			if _, err := verify.ParseCode(c.Code); err != nil || c.To.IsZero() == (c.SID == "") {
				t.Fatalf("body %q checked %+v", body, c)
			}
		}
	})
}
