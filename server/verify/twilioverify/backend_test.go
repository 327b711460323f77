package twilioverify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verifyd/server/verify"
	"verifyd/server/verify/twilioverify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// These tests run the real twilio-go SDK, through the Backend, against the
// local stand-in over real HTTP.

const alice = "+14155552671"

func newStandIn(t *testing.T, opts twiliotest.Options) *twiliotest.Server {
	t.Helper()
	srv := twiliotest.NewServer(opts)
	t.Cleanup(srv.Close)
	return srv
}

// configFor answers a Config that reaches srv with its credentials.
func configFor(srv *twiliotest.Server) twilioverify.Config {
	return twilioverify.Config{
		AccountSID: srv.AccountSID(),
		Username:   srv.AccountSID(),
		Password:   srv.AuthToken(),
		ServiceSID: srv.ServiceSID(),
		BaseURL:    srv.URL(),
		TLSConfig:  srv.TLSConfig(),
	}
}

func newBackend(t *testing.T, cfg twilioverify.Config) *twilioverify.Backend {
	t.Helper()
	b, err := twilioverify.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

func startReq(to string) verify.StartRequest {
	return verify.StartRequest{To: verifytest.Number(to), Channel: verify.ChannelSMS}
}

func TestStartWrongRightFlow(t *testing.T) {
	clock := verifytest.NewClock(time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC))
	srv := newStandIn(t, twiliotest.Options{Now: clock.Now})
	b := newBackend(t, configFor(srv))
	ctx := t.Context()

	v, err := b.Start(ctx, verify.StartRequest{To: verifytest.Number(alice), Channel: verify.ChannelSMS, Locale: "fr"})
	if err != nil {
		t.Fatalf("Start(%q) = %v, want nil", alice, err)
	}
	want := verify.Verification{SID: v.SID, To: alice, Channel: verify.ChannelSMS, Status: verify.StatusPending,
		SendAttempts: 1, CreatedAt: clock.Now()}
	if !verify.ValidSID(v.SID) || v != want {
		t.Fatalf("Start(%q) = %+v, want %+v", alice, v, want)
	}
	v2, err := b.Start(ctx, verify.StartRequest{To: verifytest.Number(alice), Channel: verify.ChannelCall})
	if err != nil || v2.SID != v.SID || v2.SendAttempts != 2 || v2.Channel != verify.ChannelCall {
		t.Fatalf("second Start(%q) = %+v, %v, want the same SID, 2 sends, channel call", alice, v2, err)
	}

	code, _ := srv.Code(alice)
	got, err := b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: verifytest.WrongCode(code)})
	if err != nil || got.Status != verify.StatusPending || got.SID != v.SID {
		t.Fatalf("Check(wrong code) = %+v, %v, want pending, nil", got, err)
	}
	if err := verify.Outcome(got); !errors.Is(err, verify.ErrWrongCode) {
		t.Errorf("Outcome(wrong code) = %v, want %v", err, verify.ErrWrongCode)
	}
	got, err = b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code})
	if err != nil || got.Status != verify.StatusApproved || got.To != alice || !got.CreatedAt.Equal(clock.Now()) {
		t.Fatalf("Check(right code) = %+v, %v, want approved, nil", got, err)
	}
	if err := verify.Outcome(got); err != nil {
		t.Errorf("Outcome(right code) = %v, want nil", err)
	}
	if _, err := b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code}); !errors.Is(err, verify.ErrNotFound) {
		t.Errorf("Check after approval = %v, want %v", err, verify.ErrNotFound)
	}
}

func TestCheckBySID(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{FixedCode: "482913"})
	b := newBackend(t, configFor(srv))
	v, err := b.Start(t.Context(), startReq(alice))
	if err != nil {
		t.Fatalf("Start(%q) = %v", alice, err)
	}
	got, err := b.Check(t.Context(), verify.CheckRequest{SID: v.SID, Code: "482913"})
	if err != nil || got.Status != verify.StatusApproved || got.SID != v.SID || got.To != alice {
		t.Fatalf("Check(SID %s) = %+v, %v, want approved for %s", v.SID, got, err, alice)
	}
	unknown := "VE" + strings.Repeat("0", 32)
	if _, err := b.Check(t.Context(), verify.CheckRequest{SID: unknown, Code: "482913"}); !errors.Is(err, verify.ErrNotFound) {
		t.Errorf("Check(SID %s) = %v, want %v", unknown, err, verify.ErrNotFound)
	}
}

