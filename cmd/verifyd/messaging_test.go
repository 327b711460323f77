package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"verifyd/cmd/internal/toolrun"
	"verifyd/server/abuse/redistest"
	"verifyd/server/verify/messaging/twilioapitest"
	"verifyd/server/verify/verifytest"
)

func messagingEnv(api *twilioapitest.Server, redisURL string, extra ...string) []string {
	return append([]string{
		"VERIFY_BACKEND=messaging", "REDIS_URL=" + redisURL,
		"TWILIO_ACCOUNT_SID=" + api.AccountSID(), "TWILIO_AUTH_TOKEN=" + api.AuthToken(),
		"TWILIO_API_BASE_URL=" + api.URL(), "TWILIO_FROM_NUMBER=+15005550006",
		"CODE_SECRET=0123456789abcdef0123456789abcdef-shared", "APP_NAME=Acme",
		"PUBLIC_URL=https://verify.example.com", "RECEIPT_AUDIENCE=https://app.example.com",
		"LIMIT_PHONE_COOLDOWN=0s",
	}, extra...)
}

var sentCode = regexp.MustCompile(`is (\d{6})\.`)

// lastCode reads the code of the last message the stand-in accepted.
func lastCode(t *testing.T, api *twilioapitest.Server) string {
	t.Helper()
	sent := api.Sent()
	if len(sent) == 0 {
		t.Fatal("nothing was sent")
	}
	m := sentCode.FindStringSubmatch(sent[len(sent)-1].Body)
	if m == nil {
		t.Fatalf("no code in %q", sent[len(sent)-1].Body)
	}
	return m[1]
}

// TestRunMessagingBackend: two instances behind one Redis send codes through
// the Messages API and check them on either instance, a restarted instance
// still checks pending codes, Redis holds nothing readable, and 50
// concurrent wrong codes across both count exactly 5.
func TestRunMessagingBackend(t *testing.T) {
	redisSrv := redistest.Start(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	env := messagingEnv(api, redisSrv.URL)
	a, b := startRun(t, env), startRun(t, env)

	if status, got := a.post(t, "/api/request-otp", `{"phoneNumber":"+14155552671"}`); status != 200 {
		t.Fatalf("request-otp on A = %d %v", status, got)
	}
	sent := api.Sent()[0]
	if sent.To != "+14155552671" || sent.From != "+15005550006" || !strings.HasSuffix(sent.Body, "\n\n@verify.example.com #"+lastCode(t, api)) ||
		!strings.Contains(sent.Body, "Acme") {
		t.Errorf("the message was %+v", sent)
	}
	code := lastCode(t, api)
	status, got := b.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"`+code+`","nonce":"n1"}`)
	if status != 200 || got["receipt"] == nil {
		t.Fatalf("verify-otp on B = %d %v, want 200 with a receipt", status, got)
	}
	if status, _ := a.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"`+code+`"}`); status != 410 {
		t.Errorf("the approved code again on A = %d, want 410", status)
	}

	// A pending code survives a restart of the instance that sent it.
	a.post(t, "/api/request-otp", `{"phoneNumber":"+14155552672"}`)
	pending := lastCode(t, api)
	a.stop(t)
	a = startRun(t, env)
	if status, got := a.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552672","code":"`+pending+`"}`); status != 200 {
		t.Errorf("a pending code after a restart = %d %v", status, got)
	}

	// 50 concurrent wrong codes for one verification, across both.
	b.post(t, "/api/request-otp", `{"phoneNumber":"+14155552673"}`)
	right := lastCode(t, api)
	wrong := verifytest.WrongCode(right)
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		in := []*instance{a, b}[i%2]
		wg.Go(func() {
			_, got := in.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552673","code":"`+wrong+`"}`)
			mu.Lock()
			answers[fmt.Sprint(got["code"])]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if answers["wrong_code"] != 5 {
		t.Errorf("50 concurrent wrong codes answered %v: want exactly 5 counted as wrong", answers)
	}
	if status, _ := a.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552673","code":"`+right+`"}`); status == 200 {
		t.Error("the right code after the wrong ones was accepted")
	}

	// Nothing readable at rest.
	dump := redistest.String(redisSrv.Dump(t))
	for _, secret := range []string{"4155552671", "4155552672", "4155552673", code, pending, right} {
		for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(dump, form) {
				t.Errorf("Redis holds %q as %q", secret, form)
			}
		}
	}
	// Redis down: no code can be sent or checked without its store.
	redisSrv.Stop()
	if status, got := a.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552674","code":"123456"}`); status != 503 || got["code"] != "store_unavailable" {
		t.Errorf("a check with Redis down = %d %v, want 503 store_unavailable", status, got)
	}
	if status, _ := a.post(t, "/api/request-otp", `{"phoneNumber":"+14155552674"}`); status != 503 {
		t.Errorf("a send with Redis down = %d, want 503", status)
	}
	a.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552674","code":"123456"}`)
	a.stop(t)
	b.stop(t)
	var outages int
	for _, l := range a.logs.logLines(t) {
		if strings.HasPrefix(fmt.Sprint(l["msg"]), "code store unreachable") {
			outages++
		}
	}
	if outages != 1 {
		t.Errorf("the code store's outage was logged %d times, want once", outages)
	}
	for _, in := range []*instance{a, b} {
		checkLogsClean(t, in.logs, []string{code, pending, right}, []string{api.AuthToken()}, nil)
	}
}

