package server_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"verifyd/server/receipt"
	"verifyd/server/receipt/receipttest"
	"verifyd/server/verify"
)

const (
	testIssuer   = "https://verify.example.com"
	testAudience = "https://app.example.com"
	appOrigin    = "https://app.example.com"
)

func newTestIssuer(t *testing.T) *receipt.Issuer {
	t.Helper()
	k, err := receipt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := receipt.NewIssuer(receipt.IssuerConfig{Keys: []receipt.Key{k}, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// fetchJWKS gets the key set over HTTP, as an app's backend does.
func fetchJWKS(t *testing.T, base string) []byte {
	t.Helper()
	res, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /.well-known/jwks.json = %d %s, %v", res.StatusCode, body, err)
	}
	if ct, cc := res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"); ct != "application/jwk-set+json" || cc != "public, max-age=300" {
		t.Errorf("JWKS answered Content-Type %q, Cache-Control %q", ct, cc)
	}
	return body
}

func approvedBySMS(req verify.CheckRequest) (verify.Verification, error) {
	to := req.To.E164()
	if to == "" {
		to = "+447400123456" // checked by SID: the backend names the number
	}
	return verify.Verification{SID: testSID, To: to, Channel: verify.ChannelSMS, Status: verify.StatusApproved}, nil
}

func TestVerifyOTPReceipt(t *testing.T) {
	v := &recordingVerifier{checkFn: approvedBySMS}
	srv := httptest.NewServer(newTestHandler(t, v, handlerOpts{receipts: newTestIssuer(t)}))
	defer srv.Close()
	jwks := fetchJWKS(t, srv.URL)

	tests := []struct {
		name, body, wantNumber, wantCountry, wantNonce string
	}{
		{"by number with a nonce", `{"phoneNumber":"+14155552671","code":"123456","nonce":"s3ss10n-Nonce_42"}`, testNumber, "US", "s3ss10n-Nonce_42"},
		{"by number without a nonce", `{"phoneNumber":"+14155552671","code":"123456"}`, testNumber, "US", ""},
		{"by SID: the number comes from the backend", `{"verificationSid":"` + testSID + `","code":"123456","nonce":"n"}`, "+447400123456", "GB", "n"},
		{"a nonce of 128 characters", `{"phoneNumber":"+14155552671","code":"123456","nonce":"` + strings.Repeat("a", 128) + `"}`, testNumber, "US", strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := http.Post(srv.URL+"/api/verify-otp", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got struct {
				Verified         bool
				Receipt          string
				ReceiptExpiresAt time.Time
			}
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil || res.StatusCode != 200 || !got.Verified {
				t.Fatalf("POST %s = %d %+v, %v", tt.body, res.StatusCode, got, err)
			}
			c, h, err := receipttest.Verify(got.Receipt, jwks, testIssuer, testAudience, time.Now())
			if err != nil {
				t.Fatalf("the receipt does not verify against the published keys: %v", err)
			}
			if h.Alg != "EdDSA" || h.Kid == "" {
				t.Errorf("header %+v", h)
			}
			if c.Subject != tt.wantNumber || c.PhoneNumber != tt.wantNumber || !c.PhoneNumberVerified ||
				c.Country != tt.wantCountry || c.Channel != "sms" || c.Nonce != tt.wantNonce || c.ID == "" {
				t.Errorf("claims %+v, want %s in %s with nonce %q", c, tt.wantNumber, tt.wantCountry, tt.wantNonce)
			}
			if !c.Expiry.Time().Equal(got.ReceiptExpiresAt) || c.Expiry.Time().Sub(c.IssuedAt.Time()) != receipt.DefaultTTL {
				t.Errorf("receiptExpiresAt %v, exp %v, iat %v", got.ReceiptExpiresAt, c.Expiry.Time(), c.IssuedAt.Time())
			}
		})
	}
}

func TestVerifyOTPNoReceiptOnFailure(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status verify.Status
		err    error
		want   int
	}{
		{"wrong code", verify.StatusPending, nil, 400},
		{"expired", "", verify.ErrNotFound, 410},
		{"maxed out", verify.StatusMaxAttemptsReached, nil, 410},
		{"upstream down", "", verify.ErrUnavailable, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &recordingVerifier{checkFn: func(req verify.CheckRequest) (verify.Verification, error) {
				return verify.Verification{SID: testSID, To: testNumber, Status: tt.status}, tt.err
			}}
			h := newTestHandler(t, v, handlerOpts{receipts: newTestIssuer(t)})
			rec := postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456","nonce":"abc"}`)
			got := decodeBody(t, rec)
			if rec.Code != tt.want || got["verified"] != false {
				t.Errorf("got %d %v, want %d with verified false", rec.Code, got, tt.want)
			}
			if _, ok := got["receipt"]; ok || strings.Contains(rec.Body.String(), "eyJhbGci") {
				t.Errorf("a failed check carries a receipt: %s", rec.Body)
			}
		})
	}
}