func TestTwilioErrorsMapped(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.MaxRetries = -1 // 20429 is mapped here; its retries are tested apart
	b := newBackend(t, cfg)
	tests := []struct {
		name    string
		failure twiliotest.Failure
		want    *verify.Error
	}{
		{"invalid parameter", twiliotest.Failure{Status: 400, Code: 60200}, verify.ErrInvalidParameter},
		{"not found", twiliotest.Failure{Status: 404, Code: 20404}, verify.ErrNotFound},
		{"max check attempts", twiliotest.Failure{Status: 429, Code: 60202}, verify.ErrTooManyAttempts},
		{"max send attempts", twiliotest.Failure{Status: 429, Code: 60203}, verify.ErrTooManySends},
		{"too many concurrent for number", twiliotest.Failure{Status: 429, Code: 60212}, verify.ErrTooManyConcurrent},
		{"account concurrency", twiliotest.Failure{Status: 429, Code: 20429}, verify.ErrUpstreamBusy},
		{"landline", twiliotest.Failure{Status: 403, Code: 60205}, verify.ErrLandline},
		{"channel disabled", twiliotest.Failure{Status: 400, Code: 60223}, verify.ErrChannelDisabled},
		{"geo permissions", twiliotest.Failure{Status: 403, Code: 60605}, verify.ErrDestinationBlocked},
		{"fraud guard", twiliotest.Failure{Status: 403, Code: 60410}, verify.ErrNumberBlocked},
		{"authentication", twiliotest.Failure{Status: 401, Code: 20003}, verify.ErrMisconfigured},
		{"other 4xx code", twiliotest.Failure{Status: 400, Code: 21608}, verify.ErrMisconfigured},
		{"401 without code", twiliotest.Failure{Status: 401}, verify.ErrMisconfigured},
		{"403 without code", twiliotest.Failure{Status: 403}, verify.ErrMisconfigured},
		{"429 unknown code", twiliotest.Failure{Status: 429, Code: 60999}, verify.ErrUpstreamBusy},
		{"500", twiliotest.Failure{Status: 500, Code: 20500}, verify.ErrUnavailable},
		{"503 without code", twiliotest.Failure{Status: 503}, verify.ErrUnavailable},
		{"502 HTML", twiliotest.Failure{Status: 502, RawBody: "<html>Bad Gateway</html>"}, verify.ErrUnavailable},
		{"500 empty body", twiliotest.Failure{Status: 500, NoBody: true}, verify.ErrUnavailable},
		{"401 empty body", twiliotest.Failure{Status: 401, NoBody: true}, verify.ErrMisconfigured},
		{"403 HTML", twiliotest.Failure{Status: 403, RawBody: "<html>Forbidden</html>"}, verify.ErrMisconfigured},
		{"404 HTML", twiliotest.Failure{Status: 404, RawBody: "<html>Not Found</html>"}, verify.ErrUnavailable},
		{"400 garbled", twiliotest.Failure{Status: 400, RawBody: `{"code": 602`, ContentType: "application/json"}, verify.ErrUnavailable},
		{"200 garbled", twiliotest.Failure{Status: 200, RawBody: `{"sid": "VE`, ContentType: "application/json"}, verify.ErrUnavailable},
		{"200 without sid", twiliotest.Failure{Status: 200, RawBody: `{"status": "approved"}`, ContentType: "application/json"}, verify.ErrUnavailable},
		{"200 without status", twiliotest.Failure{Status: 200, RawBody: `{"sid": "VE00000000000000000000000000000000"}`, ContentType: "application/json"}, verify.ErrUnavailable},
		{"302", twiliotest.Failure{Status: 302, RawBody: "moved", ContentType: "text/plain"}, verify.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFailure(alice, &tt.failure)
			defer srv.SetFailure(alice, nil)
			_, err := b.Check(t.Context(), verify.CheckRequest{To: verifytest.Number(alice), Code: "123456"})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check(%q) with %+v = %v, want %v", alice, tt.failure, err, tt.want)
			}
			msg := err.Error()
			if tt.failure.Code != 0 && tt.failure.RawBody == "" && !strings.Contains(msg, fmt.Sprint(tt.failure.Code)) {
				t.Errorf("Check(%q) error %q does not carry Twilio's code %d for the log", alice, msg, tt.failure.Code)
			}
			if strings.Contains(msg, srv.AuthToken()) {
				t.Errorf("Check(%q) error %q carries the auth token", alice, msg)
			}
		})
	}
}

