// Package messaging sends verifyd's own codes through Twilio's 2010 API:
// SMS and WhatsApp through Messages (CreateMessage), voice through Calls
// (CreateCall with inline TwiML), over twilio-go and the shared Twilio
// transport (twiliohttp). It is the engine's Sender for the messaging
// backend; the engine keeps the codes (in Redis) and Twilio Verify's rules.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
)

// DefaultBaseURL is Twilio's 2010 API.
const DefaultBaseURL = "https://api.twilio.com"

// Config configures a Sender.
type Config struct {
	AccountSID         string // "AC" + 32 hex
	Username, Password string // the account SID and token, or an API key and secret
	BaseURL            string // default DefaultBaseURL; a gateway or a stand-in

	// MessagingServiceSID ("MG…") sends SMS from a Messaging Service's
	// sender pool (preferred: geo-matching, sticky senders); else From.
	MessagingServiceSID string
	// From is a Twilio number: SMS without a Messaging Service, and every
	// call (it must be voice-capable).
	From string
	// WhatsAppFrom is the WhatsApp sender (E.164, without "whatsapp:").
	WhatsAppFrom string

	// AppName names the app in the message; Host, when set, adds the
	// WebOTP line "@host #code"; AndroidAppHash the SMS Retriever hash.
	AppName, Host, AndroidAppHash string

	ConnectTimeout, RequestTimeout time.Duration
	MaxConns, MaxRetries           int
	Proxy                          func(*http.Request) (*url.URL, error)
	// Observe, when set, is told of every HTTP attempt, for metrics; its
	// Operation is "message", "call" or "fetch_account".
	Observe func(twiliohttp.Attempt)
	// StatusCallback, when set, is the absolute URL Twilio posts each
	// message's and call's status to (PUBLIC_URL + /webhooks/twilio/status);
	// each send adds ?v=its verification SID, which Twilio signs with it.
	StatusCallback string
}

// Sender is an engine.Sender over Twilio's Messages and Calls. It is safe
// for concurrent use.
type Sender struct {
	cfg       Config
	api       twiliohttp.API
	transport *http.Transport
}

var _ engine.Sender = (*Sender)(nil)

// New checks cfg with Twilio's own rules and builds the shared transport.
func New(cfg Config) (*Sender, error) {
	for _, c := range []struct {
		name  string
		check func(string) error
		value string
	}{
		{"AccountSID", twiliohttp.CheckAccountSID, cfg.AccountSID},
		{"Username", twiliohttp.CheckCredential, cfg.Username},
		{"Password", twiliohttp.CheckCredential, cfg.Password},
	} {
		if err := c.check(c.value); err != nil {
			return nil, fmt.Errorf("messaging: %s %w", c.name, err)
		}
	}
	if cfg.MessagingServiceSID == "" && cfg.From == "" {
		return nil, errors.New("messaging: neither a Messaging Service nor a From number")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := twiliohttp.CheckBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("messaging: BaseURL %w", err)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	if cfg.Proxy == nil {
		cfg.Proxy = http.ProxyFromEnvironment
	}
	s := &Sender{cfg: cfg, transport: twiliohttp.NewTransport(twiliohttp.Options{
		ConnectTimeout: cfg.ConnectTimeout, MaxConns: cfg.MaxConns, Proxy: cfg.Proxy})}
	s.api = twiliohttp.API{Base: base, Transport: s.transport, Timeout: cfg.RequestTimeout,
		MaxRetries: cfg.MaxRetries, ByCode: byCode, Observe: cfg.Observe}
	return s, nil
}

// Send delivers m: a message for sms and whatsapp, a call for call.
func (s *Sender) Send(ctx context.Context, m engine.Message) error {
	op := "message"
	var fn func(*openapi.ApiService) error
	switch m.Channel {
	case verify.ChannelSMS, verify.ChannelWhatsApp:
		p := &openapi.CreateMessageParams{}
		if m.Channel == verify.ChannelWhatsApp {
			// No WebOTP or Retriever line: they are for SMS.
			p.SetBody(Body(m.Locale, s.cfg.AppName, m.Code, "", ""))
			p.SetTo("whatsapp:" + m.To).SetFrom("whatsapp:" + s.cfg.WhatsAppFrom)
		} else {
			p.SetBody(Body(m.Locale, s.cfg.AppName, m.Code, s.cfg.Host, s.cfg.AndroidAppHash))
			p.SetTo(m.To)
			if s.cfg.MessagingServiceSID != "" {
				p.SetMessagingServiceSid(s.cfg.MessagingServiceSID)
			} else {
				p.SetFrom(s.cfg.From)
			}
		}
		if cb := s.callback(m.SID); cb != "" {
			p.SetStatusCallback(cb)
		}
		fn = func(api *openapi.ApiService) error {
			r, err := api.CreateMessage(p)
			if err == nil && (r == nil || r.Sid == nil || *r.Sid == "") {
				err = errBadAnswer
			}
			return err
		}
	case verify.ChannelCall:
		op = "call"
		p := (&openapi.CreateCallParams{}).SetTo(m.To).SetFrom(s.cfg.From).SetTwiml(TwiML(m.Locale, m.Code))
		if cb := s.callback(m.SID); cb != "" {
			p.SetStatusCallback(cb)
		}
		fn = func(api *openapi.ApiService) error {
			r, err := api.CreateCall(p)
			if err == nil && (r == nil || r.Sid == nil || *r.Sid == "") {
				err = errBadAnswer
			}
			return err
		}
	default:
		return verify.ErrChannelNotAllowed
	}
	return s.do(ctx, op, fn)
}

// callback is the status callback URL of verification sid's send, "" when
// none is asked for.
func (s *Sender) callback(sid string) string {
	if s.cfg.StatusCallback == "" {
		return ""
	}
	return s.cfg.StatusCallback + "?v=" + url.QueryEscape(sid)
}

// Ping fetches the account, for readiness: it fails on credentials Twilio
// refuses.
func (s *Sender) Ping(ctx context.Context) error {
	return s.do(ctx, "fetch_account", func(api *openapi.ApiService) error {
		_, err := api.FetchAccount(s.cfg.AccountSID)
		return err
	})
}

// Close closes the idle connections.
func (s *Sender) Close() { s.transport.CloseIdleConnections() }

// errBadAnswer is a 2xx answer without a SID: Twilio may have sent it.
var errBadAnswer = errors.New("answer lacks a sid")

func (s *Sender) do(parent context.Context, op string, fn func(*openapi.ApiService) error) error {
	return s.api.Run(parent, op, op, func(c *twiliohttp.Call) error { return fn(s.sdk(c)) })
}

// api builds the SDK client of one call around its RoundTripper.
func (s *Sender) sdk(c *twiliohttp.Call) *openapi.ApiService {
	sdk := &client.Client{
		Credentials: client.NewCredentials(s.cfg.Username, s.cfg.Password),
		HTTPClient:  &http.Client{Transport: c, CheckRedirect: twiliohttp.NoRedirect},
	}
	// The account in the path, also when an API key authenticates.
	sdk.SetAccountSid(s.cfg.AccountSID)
	return openapi.NewApiService(&client.RequestHandler{Client: sdk})
}
