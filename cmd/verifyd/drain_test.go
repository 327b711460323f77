package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// TestRunDrains: on shutdown /readyz turns 503 at once while requests are
// still served, each answer asks its client to close the connection, then
// the listener closes and run returns cleanly.
func TestRunDrains(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "SHUTDOWN_DRAIN=1s"))
	client := &http.Client{Transport: &http.Transport{}} // keeps its connection alive
	get := func(path string) (*http.Response, error) {
		resp, err := client.Get(in.url + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get("/readyz"); err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before the drain: /readyz = %v, %v", resp, err)
	}

	began := time.Now()
	in.cancel() // as SIGTERM does
	verifytest.WaitFor(t, "/readyz to turn 503", func() bool {
		resp, err := get("/readyz")
		return err == nil && resp.StatusCode == 503
	})
	// Still serving, on a connection the answer closes.
	resp, err := client.Post(in.url+"/api/request-otp", "application/json", strings.NewReader(`{"phoneNumber":"`+e2eNumber+`"}`))
	if err != nil {
		t.Fatalf("a request during the drain: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("during the drain request-otp = %d (close %v), want 200 closing its connection", resp.StatusCode, resp.Close)
	}
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("run = %v, want a clean drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the drain")
	}
	if d := time.Since(began); d < time.Second {
		t.Errorf("run returned %v after the signal, before its 1s drain", d)
	}
	if _, err := get("/healthz"); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after the drain: %v, want connection refused", err)
	}
}

// TestRunShutdownTimeoutAnswers: a request still waiting on Twilio when
// SHUTDOWN_TIMEOUT runs out is stopped and answered, not cut off, and run
// still returns cleanly.
func TestRunShutdownTimeoutAnswers(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "SHUTDOWN_TIMEOUT=200ms", "TWILIO_REQUEST_TIMEOUT=10s"))
	standin.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Hang: true})

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(in.url+"/api/request-otp", "application/json", strings.NewReader(`{"phoneNumber":"`+e2eNumber+`"}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		answered <- answer{status: resp.StatusCode, body: m}
	}()
	verifytest.WaitFor(t, "the request to reach the stand-in", func() bool { return standin.Requests() > 0 })
	in.stop(t)
	a := <-answered
	if a.err != nil || a.status != 503 || a.body["code"] != "shutting_down" {
		t.Errorf("in flight at the shutdown timeout: %d %v %v, want 503 shutting_down", a.status, a.body, a.err)
	}
}

// TestRunShedsLoad: while Twilio hangs, at most UPSTREAM_MAX_IN_FLIGHT
// calls wait on it; the rest are answered 503 overloaded at once, and
// counted.
func TestRunShedsLoad(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "UPSTREAM_MAX_IN_FLIGHT=4", "UPSTREAM_MAX_WAIT=50ms",
		"TWILIO_REQUEST_TIMEOUT=3s", "LIMIT_IP_SENDS_PER_HOUR=0", "LIMIT_PHONE_COOLDOWN=0s",
		"LIMIT_PHONE_SENDS_PER_HOUR=0", "LIMIT_GLOBAL_SENDS_PER_MINUTE=0",
		// A load test, not a pumping one: 40 unverified sends at once
		// would meet the destination's ceiling first.
		"FRAUD_BUDGETS=off", "SEND_CHALLENGE=never"))
	standin.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Hang: true})

	const n = 40
	var mu sync.Mutex
	statuses := map[int]int{}
	var retryAfter []string
	var wg sync.WaitGroup
	began := time.Now()
	var shedIn time.Duration
	for i := range n {
		wg.Go(func() {
			body := `{"phoneNumber":"+1415555` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `71"}`
			resp, err := http.Post(in.url+"/api/request-otp", "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("POST: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == 503 {
				retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
				shedIn = max(shedIn, time.Since(began))
			}
		})
	}
	wg.Wait()
	if statuses[503] != n-4 || statuses[504] != 4 {
		t.Errorf("answers %v, want %d × 503 and 4 × 504 (the ones that waited on the hang)", statuses, n-4)
	}
	for _, ra := range retryAfter {
		if ra != "1" {
			t.Errorf("a shed answer has Retry-After %q, want 1", ra)
			break
		}
	}
	if got := standin.Requests(); got != 4 {
		t.Errorf("the stand-in saw %d requests, want 4", got)
	}
	t.Logf("%d requests shed within %v while 4 waited on a hanging upstream", statuses[503], shedIn)
	resp, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "verifyd_load_shed_total{backend=\"twilio\"} 36") {
		t.Errorf("/metrics lacks verifyd_load_shed_total{backend=\"twilio\"} 36")
	}
}
