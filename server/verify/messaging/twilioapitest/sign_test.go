package twilioapitest_test

import (
	"testing"

	"github.com/twilio/twilio-go/client"

	"verifyd/server/verify/messaging/twilioapitest"
)

// TestSignIsTwilios: the stand-in signs callbacks as Twilio documents it
// (its own example), and twilio-go's validator, which verifyd uses, agrees.
func TestSignIsTwilios(t *testing.T) {
	url := "https://mycompany.com/myapp.php?foo=1&bar=2"
	params := map[string]string{"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
		"From": "+12349013030", "To": "+18005551212"}
	const want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twilioapitest.Sign("12345", url, params); got != want {
		t.Errorf("Sign(Twilio's example) = %q, want %q", got, want)
	}
	v := client.NewRequestValidator("12345")
	if !v.Validate(url, params, want) {
		t.Error("twilio-go's validator refuses Twilio's own example")
	}
	params["Digits"] = "1235"
	if v.Validate(url, params, want) {
		t.Error("twilio-go's validator accepts a changed parameter")
	}
}
