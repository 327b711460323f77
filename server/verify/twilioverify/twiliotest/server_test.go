package twiliotest_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

const alice = "+14155552671"

func newServer(t *testing.T, opts twiliotest.Options) (*twiliotest.Server, *rawClient) {
	t.Helper()
	srv := twiliotest.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv, newRawClient(t, srv)
}

func TestDefaults(t *testing.T) {
	srv, _ := newServer(t, twiliotest.Options{})
	for _, c := range []struct{ name, got, prefix string }{
		{"AccountSID", srv.AccountSID(), "AC"},
		{"ServiceSID", srv.ServiceSID(), "VA"},
		{"AuthToken", srv.AuthToken(), ""},
	} {
		if len(c.got) != len(c.prefix)+32 || !strings.HasPrefix(c.got, c.prefix) {
			t.Errorf("%s() = %q, want %q + 32 hex digits", c.name, c.got, c.prefix)
		}
	}
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:port", srv.URL())
	}
}

func TestAuthAndRouting(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	svc := c.svc()
	otherService := "/v2/Services/VA" + strings.Repeat("0", 32)
	badToken := "0123456789abcdef0123456789abcdef"
	badAccount := "AC" + strings.Repeat("1", 32)
	tests := []struct {
		name         string
		user, pass   string
		method, path string
		form         url.Values
		status, code int
	}{
		{"no auth", "", "", "POST", svc + "/Verifications", url.Values{"To": {alice}, "Channel": {"sms"}}, 401, 20003},
		{"wrong token", srv.AccountSID(), badToken, "POST", svc + "/Verifications", url.Values{"To": {alice}, "Channel": {"sms"}}, 401, 20003},
		{"wrong account", badAccount, srv.AuthToken(), "GET", svc, nil, 401, 20003},
		{"unknown service", srv.AccountSID(), srv.AuthToken(), "POST", otherService + "/Verifications", url.Values{"To": {alice}, "Channel": {"sms"}}, 404, 20404},
		{"unknown service fetch", srv.AccountSID(), srv.AuthToken(), "GET", otherService, nil, 404, 20404},
		{"unknown route", srv.AccountSID(), srv.AuthToken(), "GET", svc + "/Foo", nil, 404, 20404},
		{"not v2", srv.AccountSID(), srv.AuthToken(), "GET", "/v1/Services", nil, 404, 20404},
		{"wrong method", srv.AccountSID(), srv.AuthToken(), "GET", svc + "/VerificationCheck", nil, 405, 20004},
		{"fetch service", srv.AccountSID(), srv.AuthToken(), "GET", svc, nil, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newRawClient(t, srv)
			rc.user, rc.pass = tt.user, tt.pass
			r := rc.do(tt.method, tt.path, tt.form)
			if r.status != tt.status || r.code() != tt.code {
				t.Errorf("%s %s = %d code %d, want %d code %d (%s)", tt.method, tt.path, r.status, r.code(), tt.status, tt.code, r.raw)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	_, c := newServer(t, twiliotest.Options{})
	sid := "VE" + strings.Repeat("a", 32)
	tests := []struct {
		name  string
		path  string // relative to the service
		form  url.Values
		param string // the parameter the message must name
	}{
		{"start no To", "/Verifications", url.Values{"Channel": {"sms"}}, "To"},
		{"start To not E.164", "/Verifications", url.Values{"To": {"4155552671"}, "Channel": {"sms"}}, "To"},
		{"start To leading zero", "/Verifications", url.Values{"To": {"+04155552671"}, "Channel": {"sms"}}, "To"},
		{"start To too long", "/Verifications", url.Values{"To": {"+1234567890123456"}, "Channel": {"sms"}}, "To"},
		{"start email To for sms", "/Verifications", url.Values{"To": {"a@example.com"}, "Channel": {"sms"}}, "To"},
		{"start no Channel", "/Verifications", url.Values{"To": {alice}}, "Channel"},
		{"start unknown Channel", "/Verifications", url.Values{"To": {alice}, "Channel": {"pigeon"}}, "Channel"},
		{"start short CustomCode", "/Verifications", url.Values{"To": {alice}, "Channel": {"sms"}, "CustomCode": {"123"}}, "CustomCode"},
		{"start unknown param", "/Verifications", url.Values{"To": {alice}, "Channel": {"sms"}, "Langauge": {"en"}}, "Langauge"},
		{"check short Code", "/VerificationCheck", url.Values{"To": {alice}, "Code": {"123"}}, "Code"},
		{"check long Code", "/VerificationCheck", url.Values{"To": {alice}, "Code": {"12345678901"}}, "Code"},
		{"check no Code", "/VerificationCheck", url.Values{"To": {alice}}, "Code"},
		{"check neither To nor SID", "/VerificationCheck", url.Values{"Code": {"1234"}}, "VerificationSid"},
		{"check both To and SID", "/VerificationCheck", url.Values{"To": {alice}, "VerificationSid": {sid}, "Code": {"1234"}}, "VerificationSid"},
		{"check bad SID", "/VerificationCheck", url.Values{"VerificationSid": {"VE123"}, "Code": {"1234"}}, "VerificationSid"},
		{"check SID of another kind", "/VerificationCheck", url.Values{"VerificationSid": {"VA" + strings.Repeat("a", 32)}, "Code": {"1234"}}, "VerificationSid"},
		{"check bad To", "/VerificationCheck", url.Values{"To": {"alice"}, "Code": {"1234"}}, "To"},
		{"check unknown param", "/VerificationCheck", url.Values{"To": {alice}, "Code": {"1234"}, "Channel": {"sms"}}, "Channel"},
		{"update bad Status", "/Verifications/" + sid, url.Values{"Status": {"pending"}}, "Status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.do(http.MethodPost, c.svc()+tt.path, tt.form)
			if r.status != 400 || r.code() != 60200 || !strings.Contains(r.str("message"), tt.param) {
				t.Errorf("POST %s %v = %d %s, want 400 code 60200 naming %s", tt.path, tt.form, r.status, r.raw, tt.param)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	clock := newFakeClock()
	srv, c := newServer(t, twiliotest.Options{Now: clock.Now})

	r := c.start(alice, "sms")
	if r.status != 201 || r.str("status") != "pending" {
		t.Fatalf("start(%q) = %d %s, want 201 pending", alice, r.status, r.raw)
	}
	sid := r.str("sid")
	code, ok := srv.Code(alice)
	if !ok || len(code) != 6 {
		t.Fatalf("Code(%q) = %q, %v, want 6 digits, true", alice, code, ok)
	}
	if got, want := r.str("date_created"), clock.Now().Format(time.RFC3339); got != want {
		t.Errorf("date_created = %q, want %q", got, want)
	}

	// Starting again reuses the verification and its code, over a new channel.
	clock.Advance(time.Minute)
	r = c.start(alice, "call")
	if r.status != 201 || r.str("sid") != sid || r.str("channel") != "call" {
		t.Fatalf("second start = %d %s, want 201 with sid %s and channel call", r.status, r.raw, sid)
	}
	if n := len(r.body["send_code_attempts"].([]any)); n != 2 {
		t.Errorf("send_code_attempts after 2 starts has %d entries, want 2", n)
	}
	if again, _ := srv.Code(alice); again != code {
		t.Errorf("Code after restart = %q, want the same %q", again, code)
	}

	// A wrong code is not an error.
	r = c.checkTo(alice, verifytest.WrongCode(code))
	if r.status != 200 || r.str("status") != "pending" || r.body["valid"] != false {
		t.Fatalf("check with a wrong code = %d %s, want 200 pending valid false", r.status, r.raw)
	}
	if r := c.fetch(sid); r.status != 200 || r.str("sid") != sid {
		t.Errorf("fetch(%s) = %d %s, want 200", sid, r.status, r.raw)
	}

	// The right code approves, and the verification is gone.
	r = c.checkSID(sid, code)
	if r.status != 200 || r.str("status") != "approved" || r.body["valid"] != true || r.str("to") != alice {
		t.Fatalf("check by SID with the right code = %d %s, want 200 approved valid true", r.status, r.raw)
	}
	if _, ok := srv.Code(alice); ok {
		t.Errorf("Code(%q) after approval found a verification, want none", alice)
	}
	for _, r := range []reply{c.checkTo(alice, code), c.checkSID(sid, code), c.fetch(sid)} {
		if r.status != 404 || r.code() != 20404 {
			t.Errorf("%s %s after approval = %d %s, want 404 20404", r.method, r.path, r.status, r.raw)
		}
	}
}

func TestMaxSends(t *testing.T) {
	_, c := newServer(t, twiliotest.Options{})
	for i := 1; i <= 5; i++ {
		if r := c.start(alice, "sms"); r.status != 201 {
			t.Fatalf("start #%d = %d %s, want 201", i, r.status, r.raw)
		}
	}
	r := c.start(alice, "sms")
	if r.status != 429 || r.code() != 60203 {
		t.Fatalf("start #6 = %d %s, want 429 60203", r.status, r.raw)
	}
	// The verification survives a refused send.
	if r := c.checkTo(alice, "000000"); r.status != 200 {
		t.Errorf("check after refused send = %d %s, want 200", r.status, r.raw)
	}
}

func TestMaxChecks(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	sid := c.start(alice, "sms").str("sid")
	code, _ := srv.Code(alice)
	for i := 1; i <= 5; i++ {
		if r := c.checkTo(alice, verifytest.WrongCode(code)); r.status != 200 || r.str("status") != "pending" {
			t.Fatalf("wrong check #%d = %d %s, want 200 pending", i, r.status, r.raw)
		}
	}
	// Even the right code is refused now, and the verification is gone.
	if r := c.checkTo(alice, code); r.status != 429 || r.code() != 60202 {
		t.Fatalf("check #6 = %d %s, want 429 60202", r.status, r.raw)
	}
	if r := c.checkSID(sid, code); r.status != 404 || r.code() != 20404 {
		t.Errorf("check after max attempts = %d %s, want 404 20404", r.status, r.raw)
	}
}

func TestExpiry(t *testing.T) {
	clock := newFakeClock()
	srv, c := newServer(t, twiliotest.Options{Now: clock.Now})
	sid := c.start(alice, "sms").str("sid")
	code, _ := srv.Code(alice)

	clock.Advance(10*time.Minute - time.Second)
	if r := c.fetch(sid); r.status != 200 {
		t.Fatalf("fetch just before expiry = %d %s, want 200", r.status, r.raw)
	}
	clock.Advance(time.Second)
	if r := c.checkTo(alice, code); r.status != 404 || r.code() != 20404 {
		t.Fatalf("check after 10 minutes = %d %s, want 404 20404", r.status, r.raw)
	}
	if r := c.start(alice, "sms"); r.status != 201 || r.str("sid") == sid {
		t.Errorf("start after expiry = %d %s, want 201 with a new sid", r.status, r.raw)
	}
}

func TestCancel(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	sid := c.start(alice, "whatsapp").str("sid")
	code, _ := srv.Code(alice)
	r := c.cancel(sid)
	if r.status != 200 || r.str("status") != "canceled" {
		t.Fatalf("cancel(%s) = %d %s, want 200 canceled", sid, r.status, r.raw)
	}
	if r := c.checkTo(alice, code); r.status != 404 || r.code() != 20404 {
		t.Errorf("check after cancel = %d %s, want 404 20404", r.status, r.raw)
	}
	if r := c.cancel(sid); r.status != 404 {
		t.Errorf("cancel twice = %d %s, want 404", r.status, r.raw)
	}
}

func TestFixedAndCustomCode(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{FixedCode: "424242"})
	c.start(alice, "sms")
	if code, _ := srv.Code(alice); code != "424242" {
		t.Errorf("Code with FixedCode = %q, want 424242", code)
	}
	bob := "+442071838750"
	c.do(http.MethodPost, c.svc()+"/Verifications", url.Values{"To": {bob}, "Channel": {"sms"}, "CustomCode": {"ab12cd"}})
	if code, _ := srv.Code(bob); code != "ab12cd" {
		t.Errorf("Code with CustomCode = %q, want ab12cd", code)
	}
}

func TestFailures(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	sid := c.start(alice, "sms").str("sid")

	srv.SetFailure(alice, &twiliotest.Failure{Status: 429, Code: 20429, Message: "Too many requests", RetryAfter: "3"})
	for _, r := range []reply{c.start(alice, "sms"), c.checkTo(alice, "1234"), c.checkSID(sid, "1234"), c.fetch(sid), c.cancel(sid)} {
		if r.status != 429 || r.code() != 20429 || r.header.Get("Retry-After") != "3" || r.body["status"] != float64(429) {
			t.Errorf("%s %s with failure = %d %v %s, want 429 20429 Retry-After 3", r.method, r.path, r.status, r.header, r.raw)
		}
	}
	// Other numbers are not affected.
	if r := c.start("+442071838750", "sms"); r.status != 201 {
		t.Errorf("start to another number = %d %s, want 201", r.status, r.raw)
	}
	srv.SetFailure(alice, nil)
	if r := c.fetch(sid); r.status != 200 {
		t.Errorf("fetch after clearing the failure = %d %s, want 200", r.status, r.raw)
	}

	html := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	srv.SetFailure(alice, &twiliotest.Failure{Status: 502, RawBody: html, Times: 1})
	r := c.start(alice, "sms")
	if r.status != 502 || string(r.raw) != html || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("start with raw failure = %d %q %q, want 502 with the HTML body", r.status, r.header.Get("Content-Type"), r.raw)
	}
	if r := c.start(alice, "sms"); r.status != 201 {
		t.Errorf("start after a Times: 1 failure = %d %s, want 201", r.status, r.raw)
	}

	srv.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Status: 503})
	if r := c.do(http.MethodGet, c.svc(), nil); r.status != 503 || r.code() != 0 || r.str("message") != "Service Unavailable" {
		t.Errorf("fetch service with AnyRequest failure = %d %s, want 503", r.status, r.raw)
	}
}

func TestHangAndLatencyCountCancellations(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	tests := []struct {
		name  string
		setup func()
	}{
		{"hang", func() { srv.SetFailure(alice, &twiliotest.Failure{Hang: true}) }},
		{"latency", func() { srv.SetFailure(alice, nil); srv.SetLatency(time.Hour) }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			before := srv.Requests()
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+c.svc()+"/Verifications",
				strings.NewReader(url.Values{"To": {alice}, "Channel": {"sms"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(srv.AccountSID(), srv.AuthToken())
			errc := make(chan error, 1)
			go func() {
				resp, err := srv.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			verifytest.WaitFor(t, "the request to arrive", func() bool { return srv.Requests() == before+1 })
			cancel()
			if err := <-errc; err == nil {
				t.Fatalf("request answered, want it canceled")
			}
			verifytest.WaitFor(t, "Canceled() to count it", func() bool { return srv.Canceled() == int64(i+1) })
		})
	}
	srv.SetLatency(0)
}

func TestConnectionsCounted(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{})
	for range 3 {
		c.do(http.MethodGet, c.svc(), nil)
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("Connections() after 3 keep-alive requests = %d, want 1", n)
	}
	srv.CloseClientConnections()
	c.do(http.MethodGet, c.svc(), nil)
	if n := srv.Connections(); n != 2 {
		t.Errorf("Connections() after a reconnect = %d, want 2", n)
	}
	if n := srv.Requests(); n != 4 {
		t.Errorf("Requests() = %d, want 4", n)
	}
}

func TestTLS(t *testing.T) {
	srv, c := newServer(t, twiliotest.Options{TLS: true})
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") || srv.Certificate() == nil || srv.TLSConfig() == nil {
		t.Fatalf("TLS server: URL %q, certificate %v", srv.URL(), srv.Certificate())
	}
	r := c.start(alice, "sms")
	if r.status != 201 || !strings.HasPrefix(r.str("url"), "https://") {
		t.Errorf("start over TLS = %d %s, want 201 with an https url", r.status, r.raw)
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	srv := twiliotest.NewServer(twiliotest.Options{})
	c := newRawClient(t, srv)
	srv.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Hang: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+c.svc(), nil)
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	verifytest.WaitFor(t, "the request to arrive", func() bool { return srv.Requests() == 1 })
	srv.Close() // must not wait for the client, which never gives up
	<-done
}
