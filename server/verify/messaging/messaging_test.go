package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/messaging"
	"verifyd/server/verify/messaging/twilioapitest"
)

func newSender(t *testing.T, s *twilioapitest.Server, mod func(*messaging.Config)) *messaging.Sender {
	t.Helper()
	cfg := messaging.Config{AccountSID: s.AccountSID(), Username: s.AccountSID(), Password: s.AuthToken(),
		BaseURL: s.URL(), From: "+15005550006", WhatsAppFrom: "+14155238886", RequestTimeout: 500 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	snd, err := messaging.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snd.Close)
	return snd
}

func msg(ch verify.Channel, locale string) engine.Message {
	return engine.Message{SID: "VE" + strings.Repeat("a", 32), To: "+14155552671", Channel: ch, Locale: locale, Code: "482913"}
}

func TestSendThroughTheSDK(t *testing.T) {
	s := twilioapitest.NewServer()
	defer s.Close()
	withService := newSender(t, s, func(c *messaging.Config) {
		c.MessagingServiceSID = "MG" + strings.Repeat("b", 32)
		c.AppName, c.Host = "Acme", "verify.example.com"
	})
	plain := newSender(t, s, nil)
	ctx := context.Background()
	for _, step := range []struct {
		snd  *messaging.Sender
		m    engine.Message
		want func(twilioapitest.Sent) bool
	}{
		{withService, msg(verify.ChannelSMS, "de"), func(x twilioapitest.Sent) bool {
			return x.Kind == "message" && x.To == "+14155552671" && x.MessagingServiceSID != "" && x.From == "" &&
				x.Body == "Dein Bestätigungscode für Acme lautet 482913. Gib ihn an niemanden weiter.\n\n@verify.example.com #482913"
		}},
		{plain, msg(verify.ChannelSMS, "xx"), func(x twilioapitest.Sent) bool {
			return x.From == "+15005550006" && x.Body == "Your verification code is 482913. Do not share it with anyone."
		}},
		{plain, msg(verify.ChannelWhatsApp, "pt-BR"), func(x twilioapitest.Sent) bool {
			return x.To == "whatsapp:+14155552671" && x.From == "whatsapp:+14155238886" && strings.Contains(x.Body, "Seu código de verificação é 482913")
		}},
		{plain, msg(verify.ChannelCall, "fr"), func(x twilioapitest.Sent) bool {
			return x.Kind == "call" && x.From == "+15005550006" && strings.Count(x.Twiml, "4, 8, 2, 9, 1, 3") == 2 &&
				strings.Contains(x.Twiml, `<Say language="fr-FR">`) && strings.Contains(x.Twiml, "<Pause")
		}},
	} {
		if err := step.snd.Send(ctx, step.m); err != nil {
			t.Fatalf("Send(%s, %s) = %v", step.m.Channel, step.m.Locale, err)
		}
		sent := s.Sent()
		if last := sent[len(sent)-1]; !step.want(last) {
			t.Errorf("Send(%s, %s) sent %+v", step.m.Channel, step.m.Locale, last)
		}
	}
	if err := plain.Ping(ctx); err != nil {
		t.Errorf("Ping = %v", err)
	}
}

