package server

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

// assetURLs answers each static file's URL with a content hash, so the
// files can be cached for a year and still change with every release.
func assetURLs(static fs.FS) (map[string]string, map[string]string, error) {
	urls, hashes := map[string]string{}, map[string]string{}
	err := fs.WalkDir(static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		h := base64.RawURLEncoding.EncodeToString(sum[:9])
		hashes[name], urls[name] = h, "/static/"+name+"?v="+h
		return nil
	})
	return urls, hashes, err
}

// serveStatic serves the embedded assets, files only. A request carrying
// the current hash may be cached for a year; others revalidate by ETag.
func serveStatic(static fs.FS, hashes map[string]string) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		h, ok := hashes[name]
		if !ok {
			return errNotFound
		}
		hdr := c.Response().Header()
		hdr.Set("ETag", `"`+h+`"`)
		if c.QueryParam("v") == h {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hdr.Set("Cache-Control", "no-cache")
		}
		http.ServeFileFS(c.Response(), c.Request(), static, name)
		return nil
	}
}
