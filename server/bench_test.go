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

	"verifyd/server/flow"
	"verifyd/server/verify"
)

// instant answers at once, so benchmarks measure verifyd alone.
type instant struct{}

func (instant) Start(_ context.Context, req verify.StartRequest) (verify.Verification, error) {
	return verify.Verification{SID: "VE0123456789abcdef0123456789abcdef", To: req.To.E164(), Channel: req.Channel, Status: verify.StatusPending, SendAttempts: 1}, nil
}

func (instant) Check(_ context.Context, req verify.CheckRequest) (verify.Verification, error) {
	return verify.Verification{SID: "VE0123456789abcdef0123456789abcdef", To: req.To.E164(), Channel: verify.ChannelSMS, Status: verify.StatusApproved}, nil
}

// benchHandler is the handler as cmd/verifyd wires it: access log (to
// nowhere), metrics observing the flow.
func benchHandler() http.Handler {
	m := NewMetrics(prometheus.NewRegistry())
	fl, err := flow.New(flow.Config{Backend: instant{}, Observer: m, Phones: benchPhones(),
		Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales()})
	if err != nil {
		panic(err)
	}
	h, err := NewHandler(Config{
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Flow: fl, Metrics: m,
		Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
	})
	if err != nil {
		panic(err)
	}
	return h
}

// benchPhones is the phone parser as cmd/verifyd makes it, with its
// cache.
func benchPhones() verify.PhoneParser {
	p, err := verify.NewPhoneParser("")
	if err != nil {
		panic(err)
	}
	return p
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

// BenchmarkStartFlow is validating a start's input and starting it, with a
// backend that answers at once.
func BenchmarkStartFlow(b *testing.B) {
	fl, err := flow.New(flow.Config{Backend: instant{}, Phones: benchPhones(),
		Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		num, err := fl.Number("+1 415 555 2671")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fl.Start(ctx, flow.Start{To: num, AcceptLanguage: "de-DE,de;q=0.9"}); err != nil {
			b.Fatal(err)
		}
	}
}
