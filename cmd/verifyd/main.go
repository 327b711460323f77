// Command verifyd is a hardened front door to Twilio Verify: a JSON API and a
// two-step web form for phone-number verification.
//
// main only calls run and exits once; run does the wiring and is what the
// end-to-end tests drive.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"verifyd/server"
	"verifyd/server/delivery"
	"verifyd/server/flow"
	"verifyd/server/receipt"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/twilioverify"
	"verifyd/static"
	"verifyd/web"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyd:", err)
		os.Exit(1)
	}
}

// Server timeouts against slow or idle clients. The write timeout must leave
// room for the slowest upstream call, so it is derived from it in run.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
)

// run starts verifyd and serves until ctx is canceled, then shuts down
// gracefully: in-flight requests finish within SHUTDOWN_TIMEOUT.
func run(ctx context.Context, args, environ []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("verifyd", flag.ContinueOnError)
	flags.SetOutput(stdout)
	showVersion := flags.Bool("version", false, "print the version and exit")
	healthcheck := flags.Bool("healthcheck", false, "ask the verifyd on this machine's PORT for /healthz and exit 0 if it is up (for container health checks)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -help printed the usage: not a failure
		}
		return err
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, "verifyd", version)
		return err
	}

	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if *healthcheck {
		return checkHealth(ctx, cfg)
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every verifyd series carries the backend, so dashboards that compare
	// (or migrate between) backends can tell them apart.
	metrics := server.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"backend": cfg.Backend}, reg))

	// The one clock every part reads, handed to each.
	now := time.Now
	rdb, err := newRedis(cfg, logger)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	b, err := newBackend(cfg, logger, metrics, rdb, now)
	if err != nil {
		return err
	}
	defer b.close()

	g, err := newGuarded(cfg, logger, rdb, now)
	if err != nil {
		return err
	}
	readiness := b.checks
	if rdb != nil {
		readiness = append(readiness, server.Check{Name: "redis", Fatal: redisMisconfigured,
			Probe: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
	}
	receipts, err := newReceipts(cfg, logger, now)
	if err != nil {
		return err
	}
	// The pipeline: cmd builds each step and hands it over; the flow runs
	// them in order.
	fcfg := flow.Config{
		Backend:     b.verifier,
		Phones:      cfg.phones,
		Channels:    cfg.channels,
		Locales:     verify.NewLocales(),
		Policy:      g.guard,
		StepUp:      g.guard,
		Limits:      g.guard,
		Gate:        verify.NewGate(cfg.UpstreamMaxInFlight, cfg.UpstreamMaxWait),
		Receipts:    receipts,
		Observer:    flow.Observers{metrics, flow.DecisionLog{Logger: logger}},
		Deliveries:  b.deliveries,
		ResendAfter: cfg.LimitPhoneCooldown,
		Now:         now,
	}
	metrics.Expect(cfg.channels, expectedCountries(cfg))
	if g.tests != nil {
		fcfg.Tests = g.tests
	}
	fl, err := flow.New(fcfg)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	scfg := server.Config{
		Now:                now,
		StatusCallbackURL:  cfg.statusCallbackURL(),
		TwilioAuthToken:    string(cfg.TwilioAuthToken),
		Draining:           draining.Load,
		Logger:             logger,
		Flow:               fl,
		TrustedProxies:     cfg.trusted,
		LimiterState:       g.guard.State,
		ReturnOrigins:      cfg.ReceiptReturnOrigins,
		Countries:          cfg.countries,
		CodeLength:         codeLengthShown(cfg),
		Challenges:         func() (any, error) { return g.challenges.New() },
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		Web:                web.FS,
		Static:             static.FS,
		Readiness:          readiness,
		ReadinessTTL:       cfg.ReadinessCacheTTL,
		ReadinessTimeout:   cfg.ReadinessTimeout,
		Metrics:            metrics,
		FormKey:            secretBytes(cfg.FormSecret),
		ResendCooldown:     cfg.LimitPhoneCooldown,
	}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.MetricsAddr == "" {
		scfg.MetricsHandler = metricsHandler
	}

	handler, err := server.NewHandler(scfg)
	if err != nil {
		return err
	}

	// Listen before serving, so a taken port fails run at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Requests run under base: when the shutdown's time is up, canceling it
	// stops what is still in flight, which then answers 503 shutting_down.
	base, stopRequests := context.WithCancelCause(context.Background())
	defer stopRequests(nil)
	srv := &http.Server{
		Handler:           closeWhileDraining(handler, &draining),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      cfg.TwilioRequestTimeout + 5*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCertFile != "" {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, logger)
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}
	}
	servers := []*http.Server{srv}
	listeners := []net.Listener{ln}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		servers = append(servers, &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout: readTimeout, WriteTimeout: 30 * time.Second, IdleTimeout: idleTimeout})
		listeners = append(listeners, mln)
		logger.Info("serving metrics", "addr", mln.Addr().String())
	}
	if cfg.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("listen for debug: %w", err)
		}
		servers = append(servers, &http.Server{Handler: pprofMux(), ReadHeaderTimeout: readHeaderTimeout})
		listeners = append(listeners, dln)
		logger.Warn("serving pprof profiles", "addr", dln.Addr().String())
	}
	logger.Info("listening", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil, "backend", cfg.Backend,
		"app_env", cfg.AppEnv, "version", version)

	serveErr := make(chan error, len(servers))
	for i, s := range servers {
		go func() {
			if s.TLSConfig != nil {
				serveErr <- s.ServeTLS(listeners[i], "", "") // the certificate comes from GetCertificate
				return
			}
			serveErr <- s.Serve(listeners[i])
		}()
	}

	select {
	case err := <-serveErr:
		for _, s := range servers {
			s.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return shutdown(logger, cfg, servers, serveErr, &draining, stopRequests)
}

// shutdownGrace is how long requests stopped at the end of the shutdown
// have to write their 503.
const shutdownGrace = 2 * time.Second

// shutdown drains, then stops: /readyz answers 503 for SHUTDOWN_DRAIN while
// everything is still served (answers close their connections, so clients
// move on between requests), then the listeners close and in-flight
// requests get SHUTDOWN_TIMEOUT; any still running then are stopped and
// answered 503 shutting_down. It answers nil when every request was
// answered.
func shutdown(logger *slog.Logger, cfg config, servers []*http.Server, serveErr chan error,
	draining *atomic.Bool, stopRequests context.CancelCauseFunc) error {
	draining.Store(true)
	if cfg.ShutdownDrain > 0 {
		logger.Info("draining", "for", cfg.ShutdownDrain.String())
		t := time.NewTimer(cfg.ShutdownDrain)
		select {
		case <-t.C:
		case err := <-serveErr:
			t.Stop()
			for _, s := range servers {
				s.Close()
			}
			return fmt.Errorf("serve: %w", err)
		}
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	timedOut := false
	for _, s := range servers {
		if err := s.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			timedOut = true
		}
	}
	if timedOut {
		logger.Warn("shutdown timeout: stopping the requests still in flight; they answer 503 shutting_down")
		stopRequests(server.ErrShuttingDown)
		grace, cancelGrace := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancelGrace()
		for _, s := range servers {
			if err := s.Shutdown(grace); errors.Is(err, context.DeadlineExceeded) {
				for _, s := range servers {
					s.Close()
				}
				return errors.New("shutdown: requests still in flight after SHUTDOWN_TIMEOUT and their stop")
			}
		}
	}
	for range servers {
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	logger.Info("stopped")
	return nil
}

// closeWhileDraining asks clients to close their connection after each
// answer while the instance drains: a keep-alive connection then ends
// between requests, not under one.
func closeWhileDraining(next http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// backend is the configured verification backend, its readiness checks and
// what closes it.
type backend struct {
	verifier verify.Verifier
	checks   []server.Check
	close    func()
	// deliveries keeps what Twilio's status callbacks say of each send;
	// nil for a backend that gets none.
	deliveries delivery.Store
}

// newBackend builds the configured backend.
func newBackend(cfg config, logger *slog.Logger, metrics *server.Metrics, rdb redis.UniversalClient, now func() time.Time) (backend, error) {
	switch cfg.Backend {
	case backendTwilio:
		user, pass := cfg.TwilioAccountSID, string(cfg.TwilioAuthToken)
		if cfg.TwilioAPIKey != "" {
			user, pass = cfg.TwilioAPIKey, string(cfg.TwilioAPISecret)
		}
		b, err := twilioverify.New(twilioverify.Config{
			AccountSID:     cfg.TwilioAccountSID,
			Username:       user,
			Password:       pass,
			ServiceSID:     cfg.TwilioServiceSID,
			BaseURL:        cfg.TwilioBaseURL,
			ConnectTimeout: cfg.TwilioConnectTimeout,
			RequestTimeout: cfg.TwilioRequestTimeout,
			MaxConns:       cfg.TwilioMaxConns,
			Observe:        metrics.ObserveUpstream,
		})
		if err != nil {
			return backend{}, fmt.Errorf("twilio backend: %w", err)
		}
		metrics.ExpectUpstream("start", "check", "fetch_service")
		return backend{verifier: b, checks: []server.Check{{Name: "twilio", Probe: b.Ping}}, close: b.Close}, nil
	case backendMessaging:
		metrics.ExpectUpstream("message", "call", "fetch_account")
		return newMessagingBackend(cfg, logger, metrics, rdb, now)
	default:
		logger.Warn("DEVELOPMENT BACKEND: codes are written to this log and never sent. " +
			"Set TWILIO_* variables (see .env.example) to verify real phones; never run this in production.")
		e, err := engine.New(engine.Config{
			Now:        now,
			Sender:     engine.LogSender{Logger: logger},
			Secret:     cfg.codeSecret(),
			CodeLength: cfg.CodeLength,
		})
		if err != nil {
			return backend{}, fmt.Errorf("development backend: %w", err)
		}
		return backend{verifier: e, close: func() {}}, nil
	}
}

// expectedCountries are the countries whose series start at zero: those
// served, or every region phonenumbers knows.
func expectedCountries(cfg config) []string {
	if len(cfg.countries) > 0 {
		return cfg.countries
	}
	return slices.Sorted(maps.Keys(phonenumbers.GetSupportedRegions()))
}

// codeLengthShown is the code length the form may promise: verifyd's own
// on the engines; Twilio Verify's service decides its own.
func codeLengthShown(cfg config) int {
	if cfg.Backend == backendTwilio {
		return 0
	}
	return cfg.CodeLength
}

// newReceipts builds the receipt issuer: with the configured keys; in
// development without them, with a key made for this process; in
// production without them, none. Each case is said once at start.
func newReceipts(cfg config, logger *slog.Logger, now func() time.Time) (*receipt.Issuer, error) {
	keys := cfg.receiptKeys
	switch {
	case keys != nil:
	case !cfg.receiptsOn():
		logger.Warn("receipts are off: RECEIPT_SIGNING_KEY_FILE is not set, so approved checks carry no signed " +
			"receipt and /.well-known/jwks.json publishes no key")
		return nil, nil
	default:
		k, err := receipt.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("receipt key: %w", err)
		}
		keys = []receipt.Key{k}
		logger.Warn("receipts are signed with a key made for this process: they stop verifying when it "+
			"restarts; set RECEIPT_SIGNING_KEY_FILE to keep one", "kid", k.ID())
	}
	iss, err := receipt.NewIssuer(receipt.IssuerConfig{Keys: keys, Issuer: cfg.issuer, Audience: cfg.audience,
		TTL: cfg.ReceiptTTL, Now: now})
	if err != nil {
		return nil, err
	}
	logger.Info("receipts", "signing_key", iss.SigningKey(), "published_keys", len(keys),
		"issuer", cfg.issuer, "audience", cfg.audience, "ttl", cfg.ReceiptTTL.String())
	return iss, nil
}

// pprofMux serves the runtime profiles (DEBUG_ADDR, off by default), on a
// mux of its own rather than http.DefaultServeMux.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
