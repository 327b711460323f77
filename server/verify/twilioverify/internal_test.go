package twilioverify

import (
	"context"
	"errors"
	"runtime"
	"testing"

	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/twiliohttp"
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
		c := &twiliohttp.Call{Ctx: context.Background(), Base: be.api.Base, Next: be.transport}
		apis = append(apis[:0], be.sdk(c))
	}
	runtime.KeepAlive(apis)
}

const hex32 = "0123456789abcdef0123456789abcdef"