// A start names no verification, so a 20404 there means the service SID is
// wrong: our configuration, not the user's code.
func TestStartNotFoundIsMisconfiguration(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.ServiceSID = "VA" + strings.Repeat("0", 32)
	b := newBackend(t, cfg)
	if _, err := b.Start(t.Context(), startReq(alice)); !errors.Is(err, verify.ErrMisconfigured) {
		t.Errorf("Start(%q) to an unknown service = %v, want %v", alice, err, verify.ErrMisconfigured)
	}
	if err := b.Ping(t.Context()); !errors.Is(err, verify.ErrMisconfigured) {
		t.Errorf("Ping() of an unknown service = %v, want %v", err, verify.ErrMisconfigured)
	}
}

func TestRetryAfterCaptured(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	b := newBackend(t, configFor(srv))
	inTwoMinutes := time.Now().Add(2 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		failure  twiliotest.Failure
		want     *verify.Error
		min, max time.Duration
		requests int64
	}{
		{"seconds", twiliotest.Failure{Status: 429, Code: 60203, RetryAfter: "600"}, verify.ErrTooManySends, 600 * time.Second, 600 * time.Second, 1},
		{"HTTP date", twiliotest.Failure{Status: 429, Code: 60212, RetryAfter: inTwoMinutes}, verify.ErrTooManyConcurrent, 110 * time.Second, 120 * time.Second, 1},
		{"unreadable", twiliotest.Failure{Status: 429, Code: 60212, RetryAfter: "soon"}, verify.ErrTooManyConcurrent, 0, 0, 1},
		{"503", twiliotest.Failure{Status: 503, RawBody: "down", RetryAfter: "5"}, verify.ErrUnavailable, 5 * time.Second, 5 * time.Second, 1},
		// Too long to wait out inside a request: not retried, passed on.
		{"long 20429", twiliotest.Failure{Status: 429, Code: 20429, RetryAfter: "30"}, verify.ErrUpstreamBusy, 30 * time.Second, 30 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFailure(alice, &tt.failure)
			defer srv.SetFailure(alice, nil)
			before := srv.Requests()
			_, err := b.Start(t.Context(), startReq(alice))
			var e *verify.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) {
				t.Fatalf("Start(%q) = %v, want %v", alice, err, tt.want)
			}
			if e.RetryAfter < tt.min || e.RetryAfter > tt.max {
				t.Errorf("Start(%q) RetryAfter = %v, want %v to %v", alice, e.RetryAfter, tt.min, tt.max)
			}
			if n := srv.Requests() - before; n != tt.requests {
				t.Errorf("Start(%q) made %d requests, want %d", alice, n, tt.requests)
			}
		})
	}
}

func TestHTMLErrorKeepsConnection(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	b := newBackend(t, configFor(srv))
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	// Bigger than what is kept of an error body, smaller than the drain
	// limit: the rest must be read so the connection can be reused.
	page := "<html><body>" + strings.Repeat("<p>502 Bad Gateway</p>", 5000) + "</body></html>"
	srv.SetFailure(alice, &twiliotest.Failure{Status: 502, RawBody: page})
	for range 3 {
		if _, err := b.Start(t.Context(), startReq(alice)); !errors.Is(err, verify.ErrUnavailable) {
			t.Fatalf("Start(%q) with an HTML 502 = %v, want %v", alice, err, verify.ErrUnavailable)
		}
	}
	srv.SetFailure(alice, nil)
	if _, err := b.Start(t.Context(), startReq(alice)); err != nil {
		t.Fatalf("Start(%q) after the 502s = %v", alice, err)
	}
	if n := srv.Connections(); n != 1 {
		t.Errorf("Connections() = %d after 5 sequential calls, want 1 (the error answers lost their connection)", n)
	}
}

