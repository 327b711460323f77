package twilioverify

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"testing"
	"time"

	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/verify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// New refuses credentials the SDK would refuse; this reaches past it to check
// that the SDK's own refusal (21222/21224, raised before any request) still
// maps to a misconfiguration.
func TestSDKCredentialCheckMapped(t *testing.T) {
	srv := twiliotest.NewServer(twiliotest.Options{})
	defer srv.Close()
	tests := []struct {
		name, user, pass string
	}{
		{"username", "AC-not-alphanumeric", srv.AuthToken()},
		{"password", srv.AccountSID(), "token/with/slashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Config{AccountSID: srv.AccountSID(), Username: srv.AccountSID(), Password: srv.AuthToken(),
				ServiceSID: srv.ServiceSID(), BaseURL: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.cfg.Username, b.cfg.Password = tt.user, tt.pass
			_, err = b.Start(t.Context(), verify.StartRequest{To: verifytest.Number("+14155552671"), Channel: verify.ChannelSMS})
			if !errors.Is(err, verify.ErrMisconfigured) {
				t.Errorf("Start with a bad %s = %v, want %v", tt.name, err, verify.ErrMisconfigured)
			}
		})
	}
	if n := srv.Requests(); n != 0 {
		t.Errorf("Requests() = %d, want 0: the SDK refuses before sending", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"next tuesday", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	ctx := t.Context()
	for attempt := range 4 {
		nominal := backoffBase << attempt
		for range 100 {
			d, ok := backoff(ctx, attempt, 0)
			if !ok || d < nominal/2 || d > nominal {
				t.Fatalf("backoff(attempt %d) = %v, %v, want %v to %v", attempt, d, ok, nominal/2, nominal)
			}
		}
	}
	if d, ok := backoff(ctx, 0, 1500*time.Millisecond); !ok || d != 1500*time.Millisecond {
		t.Errorf("backoff(Retry-After 1.5s) = %v, %v, want 1.5s, true", d, ok)
	}
	if _, ok := backoff(ctx, 0, maxRetryAfter+time.Second); ok {
		t.Errorf("backoff(Retry-After past the cap) retries, want not")
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, ok := backoff(short, 3, 0); ok {
		t.Errorf("backoff(800ms wait, 10ms left) retries, want not")
	}
}

// BenchmarkPerCallClient measures what building the SDK client for each call
// costs (the price of attaching a context to an SDK that takes none).
func BenchmarkPerCallClient(b *testing.B) {
	be, err := New(Config{AccountSID: "AC" + hex32, Username: "AC" + hex32, Password: hex32, ServiceSID: "VA" + hex32})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var apis []*openapi.ApiService
	for b.Loop() {
		c := &call{ctx: context.Background(), base: be.base, next: be.transport}
		apis = append(apis[:0], be.api(c))
	}
	runtime.KeepAlive(apis)
}

const hex32 = "0123456789abcdef0123456789abcdef"
