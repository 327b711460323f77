// Package twiliotest is a local stand-in of Twilio Verify v2: the five
// operations verifyd uses (start, check, fetch and cancel a verification,
// fetch the service), with Twilio's wire format, error bodies, validation and
// verification lifecycle, plus knobs to inject failures and latency and
// counters to observe what a client did.
//
// It is what the real twilio-go SDK talks to in tests, end-to-end runs and
// benchmarks; it is not a general Twilio emulator (no other Verify resources,
// no delivery, no rate limits beyond the per-verification ones). Its answers
// are checked against Twilio's OpenAPI description in testdata, so it cannot
// drift from the real wire format unnoticed.
//
// NewServer runs it on an httptest server on 127.0.0.1; NewHandler gives the
// bare http.Handler, to serve it from a process or behind another handler.
package twiliotest

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"time"
)

// Options configure a stand-in. The zero value is ready to use.
type Options struct {
	// AccountSID, AuthToken and ServiceSID are the credentials requests must
	// carry and the one service that exists. Empty ones get random but
	// well-formed values ("AC"/"VA" + 32 hex digits, a 32-hex-digit token).
	AccountSID, AuthToken, ServiceSID string

	// Latency is waited before answering each request; a client that goes
	// away meanwhile is counted by Canceled.
	Latency time.Duration

	// FixedCode, when set, is the code of every verification (benchmarks
	// need to know it without asking); otherwise each gets 6 random digits.
	FixedCode string

	// TLS serves over HTTPS with httptest's self-signed certificate; see
	// Server.Client and Server.Certificate. Only NewServer reads it.
	TLS bool

	// Now is the clock verifications live by; nil means time.Now. Tests
	// advance a fake clock instead of sleeping past a code's lifetime.
	Now func() time.Time

	// CodeTTL is how long a verification stays pending; 0 means Twilio's
	// default of 10 minutes.
	CodeTTL time.Duration
}

// Server is a stand-in served by an httptest server on 127.0.0.1. The
// embedded Handler holds the state and the knobs (Code, SetFailure,
// SetLatency, the counters).
type Server struct {
	*Handler
	ts *httptest.Server
}

// NewServer starts a stand-in. Close it when done.
func NewServer(opts Options) *Server {
	h := NewHandler(opts)
	ts := httptest.NewUnstartedServer(h)
	// httptest chains its own ConnState hook after this one.
	ts.Config.ConnState = h.ConnState
	if opts.TLS {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	return &Server{Handler: h, ts: ts}
}

// URL is the base URL, such as "http://127.0.0.1:41234", without a trailing
// slash; it is what a client's BaseURL should be.
func (s *Server) URL() string { return s.ts.URL }

// Client is an *http.Client that trusts the server's certificate when it
// serves TLS.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Certificate is the server's TLS certificate, nil without TLS.
func (s *Server) Certificate() *x509.Certificate { return s.ts.Certificate() }

// CertPool is a pool holding only the server's certificate, for a client's
// tls.Config.RootCAs; nil without TLS.
func (s *Server) CertPool() *x509.CertPool {
	c := s.ts.Certificate()
	if c == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// TLSConfig is a client TLS configuration that trusts only the server's
// certificate; nil without TLS.
func (s *Server) TLSConfig() *tls.Config {
	p := s.CertPool()
	if p == nil {
		return nil
	}
	return &tls.Config{RootCAs: p, MinVersion: tls.VersionTLS12}
}

// CloseClientConnections closes every connection to the server, idle or not,
// as a load balancer restart would.
func (s *Server) CloseClientConnections() { s.ts.CloseClientConnections() }

// Close releases requests still waiting on latency or a hanging failure,
// then shuts the server down and waits for its handlers to return.
func (s *Server) Close() {
	s.Handler.Close()
	s.ts.Close()
}