func TestTimeout(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.RequestTimeout = 300 * time.Millisecond
	b := newBackend(t, cfg)
	srv.SetFailure(alice, &twiliotest.Failure{Hang: true})

	began := time.Now()
	_, err := b.Start(t.Context(), startReq(alice))
	if !errors.Is(err, verify.ErrTimeout) {
		t.Fatalf("Start(%q) hanging = %v, want %v", alice, err, verify.ErrTimeout)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Start(%q) took %v, want about the 300ms RequestTimeout", alice, d)
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("Start(%q) timing out made %d requests, want 1 (never retried)", alice, n)
	}

	// The caller's own deadline is a timeout too, not a client gone.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: "1234"}); !errors.Is(err, verify.ErrTimeout) {
		t.Errorf("Check(%q) past the caller's deadline = %v, want %v", alice, err, verify.ErrTimeout)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.BaseURL = "http://" + addr
	b := newBackend(t, cfg)
	_, err = b.Start(t.Context(), startReq(alice))
	if !errors.Is(err, verify.ErrUnavailable) {
		t.Errorf("Start(%q) to a closed port = %v, want %v", alice, err, verify.ErrUnavailable)
	}
	// The cause names the URL really called, not Twilio's default host.
	if msg := err.Error(); !strings.Contains(msg, "http://"+addr+"/v2/Services/") || strings.Contains(msg, "twilio.com") {
		t.Errorf("the cause is %q, want it to name http://%s", msg, addr)
	}
	if err := b.Ping(t.Context()); !errors.Is(err, verify.ErrUnavailable) {
		t.Errorf("Ping() to a closed port = %v, want %v", err, verify.ErrUnavailable)
	}
}

func TestClientGoneCancelsUpstream(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	b := newBackend(t, configFor(srv))
	srv.SetFailure(alice, &twiliotest.Failure{Hang: true})

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: "123456"})
		errc <- err
	}()
	verifytest.WaitFor(t, "the check to reach the stand-in", func() bool { return srv.Requests() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, verify.ErrClientGone) {
		t.Errorf("Check(%q) canceled by the caller = %v, want %v", alice, err, verify.ErrClientGone)
	}
	verifytest.WaitFor(t, "the stand-in to see the cancellation", func() bool { return srv.Canceled() == 1 })

	// A caller already gone costs no request at all.
	if _, err := b.Start(ctx, startReq(alice)); !errors.Is(err, verify.ErrClientGone) {
		t.Errorf("Start(%q) with a canceled context = %v, want %v", alice, err, verify.ErrClientGone)
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("Requests() = %d, want 1", n)
	}
}

func TestRetries(t *testing.T) {
	busy := twiliotest.Failure{Status: 429, Code: 20429, Message: "Too many requests"}
	tests := []struct {
		name     string
		failure  twiliotest.Failure
		check    bool
		want     error // nil: success
		requests int64
	}{
		{"transient 20429 on start", withTimes(busy, 1), false, nil, 2},
		{"transient 20429 on check", withTimes(busy, 2), true, nil, 3},
		{"persistent 20429", busy, false, verify.ErrUpstreamBusy, 3},
		{"short Retry-After honoured", withRetryAfter(withTimes(busy, 1), "1"), false, nil, 2},
		{"5xx on start", twiliotest.Failure{Status: 503, Code: 20503}, false, verify.ErrUnavailable, 1},
		{"HTML 502 on start", twiliotest.Failure{Status: 502, RawBody: "<html></html>"}, false, verify.ErrUnavailable, 1},
		{"60212 on start", twiliotest.Failure{Status: 429, Code: 60212}, false, verify.ErrTooManyConcurrent, 1},
		{"5xx on check", twiliotest.Failure{Status: 500}, true, verify.ErrUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newStandIn(t, twiliotest.Options{FixedCode: "123456"})
			b := newBackend(t, configFor(srv)) // MaxRetries: the default 2
			if tt.check {
				if _, err := b.Start(t.Context(), startReq(alice)); err != nil {
					t.Fatalf("Start(%q) = %v", alice, err)
				}
			}
			srv.SetFailure(alice, &tt.failure)
			before := srv.Requests()
			began := time.Now()
			var err error
			if tt.check {
				_, err = b.Check(t.Context(), verify.CheckRequest{To: verifytest.Number(alice), Code: "123456"})
			} else {
				_, err = b.Start(t.Context(), startReq(alice))
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("with %+v: err = %v, want %v", tt.failure, err, tt.want)
			}
			if n := srv.Requests() - before; n != tt.requests {
				t.Errorf("with %+v: %d requests, want %d", tt.failure, n, tt.requests)
			}
			if tt.failure.RetryAfter == "1" && time.Since(began) < time.Second {
				t.Errorf("with Retry-After: 1 the retry came after %v, want at least 1s", time.Since(began))
			}
		})
	}
}