// TestErrorsMapped: each create error reaches the caller as the same stable
// answer as Verify's, and says whether the code may have gone out.
func TestErrorsMapped(t *testing.T) {
	s := twilioapitest.NewServer()
	defer s.Close()
	snd := newSender(t, s, nil)
	for _, tt := range []struct {
		f     twilioapitest.Failure
		want  *verify.Error
		maybe bool
	}{
		{twilioapitest.Failure{Code: 21211, Message: "Invalid 'To' Phone Number"}, verify.ErrInvalidPhone, false},
		{twilioapitest.Failure{Code: 21408, Message: "Permission to send an SMS has not been enabled"}, verify.ErrDestinationBlocked, false},
		{twilioapitest.Failure{Code: 21610, Message: "Attempt to send to unsubscribed recipient"}, messaging.ErrUnsubscribed, false},
		{twilioapitest.Failure{Code: 21614, Message: "'To' number is not a valid mobile number"}, verify.ErrLandline, false},
		{twilioapitest.Failure{Code: 21216, Message: "Account not allowed to call"}, verify.ErrDestinationBlocked, false},
		{twilioapitest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests"}, verify.ErrUpstreamBusy, false},
		{twilioapitest.Failure{Status: 401, Code: 20003, Message: "Authenticate"}, verify.ErrMisconfigured, false},
		{twilioapitest.Failure{Status: 500, Code: 20500, Message: "Internal Server Error"}, verify.ErrUnavailable, false},
		{twilioapitest.Failure{Hang: true}, verify.ErrTimeout, true},
	} {
		s.SetFailure("+14155552671", &tt.f)
		err := snd.Send(context.Background(), msg(verify.ChannelSMS, "en"))
		if !errors.Is(err, tt.want) || verify.AsError(err).MaybeSent != tt.maybe {
			t.Errorf("Twilio %d = %v (maybe sent %v), want %s (maybe sent %v)", tt.f.Code, err, verify.AsError(err).MaybeSent, tt.want.Code, tt.maybe)
		}
	}
	// Refused connections: certainly not sent.
	s.Close()
	if err := snd.Send(context.Background(), msg(verify.ChannelSMS, "en")); !errors.Is(err, verify.ErrUnavailable) || verify.AsError(err).MaybeSent {
		t.Errorf("a closed stand-in = %v, want %s, certainly not sent", err, verify.ErrUnavailable.Code)
	}
}

func TestBodyAndTwiML(t *testing.T) {
	if got := messaging.Body("es", "", "123456", "", "FA+9qCX9VSu"); got != "Tu código de verificación es 123456. No lo compartas con nadie.\nFA+9qCX9VSu" {
		t.Errorf("Body with an Android hash = %q", got)
	}
	b := messaging.Body("en", "Acme", "123456", "verify.example.com", "")
	lines := strings.Split(b, "\n")
	if lines[len(lines)-1] != "@verify.example.com #123456" || !strings.Contains(b, "code") {
		t.Errorf("Body = %q: the WebOTP line must be last, and the word code there for iOS", b)
	}
	// What a message bills as, with a long app name, the longest code and
	// the WebOTP line: one GSM-7 segment where the language's letters are
	// all GSM-7; Spanish ("ó") and Portuguese ("ç", "ã") are UCS-2, whose
	// segments are 70 characters, and take two (as the README says).
	for body, want := range map[string]int{strings.Repeat("ä", 160): 1, strings.Repeat("a", 161): 2,
		strings.Repeat("€", 80): 1, strings.Repeat("€", 81): 2, strings.Repeat("ó", 70): 1, strings.Repeat("ó", 71): 2} {
		if n := segments(body); n != want {
			t.Errorf("segments(%d × %q) = %d, want %d", len([]rune(body)), []rune(body)[0], n, want)
		}
	}
	for l, want := range map[string]int{"en": 1, "de": 1, "fr": 1, "es": 2, "pt-BR": 2} {
		body := messaging.Body(l, "Some App Name", "1234567890", "verify.example.com", "")
		if n := segments(body); n > want {
			t.Errorf("the %s message bills as %d segments, want at most %d: %q", l, n, want, body)
		}
	}
	if tw := messaging.TwiML("de", "1<2"); !strings.Contains(tw, "1, &lt;, 2") {
		t.Errorf("TwiML does not escape: %s", tw)
	}
}

// The GSM 03.38 alphabet: its basic characters take one septet, those of
// its extension table two.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "^{}\\[~]|€\f"
)

// segments answers how many SMS segments body bills as: GSM-7 when every
// character is in its alphabet (160 septets, or 153 a part), else UCS-2
// (70 UTF-16 units, or 67 a part).
func segments(body string) int {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			septets++
		case strings.ContainsRune(gsm7Extension, r):
			septets += 2
		default:
			gsm = false
		}
	}
	if gsm {
		if septets <= 160 {
			return 1
		}
		return (septets + 152) / 153
	}
	units := len(utf16.Encode([]rune(body)))
	if units <= 70 {
		return 1
	}
	return (units + 66) / 67
}
