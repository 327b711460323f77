// Package static holds verifyd's stylesheet and script, embedded so the
// binary is the whole product. It holds no logic.
package static

import "embed"

// FS holds the assets. The patterns are explicit: a bare "*" would serve
// this Go file too.
//
//go:embed *.css *.js *.svg
var FS embed.FS
