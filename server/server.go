// Package server is verifyd's HTTP surface: the JSON API, the health probe,
// the pages, the one mapping from domain errors to HTTP answers, and the
// middleware around them. It never reads the environment; cmd/verifyd builds
// a Config and hands it over.
package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/cors"

	"verifyd/server/flow"
)

// Config is everything the handler depends on.
type Config struct {
	Logger *slog.Logger
	// Flow is the one verification flow both the JSON API and the form
	// call.
	Flow *flow.Flow
	// CORSAllowedOrigins are exact origins ("https://app.example.com") that
	// may call the JSON API from a browser. Empty means no cross-origin access.
	CORSAllowedOrigins []string
	// TrustedProxies are the networks whose X-Forwarded-For is believed:
	// a request from one of them is attributed to the nearest address in
	// the header that is not itself trusted. Empty: the connection's peer.
	TrustedProxies []netip.Prefix
	// LimiterState, when set, reports the abuse limiter's state in /health
	// ("ok", or "degraded" while its store is unreachable).
	LimiterState func() string
	// Readiness lists what /readyz checks. Each check runs at most once per
	// ReadinessTTL (default 10s) however often probes come, and a probe
	// waits at most ReadinessTimeout (default 2s).
	Readiness                      []Check
	ReadinessTTL, ReadinessTimeout time.Duration
	// Draining, when set and true, turns /readyz to 503 while everything
	// else is still served: the first step of a graceful shutdown.
	Draining func() bool
	// Metrics, when set, counts requests; MetricsHandler, when set, serves
	// /metrics on this handler (cmd serves it on METRICS_ADDR instead when
	// that is configured).
	Metrics        *Metrics
	MetricsHandler http.Handler
	// Web holds the page templates, Static the assets (see packages web and
	// static); tests may pass an fstest.MapFS.
	Web, Static fs.FS
	Now         func() time.Time // default time.Now
	// FormKey signs the form's CSRF tokens and the number carried into step
	// 2; empty means a random key per process.
	FormKey []byte
	// Challenges, when set, serves GET /api/challenge: a fresh
	// proof-of-work challenge.
	Challenges func() (any, error)
	// CodeLength is how many digits the backend's codes have, for the
	// form's hint; 0 when it does not say (Twilio Verify's service decides).
	CodeLength int
	// Countries are the countries the form offers (ALLOWED_COUNTRIES); empty
	// offers every country.
	Countries []string
	// ReturnOrigins are the exact origins ("https://app.example.com") the
	// form may hand a receipt back to (GET /?return_to=...).
	ReturnOrigins []string
	// StatusCallbackURL is the absolute URL Twilio posts status callbacks
	// to (PUBLIC_URL + StatusCallbackPath), and TwilioAuthToken the
	// account's token their signatures are checked with; both set, the
	// route is served.
	StatusCallbackURL, TwilioAuthToken string
	// ResendCooldown is the countdown the form shows before "send a new
	// code" (default 30s); set it to the abuse guard's per-number cooldown.
	ResendCooldown time.Duration
}

// maxBodyBytes bounds a JSON API request body. The largest valid body is a
// phone number, a code, a SID, a channel and a locale: well under 1 KiB.
const maxBodyBytes = 4 << 10

// NewHandler builds verifyd's whole HTTP handler. Its errors are setup
// errors: a missing dependency, a template or asset that does not load, a
// return origin that is not one.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Flow == nil {
		return nil, errors.New("server: no flow")
	}
	if cfg.Logger == nil {
		return nil, errors.New("server: no logger")
	}
	if cfg.Web == nil || cfg.Static == nil {
		return nil, errors.New("server: no templates or assets")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadinessTTL <= 0 {
		cfg.ReadinessTTL = defaultReadinessTTL
	}
	if cfg.ReadinessTimeout <= 0 {
		cfg.ReadinessTimeout = defaultReadinessTimeout
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	urls, hashes, err := assetURLs(cfg.Static)
	if err != nil {
		return nil, fmt.Errorf("server: static assets: %w", err)
	}
	cats, err := loadCatalogs(cfg.Web)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	pages, err := newForms(cfg, cfg.Flow, urls, cats)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	e.HTTPErrorHandler = errorHandler(cfg.Logger, pages, cats)

	e.Use(requestID)
	if cfg.Metrics != nil {
		// Outside the access log, which renders errors: the status is final
		// by the time this middleware reads it.
		e.Use(cfg.Metrics.middleware)
	}
	e.Use(accessLog(cfg.Logger), recoverPanics, securityHeaders)
	if len(cfg.CORSAllowedOrigins) > 0 {
		// Inside the request id, metrics, access log and security headers,
		// so a preflight gets them like any answer. (rs/cors treats an empty
		// list as "allow every origin": no middleware at all means none.)
		e.Use(echo.WrapMiddleware(cors.New(cors.Options{
			AllowedOrigins: cfg.CORSAllowedOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost},
			AllowedHeaders: []string{"Content-Type", "Accept-Language", "X-Request-Id"},
			ExposedHeaders: []string{"Retry-After", "X-Request-Id"},
			MaxAge:         600,
		}).Handler))
	}
	addRoutes(e, cfg, pages, cats, serveStatic(cfg.Static, hashes))
	return e, nil
}

// ipExtractor attributes a request to its client. echo's default believes
// any X-Forwarded-For, and its XFF extractor trusts loopback and private
// networks unless told otherwise: only the configured proxies are trusted
// here, so a spoofed header from anyone else changes nothing.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP:   p.Masked().Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// clientIP is the request's client address, as the IPExtractor found it.
func clientIP(c echo.Context) netip.Addr {
	ip, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}
