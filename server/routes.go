package server

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// addRoutes lists verifyd's whole URL surface. Everything served by GET is
// served by HEAD too: probes and uptime checkers use either.
func addRoutes(e *echo.Echo, cfg Config, pages *forms, static echo.HandlerFunc) {
	get := func(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
	}
	get("/health", handleHealth(cfg.Now, cfg.LimiterState))
	get("/healthz", handleHealthz)
	checks := make([]*cachedCheck, len(cfg.Readiness))
	for i, c := range cfg.Readiness {
		checks[i] = &cachedCheck{Check: c, ttl: cfg.ReadinessTTL, now: cfg.Now}
	}
	get("/readyz", handleReadyz(checks, cfg.ReadinessTimeout))
	if cfg.MetricsHandler != nil {
		get("/metrics", echo.WrapHandler(cfg.MetricsHandler))
	}
	get("/openapi.yaml", handleOpenAPI)
	get("/.well-known/jwks.json", handleJWKS(cfg.Flow.JWKS()))

	// Route-level middleware, not a group's: an echo group with middleware
	// catches every path under it and answers 404 where 405 is right.
	e.POST("/api/request-otp", handleRequestOTP(cfg.Flow), noStore)
	e.POST("/api/verify-otp", handleVerifyOTP(cfg.Flow), noStore)

	// The pages: their failures come back as pages.
	get("/", pages.handleIndex, pages.pageErrors)
	e.POST("/request", pages.handleRequest, pages.pageErrors)
	e.POST("/verify", pages.handleVerify, pages.pageErrors)
	e.POST("/resend", pages.handleResend, pages.pageErrors)
	get("/static/*", static)
}
