package messaging

import (
	"encoding/xml"
	"strings"
)

// text is one language's wording. Each names the code with the word for
// "code" in that language, which iOS needs to offer it above the keyboard.
type text struct {
	sms    string // with %CODE%
	smsApp string // with %APP% and %CODE%, when APP_NAME is set
	say    string // the call's first sentence, before the digits
	again  string // before the second reading
	voice  string // the <Say> language
}

// texts are the message languages, by language: those of the form, and
// English for any other.
var texts = map[string]text{
	"en": {sms: "Your verification code is %CODE%. Do not share it with anyone.",
		smsApp: "Your %APP% verification code is %CODE%. Do not share it with anyone.",
		say:    "Your verification code is", again: "Again, your code is", voice: "en-US"},
	"es": {sms: "Tu código de verificación es %CODE%. No lo compartas con nadie.",
		smsApp: "Tu código de verificación de %APP% es %CODE%. No lo compartas con nadie.",
		say:    "Tu código de verificación es", again: "Repito, tu código es", voice: "es-ES"},
	"de": {sms: "Dein Bestätigungscode lautet %CODE%. Gib ihn an niemanden weiter.",
		smsApp: "Dein Bestätigungscode für %APP% lautet %CODE%. Gib ihn an niemanden weiter.",
		say:    "Dein Bestätigungscode lautet", again: "Noch einmal, dein Code lautet", voice: "de-DE"},
	"fr": {sms: "Votre code de vérification est %CODE%. Ne le communiquez à personne.",
		smsApp: "Votre code de vérification %APP% est %CODE%. Ne le communiquez à personne.",
		say:    "Votre code de vérification est", again: "Je répète, votre code est", voice: "fr-FR"},
	"pt": {sms: "Seu código de verificação é %CODE%. Não compartilhe com ninguém.",
		smsApp: "Seu código de verificação do %APP% é %CODE%. Não compartilhe com ninguém.",
		say:    "Seu código de verificação é", again: "Repetindo, seu código é", voice: "pt-BR"},
}

// textFor answers the wording of a locale's language, or English; British
// English is said in a British voice.
func textFor(locale string) text {
	lang, _, _ := strings.Cut(locale, "-")
	t, ok := texts[lang]
	if !ok {
		t = texts["en"]
	}
	if locale == "en-GB" {
		t.voice = "en-GB"
	}
	return t
}

// Body is the SMS or WhatsApp text: the sentence with the code, then the
// Android SMS Retriever hash when configured, then, when the service knows
// its host, the WebOTP line "@host #code" that lets a browser fill the
// code in (it must be the last line).
func Body(locale, app, code, host, androidHash string) string {
	t := textFor(locale)
	tmpl := t.sms
	if app != "" {
		tmpl = t.smsApp
	}
	b := strings.NewReplacer("%APP%", app, "%CODE%", code).Replace(tmpl)
	if androidHash != "" {
		b += "\n" + androidHash
	}
	if host != "" {
		b += "\n\n@" + host + " #" + code
	}
	return b
}

// TwiML is the call: the code said digit by digit, twice, in the locale's
// voice language, with a pause between.
func TwiML(locale, code string) string {
	t := textFor(locale)
	digits := strings.Join(strings.Split(code, ""), ", ")
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Response>`)
	say := func(s string) {
		b.WriteString(`<Say language="` + t.voice + `">`)
		xml.EscapeText(&b, []byte(s))
		b.WriteString(`</Say>`)
	}
	say(t.say + ": " + digits + ".")
	b.WriteString(`<Pause length="1"/>`)
	say(t.again + ": " + digits + ".")
	b.WriteString(`</Response>`)
	return b.String()
}
