package server_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"verifyd/server"
	"verifyd/server/verify/twilioverify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

func newTwilioBackend(t *testing.T, standin *twiliotest.Server, timeout time.Duration, observe func(twilioverify.Attempt)) *twilioverify.Backend {
	t.Helper()
	b, err := twilioverify.New(twilioverify.Config{
		AccountSID: standin.AccountSID(), Username: standin.AccountSID(), Password: standin.AuthToken(),
		ServiceSID: standin.ServiceSID(), BaseURL: standin.URL(), RequestTimeout: timeout, Observe: observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// probeBurst sends n concurrent GET /readyz and answers their statuses and
// the last body.
func probeBurst(h http.Handler, n int) (statuses map[int]int, body map[string]any) {
	statuses = map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			mu.Lock()
			defer mu.Unlock()
			statuses[rec.Code]++
			body = nil
			json.Unmarshal(rec.Body.Bytes(), &body)
		})
	}
	wg.Wait()
	return statuses, body
}

func twilioCheck(body map[string]any) map[string]any {
	checks, _ := body["checks"].(map[string]any)
	c, _ := checks["twilio"].(map[string]any)
	return c
}

// TestReadiness flips /readyz with the stand-in's health, and shows a burst
// of probes costs at most one upstream call per cache interval.
func TestReadiness(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	backend := newTwilioBackend(t, standin, 300*time.Millisecond, nil)
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	h := mustHandler(t, &recordingVerifier{}, server.Config{
		Logger: slog.New(slog.DiscardHandler), Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
		Readiness:    []server.Check{{Name: "twilio", Probe: backend.Ping}},
		ReadinessTTL: 10 * time.Second, ReadinessTimeout: 100 * time.Millisecond, Now: clk.Now,
	})
	h = conforming{t: t, next: h}

	steps := []struct {
		name       string
		failure    *twiliotest.Failure
		advance    time.Duration
		wantStatus int
		wantState  string // the twilio check's status
		wantError  string
		wantCalls  int64 // upstream requests so far
	}{
		{"healthy", nil, 0, 200, "ok", "", 1},
		{"cached within the interval", &twiliotest.Failure{Status: 401, Code: 20003, Message: "Authenticate"}, 9 * time.Second, 200, "ok", "", 1},
		// What a deploy can get wrong takes this instance out of rotation.
		{"credentials rejected", &twiliotest.Failure{Status: 401, Code: 20003, Message: "Authenticate"}, time.Second, 503, "failing", "upstream_misconfigured", 2},
		{"service does not exist", &twiliotest.Failure{Status: 404, Code: 20404, Message: "not found"}, 10 * time.Second, 503, "failing", "upstream_misconfigured", 3},
		{"recovers", nil, 10 * time.Second, 200, "ok", "", 4},
		// An outage every instance shares does not: it is reported.
		{"Twilio failing", &twiliotest.Failure{Status: 503, Code: 20503, Message: "down"}, 10 * time.Second, 200, "degraded", "upstream_unavailable", 5},
		{"stops answering", &twiliotest.Failure{Hang: true}, 10 * time.Second, 200, "degraded", "", 6},
		{"back again", nil, 10 * time.Second, 200, "ok", "", 7},
	}
	for _, st := range steps {
		if st.name == "back again" {
			// The probes gave up at their 100ms deadline; the one check in
			// flight ends at the backend's own 300ms deadline.
			verifytest.WaitFor(t, "the hanging check to end", func() bool {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				var b map[string]any
				json.Unmarshal(rec.Body.Bytes(), &b)
				return twilioCheck(b)["error"] == "upstream_timeout" && rec.Code == 200
			})
		}
		standin.SetFailure(twiliotest.AnyRequest, st.failure) // nil: healthy
		clk.Advance(st.advance)
		statuses, body := probeBurst(h, 50)
		if statuses[st.wantStatus] != 50 {
			t.Errorf("%s: 50 probes answered %v, want all %d (%v)", st.name, statuses, st.wantStatus, body)
		}
		if got := twilioCheck(body); got["status"] != st.wantState || (st.wantError != "" && got["error"] != st.wantError) {
			t.Errorf("%s: twilio check = %v, want %s %s", st.name, got, st.wantState, st.wantError)
		}
		if got := standin.Requests(); got != st.wantCalls {
			t.Errorf("%s: the stand-in saw %d requests, want %d", st.name, got, st.wantCalls)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		var health struct{ Dependencies map[string]string }
		json.Unmarshal(rec.Body.Bytes(), &health)
		if rec.Code != 200 || health.Dependencies["twilio"] != st.wantState {
			t.Errorf("%s: /health = %d %s, want 200 with twilio %s", st.name, rec.Code, rec.Body, st.wantState)
		}
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("GET /healthz = %d", rec.Code)
	}
}

// TestAHangIsSeenAlike: when a dependency stops answering, /readyz,
// /health and the dependency metric say "degraded" from the same probe,
// not once the check's own, longer deadline has passed.
func TestAHangIsSeenAlike(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	backend := newTwilioBackend(t, standin, time.Minute, nil) // the check outlives the test
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	m := server.NewMetrics(reg)
	h := mustHandler(t, &recordingVerifier{}, server.Config{
		Logger: slog.New(slog.DiscardHandler), Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
		Readiness:    []server.Check{{Name: "twilio", Probe: backend.Ping}},
		ReadinessTTL: 10 * time.Second, ReadinessTimeout: 50 * time.Millisecond, Now: clk.Now,
		Metrics: m, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	})
	states := func() (ready, health string, metric float64) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var b map[string]any
		json.Unmarshal(rec.Body.Bytes(), &b)
		ready, _ = twilioCheck(b)["status"].(string)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
		var hb struct{ Dependencies map[string]string }
		json.Unmarshal(rec.Body.Bytes(), &hb)
		return ready, hb.Dependencies["twilio"], scrape(t, h)[`verifyd_dependency_state{dependency=twilio,state=degraded}`]
	}
	if r, hs, m := states(); r != "ok" || hs != "ok" || m != 0 {
		t.Fatalf("healthy: /readyz %q, /health %q, degraded metric %v; want ok, ok, 0", r, hs, m)
	}
	standin.SetFailure(twiliotest.AnyRequest, &twiliotest.Failure{Hang: true})
	clk.Advance(11 * time.Second)
	if r, hs, m := states(); r != "degraded" || hs != "degraded" || m != 1 {
		t.Errorf("hanging: /readyz %q, /health %q, degraded metric %v; want degraded, degraded, 1", r, hs, m)
	}
}
