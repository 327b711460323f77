package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// addRoutes lists verifyd's whole URL surface. Everything served by GET is
// served by HEAD too: probes and uptime checkers use either.
func addRoutes(e *echo.Echo, cfg Config, pages *forms, cats *catalogs, static echo.HandlerFunc) {
	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
	}
	checks := make([]*cachedCheck, len(cfg.Readiness))
	for i, c := range cfg.Readiness {
		checks[i] = &cachedCheck{Check: c, ttl: cfg.ReadinessTTL, now: cfg.Now}
		if cfg.Metrics != nil {
			checks[i].observe = cfg.Metrics.observeDependency
			cfg.Metrics.observeDependency(c.Name, "unknown") // every state's series, at 0, before the first probe
		}
	}
	get("/health", handleHealth(cfg.Now, cfg.LimiterState, checks))
	get("/healthz", handleHealthz)
	get("/readyz", handleReadyz(checks, cfg.ReadinessTimeout, cfg.Draining))
	if cfg.MetricsHandler != nil {
		get("/metrics", echo.WrapHandler(cfg.MetricsHandler))
	}
	get("/openapi.yaml", handleOpenAPI)
	get("/.well-known/jwks.json", handleJWKS(cfg.Flow.JWKS()))

	// Route-level middleware, not a group's: an echo group with middleware
	// catches every path under it and answers 404 where 405 is right.
	e.POST("/api/request-otp", handleRequestOTP(cfg.Flow, cats), noStore)
	if cfg.Challenges != nil {
		get("/api/challenge", handleChallenge(cfg.Challenges), noStore)
	}
	e.POST("/api/verify-otp", handleVerifyOTP(cfg.Flow, cats), noStore, checkFailures, recoverPanics)
	get("/api/delivery", handleDelivery(cfg.Flow), noStore)
	if cfg.StatusCallbackURL != "" && cfg.TwilioAuthToken != "" {
		e.POST(StatusCallbackPath, handleStatusCallback(cfg.Flow, cfg.StatusCallbackURL, cfg.TwilioAuthToken, cfg.Now), noStore)
	}

	// The pages: their failures, panics included, come back as pages.
	get("/", pages.handleIndex, pages.pageErrors, recoverPanics)
	e.POST("/request", pages.handleRequest, pages.pageErrors, recoverPanics)
	e.POST("/verify", pages.handleVerify, pages.pageErrors, recoverPanics)
	e.POST("/resend", pages.handleResend, pages.pageErrors, recoverPanics)
	get("/static/*", static)
	// Browsers ask for /favicon.ico whatever the page says: answer with the
	// icon rather than a 404 in every log.
	get("/favicon.ico", func(c echo.Context) error {
		c.SetParamNames("*")
		c.SetParamValues("favicon.svg")
		return static(c)
	})
}
