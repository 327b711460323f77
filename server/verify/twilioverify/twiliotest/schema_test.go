package twiliotest_test

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// The stand-in is only as good as its likeness to Twilio. These tests hold
// its answers and the parameters it accepts to Twilio's own OpenAPI
// description of Verify v2 (testdata/twilio_verify_v2.json, from
// twilio/twilio-oai), so neither it nor a client tested against it can drift
// from the real wire format unnoticed.

func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("testdata/twilio_verify_v2.json")
	if err != nil {
		t.Fatalf("loading the OpenAPI description: %v", err)
	}
	return doc
}

// template answers the OpenAPI path of a concrete request path.
func template(t *testing.T, path string) string {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(path, "/v2/Services/"), "/")
	switch {
	case len(parts) == 1:
		return "/v2/Services/{Sid}"
	case len(parts) == 2:
		return "/v2/Services/{ServiceSid}/" + parts[1]
	case len(parts) == 3 && parts[1] == "Verifications":
		return "/v2/Services/{ServiceSid}/Verifications/{Sid}"
	}
	t.Fatalf("no OpenAPI path for %s", path)
	return ""
}

func operation(t *testing.T, doc *openapi3.T, method, path string) *openapi3.Operation {
	t.Helper()
	tmpl := template(t, path)
	item := doc.Paths.Value(tmpl)
	if item == nil {
		t.Fatalf("the description has no path %s", tmpl)
	}
	op := item.GetOperation(method)
	if op == nil {
		t.Fatalf("the description has no %s %s", method, tmpl)
	}
	return op
}

// errorSchema is the error body Twilio describes (for CreateVerification's
// 429, the one error the description spells out); every error shares it.
func errorSchema(t *testing.T, doc *openapi3.T) *openapi3.Schema {
	t.Helper()
	op := doc.Paths.Value("/v2/Services/{ServiceSid}/Verifications").Post
	return op.Responses.Status(429).Value.Content.Get("application/json").Schema.Value
}

func visit(s *openapi3.Schema, v any) error {
	return s.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.EnableFormatValidation(), openapi3.MultiErrors())
}

