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
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"verifyd/server/flow"
	"verifyd/server/verify"
)

// pageCSP allows only our own script and style: no inline code, no framing.
// Forms may post to this service and, for the Continue hand-off, to the
// return origins (appended by newForms).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

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

// errReturnTo refuses a link whose return_to is not an allowed app.
var errReturnTo = &verify.Error{Kind: verify.KindInvalid, Code: "invalid_return_to",
	Message: "This link is not valid: it would send you on to a site this service does not return to. " +
		"Go back to the app that sent you here and try again."}

// errNoReceipts refuses a return_to while receipts are off: there would be
// nothing to hand back.
var errNoReceipts = &verify.Error{Kind: verify.KindInvalid, Code: "receipts_disabled",
	Message: "This service cannot send you back to the app right now. Go back to the app and try again later."}

// forms renders the two-step form and answers its posts, through the same
// flow as the JSON API.
type forms struct {
	cats       *catalogs
	flow       *flow.Flow
	now        func() time.Time
	tmpl       *template.Template
	csp        string
	css, js    string // content-addressed asset URLs
	pow        string // the proof-of-work worker's URL
	codeLength int
	icon       string // the favicon's URL
	key        []byte
	cooldown   time.Duration
	example    string // the number format the page shows, from DEFAULT_REGION
	returns    map[string]bool
	// langs are the parts of a page that depend only on its language,
	// made once.
	langs map[string]*langParts
	// offered are the countries of the country select; only holds the
	// one country served when there is only one.
	offered map[string]bool
	only    string
	region  string // DEFAULT_REGION
}

// langParts are the parts of a page fixed by its language.
type langParts struct {
	t         flow.Translate
	jsTexts   string // the script's sentences, as JSON
	langs     []langChoice
	channels  []channelChoice
	countries []countryChoice // sorted by name in the language
}

// countryChoice is one option of the country select.
type countryChoice struct {
	Code, Name, Example string
	CallingCode         int
}

func newForms(cfg Config, fl *flow.Flow, assets map[string]string, cats *catalogs) (*forms, error) {
	tmpl, err := template.ParseFS(cfg.Web, "templates/index.html")
	if err != nil {
		return nil, fmt.Errorf("page template: %w", err)
	}
	f := &forms{
		cats:       cats,
		flow:       fl,
		now:        cfg.Now,
		tmpl:       tmpl,
		csp:        pageCSP,
		css:        assets["style.css"],
		js:         assets["app.js"],
		pow:        assets["pow.js"],
		codeLength: cfg.CodeLength,
		icon:       assets["favicon.svg"],
		key:        cfg.FormKey,
		cooldown:   cfg.ResendCooldown,
		returns:    map[string]bool{},
	}
	for _, o := range cfg.ReturnOrigins {
		origin, err := ExactOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("return origins: %w", err)
		}
		f.returns[origin] = true
		f.csp += " " + origin
	}
	if len(f.key) == 0 {
		// Forms then last as long as the process: fine for one instance;
		// several instances behind a balancer need a shared FORM_SECRET.
		f.key = []byte(rand.Text() + rand.Text())
	}
	if f.cooldown <= 0 {
		f.cooldown = defaultResendCooldown
	}
	f.region = fl.DefaultRegion()
	f.langs = map[string]*langParts{}
	for i, code := range cats.codes {
		f.langs[code] = f.langParts(cfg.Countries, code, cats.tags[i])
	}
	f.offered = map[string]bool{}
	en := f.langs["en"].countries
	for _, c := range en {
		f.offered[c.Code] = true
	}
	if len(en) == 1 {
		f.only = en[0].Code
	}
	f.example = "+14155552671"
	if region := fl.DefaultRegion(); region != "" {
		if ex := phonenumbers.GetExampleNumberForType(region, phonenumbers.MOBILE); ex != nil {
			f.example = phonenumbers.Format(ex, phonenumbers.NATIONAL)
		}
	}
	return f, nil
}

