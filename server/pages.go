package server

import (
	"html/template"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// pageCSP allows only our own script and style: no inline code, no framing.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func handleIndex(web fs.FS) echo.HandlerFunc {
	tmpl := template.Must(template.ParseFS(web, "templates/index.html"))
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Content-Type", "text/html; charset=utf-8")
		c.Response().WriteHeader(http.StatusOK)
		return tmpl.Execute(c.Response(), nil)
	}
}

// serveStatic serves the embedded assets, files only: no directory listings.
func serveStatic(static fs.FS) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		if st, err := fs.Stat(static, name); err != nil || st.IsDir() {
			return errNotFound
		}
		http.ServeFileFS(c.Response(), c.Request(), static, name)
		return nil
	}
}
