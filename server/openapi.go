package server

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the OpenAPI 3.1 description of the HTTP API. The handler tests
// validate every request and answer against it, so it cannot drift.
//
//go:embed openapi.yaml
var OpenAPI []byte

func handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