// countryChoices lists the countries a person may choose: the allowed ones,
// or every region phone numbers are known for, each with its calling code
// and an example mobile number in its national format, named and sorted
// in lang.
func countryChoices(allowed []string, lang language.Tag) []countryChoice {
	regions := allowed
	if len(regions) == 0 {
		for r := range phonenumbers.GetSupportedRegions() {
			regions = append(regions, r)
		}
	}
	names := display.Regions(lang)
	var out []countryChoice
	for _, r := range regions {
		r = strings.ToUpper(strings.TrimSpace(r))
		cc := phonenumbers.GetCountryCodeForRegion(r)
		reg, err := language.ParseRegion(r)
		if cc == 0 || err != nil {
			continue
		}
		c := countryChoice{Code: r, Name: names.Name(reg), CallingCode: cc}
		if c.Name == "" {
			c.Name = r
		}
		c.Example = mobileExamples()[r]
		out = append(out, c)
	}
	coll := collate.New(lang, collate.Loose)
	slices.SortFunc(out, func(a, b countryChoice) int { return coll.CompareString(a.Name, b.Name) })
	return out
}

// mobileExamples are every region's example mobile number, in its national
// format: the same for every page and every handler, so made once per
// process (phonenumbers formats with regular expressions, and doing it for
// 240 regions in five languages dominated building a handler).
var mobileExamples = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for r := range phonenumbers.GetSupportedRegions() {
		if ex := phonenumbers.GetExampleNumberForType(r, phonenumbers.MOBILE); ex != nil {
			out[r] = phonenumbers.Format(ex, phonenumbers.NATIONAL)
		}
	}
	return out
})

// defaultCountry is the country the select starts on: the only one served,
// else the region of the browser's first language that names one ("en-GB"
// → GB) and is offered, else DEFAULT_REGION, else none.
func (f *forms) defaultCountry(acceptLanguage string) string {
	if f.only != "" {
		return f.only
	}
	for _, t := range verify.ParseAcceptLanguage(acceptLanguage) {
		if reg, conf := t.Region(); conf == language.Exact && f.offered[reg.String()] {
			return reg.String()
		}
	}
	return f.region
}

// langParts makes the parts of a page in lang (code is its file's name).
func (f *forms) langParts(countries []string, code string, lang language.Tag) *langParts {
	t := f.cats.translate(code)
	lp := &langParts{t: t, countries: countryChoices(countries, lang)}
	js := map[string]string{}
	for _, k := range jsTexts {
		js[k] = t(k)
	}
	data, _ := json.Marshal(js) // strings only: cannot fail
	lp.jsTexts = string(data)
	for _, c := range f.cats.codes {
		lp.langs = append(lp.langs, langChoice{Code: c, Name: f.cats.names[c], Current: c == code})
	}
	if chs := f.flow.Channels(); len(chs) > 1 {
		for i, ch := range chs {
			lp.channels = append(lp.channels, channelChoice{Value: string(ch), Label: t(channelLabels[ch]), Checked: i == 0})
		}
	}
	return lp
}

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

// page is what the template renders.
type page struct {
	Step        int // 0: a link that cannot be followed, 1: number, 2: code, 3: verified
	CSS, JS     string
	PoW         string // the proof-of-work worker's URL
	Icon        string // the favicon's URL
	CSRF        string
	Example     string
	Phone       string
	PhoneError  string
	Channels    []channelChoice
	Countries   []countryChoice
	Country     string // the chosen one of Countries, if any
	Sent        string
	State       string
	CodeError   string
	ResendAfter int // seconds, for the no-script countdown text
	Cooldown    int // seconds, for the script's countdown
	Verified    string
	Problem     string // step 0's explanation
	Invalid     bool   // the error is about what was typed: mark the field
	Lang        string // the page's language (BCP 47)
	Langs       []langChoice
	JSTexts     string // the script's sentences in the page's language, as JSON
	t           flow.Translate
	CodeLength  int // digits of a code, 0 when the backend does not say
	// Return is step 1's signed hand-off (return_to and nonce); ReturnTo
	// and Nonce are the same in the clear, for the Continue form and the
	// script; Receipt is what Continue posts.
	Return, ReturnTo, Nonce, Receipt string
}

