package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nyaruka/phonenumbers"

	"verifyd/server/verify"
)

// pageCSP allows only our own script and style: no inline code, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

const (
	csrfCookie = "verifyd_csrf"
	// stateTTL bounds how long a step-2 form is accepted; Twilio's own code
	// lifetime (10 minutes by default) ends a verification sooner.
	stateTTL = 30 * time.Minute
	// defaultResendCooldown is the countdown shown before "send a new code";
	// the abuse guard's per-number cooldown is what enforces it.
	defaultResendCooldown = 30 * time.Second
)

// errForgery refuses a form post without a valid token for its cookie.
var errForgery = &verify.Error{Kind: verify.KindForbidden, Code: "invalid_form_token",
	Message: "This form has expired or was sent from another site. Please try again."}

// errStaleForm refuses a step-2 post whose signed number is missing, forged
// or too old.
var errStaleForm = &verify.Error{Kind: verify.KindGone, Code: "form_expired",
	Message: "This page has expired. Enter your phone number again."}

// forms renders the two-step form and answers its posts, through the same
// validation and verifier as the JSON API.
type forms struct {
	cfg      Config
	tmpl     *template.Template
	css, js  string // content-addressed asset URLs
	key      []byte
	cooldown time.Duration
	example  string // the number format the page shows, from DEFAULT_REGION
}

func newForms(cfg Config, assets map[string]string) *forms {
	f := &forms{
		cfg:      cfg,
		tmpl:     template.Must(template.ParseFS(cfg.Web, "templates/index.html")),
		css:      assets["style.css"],
		js:       assets["app.js"],
		key:      cfg.FormKey,
		cooldown: cfg.ResendCooldown,
	}
	if len(f.key) == 0 {
		// Forms then last as long as the process: fine for one instance;
		// several instances behind a balancer need a shared FORM_SECRET.
		f.key = []byte(rand.Text() + rand.Text())
	}
	if f.cooldown <= 0 {
		f.cooldown = defaultResendCooldown
	}
	f.example = "+14155552671"
	if cfg.Phones.DefaultRegion != "" {
		if ex := phonenumbers.GetExampleNumberForType(cfg.Phones.DefaultRegion, phonenumbers.MOBILE); ex != nil {
			f.example = phonenumbers.Format(ex, phonenumbers.NATIONAL)
		}
	}
	return f
}

// page is what the template renders.
type page struct {
	Step        int // 1: number, 2: code, 3: verified
	CSS, JS     string
	CSRF        string
	Example     string
	Phone       string
	PhoneError  string
	Channels    []channelChoice
	Sent        string
	State       string
	CodeError   string
	ResendAfter int // seconds, for the no-script countdown text
	Cooldown    int // seconds, for the script's countdown
	Verified    string
}

type channelChoice struct {
	Value, Label string
	Checked      bool
}

var channelLabels = map[verify.Channel]string{
	verify.ChannelSMS: "Text message", verify.ChannelCall: "Phone call", verify.ChannelWhatsApp: "WhatsApp",
}

func (f *forms) page(c echo.Context, step int) *page {
	p := &page{Step: step, CSS: f.css, JS: f.js, CSRF: f.csrfToken(c), Example: f.example,
		Cooldown: int(f.cooldown.Seconds())}
	if len(f.cfg.Channels) > 1 {
		for i, ch := range f.cfg.Channels {
			p.Channels = append(p.Channels, channelChoice{Value: string(ch), Label: channelLabels[ch], Checked: i == 0})
		}
	}
	return p
}

