package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"verifyd/server/abuse/redistest"
	"verifyd/server/challenge"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

func (in *instance) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := in.client().Get(in.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (in *instance) health(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(in.url + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /health = %d, %v", resp.StatusCode, err)
	}
	return m
}

// TestSharedLimitsThroughRedis runs two instances against one redis-server
// and one Twilio stand-in: they enforce one limit between them, a restarted
// instance remembers it, and when Redis dies sends fail closed and checks
// fail open, without a crash.
func TestSharedLimitsThroughRedis(t *testing.T) {
	redisSrv := redistest.Start(t)
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	// The per-number limit, not the destination's budget (which a fourth
	// unverified send to one prefix within the hour would meet).
	env := standinEnv(standin, "REDIS_URL="+redisSrv.URL, "LIMIT_PHONE_COOLDOWN=0s", "LIMIT_PHONE_SENDS_PER_HOUR=3",
		"READINESS_CACHE_TTL=1ms", "FRAUD_BUDGETS=off")
	a, b := startRun(t, env), startRun(t, env)

	body := `{"phoneNumber":"` + e2eNumber + `"}`
	for i, in := range []*instance{a, b, a} {
		if status, got := in.post(t, "/api/request-otp", body); status != 200 {
			t.Fatalf("send %d = %d %v, want 200", i+1, status, got)
		}
	}
	status, got := b.post(t, "/api/request-otp", body)
	if status != 429 || got["code"] != "phone_limit" || got["retryAfter"] == nil {
		t.Fatalf("4th send, on the other instance = %d %v, want 429 phone_limit with retryAfter", status, got)
	}
	if n := standin.Requests(); n != 3 {
		t.Errorf("the stand-in saw %d sends, want 3", n)
	}
	// The keys stand for the number with a hash keyed by the limit key
	// (here the development one, as LIMIT_KEY_SECRET is not set), never
	// the number itself nor an unkeyed hash of it, which a list of
	// candidates would reverse.
	mac := hmac.New(sha256.New, []byte(devLimitKeySecret))
	mac.Write([]byte(e2eNumber))
	keyed := hex.EncodeToString(mac.Sum(nil)[:16])
	var hashed bool
	for _, e := range redisSrv.Dump(t) {
		if strings.Contains(e.Key, e2eNumber[1:]) {
			t.Errorf("Redis key %q gives the number away", e.Key)
		}
		hashed = hashed || strings.Contains(e.Key, keyed)
	}
	if !hashed {
		t.Errorf("no Redis key names the number by its keyed hash:\n%s", redistest.String(redisSrv.Dump(t)))
	}

	a.stop(t)
	a = startRun(t, env)
	if status, got := a.post(t, "/api/request-otp", body); status != 429 || got["code"] != "phone_limit" {
		t.Errorf("send after a restart = %d %v, want 429 phone_limit", status, got)
	}
	if h := a.health(t); h["limiter"] != "ok" {
		t.Errorf("health before the outage = %v", h)
	}

	redisSrv.Stop()
	if status, got := a.post(t, "/api/request-otp", `{"phoneNumber":"+14155552672"}`); status != 503 || got["code"] != "limiter_unavailable" {
		t.Errorf("send with Redis down = %d %v, want 503 limiter_unavailable (fail closed)", status, got)
	}
	code, _ := standin.Code(e2eNumber)
	if status, got := a.post(t, "/api/verify-otp", `{"phoneNumber":"`+e2eNumber+`","code":"`+code+`"}`); status != 200 {
		t.Errorf("check with Redis down = %d %v, want 200 (fail open)", status, got)
	}
	if h := a.health(t); h["status"] != "UP" || h["limiter"] != "degraded" {
		t.Errorf("health during the outage = %v, want UP with the limiter degraded", h)
	}
	if n := standin.Requests(); n != 4 {
		t.Errorf("the stand-in saw %d requests, want 3 sends and 1 check", n)
	}
	// An outage every instance shares keeps them ready: the load balancer
	// must still have somewhere to send people.
	verifytest.WaitFor(t, "readiness to report Redis degraded", func() bool {
		status, body := a.get(t, "/readyz")
		return status == 200 && strings.Contains(body, `"redis":{"status":"degraded"`)
	})
	a.stop(t)
	var outages int
	for _, l := range a.logs.logLines(t) {
		if l["msg"] == "abuse limiter store unreachable" {
			outages++
		}
	}
	if outages != 1 {
		t.Errorf("the outage was logged %d times, want once", outages)
	}
}

// TestBlockedDestinationsNeverReachTwilio counts the stand-in's requests.
func TestBlockedDestinationsNeverReachTwilio(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "ALLOWED_COUNTRIES=US,GB",
		"TEST_NUMBERS=+15005550006:424242", "LIMIT_PHONE_COOLDOWN=1h"))
	tests := []struct {
		number     string
		wantStatus int
		wantCode   string
	}{
		{"+33612345678", 403, "country_not_allowed"},      // a French mobile
		{"+449090901234", 403, "number_type_not_allowed"}, // UK premium rate
		{"+447400123456", 200, ""},                        // UK mobile
		{"+447400123456", 429, "phone_cooldown"},
	}
	for _, tt := range tests {
		status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+tt.number+`"}`)
		if status != tt.wantStatus || (tt.wantCode != "" && got["code"] != tt.wantCode) {
			t.Errorf("send to %s = %d %v, want %d %s", tt.number, status, got, tt.wantStatus, tt.wantCode)
		}
	}
	// Test numbers are answered locally and skip the cooldown.
	for range 2 {
		if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"+15005550006"}`); status != 200 {
			t.Errorf("send to the test number = %d %v", status, got)
		}
	}
	if status, got := in.post(t, "/api/verify-otp", `{"phoneNumber":"+15005550006","code":"424242"}`); status != 200 || got["verified"] != true {
		t.Errorf("check of the test number = %d %v", status, got)
	}
	if n := standin.Requests(); n != 1 {
		t.Errorf("the stand-in saw %d requests, want only the UK mobile's send", n)
	}
	in.stop(t)
	checkLogsClean(t, in.logs, []string{"424242"}, nil, nil)
}

// TestRedisMisconfiguredIsNotReady: a Redis URL a deploy got wrong (here a
// database that does not exist) makes the instance unready.
func TestRedisMisconfiguredIsNotReady(t *testing.T) {
	redisSrv := redistest.Start(t)
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "REDIS_URL=redis://"+redisSrv.Addr+"/99", "READINESS_CACHE_TTL=1ms"))
	status, body := in.get(t, "/readyz")
	if status != 503 || !strings.Contains(body, `"redis":{"status":"failing"`) {
		t.Errorf("/readyz with Redis database 99 = %d %s, want 503 with redis failing", status, body)
	}
}

func TestRedisMisconfigured(t *testing.T) {
	for msg, want := range map[string]bool{
		"NOAUTH Authentication required.":                                                                true,
		"WRONGPASS invalid username-password pair or user is disabled.":                                  true,
		"ERR AUTH <password> called without any password configured for the default user. Are you sure?": true,
		"ERR DB index is out of range":                                                                   true,
		"dial tcp 127.0.0.1:6379: connect: connection refused":                                           false,
		"i/o timeout": false,
	} {
		if got := redisMisconfigured(errors.New(msg)); got != want {
			t.Errorf("redisMisconfigured(%q) = %v, want %v", msg, got, want)
		}
	}
	if !redisMisconfigured(&net.DNSError{Err: "no such host", Name: "redis.nope", IsNotFound: true}) {
		t.Error("a host that does not resolve is not a misconfiguration")
	}
}

// TestHonestCountingThroughTwilio: a send Twilio refused does not start the
// number's cooldown, so the fixed retry (a call after "this number cannot
// receive SMS") goes through; a send whose answer never came keeps it, and
// says the code may still arrive.
func TestHonestCountingThroughTwilio(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "ALLOWED_CHANNELS=sms,call", "TWILIO_REQUEST_TIMEOUT=300ms", "FRAUD_BUDGETS=off"))

	standin.SetFailure(e2eNumber, &twiliotest.Failure{Status: 400, Code: 60205, Message: "SMS is not supported by landline phone number"})
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+e2eNumber+`"}`); status != 422 || got["code"] != "sms_not_supported" {
		t.Fatalf("SMS to a landline = %d %v, want 422 sms_not_supported", status, got)
	}
	standin.SetFailure(e2eNumber, nil)
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+e2eNumber+`","channel":"call"}`); status != 200 {
		t.Errorf("the call right after = %d %v, want 200: the refused SMS must not start the cooldown", status, got)
	}

	const other = "+14155552672"
	standin.SetFailure(other, &twiliotest.Failure{Hang: true})
	status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+other+`"}`)
	if msg, _ := got["error"].(string); status != 504 || !strings.Contains(msg, "may still arrive") {
		t.Errorf("a send with no answer = %d %v, want 504 saying the code may still arrive", status, got)
	}
	standin.SetFailure(other, nil)
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+other+`"}`); status != 429 || got["code"] != "phone_cooldown" {
		t.Errorf("a retry after a send of unknown fate = %d %v, want 429 phone_cooldown", status, got)
	}
}

// TestChallengeKeyIsNeverInTheSource: without LIMIT_KEY_SECRET each
// instance signs challenges with a key of its own, so a challenge one
// issued does not pass on another (and nobody can mint one from the
// source); with it, they share the key.
func TestChallengeKeyIsNeverInTheSource(t *testing.T) {
	for _, tt := range []struct {
		name   string
		env    []string
		shared bool
	}{
		{"without LIMIT_KEY_SECRET", nil, false},
		{"with LIMIT_KEY_SECRET", []string{"LIMIT_KEY_SECRET=" + strings.Repeat("s", 32)}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			logger := slog.New(slog.DiscardHandler)
			a, err := newGuarded(cfg, logger, nil, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			b, err := newGuarded(cfg, logger, nil, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			c, err := a.challenges.New()
			if err != nil {
				t.Fatal(err)
			}
			solution, err := challenge.Solve(c)
			if err != nil {
				t.Fatal(err)
			}
			err = b.challenges.Verify(context.Background(), solution, "")
			if got := err == nil; got != tt.shared {
				t.Errorf("a challenge of one instance on another = %v, want passing %v", err, tt.shared)
			}
		})
	}
}
