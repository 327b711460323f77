package server

import (
	"fmt"

	"github.com/labstack/echo/v4"
)

// addRoutes lists verifyd's whole URL surface.
func addRoutes(e *echo.Echo, cfg Config) {
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

	// Route-level middleware, not a group's: an echo group with middleware
	// catches every path under it and answers 404 where 405 is right.
	e.POST("/api/request-otp", handleRequestOTP(cfg), noStore)
	e.POST("/api/verify-otp", handleVerifyOTP(cfg), noStore)

	urls, hashes, err := assetURLs(cfg.Static)
	if err != nil {
		panic(fmt.Sprintf("server: static assets: %v", err)) // embedded: a build defect
	}
	f := newForms(cfg, urls)
	e.GET("/", f.handleIndex)
	e.POST("/request", f.handleRequest)
	e.POST("/verify", f.handleVerify)
	e.POST("/resend", f.handleResend)
	e.GET("/static/*", serveStatic(cfg.Static, hashes))
}
