package twiliohttp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// Twilio's own rules for what verifyd is configured with, in one place:
// New enforces them and cmd/verifyd names the variable that breaks one.

var (
	accountSIDRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDRE = regexp.MustCompile(`^VA[0-9a-fA-F]{32}$`)
	apiKeyRE     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	msgServiceRE = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// The SDK refuses anything else with 21222/21224 on every call; refusing
	// it at startup is kinder.
	credentialRE = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// CheckAccountSID checks an account SID: "AC" and 32 hex digits.
func CheckAccountSID(s string) error {
	if !accountSIDRE.MatchString(s) {
		return errors.New("must be AC followed by 32 hex digits")
	}
	return nil
}

// CheckServiceSID checks a Verify service SID: "VA" and 32 hex digits.
func CheckServiceSID(s string) error {
	if !serviceSIDRE.MatchString(s) {
		return errors.New("must be VA followed by 32 hex digits")
	}
	return nil
}

// CheckMessagingServiceSID checks a Messaging Service SID: "MG" and 32 hex
// digits.
func CheckMessagingServiceSID(s string) error {
	if !msgServiceRE.MatchString(s) {
		return errors.New("must be MG followed by 32 hex digits")
	}
	return nil
}

// CheckAPIKey checks an API key SID: "SK" and 32 hex digits.
func CheckAPIKey(s string) error {
	if !apiKeyRE.MatchString(s) {
		return errors.New("must be SK followed by 32 hex digits")
	}
	return nil
}

// CheckCredential checks a username or password (an account SID or API
// key, an auth token or API secret): letters and digits, not empty.
func CheckCredential(s string) error {
	if !credentialRE.MatchString(s) {
		return errors.New("must be letters and digits only")
	}
	return nil
}

// CheckBaseURL checks a base URL for Twilio's API and answers it parsed,
// without a trailing slash. Plain http is allowed only to this machine:
// credentials travel in every request's Authorization header.
func CheckBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		// The URL is not quoted back: userinfo would be a credential.
		return nil, errors.New("must be an absolute http(s) URL such as https://api.twilio.com, with no credentials, query or fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if host := u.Hostname(); host != "localhost" && !isLoopback(host) {
			return nil, errors.New("plain http is allowed only to a loopback address: credentials would travel in the clear")
		}
	default:
		return nil, fmt.Errorf("scheme must be https, not %q", u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
