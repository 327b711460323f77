package verify

import (
	"fmt"
	"log/slog"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// maxPhoneInput bounds what reaches the phone-number parser: no real number,
// however formatted, is longer, and the parser's cost grows with its input.
const maxPhoneInput = 64

// PhoneParser turns what a person typed into an E.164 number.
type PhoneParser struct {
	// DefaultRegion (ISO 3166 alpha-2, upper case) lets national formats
	// through; empty means only international numbers starting with "+".
	DefaultRegion string
	// cache, from NewPhoneParser, remembers valid numbers by input; the
	// zero PhoneParser parses every time.
	cache *parseCache
}

// NewPhoneParser validates region ("" or a region phonenumbers knows).
func NewPhoneParser(region string) (PhoneParser, error) {
	region = strings.ToUpper(strings.TrimSpace(region))
	if region != "" && phonenumbers.GetCountryCodeForRegion(region) == 0 {
		return PhoneParser{}, fmt.Errorf("unknown region %q", region)
	}
	return PhoneParser{DefaultRegion: region, cache: newParseCache()}, nil
}

// Number is a phone number that phonenumbers found valid. Only
// PhoneParser.Parse makes one, so a Number in hand is always a valid,
// normalised number with its region and type known; the zero Number means
// "no number". It prints and logs masked: the full number comes only from
// E164, so it cannot reach a log by accident.
type Number struct {
	e164   string
	intl   string // the international format, for International
	region string
	cc     int32 // the country calling code
	typ    phonenumbers.PhoneNumberType
}

// E164 is the number in E.164 ("+14155552671"); "" for the zero Number.
func (n Number) E164() string { return n.e164 }

// Region is the number's ISO 3166 alpha-2 region, "" when it belongs to no
// single country (such as +800 or +882 numbers).
func (n Number) Region() string { return n.region }

// CountryCode is the number's country calling code (1 for +1...).
func (n Number) CountryCode() int { return int(n.cc) }

// Type is what phonenumbers says the number is (mobile, fixed line, ...).
func (n Number) Type() phonenumbers.PhoneNumberType { return n.typ }

// International is the number as a person reads it, in the international
// format of its country ("+44 7400 123456", "+1 415-555-2671"): for a
// screen the number's owner is looking at, never for a log.
func (n Number) International() string { return n.intl }

// IsZero reports whether n is no number at all.
func (n Number) IsZero() bool { return n.e164 == "" }

// String answers the number masked, as logs show it.
func (n Number) String() string { return Mask(n.e164) }

// LogValue logs the number masked.
func (n Number) LogValue() slog.Value { return slog.StringValue(Mask(n.e164)) }

// Parse normalises input to E.164. It answers ErrInvalidPhone for anything
// phonenumbers cannot parse or finds invalid, and for national formats when no
// default region is set.
func (p PhoneParser) Parse(input string) (Number, error) {
	return p.ParseIn(input, p.DefaultRegion)
}

// ParseIn is Parse with the number read in region (ISO 3166 alpha-2, upper
// case, as ParseCountry answers it; "" for none): a national number
// ("07400 123456") is that region's, while a number with "+" or the
// region's international prefix ("00 44 7400 123456") is read as such.
func (p PhoneParser) ParseIn(input, region string) (Number, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return Number{}, ErrMissingTarget
	}
	if len(s) > maxPhoneInput {
		return Number{}, ErrInvalidPhone
	}
	if region == "" && !strings.HasPrefix(s, "+") {
		return Number{}, ErrInvalidPhone
	}
	key := region + "|" + s
	if p.cache != nil {
		if n, ok := p.cache.get(key); ok {
			return n, nil
		}
	}
	n, err := parseIn(s, region)
	if err == nil && p.cache != nil {
		p.cache.put(key, n)
	}
	return n, err
}

// ParseCountry checks a country a client chose: ISO 3166 alpha-2 of a
// region phonenumbers knows; it answers it upper-cased.
func ParseCountry(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 2 || phonenumbers.GetCountryCodeForRegion(c) == 0 {
		return "", ErrInvalidCountry
	}
	return c, nil
}

