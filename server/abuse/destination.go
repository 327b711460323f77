package abuse

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"verifyd/server/verify"
)

// refusedTypes are the number types SMS and call pumping profit from (a
// call to a premium-rate number pays its owner as an SMS does), plus every
// number phonenumbers cannot classify.
var refusedTypes = map[phonenumbers.PhoneNumberType]bool{
	phonenumbers.PREMIUM_RATE:    true,
	phonenumbers.SHARED_COST:     true,
	phonenumbers.UAN:             true,
	phonenumbers.PERSONAL_NUMBER: true,
	phonenumbers.UNKNOWN:         true,
}

// DefaultIPv6Prefix groups IPv6 clients by /64, the block one host or one
// home network is given.
const DefaultIPv6Prefix = 64

// nonGeographic are the calling codes of satellite and international
// networks: no country's allowlist covers them, fraud favours them, and
// few real users have one. They are refused unless allowed by code.
var nonGeographic = map[int]bool{870: true, 881: true, 882: true, 883: true}

// ParseAllowedCountries reads an AllowedCountries list: ISO 3166 alpha-2
// country codes, in any case, answered upper-cased, and the non-geographic
// calling codes ("+882"), answered as numbers.
func ParseAllowedCountries(list []string) (countries []string, codes []int, err error) {
	for _, c := range list {
		c = strings.ToUpper(strings.TrimSpace(c))
		if code, ok := strings.CutPrefix(c, "+"); ok {
			n, err := strconv.Atoi(code)
			if err != nil || !nonGeographic[n] {
				return nil, nil, fmt.Errorf("%q is not a non-geographic calling code (%v)", c, slices.Sorted(maps.Keys(nonGeographic)))
			}
			codes = append(codes, n)
			continue
		}
		if phonenumbers.GetCountryCodeForRegion(c) == 0 {
			return nil, nil, fmt.Errorf("%q is not an ISO 3166 alpha-2 country code", c)
		}
		countries = append(countries, c)
	}
	return countries, codes, nil
}

// Destination applies the country allowlist and, but for test numbers,
// the refused number types. It decides from the number alone, with
// phonenumbers.
func (g *Guard) Destination(num verify.Number, ch verify.Channel, test bool) error {
	if nonGeographic[num.CountryCode()] {
		if !g.codes[num.CountryCode()] {
			return ErrCountryNotAllowed.With(fmt.Errorf("non-geographic calling code +%d", num.CountryCode()), 0)
		}
	} else if len(g.countries) > 0 && !g.countries[num.Region()] {
		e := ErrCountryNotAllowed.With(fmt.Errorf("destination country %q", num.Region()), 0)
		e.Message = g.servedMessage
		return e
	}
	if !test && refusedTypes[num.Type()] {
		return ErrNumberTypeNotAllowed.With(fmt.Errorf("number type %d in %q by %s", num.Type(), num.Region(), ch), 0)
	}
	return nil
}