func withTimes(f twiliotest.Failure, n int) twiliotest.Failure { f.Times = n; return f }

func withRetryAfter(f twiliotest.Failure, v string) twiliotest.Failure { f.RetryAfter = v; return f }

func TestRetryStopsBeforeDeadline(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.RequestTimeout = 500 * time.Millisecond
	b := newBackend(t, cfg)
	// A 1s Retry-After cannot be honoured within 500ms: give up at once.
	srv.SetFailure(alice, &twiliotest.Failure{Status: 429, Code: 20429, RetryAfter: "1"})
	began := time.Now()
	if _, err := b.Start(t.Context(), startReq(alice)); !errors.Is(err, verify.ErrUpstreamBusy) {
		t.Fatalf("Start(%q) = %v, want %v", alice, err, verify.ErrUpstreamBusy)
	}
	if n, d := srv.Requests(), time.Since(began); n != 1 || d > 400*time.Millisecond {
		t.Errorf("Start(%q) made %d requests in %v, want 1 and no waiting", alice, n, d)
	}
}

// TestConnectionReuseUnderConcurrency: the pool fits the concurrency, so
// that every connection goes back to it after its answer (Go's default
// keeps two and closes the rest) and calls reuse them.
//
// It used to count the stand-in's connections against workers+5, which
// failed now and then on a busy machine: a connection goes back to the
// pool on the transport's own goroutine after the answer has been read,
// so a worker's next call can find none idle and dial, and that dial adds
// one more. That is net/http's scheduling, not verifyd's pool; what
// verifyd controls is seen exactly through httptrace: whether the pool
// took each connection back.
func TestConnectionReuseUnderConcurrency(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{Latency: 10 * time.Millisecond})
	b := newBackend(t, configFor(srv))
	const calls, workers = 400, 50
	var refused, reused atomic.Int64
	var refusal atomic.Value
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				reused.Add(1)
			}
		},
		PutIdleConn: func(err error) {
			if err != nil {
				refused.Add(1)
				refusal.Store(err.Error())
			}
		},
	})
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > calls {
					return
				}
				to := fmt.Sprintf("+1415555%04d", i)
				if _, err := b.Start(ctx, startReq(to)); err != nil {
					errs <- fmt.Errorf("Start(%q) = %w", to, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := refused.Load(); n != 0 {
		t.Errorf("%d connections were not taken back by the pool (%v), want none", n, refusal.Load())
	}
	// At most one dial per call that found no idle connection: far fewer
	// than the calls, whatever the scheduling.
	if n := reused.Load(); n < calls/2 {
		t.Errorf("%d of %d calls reused a connection, want at least half", n, calls)
	}
	t.Logf("%d calls at %d-way concurrency: %d reused, %d connections", calls, workers, reused.Load(), srv.Connections())
}

func TestProxyHonoured(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets the absolute URL of the target.
		if r.URL.Host == "" {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)

	cfg := configFor(srv)
	cfg.Proxy = http.ProxyURL(proxyURL)
	b := newBackend(t, cfg)
	if _, err := b.Start(t.Context(), startReq(alice)); err != nil {
		t.Fatalf("Start(%q) through a proxy = %v", alice, err)
	}
	if n := proxied.Load(); n != 1 {
		t.Errorf("the proxy saw %d requests, want 1", n)
	}
}

func TestBaseURLPathPrefix(t *testing.T) {
	h := twiliotest.NewHandler(twiliotest.Options{FixedCode: "5555"})
	defer h.Close()
	var paths []string
	var mu sync.Mutex
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.StripPrefix("/gateway/verify", h).ServeHTTP(w, r)
	}))
	defer gw.Close()

	b := newBackend(t, twilioverify.Config{
		AccountSID: h.AccountSID(), Username: h.AccountSID(), Password: h.AuthToken(),
		ServiceSID: h.ServiceSID(), BaseURL: gw.URL + "/gateway/verify/",
	})
	v, err := b.Start(t.Context(), startReq(alice))
	if err != nil {
		t.Fatalf("Start(%q) behind a path prefix = %v", alice, err)
	}
	if _, err := b.Check(t.Context(), verify.CheckRequest{SID: v.SID, Code: "5555"}); err != nil {
		t.Fatalf("Check(%s) behind a path prefix = %v", v.SID, err)
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping() behind a path prefix = %v", err)
	}
	want := "/gateway/verify/v2/Services/" + h.ServiceSID() + "/Verifications"
	if len(paths) != 3 || paths[0] != want {
		t.Errorf("the gateway saw %q, want 3 requests, the first to %q", paths, want)
	}
}