func parseIn(s, region string) (Number, error) {
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return Number{}, ErrInvalidPhone
	}
	// IsValidNumber is GetNumberType(num) != UNKNOWN (phonenumbers computes
	// it so); asking for the type alone saves a second pass of pattern
	// matching, which is most of the cost of a request.
	typ := phonenumbers.GetNumberType(num)
	if typ == phonenumbers.UNKNOWN {
		return Number{}, ErrInvalidPhone
	}
	return Number{
		e164: phonenumbers.Format(num, phonenumbers.E164),
		// Formatted once here, and kept with the number in the parse
		// cache: pages and answers show it on every request.
		intl:   phonenumbers.Format(num, phonenumbers.INTERNATIONAL),
		region: phonenumbers.GetRegionCodeForNumber(num),
		cc:     num.GetCountryCode(),
		typ:    typ,
	}, nil
}

// ParseCode strips the spaces and dashes people paste with a code and checks
// that 4 to 10 digits remain.
func ParseCode(input string) (string, error) {
	var b strings.Builder
	for i, r := range input {
		if i > 64 {
			return "", ErrInvalidCode
		}
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case unicode.IsDigit(r):
			// Full-width (from a CJK keyboard), Arabic-Indic, Devanagari…:
			// the digit it stands for, as phone numbers are read.
			b.WriteByte(byte('0' + digitValue(r)))
		case r == ' ' || r == '-' || r == '\t' || r == '\u3000':
		default:
			return "", ErrInvalidCode
		}
	}
	if n := b.Len(); n < 4 || n > 10 {
		return "", ErrInvalidCode
	}
	return b.String(), nil
}

// digitValue is the value of a decimal digit of any script: Unicode lays
// each script's digits out as a run of ten from zero.
func digitValue(r rune) int {
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return int(r-start) % 10
}

// ValidSID reports whether s looks like a Twilio verification SID: "VE"
// followed by 32 hex digits.
func ValidSID(s string) bool {
	if len(s) != 34 || s[:2] != "VE" {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// MaxNonce is the longest nonce a client may bind a receipt to.
const MaxNonce = 128

// ParseNonce checks a nonce a client gave: 1 to MaxNonce URL-safe characters
// (RFC 4648 base64url's alphabet), so it travels in a URL, a form and a
// receipt unchanged. Callers call it only when a nonce was given.
func ParseNonce(s string) (string, error) {
	if s == "" || len(s) > MaxNonce {
		return "", ErrInvalidNonce
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", ErrInvalidNonce
		}
	}
	return s, nil
}

// Channels is the set of channels an operator allows, in preference order.
type Channels []Channel

// ParseChannels reads a list such as ["sms", "call"].
func ParseChannels(names []string) (Channels, error) {
	var cs Channels
	for _, n := range names {
		c := Channel(strings.ToLower(strings.TrimSpace(n)))
		if c == "" {
			continue
		}
		if !c.Valid() {
			return nil, fmt.Errorf("unknown channel %q (want sms, call or whatsapp)", n)
		}
		if !cs.Allows(c) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("no channel allowed")
	}
	return cs, nil
}

// Allows reports whether c is in the set.
func (cs Channels) Allows(c Channel) bool {
	for _, a := range cs {
		if a == c {
			return true
		}
	}
	return false
}

// Pick answers the channel a request asked for, or the first allowed one when
// it asked for none.
func (cs Channels) Pick(requested string) (Channel, error) {
	if requested == "" {
		return cs[0], nil
	}
	c := Channel(strings.ToLower(strings.TrimSpace(requested)))
	if !cs.Allows(c) {
		return "", ErrChannelNotAllowed
	}
	return c, nil
}

// Mask hides all but the country calling code's first digit and the last two
// digits of an E.164 number, for logs: "+14155552671" becomes "+1********71".
func Mask(e164 string) string {
	if len(e164) < 6 {
		return "***"
	}
	return e164[:2] + strings.Repeat("*", len(e164)-4) + e164[len(e164)-2:]
}
