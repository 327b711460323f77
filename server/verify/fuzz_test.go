package verify_test

import (
	"strings"
	"testing"

	"verifyd/server/verify"
)

// FuzzParsePhone feeds arbitrary text to the phone parser: it must never
// panic, and whatever it accepts must be E.164 that parses back to itself.
func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"+14155552671", "(415) 555-2671", "+44 20 7183 8750", "+", "++1", "+0", "00", "+١٢٣", "tel:+1-415"} {
		f.Add(s, "")
		f.Add(s, "US")
	}
	f.Fuzz(func(t *testing.T, input, region string) {
		p, err := verify.NewPhoneParser(region)
		if err != nil {
			return
		}
		n, err := p.Parse(input)
		if err != nil {
			return
		}
		if !strings.HasPrefix(n.E164(), "+") || len(n.E164()) > 16 {
			t.Fatalf("Parse(%q) = %q, not E.164", input, n.E164())
		}
		again, err := verify.PhoneParser{}.Parse(n.E164())
		if err != nil || again.E164() != n.E164() {
			t.Fatalf("Parse(%q) = %q, which parses back as %q, %v", input, n.E164(), again.E164(), err)
		}
	})
}

// FuzzParseCode: whatever ParseCode accepts is 4 to 10 ASCII digits.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"123456", " 12-34 ", "١٢٣٤", "12345678901"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		code, err := verify.ParseCode(input)
		if err != nil {
			return
		}
		if len(code) < 4 || len(code) > 10 || strings.Trim(code, "0123456789") != "" {
			t.Fatalf("ParseCode(%q) = %q", input, code)
		}
	})
}
