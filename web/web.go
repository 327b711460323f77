// Package web holds verifyd's page templates, embedded so the binary is the
// whole product. It holds no logic; package server renders the pages.
package web

import "embed"

// FS holds the templates, under templates/.
//
//go:embed templates/*.html i18n/*.json
var FS embed.FS
