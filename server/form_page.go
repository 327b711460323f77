package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"verifyd/server/flow"
	"verifyd/server/verify"
)

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
	// Step 2's delivery: the verification's SID (for the script's polling),
	// what became of its text as a sentence, and whether a call may be
	// asked for now; CallsAllowed shows the script where one will be.
	SID, Delivery string
	CallNow       bool
	CallsAllowed  bool
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
var jsTexts = []string{"Checking…", "Sending…", "Your text message is on its way.", "Your text message was delivered.",
	"Your text message could not be delivered. You can ask for a call now.", "We could not reach you by phone.", "You can ask for the code again in {n} s.",
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
		CSRF: f.csrfToken(c), Example: f.example, Cooldown: int(f.cooldown.Seconds()),
		CallsAllowed: f.flow.Channels().Allows(verify.ChannelCall)}
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
