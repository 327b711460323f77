// Command twilio-standin serves the Twilio Verify v2 stand-in (package
// twiliotest) as a process, over TLS like the real service, on a loopback
// port: for load runs against the real verifyd binary. It is a test tool,
// not part of verifyd.
//
// It prints one JSON line with its URL and credentials, writes its
// certificate to -cert-out (point verifyd's SSL_CERT_FILE at it), and serves
// a small admin API on another loopback port:
//
//	GET  /stats               {"requests": n, "connections": n}
//	POST /latency?d=200ms     sets the latency added to every answer
//	POST /failure?status=503&code=20503, ?hang=1, or no query to clear:
//	                          makes every request fail so until cleared
//
// With -api it serves the 2010 API's Messages and Calls instead (package
// twilioapitest, plain HTTP on loopback) for the messaging backend: it logs
// what it was asked to send (each text's body, each call's words, by
// number) and shows it on a page (the ready line's "admin" URL), and posts
// signed status callbacks where a create asked for them: delivered, but
// undelivered (30006, a landline) for +14155550199.
package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"verifyd/cmd/internal/toolrun"
	"verifyd/server/verify/messaging/twilioapitest"
	"verifyd/server/verify/twilioverify/twiliotest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "twilio-standin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("twilio-standin", flag.ContinueOnError)
	latency := flags.Duration("latency", 0, "latency added to every answer")
	code := flags.String("fixed-code", "123456", "the code of every verification")
	certOut := flags.String("cert-out", "", "write the TLS certificate (PEM) here")
	api := flags.Bool("api", false, "serve the 2010 API's Messages and Calls instead of Verify (plain HTTP), for the messaging backend")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *api {
		return runAPI(ctx, stdout)
	}
	s := twiliotest.NewServer(twiliotest.Options{TLS: true, Latency: *latency, FixedCode: *code})
	defer s.Close()
	if *certOut != "" {
		block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
		if err := os.WriteFile(*certOut, block, 0o644); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(toolrun.Stats{Requests: s.Requests(), Connections: s.Connections()})
	})
	mux.HandleFunc("POST /latency", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "d must be a duration", http.StatusBadRequest)
			return
		}
		s.SetLatency(d)
	})
	mux.HandleFunc("POST /failure", func(w http.ResponseWriter, r *http.Request) {
		// Every request fails as told until cleared: ?status=503&code=20503,
		// ?hang=1, or nothing to clear.
		q := r.URL.Query()
		if q.Get("status") == "" && q.Get("hang") == "" {
			s.SetFailure(twiliotest.AnyRequest, nil)
			return
		}
		status, _ := strconv.Atoi(q.Get("status"))
		code, _ := strconv.Atoi(q.Get("code"))
		s.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Status: status, Code: code,
			Message: "injected failure", Hang: q.Get("hang") != ""})
	})
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go admin.Serve(ln)
	defer admin.Close()

	if err := json.NewEncoder(stdout).Encode(toolrun.Ready{URL: s.URL(), AccountSID: s.AccountSID(), AuthToken: s.AuthToken(),
		ServiceSID: s.ServiceSID(), Admin: "http://" + ln.Addr().String()}); err != nil {
		return err
	}
	<-ctx.Done()
	if err := admin.Shutdown(context.Background()); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runAPI serves the 2010 API's stand-in, its outbox page and its log.
func runAPI(ctx context.Context, stdout io.Writer) error {
	a := twilioapitest.NewServer()
	defer a.Close()
	a.UseWalkthroughOutcomes()
	a.SetOnSent(func(s twilioapitest.Sent) {
		what := s.Body
		if s.Kind == "call" {
			what = s.Twiml
		}
		fmt.Fprintf(os.Stderr, "twilio-standin: %s to %s: %s\n", s.Kind, s.To, what)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	page := &http.Server{Handler: a.Outbox(), ReadHeaderTimeout: 5 * time.Second}
	go page.Serve(ln)
	defer page.Close()
	if err := json.NewEncoder(stdout).Encode(toolrun.Ready{URL: a.URL(), AccountSID: a.AccountSID(), AuthToken: a.AuthToken(),
		Admin: "http://" + ln.Addr().String()}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
