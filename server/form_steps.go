package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"verifyd/server/delivery"
	"verifyd/server/flow"
	"verifyd/server/verify"
)

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
	// "Call me instead" posts here with channel=call.
	channel := string(st.Channel)
	if c.Request().PostFormValue("channel") == string(verify.ChannelCall) {
		channel = string(verify.ChannelCall)
	}
	return f.start(c, p, st, num, channel, c.Request().PostFormValue("altcha"), true)
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
	st.Channel, st.Again, st.At, st.SID = sent.Channel, again, f.now().Unix(), sent.SID
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
	p.SID = st.SID
	if st.SID != "" {
		// Without script, a reload shows what became of the text.
		if d, err := f.flow.Delivery(c.Request().Context(), st.SID, clientIP(c)); err == nil {
			p.Delivery, p.CallNow = deliverySentence(p.t, d), d.CallNow
		}
	}
}

// deliverySentence says what became of a send, "" when nothing is known.
func deliverySentence(t flow.Translate, d flow.Delivery) string {
	switch {
	case d.Channel == verify.ChannelCall && d.Status.Failed():
		return t("We could not reach you by phone.")
	case d.Channel == verify.ChannelCall:
		return ""
	case d.Status.Failed():
		return t("Your text message could not be delivered. You can ask for a call now.")
	case d.Status == delivery.Delivered:
		return t("Your text message was delivered.")
	case d.Status == delivery.Queued, d.Status == delivery.Sent:
		return t("Your text message is on its way.")
	}
	return ""
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
