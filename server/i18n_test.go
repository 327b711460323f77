package server_test

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/verify"
	"verifyd/web"
)

var placeholder = regexp.MustCompile(`\{[a-z]+\}`)

// TestCataloguesComplete: every language has every sentence of the English
// catalogue, none empty, none left in English by mistake where the
// sentence has words, and the same {placeholders}.
func TestCataloguesComplete(t *testing.T) {
	load := func(name string) map[string]string {
		data, err := fs.ReadFile(web.FS, "i18n/"+name)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}
	en := load("en.json")
	files, _ := fs.Glob(web.FS, "i18n/*.json")
	if len(files) < 5 {
		t.Fatalf("%d catalogues, want at least English, Spanish, German, French and Brazilian Portuguese", len(files))
	}
	// The sentences that are the same word in some language.
	same := map[string]bool{"WhatsApp": true, "Code": true, "{n} minutes": true}
	for _, f := range files {
		name := strings.TrimPrefix(f, "i18n/")
		m := load(name)
		for k := range en {
			v, ok := m[k]
			switch {
			case !ok || v == "":
				t.Errorf("%s lacks %q", name, k)
			case name != "en.json" && v == en[k] && !same[k]:
				t.Errorf("%s leaves %q in English", name, k)
			case !slices.Equal(sorted(placeholder.FindAllString(k, -1)), sorted(placeholder.FindAllString(v, -1))):
				t.Errorf("%s: %q has placeholders %v, its translation %q has %v", name, k,
					placeholder.FindAllString(k, -1), v, placeholder.FindAllString(v, -1))
			}
		}
		for k := range m {
			if _, ok := en[k]; !ok {
				t.Errorf("%s has %q, which no English sentence is", name, k)
			}
		}
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestPagesAndAPISpeakTheLanguage: the page, its errors and the API's
// sentences follow Accept-Language; the switch changes and remembers it.
func TestPagesAndAPISpeakTheLanguage(t *testing.T) {
	v := &recordingVerifier{}
	b := newBrowser(t, v, handlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
	b.do(req)
	for _, want := range []string{`<html lang="de">`, "Telefonnummer bestätigen", "Code senden", `href="/?lang=fr"`, ">Français<"} {
		if !strings.Contains(b.page, want) {
			t.Errorf("the German page lacks %q", want)
		}
	}
	// The switch: French from now on, whatever the header says.
	b.get("/?lang=fr")
	if !strings.Contains(b.page, `<html lang="fr">`) || !strings.Contains(b.page, "Vérifiez votre numéro de téléphone") {
		t.Error("?lang=fr did not switch the page to French")
	}
	b.get("/")
	if !strings.Contains(b.page, `<html lang="fr">`) {
		t.Error("the switch was not remembered")
	}
	b.post("/request", url.Values{"phone": {""}})
	if !strings.Contains(b.page, "Saisissez votre numéro de téléphone.") {
		t.Errorf("an empty number in French says:\n%s", b.page)
	}
	b.post("/request", url.Values{"phone": {testNumber}})
	b.expect(200, "step-code", "Nous avons envoyé un code par SMS au +1 415-555-2671.")
	if len(v.starts) != 1 || v.starts[0].Locale != "fr" {
		t.Errorf("the SMS locale is %+v, want the page's, fr", v.starts)
	}

	// The JSON API: error and message in the header's language, same codes.
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{})
	rec := postJSON(h, "/api/request-otp", `{"phoneNumber":"12"}`, "Accept-Language", "es-ES")
	if got := decodeBody(t, rec); got["code"] != "invalid_phone_number" || !strings.HasPrefix(got["error"].(string), "Escribe un número") {
		t.Errorf("a Spanish error = %v", got)
	}
	rec = postJSON(h, "/api/request-otp", `{"phoneNumber":"+14155552671"}`, "Accept-Language", "pt-BR")
	if got := decodeBody(t, rec); got["message"] != "Enviamos um código por SMS para +1 415-555-2671." {
		t.Errorf("a Brazilian message = %v", got["message"])
	}
	// A wait is said once, in the language, as the page says it (the
	// script shows the error as it comes).
	limited := &recordingVerifier{startFn: func(verify.StartRequest) (verify.Verification, error) {
		return verify.Verification{}, abuse.ErrPhoneLimit.With(nil, 10*time.Minute)
	}}
	rec = postJSON(newTestHandler(t, limited, handlerOpts{}), "/api/request-otp", `{"phoneNumber":"+14155552671"}`, "Accept-Language", "de")
	if got := decodeBody(t, rec); got["error"] != "An diese Nummer wurden zu viele Codes gesendet. Du kannst es in 10 Minuten erneut versuchen." || got["retryAfter"] != 600.0 {
		t.Errorf("a German wait = %v", got)
	}
}
