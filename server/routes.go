package server

import (
	"github.com/labstack/echo/v4"
)

// addRoutes lists verifyd's whole URL surface.
func addRoutes(e *echo.Echo, cfg Config, pages *forms, static echo.HandlerFunc) {
	e.GET("/health", handleHealth(cfg.Now, cfg.LimiterState))
	e.GET("/healthz", handleHealthz)
	checks := make([]*cachedCheck, len(cfg.Readiness))
	for i, c := range cfg.Readiness {
		checks[i] = &cachedCheck{Check: c, ttl: cfg.ReadinessTTL, now: cfg.Now}
	}
	e.GET("/readyz", handleReadyz(checks, cfg.ReadinessTimeout))
	if cfg.MetricsHandler != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.MetricsHandler))
	}
	e.GET("/openapi.yaml", handleOpenAPI)
	e.GET("/.well-known/jwks.json", handleJWKS(cfg.Flow.JWKS()))

	// Route-level middleware, not a group's: an echo group with middleware
	// catches every path under it and answers 404 where 405 is right.
	e.POST("/api/request-otp", handleRequestOTP(cfg.Flow), noStore)
	e.POST("/api/verify-otp", handleVerifyOTP(cfg.Flow), noStore)

	// The pages: their failures come back as pages.
	e.GET("/", pages.handleIndex, pages.pageErrors)
	e.POST("/request", pages.handleRequest, pages.pageErrors)
	e.POST("/verify", pages.handleVerify, pages.pageErrors)
	e.POST("/resend", pages.handleResend, pages.pageErrors)
	e.GET("/static/*", static)
}
