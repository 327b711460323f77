package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"verifyd/server/receipt/receipttest"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// syncBuffer is the run's stdout: written by the server, read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines decodes the JSON log lines written so far.
func (b *syncBuffer) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// instance is one running verifyd.
type instance struct {
	url    string
	certs  *x509.CertPool // set for an instance serving TLS
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// startRun runs verifyd with environ on a free loopback port and waits until
// /health answers.
func startRun(t *testing.T, environ []string) *instance {
	t.Helper()
	return startRunTLS(t, environ, nil)
}

// startRunTLS is startRun for an instance serving TLS with a certificate
// that certs trusts.
func startRunTLS(t *testing.T, environ []string, certs *x509.CertPool) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{logs: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), certs: certs}
	// No drain by default: a test that wants one sets SHUTDOWN_DRAIN.
	environ = append([]string{"HOST=127.0.0.1", "PORT=0", "SHUTDOWN_DRAIN=0s"}, environ...)
	go func() { in.done <- run(ctx, nil, environ, in.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for in.url == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line in:\n%s", in.logs)
		}
		select {
		case err := <-in.done:
			t.Fatalf("run returned early: %v\n%s", err, in.logs)
		case <-time.After(5 * time.Millisecond):
		}
		for _, l := range in.logs.logLines(t) {
			if l["msg"] == "listening" {
				in.url = "http://" + l["addr"].(string)
				if l["tls"] == true {
					in.url = "https://" + l["addr"].(string)
				}
			}
		}
	}
	for {
		resp, err := in.client().Get(in.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /health never answered 200: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client answers an HTTP client that trusts the instance's certificate.
func (in *instance) client() *http.Client {
	if in.certs == nil {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: in.certs}}}
}

// stop cancels run and waits for a clean return.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Fatalf("run = %v, want a clean shutdown", err)
		}
		in.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func (in *instance) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := in.client().Post(in.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: body is not JSON: %v", path, err)
	}
	return resp.StatusCode, m
}

const e2eNumber = "+14155552671"

// verifyFlow requests a code, checks a wrong one, then the right one with a
// nonce, and answers the receipt the approval carried.
func verifyFlow(t *testing.T, in *instance, codeOf func() string) string {
	t.Helper()
	status, body := in.post(t, "/api/request-otp", `{"phoneNumber":"+1 415 555 2671"}`)
	if status != 200 || body["status"] != "pending" || body["phoneNumber"] != e2eNumber {
		t.Fatalf("request-otp = %d %v, want 200 pending for %s", status, body, e2eNumber)
	}
	sid, _ := body["verificationSid"].(string)
	if !strings.HasPrefix(sid, "VE") {
		t.Fatalf("request-otp sid = %q", sid)
	}
	code := codeOf()
	status, body = in.post(t, "/api/verify-otp", fmt.Sprintf(`{"phoneNumber":%q,"code":%q}`, e2eNumber, verifytest.WrongCode(code)))
	if status != 400 || body["code"] != "wrong_code" || body["verified"] != false {
		t.Fatalf("verify-otp with a wrong code = %d %v, want 400 wrong_code", status, body)
	}
	if _, ok := body["receipt"]; ok {
		t.Errorf("a wrong code carried a receipt: %v", body)
	}
	status, body = in.post(t, "/api/verify-otp", fmt.Sprintf(`{"verificationSid":%q,"code":%q,"nonce":%q}`, sid, code, e2eNonce))
	if status != 200 || body["verified"] != true || body["phoneNumber"] != e2eNumber {
		t.Fatalf("verify-otp with the code = %d %v, want 200 verified", status, body)
	}
	receipt, _ := body["receipt"].(string)
	status, body = in.post(t, "/api/verify-otp", fmt.Sprintf(`{"phoneNumber":%q,"code":%q}`, e2eNumber, code))
	if status != 410 {
		t.Fatalf("verify-otp again after approval = %d %v, want 410", status, body)
	}
	return receipt
}

const e2eNonce = "e2e-session-nonce"

// checkReceipt verifies a receipt as an app's backend would: the key set
// fetched from the instance, then issuer, audience, times and claims.
func checkReceipt(t *testing.T, in *instance, token, issuer, audience string) {
	t.Helper()
	resp, err := in.client().Get(in.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /.well-known/jwks.json = %d, %v", resp.StatusCode, err)
	}
	c, _, err := receipttest.Verify(token, jwks, issuer, audience, time.Now())
	if err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	if c.PhoneNumber != e2eNumber || c.Country != "US" || c.Channel != "sms" || c.Nonce != e2eNonce {
		t.Errorf("receipt claims %+v", c)
	}
}

// checkLogsClean asserts that nothing secret reached the log: no full number,
// no secret, and a code only in the lines allowed to carry it.
func checkLogsClean(t *testing.T, logs *syncBuffer, codes []string, secrets []string, codeLine func(map[string]any) bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON", line)
		}
		for _, s := range append([]string{e2eNumber[1:]}, secrets...) {
			if strings.Contains(line, s) {
				t.Errorf("log line leaks %q: %s", s, line)
			}
		}
		if codeLine != nil && codeLine(m) {
			continue
		}
		for _, c := range codes {
			if strings.Contains(line, c) {
				t.Errorf("log line leaks the code %s: %s", c, line)
			}
		}
	}
}

func isDevDelivery(m map[string]any) bool {
	msg, _ := m["msg"].(string)
	return strings.Contains(msg, "your code is")
}

