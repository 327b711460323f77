package flow

import (
	"math"
	"strconv"
	"strings"
	"time"

	"verifyd/server/verify"
)

// The sentences a person reads about a verification, in one place: the
// page, the script (through the JSON API's message) and the API say the
// same. Each is written in English, which is also its key in the language
// catalogues (web/i18n): a Translate puts it in the person's language.

// Translate answers msg in a language, with each {name} in it replaced by
// the value after that name in args ("{number}", "+44 7400 123456", …).
type Translate func(msg string, args ...string) string

// Fill replaces each {name} in msg by the value after that name in args.
func Fill(msg string, args ...string) string {
	for i := 0; i+1 < len(args); i += 2 {
		msg = strings.ReplaceAll(msg, "{"+args[i]+"}", args[i+1])
	}
	return msg
}

// Masked shows a number with its country calling code and last four digits
// ("+1 ••• 2671"): enough for a person to recognise it, too little to read
// it off a screen over their shoulder.
func Masked(n verify.Number) string {
	e164 := n.E164()
	if n.CountryCode() == 0 || len(e164) < 8 {
		return verify.Mask(e164)
	}
	return "+" + strconv.Itoa(n.CountryCode()) + " ••• " + e164[len(e164)-4:]
}

// SentMessage says where a code went, with the whole number so that its
// owner can spot a typo: "We sent a code to +44 7400 123456 by text
// message.", or "We sent your code again" for a send after the first:
// within a code's life a resend sends the same code, as Twilio does.
func SentMessage(t Translate, n verify.Number, ch verify.Channel, again bool) string {
	num := n.International()
	switch {
	case ch == verify.ChannelCall && again:
		return t("We called you again with your code on {number}.", "number", num)
	case ch == verify.ChannelCall:
		return t("We are calling {number} with your code.", "number", num)
	case ch == verify.ChannelWhatsApp && again:
		return t("We sent your code again to {number} on WhatsApp.", "number", num)
	case ch == verify.ChannelWhatsApp:
		return t("We sent a code to {number} on WhatsApp.", "number", num)
	case again:
		return t("We sent your code again to {number} by text message.", "number", num)
	}
	return t("We sent a code to {number} by text message.", "number", num)
}

// MaybeSentMessage answers a send whose fate is unknown: the request went
// out and no readable answer came back.
const MaybeSentMessage = "We could not confirm that the code was sent. It may still arrive: wait a moment before asking for another."

// ChallengeNeedsScript is what a page without JavaScript says when a send
// needs the proof-of-work step-up, which only a script can solve.
const ChallengeNeedsScript = "To protect this service from abuse, sending a code to this number right now needs " +
	"JavaScript, which your browser has turned off. Turn it on and try again, or try again later."

// VerifiedMessage is the JSON API's answer to an approved check.
const VerifiedMessage = "Your phone number is verified."

// VerifiedLine is the page's line under "Your phone number is verified".
func VerifiedLine(t Translate, n verify.Number) string {
	return t("{number} is verified.", "number", n.International())
}

// FailureText is an error's message with the wait, when one is known; a
// message that ends "Please try again later." says when instead.
func FailureText(t Translate, e *verify.Error) string {
	if e.RetryAfter <= 0 {
		return t(e.Message)
	}
	msg := t(strings.TrimSuffix(e.Message, " Please try again later."))
	return msg + " " + t("You can try again in {wait}.", "wait", HumanWait(t, e.RetryAfter))
}

// HumanWait says a wait in seconds, or in minutes from two minutes on.
func HumanWait(t Translate, d time.Duration) string {
	if d >= 2*time.Minute {
		return t("{n} minutes", "n", strconv.Itoa(int(math.Ceil(d.Minutes()))))
	}
	return t("{n} seconds", "n", strconv.Itoa(int(math.Ceil(d.Seconds()))))
}
