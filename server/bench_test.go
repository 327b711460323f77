package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"verifyd/server/verify"
)

// instant answers at once, so benchmarks measure verifyd alone.
type instant struct{}

func (instant) Start(_ context.Context, req verify.StartRequest) (verify.Verification, error) {
	return verify.Verification{SID: "VE0123456789abcdef0123456789abcdef", To: req.To, Channel: req.Channel, Status: verify.StatusPending, SendAttempts: 1}, nil
}

func (instant) Check(_ context.Context, req verify.CheckRequest) (verify.Verification, error) {
	return verify.Verification{SID: "VE0123456789abcdef0123456789abcdef", To: req.To, Channel: verify.ChannelSMS, Status: verify.StatusApproved}, nil
}

// benchHandler is the handler as cmd/verifyd wires it: access log (to
// nowhere), metrics around the verifier.
func benchHandler() http.Handler {
	m := NewMetrics(prometheus.NewRegistry())
	return NewHandler(Config{
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Verifier: m.Verifier(instant{}), Metrics: m,
		Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales(),
		Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
	})
}

func benchPost(b *testing.B, path, body string) {
	h := benchHandler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept-Language", "en-US,en;q=0.9")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("POST %s = %d %s", path, rec.Code, rec.Body)
		}
	}
}

// BenchmarkRequestOTPHandler is the whole handler for a start, with a
// backend that answers at once.
func BenchmarkRequestOTPHandler(b *testing.B) {
	benchPost(b, "/api/request-otp", `{"phoneNumber":"+14155552671"}`)
}

// BenchmarkVerifyOTPHandler is the whole handler for a check.
func BenchmarkVerifyOTPHandler(b *testing.B) {
	benchPost(b, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"123456"}`)
}

// BenchmarkStartRequest is decoding and validating a start's input.
func BenchmarkStartRequest(b *testing.B) {
	cfg := Config{Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := startRequest(cfg, requestOTPBody{PhoneNumber: "+1 415 555 2671"}, "de-DE,de;q=0.9"); err != nil {
			b.Fatal(err)
		}
	}
}
