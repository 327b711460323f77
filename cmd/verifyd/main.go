// Command verifyd is a hardened front door to Twilio Verify: a JSON API and a
// two-step web form for phone-number verification.
//
// main only calls run and exits once; run does the wiring and is what the
// end-to-end tests drive.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"verifyd/server"
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
	if err := flags.Parse(args); err != nil {
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
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))

	verifier, closeVerifier, err := newVerifier(cfg, logger)
	if err != nil {
		return err
	}
	defer closeVerifier()

	// Checked by loadConfig.
	phones, _ := verify.NewPhoneParser(cfg.DefaultRegion)
	channels, _ := verify.ParseChannels(cfg.AllowedChannels)
	trusted, _ := cfg.trustedProxies()

	g, err := newGuarded(cfg, logger, verifier, phones)
	if err != nil {
		return err
	}
	defer g.close()
	handler := server.NewHandler(server.Config{
		Logger:             logger,
		Verifier:           g.verifier,
		TrustedProxies:     trusted,
		LimiterState:       g.guard.State,
		Phones:             phones,
		Channels:           channels,
		Locales:            verify.NewLocales(),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		Web:                web.FS,
		Static:             static.FS,
	})

	// Listen before serving, so a taken port fails run at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      cfg.TwilioRequestTimeout + 5*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "backend", cfg.Backend,
		"app_env", cfg.AppEnv, "version", version)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// newVerifier builds the configured backend and what closes it.
func newVerifier(cfg config, logger *slog.Logger) (verify.Verifier, func(), error) {
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
		})
		if err != nil {
			return nil, nil, fmt.Errorf("twilio backend: %w", err)
		}
		return b, b.Close, nil
	default:
		logger.Warn("DEVELOPMENT BACKEND: codes are written to this log and never sent. " +
			"Set TWILIO_* variables (see .env.example) to verify real phones; never run this in production.")
		e, err := engine.New(engine.Config{
			Sender: engine.LogSender{Logger: logger},
			Secret: secretBytes(cfg.DevCodeSecret),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("development backend: %w", err)
		}
		return e, func() {}, nil
	}
}