func TestRunDevelopmentBackend(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef-dev-secret"
	in := startRun(t, []string{"DEV_CODE_SECRET=" + secret})

	var warned bool
	for _, l := range in.logs.logLines(t) {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "DEVELOPMENT BACKEND") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no loud warning about the development backend in:\n%s", in.logs)
	}

	var codes []string
	codeOf := func() string {
		for _, l := range in.logs.logLines(t) {
			if isDevDelivery(l) {
				c, _ := l["code"].(string)
				codes = append(codes, c)
			}
		}
		if len(codes) == 0 {
			t.Fatalf("no delivery line in:\n%s", in.logs)
		}
		return codes[len(codes)-1]
	}
	receipt := verifyFlow(t, in, codeOf)
	// Without a key file, development signs with a key of its own and
	// says so.
	checkReceipt(t, in, receipt, "http://localhost:0", "http://localhost:0")
	var said bool
	for _, l := range in.logs.logLines(t) {
		said = said || strings.Contains(fmt.Sprint(l["msg"]), "receipts are signed with a key made for this process")
	}
	if !said {
		t.Errorf("no word at start about the per-process receipt key in:\n%s", in.logs)
	}
	in.stop(t)
	checkLogsClean(t, in.logs, codes, []string{secret, receipt, receipt[strings.LastIndex(receipt, ".")+1:]}, isDevDelivery)
}

func standinEnv(s *twiliotest.Server, extra ...string) []string {
	return append([]string{
		"TWILIO_ACCOUNT_SID=" + s.AccountSID(),
		"TWILIO_AUTH_TOKEN=" + s.AuthToken(),
		"TWILIO_VERIFY_SERVICE_SID=" + s.ServiceSID(),
		"TWILIO_VERIFY_BASE_URL=" + s.URL(),
	}, extra...)
}

func TestRunTwilioBackend(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	// Two keys, as in a rotation: the first signs, both are published.
	keyFile, keyMaterial := writeKeyFile(t, 2)
	in := startRun(t, standinEnv(standin, "RECEIPT_SIGNING_KEY_FILE="+keyFile,
		"PUBLIC_URL=https://verify.example.com/", "RECEIPT_AUDIENCE=https://app.example.com"))

	var codes []string
	receipt := verifyFlow(t, in, func() string {
		c, ok := standin.Code(e2eNumber)
		if !ok {
			t.Fatal("the stand-in has no pending verification")
		}
		codes = append(codes, c)
		return c
	})
	checkReceipt(t, in, receipt, "https://verify.example.com", "https://app.example.com")
	in.stop(t)
	checkLogsClean(t, in.logs, codes, append([]string{standin.AuthToken(), receipt}, keyMaterial...), nil)
	for _, l := range in.logs.logLines(t) {
		if l["msg"] == "listening" && l["backend"] != "twilio" {
			t.Errorf("listening line %v, want backend twilio", l)
		}
	}
}

// TestRunShutdownFinishesInFlight cancels run while a request waits on a slow
// upstream: the request must still be answered.
func TestRunShutdownFinishesInFlight(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin))
	standin.SetLatency(500 * time.Millisecond)

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(in.url+"/api/request-otp", "application/json", strings.NewReader(`{"phoneNumber":"`+e2eNumber+`"}`))
		if err != nil {
			answered <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for standin.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the stand-in")
		}
		time.Sleep(2 * time.Millisecond)
	}
	in.stop(t)
	if got := <-answered; got != 200 {
		t.Errorf("in-flight request during shutdown = %d, want 200", got)
	}
	if _, err := http.Get(in.url + "/health"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

func TestRunFailsFast(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())

	tests := []struct {
		name    string
		args    []string
		environ []string
		want    []string
	}{
		{"port taken", nil, []string{"HOST=127.0.0.1", "PORT=" + port}, []string{"listen"}},
		{"bad configuration", nil, []string{"PORT=x", "APP_ENV=production", "TWILIO_ACCOUNT_SID=nope"},
			[]string{"PORT", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_VERIFY_SERVICE_SID"}},
		{"unknown flag", []string{"-nope"}, nil, []string{"nope"}},
		{"messaging with Redis unreachable", nil, []string{"HOST=127.0.0.1", "PORT=0", "VERIFY_BACKEND=messaging",
			"REDIS_URL=redis://127.0.0.1:" + port + "/0", "TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef",
			"TWILIO_AUTH_TOKEN=abc123", "TWILIO_FROM_NUMBER=+15005550006"}, []string{"REDIS_URL", "does not answer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, tt.args, tt.environ, io.Discard)
			if err == nil {
				t.Fatalf("run(%q) = nil, want an error", tt.environ)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run(%q) = %q, want it to mention %s", tt.environ, err, w)
				}
			}
		})
	}
}

func TestRunVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "verifyd "+version+"\n" {
		t.Errorf("verifyd -version printed %q", got)
	}
}

// writeKeyFile writes n new Ed25519 keys as one PKCS#8 PEM file, and
// answers its path and pieces of its key material to look for in logs.
func writeKeyFile(t *testing.T, n int) (string, []string) {
	t.Helper()
	var pemData []byte
	var material []string
	for range n {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		pemData = append(pemData, block...)
		b64 := base64.StdEncoding.EncodeToString(der)
		material = append(material, b64[len(b64)-24:], base64.RawURLEncoding.EncodeToString(k.Seed()))
	}
	path := filepath.Join(t.TempDir(), "receipt-keys.pem")
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, material
}
