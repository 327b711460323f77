package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"verifyd/server"
)

// openAPIRouter loads the embedded description once per test binary; a
// description that does not validate fails every test.
var openAPIRouter = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(server.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	return legacy.NewRouter(doc)
})

// conforming wraps the handler under test: every request is checked
// against the OpenAPI description (one the description refuses must get a
// 4xx), and every answer must be one the description documents.
type conforming struct {
	t    *testing.T
	next http.Handler
}

func (c conforming) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.t.Helper()
	router, err := openAPIRouter()
	if err != nil {
		c.t.Fatalf("the OpenAPI description does not load: %v", err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	defer func() {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}()

	probe := r.Clone(context.Background())
	probe.Body = io.NopCloser(bytes.NewReader(body))
	if probe.URL.Host == "" {
		probe.URL.Host, probe.URL.Scheme = "example.com", "http"
	}
	head := probe.Method == http.MethodHead
	if head {
		// HEAD is GET without a body (RFC 9110): it answers what GET would.
		probe.Method = http.MethodGet
	}
	route, params, err := router.FindRoute(probe)
	if err == nil && head {
		if route.Operation.Responses.Status(rec.Code) == nil {
			c.t.Errorf("HEAD %s answered %d, which GET does not document", r.URL.Path, rec.Code)
		}
		return
	}
	if err != nil {
		// Undocumented: the form's pages and posts, the assets, /metrics,
		// and what is refused.
		p := r.URL.Path
		pages := p == "/" || p == "/request" || p == "/verify" || p == "/resend" || p == "/favicon.ico" || strings.HasPrefix(p, "/static/")
		if rec.Code != 404 && rec.Code != 405 && !pages && p != "/metrics" && r.Method != http.MethodOptions {
			c.t.Errorf("%s %s answered %d but is not in the OpenAPI description", r.Method, p, rec.Code)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && rec.Code < 400 {
		c.t.Errorf("%s %s %q breaks the OpenAPI description (%v) but was answered %d", r.Method, r.URL.Path, body, err, rec.Code)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s %s answered %d %s, which the OpenAPI description does not allow: %v", r.Method, r.URL.Path, rec.Code, rec.Body, err)
	}
}

func TestOpenAPIIsServed(t *testing.T) {
	h := newTestHandler(t, &recordingVerifier{}, handlerOpts{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), server.OpenAPI) {
		t.Fatalf("GET /openapi.yaml = %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if _, err := openAPIRouter(); err != nil {
		t.Fatalf("the description does not validate: %v", err)
	}
}