// langChoice is one link of the language switch.
type langChoice struct {
	Code, Name string
	Current    bool
}

// T answers msg in the page's language (see flow.Translate).
func (p *page) T(msg string, args ...string) string { return p.t(msg, args...) }

type channelChoice struct {
	Value, Label string
	Checked      bool
}

// jsTexts are the script's sentences, sent to it in the page's language.
var jsTexts = []string{"Checking…", "Sending…", "You can ask for the code again in {n} s.",
	"You can ask for the code again in {n} seconds.", "You can ask for the code again now.",
	"Type the number as you would dial it in that country, or with the country code.",
	"Include your country code, for example {example}.",
	"We could not reach the server. Check your connection and try again.",
	"Something went wrong. Please try again.", "You can try again in {wait}.", "{n} seconds", "{n} minutes",
	"{number} is verified.", "Phone number verified"}

var channelLabels = map[verify.Channel]string{
	verify.ChannelSMS: "Text message", verify.ChannelCall: "Phone call", verify.ChannelWhatsApp: "WhatsApp",
}

func (f *forms) page(c echo.Context, step int) *page {
	lang := f.cats.pick(c)
	lp := f.langs[lang]
	p := &page{Step: step, Lang: lang, t: lp.t, JSTexts: lp.jsTexts, Langs: lp.langs, Channels: lp.channels,
		Countries: lp.countries, CodeLength: f.codeLength, CSS: f.css, JS: f.js, PoW: f.pow, Icon: f.icon,
		CSRF: f.csrfToken(c), Example: f.example, Cooldown: int(f.cooldown.Seconds())}
	p.choose(f.defaultCountry(c.Request().Header.Get("Accept-Language")))
	return p
}

// choose selects the country code in the select, and its example number
// in the hint.
func (p *page) choose(code string) {
	p.Country = ""
	for _, c := range p.Countries {
		if c.Code == code {
			p.Country = code
			if c.Example != "" {
				p.Example = c.Example
			}
		}
	}
}

// withReturn puts the hand-off to the app on the page.
func (p *page) withReturn(st formState, sealed string) {
	p.ReturnTo, p.Nonce, p.Return = st.ReturnTo, st.Nonce, sealed
}

// render writes the page with status.
func (f *forms) render(c echo.Context, status int, p *page) error {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", f.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	c.Response().WriteHeader(status)
	if c.Request().Method == http.MethodHead {
		return nil
	}
	return f.tmpl.Execute(c.Response(), p)
}

// pageFailure is a failure on a page: the error renderer shows it on the
// page it happened on.
type pageFailure struct {
	page *page
	err  error
}

func (p *pageFailure) Error() string { return p.err.Error() }
func (p *pageFailure) Unwrap() error { return p.err }

// fail hands err to the error renderer, to be shown on p.
func fail(p *page, err error) error { return &pageFailure{page: p, err: err} }

// renderFailure shows a failure on its page: on the field it belongs to,
// with the wait when one is known.
func (f *forms) renderFailure(c echo.Context, he httpError, p *page) error {
	msg := flow.FailureText(p.t, he.Error)
	if he.Challenge != nil {
		// The form's script solves it without the person noticing; a page
		// without script cannot, and says so.
		msg = p.t(flow.ChallengeNeedsScript)
	}
	switch p.Step {
	case 0:
		p.Problem = msg
	case 1:
		p.PhoneError = msg
	default:
		p.CodeError = msg
	}
	// Only an answer about what was typed marks the field invalid; a wait
	// or an outage is no fault of the input.
	p.Invalid = he.status == http.StatusBadRequest || he.status == http.StatusForbidden ||
		he.status == http.StatusUnprocessableEntity || he.status == http.StatusGone
	return f.render(c, he.status, p)
}

// pageErrors makes sure every failure on a page route is shown as a page:
// one the handler did not place goes on step 1.
func (f *forms) pageErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil {
			return nil
		}
		if _, ok := errors.AsType[*pageFailure](err); ok {
			return err
		}
		return fail(f.page(c, 1), err)
	}
}

