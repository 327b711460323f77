// Package twilioverify is the verify.Verifier backed by Twilio Verify v2,
// through the official twilio-go SDK.
//
// It owns the HTTP side the SDK leaves open: one pooled transport sized for
// the server's concurrency, per-call contexts (so deadlines hold and a client
// going away cancels the upstream call), bounded reading of error bodies,
// retries of Twilio's explicit "not processed" answer only, and the mapping
// of Twilio's error codes onto verify's errors. It does not validate user
// input (the server does) and reads no environment (cmd does), except for
// the default proxy settings.
package twilioverify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
)

// DefaultBaseURL is Twilio Verify's API. For a region or edge, pass its host
// as BaseURL (such as https://verify.dublin.ie1.twilio.com): the SDK's
// TWILIO_EDGE and TWILIO_REGION environment variables are not read.
const DefaultBaseURL = "https://verify.twilio.com"

// Defaults for the zero fields of Config.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxConns       = 256
	DefaultMaxRetries     = 2
)

// Config configures a Backend.
type Config struct {
	// AccountSID is the account ("AC" + 32 hex digits).
	AccountSID string
	// Username and Password authenticate: the Account SID and Auth Token,
	// or an API key SID ("SK...") and its secret.
	Username, Password string
	// ServiceSID is the Verify service ("VA" + 32 hex digits).
	ServiceSID string

	// BaseURL replaces https://verify.twilio.com; it may carry a path
	// prefix, for a gateway that routes on it. Userinfo is refused: it would
	// end up in error messages.
	BaseURL string

	// ConnectTimeout bounds the TCP connect and the TLS handshake (default
	// 5s); RequestTimeout bounds a whole call, retries included (default
	// 10s). The caller's context may end a call sooner.
	ConnectTimeout, RequestTimeout time.Duration

	// MaxConns is how many idle keep-alive connections to keep (default
	// 256); size it to the server's concurrency.
	MaxConns int

	// MaxRetries is how many times Twilio's 20429 (too many concurrent
	// requests, not processed) is retried (default 2; negative: never).
	// Nothing else is ever retried: a start that may have been processed
	// must not send a second SMS.
	MaxRetries int

	// Proxy picks the proxy for a request (default
	// http.ProxyFromEnvironment: HTTPS_PROXY, NO_PROXY).
	Proxy func(*http.Request) (*url.URL, error)

	// TLSConfig is the client TLS configuration; nil uses the system roots.
	TLSConfig *tls.Config

	// Observe, when set, is told of every HTTP attempt to Twilio, retries
	// included, for metrics. It must be quick and safe for concurrent use.
	Observe func(Attempt)
}

// Attempt is one HTTP exchange with Twilio, as Config.Observe sees it; its
// Operation is "start", "check" or "fetch_service".
type Attempt = twiliohttp.Attempt

// LogValue logs the configuration without the secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("account_sid", c.AccountSID),
		slog.String("username", c.Username),
		slog.String("password", "REDACTED"),
		slog.String("service_sid", c.ServiceSID),
		slog.String("base_url", c.BaseURL),
		slog.Duration("connect_timeout", c.ConnectTimeout),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Int("max_conns", c.MaxConns),
		slog.Int("max_retries", c.MaxRetries),
	)
}

// Backend is a verify.Verifier over Twilio Verify. It is safe for concurrent
// use.
type Backend struct {
	cfg       Config
	api       twiliohttp.API
	transport *http.Transport
}

var _ verify.Verifier = (*Backend)(nil)

// New checks cfg, fills its defaults and builds the shared transport. It
// makes no request; Ping does.
func New(cfg Config) (*Backend, error) {
	for _, c := range []struct {
		name  string
		check func(string) error
		value string
	}{
		{"AccountSID", twiliohttp.CheckAccountSID, cfg.AccountSID},
		{"ServiceSID", twiliohttp.CheckServiceSID, cfg.ServiceSID},
		{"Username", twiliohttp.CheckCredential, cfg.Username},
		{"Password", twiliohttp.CheckCredential, cfg.Password},
	} {
		if err := c.check(c.value); err != nil {
			return nil, fmt.Errorf("twilio: %s %w", c.name, err)
		}
	}
	if cfg.ConnectTimeout < 0 || cfg.RequestTimeout < 0 || cfg.MaxConns < 0 {
		return nil, errors.New("twilio: timeouts and MaxConns must not be negative")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := twiliohttp.CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("twilio: BaseURL %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Proxy == nil {
		cfg.Proxy = http.ProxyFromEnvironment
	}
	b := &Backend{cfg: cfg, transport: twiliohttp.NewTransport(twiliohttp.Options{ConnectTimeout: cfg.ConnectTimeout,
		MaxConns: cfg.MaxConns, Proxy: cfg.Proxy, TLSConfig: cfg.TLSConfig})}
	b.api = twiliohttp.API{Base: base, Transport: b.transport, Timeout: cfg.RequestTimeout,
		MaxRetries: max(cfg.MaxRetries, 0), ByCode: fromTwilio, Observe: cfg.Observe}
	if cfg.MaxRetries == 0 {
		b.api.MaxRetries = DefaultMaxRetries
	}
	return b, nil
}

// Start sends a code to req.To over req.Channel.
func (b *Backend) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	params := &openapi.CreateVerificationParams{}
	params.SetTo(req.To.E164())
	params.SetChannel(string(req.Channel))
	if req.Locale != "" {
		params.SetLocale(req.Locale)
	}
	var v verify.Verification
	err := b.do(ctx, opStart, func(api *openapi.ApiService) error {
		resp, err := api.CreateVerification(b.cfg.ServiceSID, params)
		if err != nil {
			return err
		}
		v, err = fromVerification(resp)
		return err
	})
	return v, err
}