func TestVerifyOTPRefusesBadNonces(t *testing.T) {
	for _, nonce := range []string{`""`, `"` + strings.Repeat("a", 129) + `"`, `"a b"`, `"a/b"`, `"a+b"`, `"é"`, `"a.b"`, `12`} {
		t.Run(nonce, func(t *testing.T) {
			v := &recordingVerifier{}
			h := newTestHandler(t, v, handlerOpts{receipts: newTestIssuer(t)})
			rec := postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456","nonce":`+nonce+`}`)
			got := decodeBody(t, rec)
			want := "invalid_nonce"
			if nonce == "12" {
				want = "malformed_json" // not a string at all
			}
			if rec.Code != 400 || got["verified"] != false || got["code"] != want {
				t.Errorf("nonce %s answered %d %v, want 400 %s", nonce, rec.Code, got, want)
			}
			if v.calls() != 0 {
				t.Errorf("nonce %s reached the backend", nonce)
			}
		})
	}
}

func TestJWKSWithoutReceipts(t *testing.T) {
	v := &recordingVerifier{checkFn: approvedBySMS}
	h := newTestHandler(t, v, handlerOpts{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"keys":[]}` {
		t.Errorf("GET /.well-known/jwks.json without receipts = %d %s, want an empty set", rec.Code, rec.Body)
	}
	rec = postJSON(h, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456"}`)
	if got := decodeBody(t, rec); rec.Code != 200 || got["receipt"] != nil {
		t.Errorf("verify-otp without receipts = %d %v, want 200 and no receipt", rec.Code, got)
	}
}

func TestReturnToAllowlist(t *testing.T) {
	opts := handlerOpts{receipts: newTestIssuer(t), returns: []string{appOrigin, "http://localhost:3000", "https://id.example.com"}}
	for _, tt := range []struct {
		name, query string
		ok          bool
	}{
		{"allowed origin", "return_to=" + url.QueryEscape(appOrigin+"/verified?x=1") + "&nonce=abc", true},
		{"allowed origin, no path", "return_to=" + url.QueryEscape(appOrigin), true},
		{"allowed origin with port", "return_to=" + url.QueryEscape("http://localhost:3000/cb"), true},
		{"upper-case host", "return_to=" + url.QueryEscape("https://APP.example.com/cb"), true},
		{"no return_to", "", true},
		{"another host", "return_to=" + url.QueryEscape("https://evil.example.net/cb"), false},
		{"a look-alike suffix", "return_to=" + url.QueryEscape("https://app.example.com.evil.com/cb"), false},
		{"userinfo trick", "return_to=" + url.QueryEscape("https://app.example.com@evil.com/cb"), false},
		{"userinfo on the allowed host", "return_to=" + url.QueryEscape("https://user:pw@app.example.com/cb"), false},
		{"scheme-relative", "return_to=" + url.QueryEscape("//evil.com/cb"), false},
		{"path only", "return_to=" + url.QueryEscape("/cb"), false},
		{"javascript", "return_to=" + url.QueryEscape("javascript:alert(1)"), false},
		{"data", "return_to=" + url.QueryEscape("data:text/html,hi"), false},
		{"another scheme on the host", "return_to=" + url.QueryEscape("http://app.example.com/cb"), false},
		{"another port", "return_to=" + url.QueryEscape("https://app.example.com:8443/cb"), false},
		{"backslash", "return_to=" + url.QueryEscape(`https://evil.com\@app.example.com/`), false},
		{"empty", "return_to=", false},
		{"fragment", "return_to=" + url.QueryEscape(appOrigin+"/cb#x"), false},
		{"nonce without return_to", "nonce=abc", false},
		{"the other allowed host", "return_to=" + url.QueryEscape("https://id.example.com/cb"), true},
		{"a capital dotted I, which lower-cases to i", "return_to=" + url.QueryEscape("https://\u0130d.example.com/cb"), false},
		{"a Kelvin sign", "return_to=" + url.QueryEscape("https://id.example.\u212Aom/cb"), false},
		{"a long query", "return_to=" + url.QueryEscape(appOrigin+"/cb?"+strings.Repeat("a=1&", 240)), true},
		{"too long", "return_to=" + url.QueryEscape(appOrigin+"/cb?"+strings.Repeat("a=1&", 260)), false},
		{"bad nonce", "return_to=" + url.QueryEscape(appOrigin) + "&nonce=" + url.QueryEscape("a b"), false},
		{"two nonces", "return_to=" + url.QueryEscape(appOrigin) + "&nonce=a&nonce=b", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser(t, &recordingVerifier{}, opts)
			b.get("/?" + tt.query)
			if tt.ok {
				b.expect(200, "step-phone")
				// The hand-off survives step 1's post, however long.
				b.post("/request", url.Values{"phone": {"+14155552671"}, "return": {b.field(returnField)}})
				b.expect(200, "step-code")
				return
			}
			if b.status != 400 || !strings.Contains(b.page, "This link cannot be used") || strings.Contains(b.page, `id="form-phone"`) {
				t.Errorf("GET /?%s = %d, want 400 and a page that explains, with no form:\n%s", tt.query, b.status, b.page)
			}
		})
	}

	// Without receipts there is nothing to hand back: the link is refused.
	b := newBrowser(t, &recordingVerifier{}, handlerOpts{returns: []string{appOrigin}})
	b.get("/?return_to=" + url.QueryEscape(appOrigin+"/cb"))
	if b.status != 400 {
		t.Errorf("return_to without receipts = %d, want 400", b.status)
	}
}

