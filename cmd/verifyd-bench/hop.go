package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"verifyd/cmd/internal/toolrun"
)

// The bare one-hop proxies: the least any front door to Twilio Verify must
// do for request-otp (read the JSON body, POST the form to the same
// stand-in over a pooled TLS connection, read its answer, write JSON), with
// nothing else: no validation, limits, metrics or logs. verifyd's
// throughput as a share of theirs is what all its protections cost.

// hopNode is the same proxy in Node, with its own http module only.
//
//go:embed hop.js
var hopNode []byte

// hopEnv is the stand-in's address and credentials, for a hop's
// environment.
func hopEnv(st *standin) []string {
	return []string{"HOP_UPSTREAM=" + st.URL + "/v2/Services/" + st.ServiceSID + "/Verifications",
		"HOP_USER=" + st.AccountSID, "HOP_PASSWORD=" + st.AuthToken, "HOP_CA_FILE=" + st.CertFile}
}

// startHop runs the bare proxy in lang ("go": this binary with -hop;
// "node": hop.js) against the stand-in.
func startHop(ctx context.Context, lang, dir string, st *standin) (*verifyd, error) {
	var argv []string
	switch lang {
	case "go":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{self, "-hop"}
	case "node":
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("node is not installed: %w", err)
		}
		script := filepath.Join(dir, "hop.js")
		if err := os.WriteFile(script, hopNode, 0o644); err != nil {
			return nil, err
		}
		argv = []string{node, script}
	default:
		return nil, fmt.Errorf("no %s hop", lang)
	}
	log, err := os.Create(filepath.Join(dir, "hop-"+lang+".log"))
	if err != nil {
		return nil, err
	}
	v, err := toolrun.StartServer(ctx, argv, hopEnv(st), log)
	if err != nil {
		return nil, err
	}
	return &verifyd{Verifyd: v, backend: "bare " + lang + " hop", clockTick: 100}, nil
}

// serveHop is the Go hop's process: it serves until SIGTERM.
func serveHop() error {
	pem, err := os.ReadFile(os.Getenv("HOP_CA_FILE"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	upstream, user, pass := os.Getenv("HOP_UPSTREAM"), os.Getenv("HOP_USER"), os.Getenv("HOP_PASSWORD")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConns: 512, MaxIdleConnsPerHost: 512}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /api/request-otp", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			PhoneNumber string `json:"phoneNumber"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&in); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		form := url.Values{"To": {in.PhoneNumber}, "Channel": {"sms"}}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, upstream, strings.NewReader(form.Encode()))
		if err != nil {
			http.Error(w, `{"error":"request"}`, http.StatusInternalServerError)
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, `{"error":"upstream"}`, http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var v struct {
			SID    string `json:"sid"`
			Status string `json:"status"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusCreated {
			io.Copy(io.Discard, resp.Body)
			http.Error(w, `{"error":"upstream"}`, http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"verificationSid": v.SID, "status": v.Status})
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