// TestMessagingErrorsThroughTheStack: each Messages and Calls error reaches
// the client as the same stable answer as Verify's.
func TestMessagingErrorsThroughTheStack(t *testing.T) {
	redisSrv := redistest.Start(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	// The errors of a dozen sends to one prefix, not its fraud budget.
	in := startRun(t, messagingEnv(api, redisSrv.URL, "ALLOWED_CHANNELS=sms,call", "TWILIO_REQUEST_TIMEOUT=300ms",
		"FRAUD_BUDGETS=off", "SEND_CHALLENGE=never"))
	for i, tt := range []struct {
		f      twilioapitest.Failure
		status int
		code   string
	}{
		{twilioapitest.Failure{Code: 21211, Message: "Invalid 'To' Phone Number"}, 400, "invalid_phone_number"},
		{twilioapitest.Failure{Code: 21408, Message: "Permission to send an SMS has not been enabled"}, 403, "destination_blocked"},
		{twilioapitest.Failure{Code: 21610, Message: "Attempt to send to unsubscribed recipient"}, 403, "recipient_unsubscribed"},
		{twilioapitest.Failure{Code: 21614, Message: "'To' number is not a valid mobile number"}, 422, "sms_not_supported"},
		{twilioapitest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests"}, 429, "upstream_busy"},
		{twilioapitest.Failure{Status: 401, Code: 20003, Message: "Authenticate"}, 502, "upstream_misconfigured"},
		{twilioapitest.Failure{Status: 503, Code: 20503, Message: "Service Unavailable"}, 502, "upstream_unavailable"},
		{twilioapitest.Failure{Hang: true}, 504, "upstream_timeout"},
	} {
		to := fmt.Sprintf("+1415555%04d", 3000+i)
		api.SetFailure(to, &tt.f)
		status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+to+`"}`)
		if status != tt.status || got["code"] != tt.code {
			t.Errorf("Twilio %d = %d %v, want %d %s", tt.f.Code, status, got, tt.status, tt.code)
		}
	}
	// A call's TwiML, through the whole stack.
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"+14155559999","channel":"call","locale":"de"}`); status != 200 {
		t.Fatalf("a call = %d %v", status, got)
	}
	call := api.Sent()[len(api.Sent())-1]
	if call.Kind != "call" || !strings.Contains(call.Twiml, `<Say language="de-DE">Dein Bestätigungscode lautet: `) {
		t.Errorf("the call was %+v", call)
	}
}

// TestDeliveryTruth: with the messaging backend, Redis and PUBLIC_URL set
// to verifyd's own address, each send asks for a status callback and every
// signed one is taken; a forged and an unsigned one are refused and change
// nothing; /api/delivery says a text came back undelivered, and a call to
// that number right after goes through; the number's next send is a call.
func TestDeliveryTruth(t *testing.T) {
	redisSrv := redistest.Start(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	addr, err := toolrun.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	in := startRun(t, messagingEnv(api, redisSrv.URL, "PORT="+port, "PUBLIC_URL=http://"+addr,
		"ALLOWED_CHANNELS=sms,call", "LIMIT_PHONE_COOLDOWN=30s", "FRAUD_BUDGETS=off"))
	const good, landline = "+14155552671", "+14155550199"
	api.SetOutcome(landline, twilioapitest.Outcome{Status: "undelivered", ErrorCode: 30006})

	sids := map[string]string{}
	for _, to := range []string{good, landline} {
		status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+to+`"}`)
		if status != 200 {
			t.Fatalf("send to %s = %d %v", to, status, got)
		}
		sids[to], _ = got["verificationSid"].(string)
	}
	for _, s := range api.Sent() {
		if want := "http://" + addr + "/webhooks/twilio/status?v="; !strings.HasPrefix(s.StatusCallback, want) {
			t.Errorf("a create asked for StatusCallback %q, want %s…", s.StatusCallback, want)
		}
	}
	delivery := func(to string) map[string]any {
		_, body := in.get(t, "/api/delivery?verificationSid="+sids[to])
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		return m
	}
	verifytest.WaitFor(t, "the callbacks", func() bool {
		return delivery(good)["status"] == "delivered" && delivery(landline)["status"] == "undelivered"
	})
	if d := delivery(landline); d["errorCode"] != float64(30006) || d["callAvailable"] != true || d["channel"] != "sms" {
		t.Errorf("/api/delivery of the failed text = %v, want undelivered 30006 by sms, a call available", d)
	}
	if d := delivery(good); d["callAvailable"] != false {
		t.Errorf("/api/delivery of the delivered text = %v, want no call yet (the resend wait)", d)
	}
	for _, cb := range api.Callbacks() {
		if cb.Status != 204 {
			t.Errorf("a signed callback %v was answered %d, want 204", cb.Params, cb.Status)
		}
	}
	_, metrics := in.get(t, "/metrics")
	for _, want := range []string{`verifyd_deliveries_total{backend="messaging",channel="sms",status="delivered"} 1`,
		`verifyd_deliveries_total{backend="messaging",channel="sms",status="undelivered"} 1`,
		`verifyd_deliveries_total{backend="messaging",channel="call",status="failed"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "deliveries"))
		}
	}

	// A forged and an unsigned callback: 403, and nothing changes.
	cbURL := "http://" + addr + "/webhooks/twilio/status?v=" + sids[good]
	params := map[string]string{"MessageSid": "SM" + strings.Repeat("0", 32), "MessageStatus": "failed", "ErrorCode": "30003"}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	for name, sig := range map[string]string{"forged": twilioapitest.Sign("not the token", cbURL, params), "unsigned": ""} {
		req, _ := http.NewRequest(http.MethodPost, cbURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set("X-Twilio-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("a %s callback = %d, want 403", name, resp.StatusCode)
		}
	}
	if _, after := in.get(t, "/metrics"); grepLines(after, "verifyd_deliveries_total") != grepLines(metrics, "verifyd_deliveries_total") {
		t.Errorf("refused callbacks changed the counters:\n%s", grepLines(after, "deliveries"))
	}
	if d := delivery(good); d["status"] != "delivered" {
		t.Errorf("after the forged callback the delivery is %v, want delivered", d)
	}

	// The failed text gave its resend back: a call at once.
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+landline+`","channel":"call"}`); status != 200 {
		t.Errorf("a call right after the failed text = %d %v, want 200", status, got)
	}
	// The delivered one did not: the resend wait holds.
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+good+`"}`); status != 429 {
		t.Errorf("a resend of the delivered text at once = %d %v, want 429", status, got)
	}
}

