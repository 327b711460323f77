package verify

import (
	"strings"

	"golang.org/x/text/language"
)

// twilioLocales are the locales Twilio Verify translates its messages into
// (its "supported languages" page). Without a Locale, Twilio picks one from
// the number's country; a locale we pass overrides that.
var twilioLocales = []string{
	"en", "af", "ar", "bg", "bn", "ca", "cs", "da", "de", "el", "en-GB", "es",
	"es-419", "et", "fi", "fr", "fr-CA", "gu", "he", "hi", "hr", "hu", "id", "it",
	"ja", "kn", "ko", "lt", "ml", "mr", "ms", "nb", "nl", "pl", "pt", "pt-BR",
	"ro", "ru", "sk", "sv", "ta", "te", "th", "tl", "tr", "uk", "vi", "zh",
	"zh-CN", "zh-HK",
}

// Locales matches what a client asks for against the locales Twilio Verify
// supports. The zero value is not usable; build one with NewLocales.
type Locales struct {
	tags    []language.Tag
	names   map[string]string // lower-cased name → Twilio's spelling
	matcher language.Matcher
}

// NewLocales builds the matcher over Twilio Verify's locales.
func NewLocales() *Locales {
	l := &Locales{names: make(map[string]string, len(twilioLocales))}
	for _, name := range twilioLocales {
		l.tags = append(l.tags, language.MustParse(name))
		l.names[strings.ToLower(name)] = name
	}
	l.matcher = language.NewMatcher(l.tags)
	return l
}

// Exact answers Twilio's spelling of an explicitly requested locale ("pt-br"
// becomes "pt-BR"), or ErrInvalidLocale when Twilio does not support it.
func (l *Locales) Exact(requested string) (string, error) {
	name, ok := l.names[strings.ToLower(strings.TrimSpace(requested))]
	if !ok {
		return "", ErrInvalidLocale
	}
	return name, nil
}

// maxAcceptLanguage bounds the header we parse; browsers send far less.
const maxAcceptLanguage = 256

// ParseAcceptLanguage answers the languages of an Accept-Language header
// in order of preference, or none when it is empty, longer than browsers
// send, or malformed.
func ParseAcceptLanguage(header string) []language.Tag {
	if header == "" || len(header) > maxAcceptLanguage {
		return nil
	}
	prefs, _, err := language.ParseAcceptLanguage(header)
	if err != nil {
		return nil
	}
	return prefs
}

// MatchLanguage answers the index, among m's languages, of the best match
// for prefs, and false when none matches well enough.
func MatchLanguage(m language.Matcher, prefs []language.Tag) (int, bool) {
	if len(prefs) == 0 {
		return 0, false
	}
	_, i, conf := m.Match(prefs...)
	return i, conf >= language.High
}

// FromAcceptLanguage answers the best supported locale for an
// Accept-Language header, or "" when nothing matches well enough, in which
// case Twilio chooses from the number's country.
func (l *Locales) FromAcceptLanguage(header string) string {
	if i, ok := MatchLanguage(l.matcher, ParseAcceptLanguage(header)); ok {
		return twilioLocales[i]
	}
	return ""
}
