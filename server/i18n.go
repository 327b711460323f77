package server

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/text/language"

	"verifyd/server/flow"
	"verifyd/server/verify"
)

// catalogs are the languages the pages and the API speak: one JSON file
// each under i18n/ in the web files (i18n/de.json: English sentence →
// German), English being the sentences themselves. Adding a language is
// adding a file.
type catalogs struct {
	tags    []language.Tag
	codes   []string          // BCP 47, as the files are named ("pt-BR")
	names   map[string]string // each language's own name for itself
	msgs    map[string]map[string]string
	matcher language.Matcher
}

// langCookie remembers a language chosen with the switch.
const langCookie = "verifyd_lang"

func loadCatalogs(web fs.FS) (*catalogs, error) {
	c := &catalogs{names: map[string]string{}, msgs: map[string]map[string]string{}}
	files, _ := fs.Glob(web, "i18n/*.json")
	// English first: the matcher falls back to its first language.
	slices.SortFunc(files, func(a, b string) int {
		if strings.HasSuffix(a, "/en.json") {
			return -1
		}
		if strings.HasSuffix(b, "/en.json") {
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, f := range files {
		data, err := fs.ReadFile(web, f)
		if err != nil {
			return nil, err
		}
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		code := strings.TrimSuffix(path.Base(f), ".json")
		tag, err := language.Parse(code)
		if err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		c.tags, c.codes, c.msgs[code] = append(c.tags, tag), append(c.codes, code), m
		c.names[code] = m["@name"]
	}
	if len(c.codes) == 0 || c.codes[0] != "en" {
		c.tags, c.codes, c.msgs["en"], c.names["en"] = append([]language.Tag{language.English}, c.tags...),
			append([]string{"en"}, c.codes...), map[string]string{}, "English"
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// pick answers the language of a request: one chosen with ?lang= (and then
// remembered in a cookie), else the remembered one, else the best match of
// Accept-Language, else English.
func (c *catalogs) pick(ctx echo.Context) string {
	if l := ctx.QueryParam("lang"); l != "" && c.msgs[l] != nil {
		ctx.SetCookie(&http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			SameSite: http.SameSiteLaxMode, Secure: ctx.IsTLS()})
		return l
	}
	if ck, err := ctx.Request().Cookie(langCookie); err == nil && c.msgs[ck.Value] != nil {
		return ck.Value
	}
	if i, ok := verify.MatchLanguage(c.matcher, verify.ParseAcceptLanguage(ctx.Request().Header.Get("Accept-Language"))); ok {
		return c.codes[i]
	}
	return "en"
}

// translate answers the Translate of lang: a sentence its catalogue lacks
// stays English.
func (c *catalogs) translate(lang string) flow.Translate {
	m := c.msgs[lang]
	return func(msg string, args ...string) string {
		if t, ok := m[msg]; ok && t != "" {
			msg = t
		}
		return flow.Fill(msg, args...)
	}
}