// TestMessagingWalkthrough runs README's messaging walkthrough, with
// verifyd's defaults: the stand-in as twilio-standin -api serves it, a text
// delivered and its code verified, a text to the walkthrough's landline
// undelivered, and the call offered and placed at once.
func TestMessagingWalkthrough(t *testing.T) {
	redisSrv := redistest.Start(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	api.UseWalkthroughOutcomes()
	addr, err := toolrun.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	in := startRun(t, []string{"VERIFY_BACKEND=messaging", "REDIS_URL=" + redisSrv.URL,
		"TWILIO_API_BASE_URL=" + api.URL(), "TWILIO_ACCOUNT_SID=" + api.AccountSID(), "TWILIO_AUTH_TOKEN=" + api.AuthToken(),
		"TWILIO_FROM_NUMBER=+15005550006", "CODE_SECRET=walkthrough-code-secret-0123456789ab",
		"ALLOWED_CHANNELS=sms,call", "PUBLIC_URL=http://localhost:" + port, "PORT=" + port})
	deliveryOf := func(sid string) map[string]any {
		_, body := in.get(t, "/api/delivery?verificationSid="+sid)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		return m
	}
	send := func(body string) string {
		t.Helper()
		status, got := in.post(t, "/api/request-otp", body)
		if status != 200 {
			t.Fatalf("POST /api/request-otp %s = %d %v", body, status, got)
		}
		sid, _ := got["verificationSid"].(string)
		return sid
	}

	sid := send(`{"phoneNumber":"+14155552671"}`)
	verifytest.WaitFor(t, "the text's delivery", func() bool { return deliveryOf(sid)["status"] == "delivered" })
	code := lastCode(t, api)
	if status, got := in.post(t, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"`+code+`"}`); status != 200 {
		t.Fatalf("the code from the outbox = %d %v", status, got)
	}

	sid = send(`{"phoneNumber":"` + twilioapitest.WalkthroughUndelivered + `"}`)
	verifytest.WaitFor(t, "the landline's text to come back", func() bool { return deliveryOf(sid)["status"] == "undelivered" })
	if d := deliveryOf(sid); d["errorCode"] != float64(30006) || d["callAvailable"] != true {
		t.Errorf("/api/delivery = %v, want 30006 and a call available", d)
	}
	send(`{"phoneNumber":"` + twilioapitest.WalkthroughUndelivered + `","channel":"call"}`)
	if last := api.Sent()[len(api.Sent())-1]; last.Kind != "call" || last.To != twilioapitest.WalkthroughUndelivered {
		t.Errorf("the last send was %+v, want the call", last)
	}
	rec := httptest.NewRecorder()
	api.Outbox().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if page := rec.Body.String(); !strings.Contains(page, "Your verification code is "+code) || !strings.Contains(page, "<td>call</td>") {
		t.Errorf("the outbox page does not show the text and the call:\n%s", page)
	}
}
