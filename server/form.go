package server

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"
	"time"

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