func TestAnswersMatchOpenAPI(t *testing.T) {
	doc := loadDoc(t)
	clock := newFakeClock()
	srv, c := newServer(t, twiliotest.Options{Now: clock.Now})

	// A full scenario touching every operation and every kind of answer.
	var replies []reply
	add := func(r reply) reply { replies = append(replies, r); return r }
	add(c.do(http.MethodGet, c.svc(), nil))
	sid := add(c.start(alice, "sms")).str("sid")
	code, _ := srv.Code(alice)
	add(c.start(alice, "call"))
	add(c.fetch(sid))
	add(c.checkTo(alice, verifytest.WrongCode(code)))
	add(c.checkSID(sid, code))
	add(c.checkSID(sid, code)) // 404
	bob := "+442071838750"
	bobSID := add(c.start(bob, "whatsapp")).str("sid")
	add(c.cancel(bobSID))
	carol := "+33612345678"
	add(c.start(carol, "sna"))
	add(c.checkTo(carol, "0000"))
	for range 5 {
		add(c.checkTo(carol, "0000"))
	}
	add(c.start("dave@example.com", "email"))
	for range 5 {
		add(c.start(bob, "auto"))
	}
	add(c.checkTo(alice, "12")) // 400
	srv.SetFailure(alice, &twiliotest.Failure{Status: 429, Code: 20429, Message: "Too many requests", RetryAfter: "1"})
	add(c.start(alice, "sms"))
	srv.SetFailure(alice, nil)
	c.pass = "0123456789abcdef0123456789abcdef"
	add(c.start(alice, "sms")) // 401

	seen := map[int]bool{}
	errSchema := errorSchema(t, doc)
	for _, r := range replies {
		seen[r.status] = true
		what := r.method + " " + r.path + " → " + strconv.Itoa(r.status)
		if r.body == nil {
			t.Errorf("%s: body %q is not a JSON object", what, r.raw)
			continue
		}
		if r.status >= 400 {
			if err := visit(errSchema, r.body); err != nil {
				t.Errorf("%s: error body %s does not match the description: %v", what, r.raw, err)
			}
			want := []string{"code", "message", "more_info", "status"}
			if got := slices.Sorted(maps.Keys(r.body)); !slices.Equal(got, want) {
				t.Errorf("%s: error body has fields %v, want %v", what, got, want)
			}
			if r.body["status"] != float64(r.status) {
				t.Errorf("%s: error body status %v, want the HTTP status", what, r.body["status"])
			}
			if got, want := r.str("more_info"), "https://www.twilio.com/docs/errors/"+strconv.Itoa(r.code()); got != want {
				t.Errorf("%s: more_info %q, want %q", what, got, want)
			}
			continue
		}
		resp := operation(t, doc, r.method, r.path).Responses.Status(r.status)
		if resp == nil {
			t.Errorf("%s: the description has no %d answer for this operation", what, r.status)
			continue
		}
		schema := resp.Value.Content.Get("application/json").Schema.Value
		if err := visit(schema, r.body); err != nil {
			t.Errorf("%s: body %s does not match the description: %v", what, r.raw, err)
		}
		got, want := slices.Sorted(maps.Keys(r.body)), slices.Sorted(maps.Keys(schema.Properties))
		if !slices.Equal(got, want) {
			t.Errorf("%s: body has fields %v, want exactly the described %v", what, got, want)
		}
		for k, p := range schema.Properties {
			if s, ok := r.body[k].(string); ok && p.Value.Format == "date-time" {
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					t.Errorf("%s: %s = %q is not RFC 3339", what, k, s)
				}
			}
		}
	}
	for _, status := range []int{200, 201, 400, 401, 404, 429} {
		if !seen[status] {
			t.Errorf("the scenario produced no %d answer; it should cover every kind", status)
		}
	}
}

func TestParamsMatchOpenAPI(t *testing.T) {
	doc := loadDoc(t)
	ops := map[string]*openapi3.Operation{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ops[op.OperationID] = op
		}
	}
	for id, accepted := range twiliotest.OperationParams() {
		op := ops[id]
		if op == nil || op.RequestBody == nil {
			t.Errorf("the description has no operation %s with a request body", id)
			continue
		}
		schema := op.RequestBody.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value
		got, want := slices.Sorted(slices.Values(accepted)), slices.Sorted(maps.Keys(schema.Properties))
		if !slices.Equal(got, want) {
			t.Errorf("%s: the stand-in accepts %v, want the described %v", id, got, want)
		}
	}
}

func TestRequiredParamsEnforced(t *testing.T) {
	doc := loadDoc(t)
	_, c := newServer(t, twiliotest.Options{})
	sid := c.start(alice, "sms").str("sid")
	tests := []struct {
		method, path string
		full         url.Values
	}{
		{http.MethodPost, c.svc() + "/Verifications", url.Values{"To": {"+442071838750"}, "Channel": {"sms"}}},
		{http.MethodPost, c.svc() + "/Verifications/" + sid, url.Values{"Status": {"canceled"}}},
	}
	for _, tt := range tests {
		op := operation(t, doc, tt.method, tt.path)
		required := op.RequestBody.Value.Content.Get("application/x-www-form-urlencoded").Schema.Value.Required
		if len(required) == 0 {
			t.Fatalf("%s %s: the description requires nothing; the test is stale", tt.method, tt.path)
		}
		for _, name := range required {
			form := maps.Clone(tt.full)
			delete(form, name)
			r := c.do(tt.method, tt.path, form)
			if r.status != 400 || r.code() != 60200 || !strings.Contains(r.str("message"), name) {
				t.Errorf("%s %s without %s = %d %s, want 400 60200 naming it", tt.method, tt.path, name, r.status, r.raw)
			}
		}
	}
}
