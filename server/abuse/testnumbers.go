package abuse

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"verifyd/server/verify"
)

// TestNumbers answers a few configured numbers with fixed codes, locally:
// for app-store review and CI. They never reach Next (Twilio), so they cost
// nothing; every other number passes through.
type TestNumbers struct {
	next  verify.Verifier
	codes map[string]string // E.164 → code
	bySID map[string]string // SID → E.164
}

var _ verify.Verifier = (*TestNumbers)(nil)

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

// NewTestNumbers wraps next.
func NewTestNumbers(next verify.Verifier, codes map[string]string) *TestNumbers {
	t := &TestNumbers{next: next, codes: codes, bySID: map[string]string{}}
	for num := range codes {
		t.bySID[testSID(num)] = num
	}
	return t
}

// Exempt reports whether e164 is a test number.
func (t *TestNumbers) Exempt(e164 string) bool {
	_, ok := t.codes[e164]
	return ok
}

// Start answers a test number as sent.
func (t *TestNumbers) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	to := req.To.E164()
	if !t.Exempt(to) {
		return t.next.Start(ctx, req)
	}
	return verify.Verification{SID: testSID(to), To: to, Channel: req.Channel,
		Status: verify.StatusPending, SendAttempts: 1}, nil
}

// Check compares a test number's code in constant time.
func (t *TestNumbers) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	num := req.To.E164()
	if num == "" {
		num = t.bySID[req.SID]
	}
	want, ok := t.codes[num]
	if !ok {
		return t.next.Check(ctx, req)
	}
	v := verify.Verification{SID: testSID(num), To: num, Channel: verify.ChannelSMS, Status: verify.StatusPending}
	if subtle.ConstantTimeCompare([]byte(req.Code), []byte(want)) == 1 {
		v.Status = verify.StatusApproved
	}
	return v, nil
}

// testSID is a stable verification SID for a test number.
func testSID(e164 string) string {
	sum := sha256.Sum256([]byte("verifyd-test-number:" + e164))
	return "VE" + hex.EncodeToString(sum[:16])
}
