package server

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"verifyd/server/verify"
)

// ExactOrigin checks that o is an origin (http(s)://host[:port], nothing
// else: no path beyond "/", no query, fragment, userinfo or wildcard) and
// answers it lower-cased.
func ExactOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.Contains(o, "*") {
		return "", fmt.Errorf("%q is not an exact origin such as https://app.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// returnState checks an app's hand-off: return_to must be an absolute URL
// on an allowed origin, the nonce (optional) URL-safe.
func (f *forms) returnState(returnTo string, nonces []string) (formState, error) {
	if !f.flow.Receipts() {
		return formState{}, errNoReceipts
	}
	target, err := f.returnTarget(returnTo)
	if err != nil {
		return formState{}, err
	}
	st := formState{ReturnTo: target, At: f.now().Unix()}
	if len(nonces) > 1 {
		return formState{}, verify.ErrInvalidNonce
	}
	if len(nonces) == 1 {
		if st.Nonce, err = verify.ParseNonce(nonces[0]); err != nil {
			return formState{}, err
		}
	}
	return st, nil
}

// maxReturnTo bounds return_to: with the nonce it travels signed in every
// post of the form, whose body is bounded too.
const maxReturnTo = 1024

// returnTarget accepts an absolute http(s) URL whose origin (scheme, host
// and port, exactly) is allowed, and nothing else: no userinfo, no
// scheme-relative "//host", no other scheme, no look-alike host, nothing
// but ASCII (Unicode case folding can turn a look-alike into an allowed
// name: "İ" lower-cases to "i"). The answer is built from the allowed
// origin and the URL's path and query, never from the host as given.
func (f *forms) returnTarget(raw string) (string, error) {
	bad := func(why string) (string, error) {
		return "", errReturnTo.With(errors.New("return_to "+why), 0)
	}
	if raw == "" || len(raw) > maxReturnTo {
		return bad("empty or too long")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return bad("has white space, a control character, a backslash or non-ASCII")
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return bad("does not parse")
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("is not http(s)")
	case u.User != nil:
		return bad("carries userinfo")
	case u.Host == "" || u.Opaque != "":
		return bad("has no host")
	case u.Fragment != "":
		return bad("has a fragment")
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	if !f.returns[origin] {
		return bad("origin is not in RECEIPT_RETURN_ORIGINS")
	}
	target := &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	return origin + target.String(), nil
}