// render writes the page with status, and records err (if any) for the
// access log, as the JSON API's error handler does.
func (f *forms) render(c echo.Context, status int, p *page, err *verify.Error) error {
	if err != nil {
		c.Set(ctxKeyError, err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	return f.tmpl.Execute(c.Response(), p)
}

// failure renders err on the step it belongs to.
func (f *forms) failure(c echo.Context, p *page, err error) error {
	e := toDomainError(err)
	msg := e.Message
	if e.RetryAfter > 0 {
		msg += " You can try again in " + humanWait(e.RetryAfter) + "."
	}
	if p.Step == 1 {
		p.PhoneError = msg
	} else {
		p.CodeError = msg
	}
	return f.render(c, statusFor(e.Kind), p, e)
}

func humanWait(d time.Duration) string {
	if d >= 2*time.Minute {
		return strconv.Itoa(int(math.Ceil(d.Minutes()))) + " minutes"
	}
	return strconv.Itoa(int(math.Ceil(d.Seconds()))) + " seconds"
}

func (f *forms) handleIndex(c echo.Context) error {
	return f.render(c, http.StatusOK, f.page(c, 1), nil)
}

// handleRequest is step 1's post: send a code, then show step 2.
func (f *forms) handleRequest(c echo.Context) error {
	p := f.page(c, 1)
	if err := f.parseForm(c); err != nil {
		return f.failure(c, p, err)
	}
	p.Phone = c.Request().PostFormValue("phone")
	req, err := startRequest(f.cfg, requestOTPBody{PhoneNumber: p.Phone, Channel: c.Request().PostFormValue("channel")},
		c.Request().Header.Get("Accept-Language"))
	if err != nil {
		return f.failure(c, p, err)
	}
	return f.start(c, p, req, false)
}

// stepTwoPost reads a post from step 2: its token checked, its signed
// number opened.
func (f *forms) stepTwoPost(c echo.Context) (formState, error) {
	if err := f.parseForm(c); err != nil {
		return formState{}, err
	}
	return f.openState(c.Request().PostFormValue("state"))
}

// handleResend sends a new code to the number signed into step 2.
func (f *forms) handleResend(c echo.Context) error {
	p := f.page(c, 1)
	st, err := f.stepTwoPost(c)
	if err != nil {
		return f.failure(c, p, err)
	}
	p.Phone = st.to
	return f.start(c, p, verify.StartRequest{To: st.to, Channel: st.channel,
		Locale: f.cfg.Locales.FromAcceptLanguage(c.Request().Header.Get("Accept-Language"))}, true)
}

func (f *forms) start(c echo.Context, p *page, req verify.StartRequest, again bool) error {
	req.ClientIP = clientIP(c)
	setLogTarget(c, req.To)
	if _, err := f.cfg.Verifier.Start(c.Request().Context(), req); err != nil {
		if again {
			// A refused resend stays on step 2, where the code still works.
			f.toStep2(p, req.To, req.Channel, again)
			p.ResendAfter = 0
		}
		return f.failure(c, p, err)
	}
	f.toStep2(p, req.To, req.Channel, again)
	return f.render(c, http.StatusOK, p, nil)
}

func (f *forms) toStep2(p *page, to string, ch verify.Channel, again bool) {
	p.Step, p.Phone = 2, ""
	p.State = f.sealState(formState{to: to, channel: ch, at: f.cfg.Now()})
	p.ResendAfter = int(f.cooldown.Seconds())
	p.Sent = sentSentence(to, verify.Number{}, ch, again)
}

// sentSentence says where the code went, with the number masked: the same
// words on the page, in the script and in the JSON API's message.
func sentSentence(to string, parsed verify.Number, ch verify.Channel, again bool) string {
	s := "We sent a code to "
	if again {
		s = "We sent a new code to "
	}
	how := " by text message."
	switch ch {
	case verify.ChannelCall:
		how = " by phone call."
	case verify.ChannelWhatsApp:
		how = " on WhatsApp."
	}
	return s + maskForDisplay(to, parsed) + how
}

// handleVerify is step 2's post: check the code for the signed number.
func (f *forms) handleVerify(c echo.Context) error {
	p := f.page(c, 1)
	st, err := f.stepTwoPost(c)
	if err != nil {
		return f.failure(c, p, err)
	}
	f.toStep2(p, st.to, st.channel, false)
	p.ResendAfter = 0 // the countdown started with the send, not now
	req, err := checkRequest(f.cfg, verifyOTPBody{PhoneNumber: st.to, Code: flexString(c.Request().PostFormValue("code"))})
	if err != nil {
		return f.failure(c, p, err)
	}
	req.ClientIP = clientIP(c)
	setLogTarget(c, req.To)
	v, err := f.cfg.Verifier.Check(c.Request().Context(), req)
	if err == nil {
		err = verify.Outcome(v)
	}
	if err != nil {
		return f.failure(c, p, err)
	}
	p.Step, p.State, p.Sent = 3, "", ""
	p.Verified = maskForDisplay(st.to, req.Parsed) + " is verified."
	return f.render(c, http.StatusOK, p, nil)
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
	cookie, err := r.Cookie(csrfCookie)
	if err != nil || cookie.Value == "" {
		return errForgery.With(errors.New("no CSRF cookie"), 0)
	}
	want := f.mac("csrf", cookie.Value)
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("csrf"))
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 {
		return errForgery.With(errors.New("CSRF token does not match its cookie"), 0)
	}
	return nil
}

// csrfToken answers the form token for the visitor's CSRF cookie, setting
// the cookie first when there is none (signed double submit: a forged post
// from another site cannot read the cookie, so cannot compute the token).
func (f *forms) csrfToken(c echo.Context) string {
	value := ""
	if ck, err := c.Request().Cookie(csrfCookie); err == nil && len(ck.Value) >= 16 && len(ck.Value) <= 64 {
		value = ck.Value
	} else {
		value = rand.Text()
		c.SetCookie(&http.Cookie{Name: csrfCookie, Value: value, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https"})
	}
	return base64.RawURLEncoding.EncodeToString(f.mac("csrf", value))
}

func (f *forms) mac(purpose, value string) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(purpose + "|" + value))
	return m.Sum(nil)
}

// formState is what step 2 carries, signed, so the number cannot be swapped
// between the steps.
type formState struct {
	to      string
	channel verify.Channel
	at      time.Time
}

func (f *forms) sealState(s formState) string {
	payload := s.to + "|" + string(s.channel) + "|" + strconv.FormatInt(s.at.Unix(), 10)
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." +
		base64.RawURLEncoding.EncodeToString(f.mac("state", payload))
}

func (f *forms) openState(sealed string) (formState, error) {
	enc, sig, ok := strings.Cut(sealed, ".")
	payload, err1 := base64.RawURLEncoding.DecodeString(enc)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, f.mac("state", string(payload))) {
		return formState{}, errStaleForm.With(errors.New("state missing or forged"), 0)
	}
	parts := strings.Split(string(payload), "|")
	if len(parts) != 3 {
		return formState{}, errStaleForm.With(errors.New("state malformed"), 0)
	}
	unix, err := strconv.ParseInt(parts[2], 10, 64)
	at := time.Unix(unix, 0)
	if err != nil || f.cfg.Now().Sub(at) > stateTTL {
		return formState{}, errStaleForm.With(fmt.Errorf("state from %v", at), 0)
	}
	return formState{to: parts[0], channel: verify.Channel(parts[1]), at: at}, nil
}

