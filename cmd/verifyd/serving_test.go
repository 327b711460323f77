package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 with the
// given serial to certFile/keyFile, and answers it.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "verifyd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write beside and rename, as certificate managers do, so a handshake
	// never reads half a file.
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestTLS serves HTTPS from TLS_CERT_FILE/TLS_KEY_FILE and picks up a
// replaced certificate without a restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	pool := x509.NewCertPool()
	pool.AddCert(first)
	in := startRunTLS(t, []string{"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + keyFile}, pool)
	if !strings.HasPrefix(in.url, "https://") {
		t.Fatalf("url = %s, want https", in.url)
	}
	if status, body := in.post(t, "/api/request-otp", `{"phoneNumber":"`+e2eNumber+`"}`); status != 200 {
		t.Fatalf("POST over HTTPS = %d %v", status, body)
	}
	if resp, err := http.Get(strings.Replace(in.url, "https", "http", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP on the TLS port = %d, want 400", resp.StatusCode)
		}
	}

	second := writeCert(t, certFile, keyFile, 2)
	served := func() int64 {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(in.url, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	deadline := time.Now().Add(10 * time.Second)
	for served() != second.SerialNumber.Int64() {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was never served")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The container health check speaks TLS to its own process.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(in.url, "https://"))
	env := []string{"HOST=127.0.0.1", "PORT=" + port, "TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + keyFile}
	if err := run(context.Background(), []string{"-healthcheck"}, env, io.Discard); err != nil {
		t.Errorf("verifyd -healthcheck = %v, want nil", err)
	}
	in.stop(t)
	if err := run(context.Background(), []string{"-healthcheck"}, env, io.Discard); err == nil {
		t.Error("verifyd -healthcheck with nothing listening = nil, want an error")
	}
}

// TestProbesAndMetricsThroughRun: readiness reflects the stand-in, and
// metrics on METRICS_ADDR carry the runtime's and verifyd's series.
func TestProbesAndMetricsThroughRun(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "METRICS_ADDR=127.0.0.1:0", "READINESS_CACHE_TTL=1ms"))

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(in.url + "/readyz"); status != 200 || !strings.Contains(body, `"twilio":{"status":"ok"}`) {
		t.Errorf("GET /readyz = %d %s, want 200 with twilio ok", status, body)
	}
	standin.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Status: 401, Code: 20003, Message: "Authenticate"})
	verifytest.WaitFor(t, "readiness to fail", func() bool { s, _ := get(in.url + "/readyz"); return s == 503 })
	standin.SetFailure(twiliotest.AnyRequest, nil)
	verifytest.WaitFor(t, "readiness to recover", func() bool { s, _ := get(in.url + "/readyz"); return s == 200 })
	if status, body := get(in.url + "/healthz"); status != 200 || !strings.Contains(body, "UP") {
		t.Errorf("GET /healthz = %d %s", status, body)
	}

	var metricsURL string
	for _, l := range in.logs.logLines(t) {
		if l["msg"] == "serving metrics" {
			metricsURL = "http://" + l["addr"].(string) + "/metrics"
		}
	}
	if metricsURL == "" {
		t.Fatal("no serving metrics line")
	}
	in.post(t, "/api/request-otp", `{"phoneNumber":"`+e2eNumber+`"}`)
	status, body := get(metricsURL)
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes",
		`verifyd_verifications_started_total{backend="twilio",channel="sms",country="US",outcome="sent"} 1`,
		`verifyd_upstream_requests_total{backend="twilio",operation="fetch_service",result="upstream_misconfigured",twilio_code="20003"}`} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, lacks %s", metricsURL, status, want)
		}
	}
	if status, _ := get(in.url + "/metrics"); status != 404 {
		t.Errorf("GET /metrics on the public port = %d, want 404 with METRICS_ADDR set", status)
	}
}
