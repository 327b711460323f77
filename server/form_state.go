package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"verifyd/server/verify"
)

// cookie is one of the form's cookies: HttpOnly, SameSite=Strict, and over
// HTTPS a __Host- cookie (Secure, this host only, path /), so that no
// sibling subdomain can plant one. maxAge 0 keeps it for the session, < 0
// deletes it.
func (f *forms) cookie(c echo.Context, name, value string, maxAge int) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.IsTLS()}
	if ck.Secure {
		ck.Name = "__Host-" + name
	}
	return ck
}

// setCookie seals st as p into p's cookie.
func (f *forms) setCookie(c echo.Context, p sealing, st formState) {
	c.SetCookie(f.cookie(c, p.name, f.seal(c, p, st), int(p.ttl.Seconds())))
}

func (f *forms) clearCookie(c echo.Context, p sealing) {
	c.SetCookie(f.cookie(c, p.name, "", -1))
}

// openCookie answers the state in p's cookie when it opens (see open).
func (f *forms) openCookie(c echo.Context, p sealing) (formState, bool) {
	ck, err := c.Request().Cookie(f.cookie(c, p.name, "", 0).Name)
	if err != nil || ck.Value == "" {
		return formState{}, false
	}
	st, err := f.open(c, p, ck.Value)
	return st, err == nil
}

// parseForm reads a small urlencoded body and checks its CSRF token.
func (f *forms) parseForm(c echo.Context) error {
	r := c.Request()
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return errUnsupportedMediaType
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return errMalformed.With(err, 0)
	}
	id, ok := f.sessionID(c)
	if !ok {
		return errForgery.With(errors.New("no CSRF cookie made by this service"), 0)
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("csrf"))
	if err != nil || subtle.ConstantTimeCompare(got, f.mac("csrf", []byte(id))) != 1 {
		return errForgery.With(errors.New("CSRF token does not match its cookie"), 0)
	}
	return nil
}

// The CSRF cookie holds a random id and the service's MAC of it: a value a
// client makes up is refused, so a token is only ever one the service
// issued for that cookie.
const csrfIDLen = 26 // rand.Text

// sessionID answers the id of the visitor's CSRF cookie when the service
// made it.
func (f *forms) sessionID(c echo.Context) (string, bool) {
	ck, err := c.Request().Cookie(f.cookie(c, csrfCookie, "", 0).Name)
	if err != nil {
		return "", false
	}
	id, sig, ok := strings.Cut(ck.Value, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || len(id) != csrfIDLen || err != nil || !hmac.Equal(mac, f.mac("cookie", []byte(id))) {
		return "", false
	}
	return id, true
}

// csrfToken answers the form token for the visitor's CSRF cookie, making
// the cookie first when there is none the service made (signed double
// submit: a forged post from another site cannot read the cookie, so
// cannot compute the token).
func (f *forms) csrfToken(c echo.Context) string {
	id, ok := f.sessionID(c)
	if !ok {
		id = rand.Text()
		ck := f.cookie(c, csrfCookie, id+"."+base64.RawURLEncoding.EncodeToString(f.mac("cookie", []byte(id))), 0)
		c.SetCookie(ck)
		// The rest of this request reads the cookie it just made.
		c.Request().AddCookie(ck)
	}
	return base64.RawURLEncoding.EncodeToString(f.mac("csrf", []byte(id)))
}

// binding ties a sealed state to the visitor's cookie, so that one
// session's state does not work with another's cookie.
func (f *forms) binding(c echo.Context) string {
	id, _ := f.sessionID(c)
	return base64.RawURLEncoding.EncodeToString(f.mac("bind", []byte(id))[:16])
}

func (f *forms) mac(purpose string, value []byte) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(purpose + "|"))
	m.Write(value)
	return m.Sum(nil)
}

// formState is what travels between the steps, signed, so that neither the
// number nor the app's hand-off can be swapped: step 1 carries the
// hand-off ("return"), step 2 the number too ("state").
type formState struct {
	To       string         `json:"t,omitempty"` // E.164
	Channel  verify.Channel `json:"c,omitempty"`
	At       int64          `json:"a,omitempty"` // Unix seconds of the send
	Bind     string         `json:"b,omitempty"` // step 2: binding to the CSRF cookie
	ReturnTo string         `json:"r,omitempty"`
	Nonce    string         `json:"n,omitempty"`
	Again    bool           `json:"g,omitempty"` // the last send repeated the code
	Receipt  string         `json:"x,omitempty"` // the end's receipt, for its one showing
	SID      string         `json:"s,omitempty"` // step 2: the verification, for its delivery
}

// A sealing is one use of a signed formState: a value sealed for one does
// not open for another, nor after its ttl.
type sealing struct {
	name   string
	ttl    time.Duration
	number bool // carries the number: refused without one
	bound  bool // tied to the visitor's CSRF cookie (see binding)
}

var (
	// sealReturn is step 1's hand-off to the app, in a hidden field.
	sealReturn = sealing{name: "return", ttl: stateTTL}
	// sealState is step 2's state, in a hidden field.
	sealState = sealing{name: "state", ttl: stateTTL, number: true, bound: true}
	// sealStep and sealDone are the cookies that carry the form's step
	// between a post and the page it redirects to: step 2's state, and the
	// end (with the receipt) shown once, which the redirect follows at once.
	sealStep = sealing{name: "verifyd_step", ttl: stateTTL, number: true, bound: true}
	sealDone = sealing{name: "verifyd_done", ttl: 5 * time.Minute, bound: true}
)

// seal signs st for p, bound to the visitor when p is.
func (f *forms) seal(c echo.Context, p sealing, st formState) string {
	if p.bound {
		st.Bind = f.binding(c)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a return_to's "&" stays one byte, not six
	_ = enc.Encode(st)       // strings and numbers only: cannot fail
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(f.mac(p.name, payload))
}

// open answers the state sealed for p when this service sealed it (for this
// visitor, when p is bound), it is not older than p's ttl, and its
// return_to is still allowed.
func (f *forms) open(c echo.Context, p sealing, sealed string) (formState, error) {
	enc, sig, ok := strings.Cut(sealed, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(enc)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, f.mac(p.name, payload)) {
		return formState{}, errStaleForm.With(errors.New(p.name+" missing or forged"), 0)
	}
	var st formState
	if err := json.Unmarshal(payload, &st); err != nil {
		return formState{}, errStaleForm.With(fmt.Errorf("%s malformed: %w", p.name, err), 0)
	}
	at := time.Unix(st.At, 0)
	if (p.number && st.To == "") || f.now().Sub(at) > p.ttl {
		return formState{}, errStaleForm.With(fmt.Errorf("%s from %v", p.name, at), 0)
	}
	if p.bound && subtle.ConstantTimeCompare([]byte(st.Bind), []byte(f.binding(c))) != 1 {
		return formState{}, errForgery.With(errors.New(p.name+" made for another cookie"), 0)
	}
	if st.ReturnTo != "" {
		// The allowlist may have changed since the page was made.
		if _, err := f.returnTarget(st.ReturnTo); err != nil {
			return formState{}, err
		}
	}
	return st, nil
}