var continueForm = regexp.MustCompile(`<form id="form-continue" method="post" action="([^"]*)">\s*<input type="hidden" name="receipt" id="receipt" value="([^"]*)">`)

// TestFormHandsBackAReceipt walks the form from an app's link to the
// Continue hand-off, without script.
func TestFormHandsBackAReceipt(t *testing.T) {
	iss := newTestIssuer(t)
	v := &recordingVerifier{checkFn: approvedBySMS}
	srv := httptest.NewServer(newTestHandler(t, v, handlerOpts{receipts: iss, returns: []string{appOrigin}}))
	defer srv.Close()
	b := &browser{t: t, h: srv.Config.Handler}

	returnTo := appOrigin + "/phone/verified?step=2"
	b.get("/?return_to=" + url.QueryEscape(returnTo) + "&nonce=app-session-7")
	b.expect(200, "step-phone")
	if csp := b.lastCSP; !strings.Contains(csp, "form-action 'self' "+appOrigin) {
		t.Errorf("CSP %q does not allow the return origin as a form target", csp)
	}
	b.post("/request", url.Values{"phone": {"+14155552671"}, "return": {b.field(returnField)}})
	b.expect(200, "step-code")
	// "Wrong number?" starts again on the way back to the same app.
	b.get("/?new")
	b.expect(200, "step-phone")
	b.post("/request", url.Values{"phone": {"+14155552671"}, "return": {b.field(returnField)}})
	b.expect(200, "step-code")
	b.post("/verify", url.Values{"code": {"123456"}})
	b.expect(200, "step-done", "Continue")
	m := continueForm.FindStringSubmatch(b.page)
	if m == nil {
		t.Fatalf("no Continue form on the last step:\n%s", b.page)
	}
	if action := html.UnescapeString(m[1]); action != returnTo {
		t.Errorf("Continue posts to %q, want %q", action, returnTo)
	}
	c, _, err := receipttest.Verify(html.UnescapeString(m[2]), fetchJWKS(t, srv.URL), testIssuer, testAudience, time.Now())
	if err != nil {
		t.Fatalf("the form's receipt does not verify: %v", err)
	}
	if c.PhoneNumber != testNumber || c.Nonce != "app-session-7" {
		t.Errorf("claims %+v, want %s with the app's nonce", c, testNumber)
	}

	// The hand-off cannot be swapped for another origin between the steps.
	b.get("/?return_to=" + url.QueryEscape(returnTo))
	sealed := b.field(returnField)
	b.post("/request", url.Values{"phone": {"+14155552671"}, "return": {sealed + "x"}})
	if b.status != 410 {
		t.Errorf("a forged return field answered %d, want 410", b.status)
	}

	// Without return_to the form ends with no hand-off.
	b.get("/")
	b.post("/request", url.Values{"phone": {"+14155552671"}})
	b.post("/verify", url.Values{"code": {"123456"}})
	b.expect(200, "step-done")
	// A receipt is a JWT: its header starts {"alg": in base64 ("eyJhbGci").
	// Three letters alone ("eyJ") turn up by chance in a random token of
	// the page, about once in a few thousand runs.
	if strings.Contains(b.page, "form-continue") || strings.Contains(b.page, "eyJhbGci") {
		t.Errorf("the last step offers a hand-off, or shows a receipt, with no app to return to:\n%s", b.page)
	}
}

var returnField = regexp.MustCompile(`name="return" value="([^"]*)"`)