// handleIndex is step 1. An app that sends a person here names where to
// return to and a nonce (GET /?return_to=URL&nonce=N); both are checked now
// and travel on signed.
func (f *forms) handleIndex(c echo.Context) error {
	p := f.page(c, 1)
	q := c.QueryParams()
	if _, ok := q["new"]; ok {
		// "Wrong number?": start again, with an empty field, still on the
		// way back to the app that sent the person here.
		to := "/"
		if st, ok := f.openCookie(c, sealStep); ok && st.ReturnTo != "" {
			back := url.Values{"return_to": {st.ReturnTo}}
			if st.Nonce != "" {
				back.Set("nonce", st.Nonce)
			}
			to += "?" + back.Encode()
		}
		f.clearCookie(c, sealStep)
		return c.Redirect(http.StatusSeeOther, to)
	}
	if done, ok := f.openCookie(c, sealDone); ok {
		// The end, shown once after the post that got there.
		f.clearCookie(c, sealDone)
		num, err := f.flow.Number(done.To)
		if err == nil {
			p.Step, p.Verified, p.Receipt = 3, flow.VerifiedLine(p.t, num), done.Receipt
			p.ReturnTo = done.ReturnTo
			return f.render(c, http.StatusOK, p)
		}
	}
	if _, ok := q["return_to"]; !ok {
		if st, ok := f.openCookie(c, sealStep); ok {
			// A reload of step 2 (a phone back from its messages app)
			// shows step 2 again, with the same number and wait.
			if num, err := f.flow.Number(st.To); err == nil {
				p.withReturn(st, "")
				f.toStep2(c, p, st, num, st.Again)
				return f.render(c, http.StatusOK, p)
			}
		}
		if _, ok := q["nonce"]; ok {
			p.Step = 0
			return fail(p, errReturnTo.With(errors.New("nonce without return_to"), 0))
		}
	} else {
		st, err := f.returnState(q.Get("return_to"), q["nonce"])
		if err != nil {
			p.Step = 0
			return fail(p, err)
		}
		p.withReturn(st, f.seal(c, sealReturn, st))
	}
	return f.render(c, http.StatusOK, p)
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

// handleRequest is step 1's post: send a code, then show step 2.
func (f *forms) handleRequest(c echo.Context) error {
	p := f.page(c, 1)
	formErr := f.parseForm(c)
	if formErr != nil && !errors.Is(formErr, errForgery) {
		// Not a small urlencoded body: nothing of it is read.
		return fail(p, formErr)
	}
	r := c.Request()
	p.Phone = r.PostFormValue("phone")
	if country := r.PostFormValue("country"); country != "" {
		p.choose(strings.ToUpper(country))
	}
	var st formState
	if sealed := r.PostFormValue("return"); sealed != "" {
		// Opened before the token is judged, so that a refused post still
		// shows a page that returns to the app.
		var err error
		if st, err = f.open(c, sealReturn, sealed); err != nil {
			return fail(p, err)
		}
		p.withReturn(st, sealed)
	}
	if formErr != nil {
		return fail(p, formErr)
	}
	num, err := f.flow.NumberIn(p.Phone, r.PostFormValue("country"))
	if errors.Is(err, verify.ErrMissingTarget) {
		err = verify.ErrMissingPhone
	}
	if err != nil {
		return fail(p, err)
	}
	st.To, st.Channel = num.E164(), ""
	return f.start(c, p, st, num, r.PostFormValue("channel"), r.PostFormValue("altcha"), false)
}

// unsealedNumber reads the number out of a step-2 state whose seal no
// longer opens (the process restarted without FORM_SECRET, so with a new
// key), to put it back in step 1's field: the person sends it again with
// one click instead of typing it again. Nothing is trusted from it: it is
// what they typed, shown back to them, and checked like any input.
func unsealedNumber(sealed string) string {
	enc, _, _ := strings.Cut(sealed, ".")
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(payload) > 1024 {
		return ""
	}
	var st formState
	if json.Unmarshal(payload, &st) != nil {
		return ""
	}
	if _, err := (verify.PhoneParser{}).Parse(st.To); err != nil {
		return ""
	}
	return st.To
}

// stepTwo reads a post from step 2: its token checked, its signed state
// opened, its number read back.
func (f *forms) stepTwo(c echo.Context) (formState, verify.Number, error) {
	if err := f.parseForm(c); err != nil {
		return formState{}, verify.Number{}, err
	}
	st, err := f.open(c, sealState, c.Request().PostFormValue("state"))
	if err != nil {
		return formState{}, verify.Number{}, err
	}
	num, err := f.flow.Number(st.To)
	if err != nil {
		return formState{}, verify.Number{}, errStaleForm.With(fmt.Errorf("state number: %w", err), 0)
	}
	return st, num, nil
}

// handleResend sends a new code to the number signed into step 2.
func (f *forms) handleResend(c echo.Context) error {
	p := f.page(c, 1)
	st, num, err := f.stepTwo(c)
	if err != nil {
		p.Phone = unsealedNumber(c.Request().PostFormValue("state"))
		return fail(p, err)
	}
	p.Phone = st.To
	if st.ReturnTo != "" {
		p.withReturn(st, f.seal(c, sealReturn, formState{ReturnTo: st.ReturnTo, Nonce: st.Nonce, At: f.now().Unix()}))
	}
	return f.start(c, p, st, num, string(st.Channel), c.Request().PostFormValue("altcha"), true)
}

func (f *forms) start(c echo.Context, p *page, st formState, num verify.Number, channel, proof string, again bool) error {
	setLogTarget(c, num)
	sent, err := f.flow.Start(c.Request().Context(), flow.Start{
		To:      num,
		Channel: channel,
		// The message in the page's language (each is one of Twilio's).
		Locale:         p.Lang,
		AcceptLanguage: c.Request().Header.Get("Accept-Language"),
		ClientIP:       clientIP(c),
		Proof:          proof,
	})
	if err != nil {
		if again {
			// A refused resend stays on step 2, where the code still works,
			// and says nothing of a send that did not happen.
			f.toStep2(c, p, st, num, false)
		}
		return fail(p, err)
	}
	st.Channel, st.Again, st.At = sent.Channel, again, f.now().Unix()
	// Post, redirect, get: the step lives in a signed cookie, so a reload
	// shows step 2 again and Back never asks to send the form again.
	f.setCookie(c, sealStep, st)
	return c.Redirect(http.StatusSeeOther, "/")
}

// toStep2 shows step 2 for num. The state keeps the time of the last
// send, from which the resend's wait counts.
func (f *forms) toStep2(c echo.Context, p *page, st formState, num verify.Number, again bool) {
	p.Step, p.Phone = 2, ""
	if st.At == 0 {
		st.At = f.now().Unix()
	}
	p.State = f.seal(c, sealState, st)
	p.ResendAfter = max(0, int(time.Unix(st.At, 0).Add(f.cooldown).Sub(f.now()).Seconds()))
	p.Sent = flow.SentMessage(p.t, num, st.Channel, again)
}

// handleVerify is step 2's post: check the code for the signed number, and
// on success show the end, with the Continue hand-off when an app sent the
// person here.
func (f *forms) handleVerify(c echo.Context) error {
	p := f.page(c, 1)
	st, num, err := f.stepTwo(c)
	if err != nil {
		p.Phone = unsealedNumber(c.Request().PostFormValue("state"))
		return fail(p, err)
	}
	p.withReturn(st, "")
	// The wait shown counts from the send: after too many wrong codes
	// the page offers the resend only when it will be accepted.
	f.toStep2(c, p, st, num, st.Again)
	setLogTarget(c, num)
	v, err := f.flow.Check(c.Request().Context(), flow.Check{
		To: num, Code: c.Request().PostFormValue("code"), Nonce: st.Nonce, ClientIP: clientIP(c),
	})
	if err != nil {
		return fail(p, err)
	}
	f.clearCookie(c, sealStep)
	f.setCookie(c, sealDone, formState{To: num.E164(), ReturnTo: st.ReturnTo, Receipt: v.Receipt.Token,
		At: f.now().Unix()})
	return c.Redirect(http.StatusSeeOther, "/")
}

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
