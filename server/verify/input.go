package verify

import (
	"fmt"
	"strings"

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
}

// NewPhoneParser validates region ("" or a region phonenumbers knows).
func NewPhoneParser(region string) (PhoneParser, error) {
	region = strings.ToUpper(strings.TrimSpace(region))
	if region != "" && phonenumbers.GetCountryCodeForRegion(region) == 0 {
		return PhoneParser{}, fmt.Errorf("unknown region %q", region)
	}
	return PhoneParser{DefaultRegion: region}, nil
}

// Number is a phone number that phonenumbers found valid.
type Number struct {
	E164   string
	Region string // ISO 3166 alpha-2 of the number, "" when not tied to one
	Type   phonenumbers.PhoneNumberType
}

// Parse normalises input to E.164. It answers ErrInvalidPhone for anything
// phonenumbers cannot parse or finds invalid, and for national formats when no
// default region is set.
func (p PhoneParser) Parse(input string) (Number, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return Number{}, ErrMissingTarget
	}
	if len(s) > maxPhoneInput {
		return Number{}, ErrInvalidPhone
	}
	if p.DefaultRegion == "" && !strings.HasPrefix(s, "+") {
		return Number{}, ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(s, p.DefaultRegion)
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
		E164:   phonenumbers.Format(num, phonenumbers.E164),
		Region: phonenumbers.GetRegionCodeForNumber(num),
		Type:   typ,
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
		case r == ' ' || r == '-' || r == '\t':
		default:
			return "", ErrInvalidCode
		}
	}
	if n := b.Len(); n < 4 || n > 10 {
		return "", ErrInvalidCode
	}
	return b.String(), nil
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
