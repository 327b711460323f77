package twilioverify

import (
	"bytes"
	"context"
	"crypto/tls"
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

// newTransport builds the one transport every call shares, so connections
// (and their TLS sessions) are reused across calls and goroutines. The SDK's
// own default, a fresh http.Client over http.DefaultTransport, keeps 2 idle
// connections per host: under concurrency nearly every call would open a new
// TCP and TLS connection to Twilio.
func newTransport(cfg Config) *http.Transport {
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

// call is the RoundTripper of one SDK call. The SDK takes no context and
// hard-codes https://verify.twilio.com, hides the response on errors and
// never closes error bodies; call fills all three gaps:
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
type call struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper

	status     int           // HTTP status of the answer, 0 if none came
	retryAfter time.Duration // from Retry-After, 0 if absent or unreadable
	url        string        // the URL actually called, for the log
}

func (c *call) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(c.ctx)
	out.URL.Scheme = c.base.Scheme
	out.URL.Host = c.base.Host
	out.URL.Path = c.base.Path + req.URL.Path
	out.URL.RawPath = ""
	out.Host = ""
	c.url = out.URL.String()

	resp, err := c.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	c.status = resp.StatusCode
	c.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())

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

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
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

// noRedirect keeps the SDK's policy: a 3xx is an answer, not a detour.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
