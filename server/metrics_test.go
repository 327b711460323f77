package server_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"verifyd/server"
	"verifyd/server/abuse"
	"verifyd/server/flow"
	"verifyd/server/verify/twilioverify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
)

// scrape parses GET /metrics into "name{label=value,...}" → value, labels
// sorted by name; histograms give their _count.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// TestMetricsCountWhatHappened runs a scripted sequence through the whole
// stack (metrics, the abuse guard, the Twilio backend, the stand-in) and
// checks the counters' values.
func TestMetricsCountWhatHappened(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	reg := prometheus.NewRegistry()
	m := server.NewMetrics(reg)
	backend := newTwilioBackend(t, standin, 5*time.Second, func(a twilioverify.Attempt) {
		m.ObserveUpstream(a)
	})
	guard, err := abuse.NewGuard(abuse.Config{Limits: abuse.Limits{PhoneCooldown: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	fcfg := flow.Config{Backend: backend, Policy: guard, StepUp: guard, Limits: guard, Observer: m}
	h := conforming{t: t, next: mustHandlerOver(t, fcfg, server.Config{
		Logger: slog.New(slog.DiscardHandler), Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
		Metrics: m, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	})}

	standin.SetFailure("+447400123456", &twiliotest.Failure{Status: 403, Code: 60605, Message: "blocked"})
	steps := []struct {
		path, body string
		want       int
	}{
		{"/api/request-otp", `{"phoneNumber":"+14155552671"}`, 200},
		{"/api/request-otp", `{"phoneNumber":"+14155552671"}`, 429},
		{"/api/verify-otp", `{"phoneNumber":"+14155552671","code":"%s"}`, 400},
		{"/api/verify-otp", `{"phoneNumber":"+14155552671","code":"%s"}`, 200},
		{"/api/request-otp", `{"phoneNumber":"+447400123456"}`, 403},
		{"/api/request-otp", `{"phoneNumber":"nonsense"}`, 400},
	}
	for i, st := range steps {
		body := st.body
		if strings.Contains(body, "%s") {
			code, _ := standin.Code("+14155552671")
			if i == 2 {
				code = verifytest.WrongCode(code)
			}
			body = fmt.Sprintf(body, code)
		}
		if rec := postJSON(h, st.path, body); rec.Code != st.want {
			t.Fatalf("step %d: POST %s %s = %d %s, want %d", i+1, st.path, body, rec.Code, rec.Body, st.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/no/such/page", nil))

	got := scrape(t, h)
	want := map[string]float64{
		`verifyd_http_requests_total{method=POST,route=/api/request-otp,status=200}`:                    1,
		`verifyd_http_requests_total{method=POST,route=/api/request-otp,status=429}`:                    1,
		`verifyd_http_requests_total{method=POST,route=/api/request-otp,status=403}`:                    1,
		`verifyd_http_requests_total{method=POST,route=/api/request-otp,status=400}`:                    1,
		`verifyd_http_requests_total{method=POST,route=/api/verify-otp,status=400}`:                     1,
		`verifyd_http_requests_total{method=POST,route=/api/verify-otp,status=200}`:                     1,
		`verifyd_http_requests_total{method=GET,route=unmatched,status=404}`:                            1,
		`verifyd_http_request_duration_seconds{method=POST,route=/api/request-otp}_count`:               4,
		`verifyd_verifications_started_total{channel=sms,country=US,outcome=sent}`:                      1,
		`verifyd_verifications_started_total{channel=sms,country=US,outcome=limited}`:                   1,
		`verifyd_verifications_started_total{channel=sms,country=GB,outcome=blocked}`:                   1,
		`verifyd_verifications_checked_total{channel=sms,country=US,outcome=wrong_code}`:                1,
		`verifyd_verifications_checked_total{channel=sms,country=US,outcome=approved}`:                  1,
		`verifyd_limit_refusals_total{limit=phone_cooldown}`:                                            1,
		`verifyd_upstream_requests_total{operation=start,result=ok,twilio_code=}`:                       1,
		`verifyd_upstream_requests_total{operation=start,result=destination_blocked,twilio_code=60605}`: 1,
		`verifyd_upstream_requests_total{operation=check,result=ok,twilio_code=}`:                       2,
		`verifyd_upstream_request_duration_seconds{operation=start}_count`:                              2,
		`verifyd_upstream_request_duration_seconds{operation=check}_count`:                              2,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	// The invalid number never became a verification.
	for k := range got {
		if strings.HasPrefix(k, "verifyd_verifications_started_total") && strings.Contains(k, "outcome=invalid") {
			t.Errorf("a locally refused number was counted as a start: %s", k)
		}
	}
}

// TestMetricsSeriesStayFixed floods odd methods and paths: no request may
// add a series, or anyone could grow the process's memory without limit.
func TestMetricsSeriesStayFixed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := server.NewMetrics(reg)
	h := mustHandler(t, &recordingVerifier{}, server.Config{
		Logger: slog.New(slog.DiscardHandler), Web: fstest.MapFS{"templates/index.html": {}}, Static: fstest.MapFS{},
		Metrics: m, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	})
	do := func(method, path string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Method = method
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	// Every kind of request once, so every series that can exist does.
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"} {
		for _, path := range []string{"/", "/health", "/api/request-otp", "/nope", "/static/nope"} {
			do(method, path)
		}
	}
	scrape(t, h) // a scrape is a request too: its own series exist from here on
	beforeSet := scrape(t, h)
	before := len(beforeSet)
	for i := range 2000 {
		do(fmt.Sprintf("M%dX", i), fmt.Sprintf("/p/%d", i))
		do("GET", fmt.Sprintf("/+1415555%04d?q=%d", i, i))
		do(fmt.Sprintf("BREW%d", i), "/health")
	}
	after := scrape(t, h)
	if len(after) != before {
		var odd []string
		for k := range after {
			if _, ok := beforeSet[k]; !ok {
				odd = append(odd, k)
			}
		}
		sort.Strings(odd)
		t.Fatalf("%d series before the flood, %d after; new ones such as %v", before, len(after), odd[:min(len(odd), 5)])
	}
	if after[`verifyd_http_requests_total{method=other,route=unmatched,status=404}`] < 2000 {
		t.Errorf("made-up methods on unknown paths are not counted as other/unmatched: %v", after)
	}
}