// Check asks Twilio whether req.Code is right, by SID when set, else by
// number. A wrong code answers StatusPending without an error.
func (b *Backend) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	params := &openapi.CreateVerificationCheckParams{}
	params.SetCode(req.Code)
	if req.SID != "" {
		params.SetVerificationSid(req.SID)
	} else {
		params.SetTo(req.To.E164())
	}
	var v verify.Verification
	err := b.do(ctx, opCheck, func(api *openapi.ApiService) error {
		resp, err := api.CreateVerificationCheck(b.cfg.ServiceSID, params)
		if err != nil {
			return err
		}
		v, err = fromCheck(resp)
		return err
	})
	return v, err
}

// Ping fetches the Verify service: it proves the network path, the
// credentials and the service SID, and sends nothing to anyone.
func (b *Backend) Ping(ctx context.Context) error {
	return b.do(ctx, opPing, func(api *openapi.ApiService) error {
		svc, err := api.FetchService(b.cfg.ServiceSID)
		if err == nil && (svc.Sid == nil || *svc.Sid != b.cfg.ServiceSID) {
			err = errors.New("the answer is not the configured service")
		}
		return err
	})
}

// Close closes the idle connections. Calls in flight finish; later calls
// open new connections.
func (b *Backend) Close() { b.transport.CloseIdleConnections() }

// api builds the SDK client of one call around its RoundTripper. The SDK
// offers no way to pass a context per call, so each call gets its own small
// client (a few allocations, no I/O, no environment reads: the request
// handler is built here rather than by NewApiServiceWithClient, which reads
// TWILIO_EDGE and TWILIO_REGION) over the shared transport.
func (b *Backend) sdk(c *twiliohttp.Call) *openapi.ApiService {
	sdk := &client.Client{
		Credentials: client.NewCredentials(b.cfg.Username, b.cfg.Password),
		HTTPClient:  &http.Client{Transport: c, CheckRedirect: twiliohttp.NoRedirect},
	}
	sdk.SetAccountSid(b.cfg.AccountSID)
	return openapi.NewApiService(&client.RequestHandler{Client: sdk})
}

// errBadAnswer marks a 2xx answer we cannot use; it maps to ErrUnavailable.
var errBadAnswer = errors.New("answer lacks sid or status")

func fromVerification(r *openapi.VerifyV2Verification) (verify.Verification, error) {
	if r == nil || r.Sid == nil || *r.Sid == "" || r.Status == nil || *r.Status == "" {
		return verify.Verification{}, errBadAnswer
	}
	v := verify.Verification{
		SID:    *r.Sid,
		To:     deref(r.To),
		Status: verify.Status(*r.Status),
	}
	if r.Channel != nil {
		v.Channel = verify.Channel(*r.Channel)
	}
	if r.SendCodeAttempts != nil {
		v.SendAttempts = len(*r.SendCodeAttempts)
	}
	if r.DateCreated != nil {
		v.CreatedAt = *r.DateCreated
	}
	return v, nil
}

func fromCheck(r *openapi.VerifyV2VerificationCheck) (verify.Verification, error) {
	if r == nil || r.Sid == nil || *r.Sid == "" || r.Status == nil || *r.Status == "" {
		return verify.Verification{}, errBadAnswer
	}
	v := verify.Verification{
		SID:    *r.Sid,
		To:     deref(r.To),
		Status: verify.Status(*r.Status),
	}
	if r.Channel != nil {
		v.Channel = verify.Channel(*r.Channel)
	}
	if r.DateCreated != nil {
		v.CreatedAt = *r.DateCreated
	}
	return v, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
