package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"verifyd/server"
	"verifyd/server/flow"
	"verifyd/server/receipt"
	"verifyd/server/verify"
	"verifyd/static"
	"verifyd/web"
)

// recordingVerifier answers with fixed results and records what reached it,
// so tests can assert that refused input never goes upstream.
type recordingVerifier struct {
	mu      sync.Mutex
	starts  []verify.StartRequest
	checks  []verify.CheckRequest
	startFn func(verify.StartRequest) (verify.Verification, error)
	checkFn func(verify.CheckRequest) (verify.Verification, error)
}

func (r *recordingVerifier) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	r.mu.Lock()
	r.starts = append(r.starts, req)
	r.mu.Unlock()
	if r.startFn != nil {
		return r.startFn(req)
	}
	return verify.Verification{SID: testSID, To: req.To.E164(), Channel: req.Channel, Status: verify.StatusPending, SendAttempts: 1}, nil
}

func (r *recordingVerifier) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	r.mu.Lock()
	r.checks = append(r.checks, req)
	r.mu.Unlock()
	if r.checkFn != nil {
		return r.checkFn(req)
	}
	to := req.To.E164()
	if to == "" {
		to = testNumber
	}
	return verify.Verification{SID: testSID, To: to, Status: verify.StatusApproved}, nil
}

// take answers what reached the verifier since the last take, and forgets
// it.
func (r *recordingVerifier) take() ([]verify.StartRequest, []verify.CheckRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	starts, checks := r.starts, r.checks
	r.starts, r.checks = nil, nil
	return starts, checks
}

func (r *recordingVerifier) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts) + len(r.checks)
}

const (
	testNumber = "+14155552671"
	testSID    = "VE0123456789abcdef0123456789abcdef"
)

type handlerOpts struct {
	region    string
	channels  []string
	origins   []string
	trusted   []netip.Prefix
	logs      io.Writer
	receipts  *receipt.Issuer
	returns   []string // return origins for the form
	countries []string // ALLOWED_COUNTRIES for the form's select
}

func newTestHandler(t *testing.T, v verify.Verifier, o handlerOpts) http.Handler {
	t.Helper()
	return conforming{t: t, next: newRawHandler(t, v, o)}
}

// newRawHandler is newTestHandler without the OpenAPI check around it, for
// fuzzing, which builds it once and checks answers its own way.
func newRawHandler(t testing.TB, v verify.Verifier, o handlerOpts) http.Handler {
	t.Helper()
	phones, err := verify.NewPhoneParser(o.region)
	if err != nil {
		t.Fatal(err)
	}
	if o.channels == nil {
		o.channels = []string{"sms"}
	}
	channels, err := verify.ParseChannels(o.channels)
	if err != nil {
		t.Fatal(err)
	}
	if o.logs == nil {
		o.logs = io.Discard
	}
	fl, err := flow.New(flow.Config{Backend: v, Phones: phones, Channels: channels,
		Locales: verify.NewLocales(), Receipts: o.receipts})
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.NewHandler(server.Config{
		Logger:             slog.New(slog.NewJSONHandler(o.logs, nil)),
		Flow:               fl,
		CORSAllowedOrigins: o.origins,
		TrustedProxies:     o.trusted,
		ReturnOrigins:      o.returns,
		Countries:          o.countries,
		Web:                web.FS,
		Static:             static.FS,
		Now:                func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func postJSON(h http.Handler, path, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(bytes.NewReader(rec.Body.Bytes())).Decode(&m); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	return m
}

// mustHandler builds the handler for cfg over a flow of v (SMS only,
// Twilio's locales).
func mustHandler(t *testing.T, v verify.Verifier, cfg server.Config) http.Handler {
	t.Helper()
	return mustHandlerOver(t, flow.Config{Backend: v}, cfg)
}

// mustHandlerOver is mustHandler over the flow fcfg, which may name the
// steps of the pipeline and its observer (SMS only and Twilio's locales
// when it does not say).
func mustHandlerOver(t *testing.T, fcfg flow.Config, cfg server.Config) http.Handler {
	t.Helper()
	if fcfg.Channels == nil {
		fcfg.Channels = verify.Channels{verify.ChannelSMS}
	}
	if fcfg.Locales == nil {
		fcfg.Locales = verify.NewLocales()
	}
	fl, err := flow.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Flow = fl
	h, err := server.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// observerFunc is a flow.Observer of one function.
type observerFunc func(flow.Event)

func (f observerFunc) Observe(_ context.Context, e flow.Event) { f(e) }
