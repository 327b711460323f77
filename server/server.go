// Package server is verifyd's HTTP surface: the JSON API, the health probe,
// the pages, the one mapping from domain errors to HTTP answers, and the
// middleware around them. It never reads the environment; cmd/verifyd builds
// a Config and hands it over.
package server

import (
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/cors"

	"verifyd/server/verify"
)

// Config is everything the handler depends on.
type Config struct {
	Logger   *slog.Logger
	Verifier verify.Verifier
	Phones   verify.PhoneParser
	Channels verify.Channels // allowed channels, the first is the default
	Locales  *verify.Locales
	// CORSAllowedOrigins are exact origins ("https://app.example.com") that
	// may call the JSON API from a browser. Empty means no cross-origin access.
	CORSAllowedOrigins []string
	// Web holds the page templates, Static the assets (see packages web and
	// static); tests may pass an fstest.MapFS.
	Web, Static fs.FS
	Now         func() time.Time // default time.Now
}

// maxBodyBytes bounds a JSON API request body. The largest valid body is a
// phone number, a code, a SID, a channel and a locale: well under 1 KiB.
const maxBodyBytes = 4 << 10

// NewHandler builds verifyd's whole HTTP handler.
func NewHandler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client IP is the connection's peer until trusted proxies are
	// configured; echo's default would believe any X-Forwarded-For.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = errorHandler(cfg.Logger)

	e.Use(requestID, accessLog(cfg.Logger), recoverPanics, securityHeaders)
	addRoutes(e, cfg)

	if len(cfg.CORSAllowedOrigins) == 0 {
		// rs/cors treats an empty list as "allow every origin": no wrapper at
		// all is the only way to mean none.
		return e
	}
	return cors.New(cors.Options{
		AllowedOrigins: cfg.CORSAllowedOrigins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: []string{"Content-Type", "Accept-Language", "X-Request-Id"},
		ExposedHeaders: []string{"Retry-After", "X-Request-Id"},
		MaxAge:         600,
	}).Handler(e)
}