func TestBadCredentials(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	cfg := configFor(srv)
	cfg.Password = "0123456789abcdef0123456789abcdef"
	b := newBackend(t, cfg)
	if _, err := b.Start(t.Context(), startReq(alice)); !errors.Is(err, verify.ErrMisconfigured) {
		t.Errorf("Start(%q) with a wrong token = %v, want %v", alice, err, verify.ErrMisconfigured)
	} else if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("Start(%q) error %q carries the token", alice, err)
	}
	if err := b.Ping(t.Context()); !errors.Is(err, verify.ErrMisconfigured) {
		t.Errorf("Ping() with a wrong token = %v, want %v", err, verify.ErrMisconfigured)
	}
}

func TestTLS(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{TLS: true, FixedCode: "777777"})
	b := newBackend(t, configFor(srv))
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping() over TLS = %v", err)
	}
	if _, err := b.Start(t.Context(), startReq(alice)); err != nil {
		t.Fatalf("Start(%q) over TLS = %v", alice, err)
	}
	if v, err := b.Check(t.Context(), verify.CheckRequest{To: verifytest.Number(alice), Code: "777777"}); err != nil || v.Status != verify.StatusApproved {
		t.Fatalf("Check(%q) over TLS = %+v, %v, want approved", alice, v, err)
	}

	// Without the stand-in's certificate the system roots refuse it.
	cfg := configFor(srv)
	cfg.TLSConfig = nil
	untrusting := newBackend(t, cfg)
	if err := untrusting.Ping(t.Context()); !errors.Is(err, verify.ErrUnavailable) {
		t.Errorf("Ping() to an untrusted certificate = %v, want %v", err, verify.ErrUnavailable)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := twilioverify.Config{
		AccountSID: "AC" + strings.Repeat("a", 32),
		Username:   "AC" + strings.Repeat("a", 32),
		Password:   "s3cr3tT0ken",
		ServiceSID: "VA" + strings.Repeat("b", 32),
	}
	if _, err := twilioverify.New(good); err != nil {
		t.Fatalf("New(good) = %v, want nil", err)
	}
	tests := []struct {
		name   string
		mutate func(*twilioverify.Config)
	}{
		{"no account", func(c *twilioverify.Config) { c.AccountSID = "" }},
		{"bad account", func(c *twilioverify.Config) { c.AccountSID = "AC123" }},
		{"bad service", func(c *twilioverify.Config) { c.ServiceSID = "VE" + strings.Repeat("b", 32) }},
		{"no username", func(c *twilioverify.Config) { c.Username = "" }},
		{"no password", func(c *twilioverify.Config) { c.Password = "" }},
		{"password with symbols", func(c *twilioverify.Config) { c.Password = "s3cr3t-T0ken" }},
		{"BaseURL with credentials", func(c *twilioverify.Config) { c.BaseURL = "https://user:s3cr3tT0ken@gw.example" }},
		{"BaseURL not http", func(c *twilioverify.Config) { c.BaseURL = "ftp://verify.twilio.com" }},
		{"BaseURL without host", func(c *twilioverify.Config) { c.BaseURL = "https:///v2" }},
		{"BaseURL with query", func(c *twilioverify.Config) { c.BaseURL = "https://gw.example/?a=b" }},
		{"negative timeout", func(c *twilioverify.Config) { c.RequestTimeout = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			_, err := twilioverify.New(cfg)
			if err == nil {
				t.Fatalf("New(%s) = nil, want an error", tt.name)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("New(%s) error %q carries the secret", tt.name, err)
			}
		})
	}
}

func TestPing(t *testing.T) {
	srv := newStandIn(t, twiliotest.Options{})
	b := newBackend(t, configFor(srv))
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping() = %v, want nil", err)
	}
	srv.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Status: 503})
	if err := b.Ping(t.Context()); !errors.Is(err, verify.ErrUnavailable) {
		t.Errorf("Ping() with Twilio down = %v, want %v", err, verify.ErrUnavailable)
	}
}
