package twilioapitest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/messaging"
	"verifyd/server/verify/messaging/twilioapitest"
)

// TestMatchesTheOfficialDescription drives the stand-in with the real SDK
// (through the messaging sender) and checks every request's parameters and
// every answer against Twilio's own description of the 2010 API
// (testdata, the three operations extracted unchanged).
func TestMatchesTheOfficialDescription(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("testdata/twilio_api_v2010_messages_calls.json")
	if err != nil {
		t.Fatal(err)
	}
	s := twilioapitest.NewServer()
	defer s.Close()
	snd, err := messaging.New(messaging.Config{AccountSID: s.AccountSID(), Username: s.AccountSID(), Password: s.AuthToken(),
		BaseURL: s.URL(), From: "+15005550006", MessagingServiceSID: "MG" + strings.Repeat("c", 32), WhatsAppFrom: "+14155238886"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ch := range []verify.Channel{verify.ChannelSMS, verify.ChannelWhatsApp, verify.ChannelCall} {
		if err := snd.Send(ctx, engine.Message{SID: "VE" + strings.Repeat("a", 32), To: "+14155552671", Channel: ch, Locale: "en", Code: "123456"}); err != nil {
			t.Fatalf("Send(%s) = %v", ch, err)
		}
	}
	if err := snd.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetFailure("+14155552671", &twilioapitest.Failure{Code: 21211, Message: "Invalid 'To' Phone Number"})
	snd.Send(ctx, engine.Message{SID: "VE" + strings.Repeat("a", 32), To: "+14155552671", Channel: verify.ChannelSMS, Code: "123456"})

	kinds := map[string]bool{}
	for _, x := range s.Exchanges() {
		tmpl, method := "/2010-04-01/Accounts/{Sid}.json", "GET"
		switch {
		case strings.HasSuffix(x.Path, "/Messages.json"):
			tmpl, method = "/2010-04-01/Accounts/{AccountSid}/Messages.json", "POST"
		case strings.HasSuffix(x.Path, "/Calls.json"):
			tmpl, method = "/2010-04-01/Accounts/{AccountSid}/Calls.json", "POST"
		}
		op := doc.Paths.Value(tmpl).GetOperation(method)
		if method == "POST" {
			form := map[string]any{}
			for k, v := range x.Form {
				form[k] = v[0]
			}
			schema := op.RequestBody.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value
			if err := schema.VisitJSON(form, openapi3.MultiErrors()); err != nil {
				t.Errorf("%s %s sent parameters the description refuses: %v", method, x.Path, err)
			}
			for k := range x.Form {
				if _, ok := schema.Properties[k]; !ok {
					t.Errorf("%s %s sent %s, which the description does not name", method, x.Path, k)
				}
			}
		}
		var body any
		if err := json.Unmarshal(x.Body, &body); err != nil {
			t.Fatalf("%s %s answered non-JSON %q", method, x.Path, x.Body)
		}
		if x.Status < 300 {
			resp := op.Responses.Status(x.Status)
			if resp == nil {
				t.Errorf("%s %s answered %d, which the description does not list", method, x.Path, x.Status)
				continue
			}
			if err := resp.Value.Content.Get("application/json").Schema.Value.VisitJSON(body, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
				t.Errorf("%s %s answer breaks the description: %v", method, x.Path, err)
			}
		} else if m, _ := body.(map[string]any); m["code"] == nil || m["message"] == nil || m["status"] == nil {
			t.Errorf("an error answer %s lacks Twilio's code, message or status", x.Body)
		}
		kinds[method+" "+tmpl+" "+http(x.Status)] = true
	}
	if len(kinds) < 4 {
		t.Errorf("the scenario covered only %v", kinds)
	}
}

func http(status int) string {
	if status < 300 {
		return "ok"
	}
	return "error"
}
