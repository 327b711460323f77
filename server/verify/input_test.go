package verify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"verifyd/server/verify"
)

func TestParsePhone(t *testing.T) {
	tests := []struct {
		region, input string
		want          string
		wantErr       error
	}{
		{"", "+14155552671", "+14155552671", nil},
		{"", " +1 (415) 555-2671 ", "+14155552671", nil},
		{"", "+44 20 7183 8750", "+442071838750", nil},
		{"", "4155552671", "", verify.ErrInvalidPhone},
		{"", "", "", verify.ErrMissingTarget},
		{"", "   ", "", verify.ErrMissingTarget},
		{"", "+1415555", "", verify.ErrInvalidPhone},
		{"", "+99912345678", "", verify.ErrInvalidPhone},
		{"", "+1" + strings.Repeat("2", 80), "", verify.ErrInvalidPhone},
		{"", "+١٤١٥٥٥٥٢٦٧١", "+14155552671", nil}, // Arabic-Indic digits, as people type them
		{"US", "(415) 555-2671", "+14155552671", nil},
		{"GB", "020 7183 8750", "+442071838750", nil},
		{"GB", "+14155552671", "+14155552671", nil},
		{"US", "555-2671", "", verify.ErrInvalidPhone},
	}
	for _, tt := range tests {
		p, err := verify.NewPhoneParser(tt.region)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Parse(tt.input)
		if !errors.Is(err, tt.wantErr) || got.E164() != tt.want {
			t.Errorf("Parse(%q) in %q = %q, %v; want %q, %v", tt.input, tt.region, got.E164(), err, tt.want, tt.wantErr)
		}
	}
}

func TestParsePhoneClassifies(t *testing.T) {
	p := verify.PhoneParser{}
	n, err := p.Parse("+447400123456")
	if err != nil {
		t.Fatal(err)
	}
	if n.Region() != "GB" || n.Type() != phonenumbers.MOBILE {
		t.Errorf("Parse(+447400123456) = %+v, want a GB mobile", n)
	}
}

func TestNewPhoneParserRejectsUnknownRegion(t *testing.T) {
	for _, r := range []string{"XX", "USA", "1"} {
		if _, err := verify.NewPhoneParser(r); err == nil {
			t.Errorf("NewPhoneParser(%q) = nil error, want one", r)
		}
	}
	if p, err := verify.NewPhoneParser("us"); err != nil || p.DefaultRegion != "US" {
		t.Errorf("NewPhoneParser(us) = %+v, %v; want US", p, err)
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"123456", "123456", true},
		{"1234", "1234", true},
		{"1234567890", "1234567890", true},
		{" 123 456 ", "123456", true},
		{"123-456", "123456", true},
		{"１２３４５６", "123456", true},       // full-width, from a CJK keyboard
		{"١٢٣٤٥٦", "123456", true},       // Arabic-Indic
		{"०१२ ३४५", "012345", true},      // Devanagari
		{"１２３\u3000４５６", "123456", true}, // an ideographic space
		{"𝟏𝟐𝟑𝟒", "1234", true},           // mathematical bold
		{"123", "", false},
		{"12345678901", "", false},
		{"12a456", "", false},
		{"", "", false},
		{strings.Repeat(" ", 100) + "1234", "", false},
	}
	for _, tt := range tests {
		got, err := verify.ParseCode(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCode(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestValidSID(t *testing.T) {
	tests := map[string]bool{
		"VE0123456789abcdef0123456789ABCDEF": true,
		"VA0123456789abcdef0123456789abcdef": false,
		"VE0123456789abcdef0123456789abcdeg": false,
		"VE0123":                             false,
		"":                                   false,
	}
	for sid, want := range tests {
		if got := verify.ValidSID(sid); got != want {
			t.Errorf("ValidSID(%q) = %v, want %v", sid, got, want)
		}
	}
}

func TestChannels(t *testing.T) {
	cs, err := verify.ParseChannels([]string{" SMS", "call", "sms", ""})
	if err != nil || len(cs) != 2 || cs[0] != verify.ChannelSMS || cs[1] != verify.ChannelCall {
		t.Fatalf("ParseChannels = %v, %v; want [sms call]", cs, err)
	}
	if c, err := cs.Pick(""); c != verify.ChannelSMS || err != nil {
		t.Errorf("Pick(\"\") = %q, %v; want sms", c, err)
	}
	if _, err := cs.Pick("whatsapp"); !errors.Is(err, verify.ErrChannelNotAllowed) {
		t.Errorf("Pick(whatsapp) = %v, want ErrChannelNotAllowed", err)
	}
	for _, bad := range [][]string{{"email"}, {}, {""}} {
		if _, err := verify.ParseChannels(bad); err == nil {
			t.Errorf("ParseChannels(%q) = nil error, want one", bad)
		}
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"+14155552671":  "+1********71",
		"+442071838750": "+4*********50",
		"+123":          "***",
	}
	for in, want := range tests {
		if got := verify.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLocales(t *testing.T) {
	l := verify.NewLocales()
	header := map[string]string{
		"de-DE,de;q=0.9,en;q=0.8": "de",
		"en-US":                   "en",
		"en-GB,en;q=0.9":          "en-GB",
		"pt-BR":                   "pt-BR",
		"fr-CA":                   "fr-CA",
		"zh-HK":                   "zh-HK",
		"xx":                      "",
		"":                        "",
		"*":                       "",
		strings.Repeat("a,", 300): "",
	}
	for h, want := range header {
		if got := l.FromAcceptLanguage(h); got != want {
			t.Errorf("FromAcceptLanguage(%q) = %q, want %q", h, got, want)
		}
	}
	if got, err := l.Exact("PT-br"); got != "pt-BR" || err != nil {
		t.Errorf("Exact(PT-br) = %q, %v; want pt-BR", got, err)
	}
	if _, err := l.Exact("klingon"); !errors.Is(err, verify.ErrInvalidLocale) {
		t.Errorf("Exact(klingon) = %v, want ErrInvalidLocale", err)
	}
}

func TestOutcome(t *testing.T) {
	tests := map[verify.Status]error{
		verify.StatusApproved:           nil,
		verify.StatusPending:            verify.ErrWrongCode,
		verify.StatusExpired:            verify.ErrExpired,
		verify.StatusMaxAttemptsReached: verify.ErrMaxAttemptsReached,
		verify.StatusCanceled:           verify.ErrCanceled,
		verify.StatusDeleted:            verify.ErrCanceled,
		verify.StatusFailed:             verify.ErrFailed,
		"novel":                         verify.ErrUnavailable,
	}
	for st, want := range tests {
		if got := verify.Outcome(verify.Verification{Status: st}); !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Errorf("Outcome(%q) = %v, want %v", st, got, want)
		}
	}
}

func BenchmarkParsePhone(b *testing.B) {
	p := verify.PhoneParser{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse("+14155552671"); err != nil {
			b.Fatal(err)
		}
	}
}