// maskForDisplay shows the country calling code and the last four digits:
// "+1 ••• 2671". Enough for the person to recognise their number.
func maskForDisplay(e164 string, parsed verify.Number) string {
	num, err := verify.Classify(e164, parsed)
	cc := phonenumbers.GetCountryCodeForRegion(num.Region)
	if err != nil || cc == 0 || len(e164) < 8 {
		return verify.Mask(e164)
	}
	return "+" + strconv.Itoa(cc) + " ••• " + e164[len(e164)-4:]
}

// assetURLs answers each static file's URL with a content hash, so the
// files can be cached for a year and still change with every release.
func assetURLs(static fs.FS) (map[string]string, map[string]string, error) {
	urls, hashes := map[string]string{}, map[string]string{}
	err := fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h := base64.RawURLEncoding.EncodeToString(sum[:9])
		hashes[name], urls[name] = h, "/static/"+name+"?v="+h
		return nil
	})
	return urls, hashes, err
}

// serveStatic serves the embedded assets, files only. A request carrying
// the current hash may be cached for a year; others revalidate by ETag.
func serveStatic(static fs.FS, hashes map[string]string) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		h, ok := hashes[name]
		if !ok {
			return errNotFound
		}
		hdr := c.Response().Header()
		hdr.Set("ETag", `"`+h+`"`)
		if c.QueryParam("v") == h {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hdr.Set("Cache-Control", "no-cache")
		}
		http.ServeFileFS(c.Response(), c.Request(), static, name)
		return nil
	}
}
