package abuse

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"verifyd/server/verify"
)

// TestNumbers answers a few configured numbers with fixed codes, locally:
// for app-store review and CI. The flow asks it before the backend, so
// these numbers never reach Twilio and cost nothing.
type TestNumbers struct {
	codes map[string]string // E.164 → code
	bySID map[string]string // SID → E.164
}

// ParseTestNumbers reads "+15005550006:123456,+15005550007:654321".
func ParseTestNumbers(s string, phones verify.PhoneParser) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		num, code, ok := strings.Cut(pair, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not NUMBER:CODE", pair)
		}
		n, err := phones.Parse(num)
		if err != nil {
			return nil, fmt.Errorf("%q is not a valid phone number", num)
		}
		c, err := verify.ParseCode(code)
		if err != nil {
			return nil, fmt.Errorf("the code for %s must be 4 to 10 digits", n.String())
		}
		out[n.E164()] = c
	}
	return out, nil
}

// NewTestNumbers answers the numbers of codes (E.164 → code).
func NewTestNumbers(codes map[string]string) *TestNumbers {
	t := &TestNumbers{codes: codes, bySID: map[string]string{}}
	for num := range codes {
		t.bySID[testSID(num)] = num
	}
	return t
}

// Has reports whether n is a test number.
func (t *TestNumbers) Has(n verify.Number) bool {
	_, ok := t.codes[n.E164()]
	return ok
}

// Start answers a test number as sent.
func (t *TestNumbers) Start(n verify.Number, ch verify.Channel) verify.Verification {
	to := n.E164()
	return verify.Verification{SID: testSID(to), To: to, Channel: ch, Status: verify.StatusPending, SendAttempts: 1}
}

// Check answers a check of a test number (by number or by its SID),
// comparing the code in constant time; ok is false for every other number.
func (t *TestNumbers) Check(req verify.CheckRequest) (v verify.Verification, ok bool) {
	num := req.To.E164()
	if num == "" {
		num = t.bySID[req.SID]
	}
	want, ok := t.codes[num]
	if !ok {
		return verify.Verification{}, false
	}
	v = verify.Verification{SID: testSID(num), To: num, Channel: verify.ChannelSMS, Status: verify.StatusPending}
	if subtle.ConstantTimeCompare([]byte(req.Code), []byte(want)) == 1 {
		v.Status = verify.StatusApproved
	}
	return v, true
}

// testSID is a stable verification SID for a test number.
func testSID(e164 string) string {
	sum := sha256.Sum256([]byte("verifyd-test-number:" + e164))
	return "VE" + hex.EncodeToString(sum[:16])
}
