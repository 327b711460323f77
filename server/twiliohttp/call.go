// Package twiliohttp is the HTTP side that twilio-go leaves open, shared by
// every backend that talks to Twilio (Verify, and the 2010 API's Messages
// and Calls): one pooled transport sized for the server's concurrency, a
// per-call RoundTripper that attaches the caller's context and sends the
// request to the configured base URL, bounded reading of error bodies so
// connections return to the pool, retries of Twilio's explicit "not
// processed" answer (20429) only, and Twilio's own rules for SIDs,
// credentials and base URLs.
package twiliohttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// maxErrorBody bounds what is kept of an error answer: Twilio's JSON
	// errors are a few hundred bytes, a load balancer's HTML page a few KiB.
	maxErrorBody = 64 << 10
	// maxDrain bounds what is read past what we keep (or past a success
	// body the SDK stopped decoding) to give the connection back to the
	// pool; past that, dropping the connection is cheaper than reading on.
	maxDrain = 256 << 10
)

// Options configure the transport and the calls.
type Options struct {
	// ConnectTimeout bounds the TCP connect and the TLS handshake.
	ConnectTimeout time.Duration
	// MaxConns is how many idle keep-alive connections to keep.
	MaxConns int
	// Proxy picks the proxy for a request.
	Proxy func(*http.Request) (*url.URL, error)
	// TLSConfig is the client TLS configuration; nil uses the system roots.
	TLSConfig *tls.Config
}

// NewTransport builds the one transport every call shares, so connections
// (and their TLS sessions) are reused across calls and goroutines. The SDK's
// own default, a fresh http.Client over http.DefaultTransport, keeps 2 idle
// connections per host: under concurrency nearly every call would open a new
// TCP and TLS connection to Twilio.
func NewTransport(cfg Options) *http.Transport {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConf = cfg.TLSConfig.Clone()
		if tlsConf.MinVersion == 0 {
			tlsConf.MinVersion = tls.VersionTLS12
		}
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               cfg.Proxy,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: cfg.ConnectTimeout,
		// Idle connections sized to the server's concurrency, so a burst's
		// connections all stay warm for the next one.
		MaxIdleConns:        cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		IdleConnTimeout:     90 * time.Second,
		// A custom TLSClientConfig turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
		// No ResponseHeaderTimeout: each call's context carries the deadline.
	}
}

// Call is the RoundTripper of one SDK call. The SDK takes no context and
// hard-codes Twilio's hosts, hides the response on errors and never closes
// error bodies; Call fills all three gaps:
//
//   - it attaches the caller's context (with our deadline), so a client
//     going away or a deadline passing cancels the upstream request;
//   - it sends the request to the configured base URL;
//   - it records the status and Retry-After of the answer, and replaces an
//     error body with an in-memory copy after draining and closing the
//     original, so the connection returns to the pool.
//
// The SDK calls RoundTrip synchronously, once per call (redirects are not
// followed), so the recorded fields need no lock.
type Call struct {
	Ctx  context.Context
	Base *url.URL
	Next http.RoundTripper

	Status     int           // HTTP status of the answer, 0 if none came
	RetryAfter time.Duration // from Retry-After, 0 if absent or unreadable
	URL        string        // the URL actually called, for the log
}

// RoundTrip implements http.RoundTripper.
func (c *Call) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(c.Ctx)
	out.URL.Scheme = c.Base.Scheme
	out.URL.Host = c.Base.Host
	out.URL.Path = c.Base.Path + req.URL.Path
	out.URL.RawPath = ""
	out.Host = ""
	c.URL = out.URL.String()

	resp, err := c.Next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	c.Status = resp.StatusCode
	c.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())

	if resp.StatusCode < 400 {
		resp.Body = drainOnClose{resp.Body}
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the body of an HTTP %d answer: %w", resp.StatusCode, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// drainOnClose reads what the SDK's JSON decoder left (a trailing newline,
// the end of a chunked body) before closing: net/http reuses a connection only
// when its body was read to the end.
type drainOnClose struct{ io.ReadCloser }

func (d drainOnClose) Close() error {
	_, _ = io.Copy(io.Discard, io.LimitReader(d.ReadCloser, maxDrain))
	return d.ReadCloser.Close()
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap absurd values rather than overflow.
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour).Round(time.Second)
		}
	}
	return 0
}

// NoRedirect keeps the SDK's policy: a 3xx is an answer, not a detour.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NeverSent reports whether err happened before the request could reach
// Twilio: a dial or a TLS handshake that failed.
func NeverSent(err error) bool {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return true
	}
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var unknownAuth x509.UnknownAuthorityError
	return errors.As(err, &certErr) || errors.As(err, &recordErr) || errors.As(err, &unknownAuth)
}
