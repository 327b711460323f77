package twiliotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

func newFakeClock() *verifytest.Clock {
	return verifytest.NewClock(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
}

// reply is one answer of the stand-in, as a raw client sees it.
type reply struct {
	method, path string // the request, path as sent
	status       int
	header       http.Header
	raw          []byte
	body         map[string]any // nil unless the answer is a JSON object
}

// code answers the Twilio error code of an error body, 0 if none.
func (r reply) code() int {
	c, _ := r.body["code"].(float64)
	return int(c)
}

func (r reply) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// rawClient speaks to the stand-in without the SDK, so tests control every
// byte of the request.
type rawClient struct {
	t          *testing.T
	srv        *twiliotest.Server
	user, pass string
	hc         *http.Client
}

func newRawClient(t *testing.T, srv *twiliotest.Server) *rawClient {
	return &rawClient{t: t, srv: srv, user: srv.AccountSID(), pass: srv.AuthToken(), hc: srv.Client()}
}

func (c *rawClient) do(method, path string, form url.Values) reply {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	r := reply{method: method, path: path, status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (c *rawClient) svc() string { return "/v2/Services/" + c.srv.ServiceSID() }

func (c *rawClient) start(to, channel string) reply {
	c.t.Helper()
	return c.do(http.MethodPost, c.svc()+"/Verifications", url.Values{"To": {to}, "Channel": {channel}})
}

func (c *rawClient) checkTo(to, code string) reply {
	c.t.Helper()
	return c.do(http.MethodPost, c.svc()+"/VerificationCheck", url.Values{"To": {to}, "Code": {code}})
}

func (c *rawClient) checkSID(sid, code string) reply {
	c.t.Helper()
	return c.do(http.MethodPost, c.svc()+"/VerificationCheck", url.Values{"VerificationSid": {sid}, "Code": {code}})
}

func (c *rawClient) fetch(sid string) reply {
	c.t.Helper()
	return c.do(http.MethodGet, c.svc()+"/Verifications/"+sid, nil)
}

func (c *rawClient) cancel(sid string) reply {
	c.t.Helper()
	return c.do(http.MethodPost, c.svc()+"/Verifications/"+sid, url.Values{"Status": {"canceled"}})
}
