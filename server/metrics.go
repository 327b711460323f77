package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
)

// Metrics are verifyd's Prometheus collectors. A falling approval rate per
// destination country is how operators spot SMS pumping, so verifications
// are counted by country and outcome.
type Metrics struct {
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	started          *prometheus.CounterVec
	checked          *prometheus.CounterVec
	refusals         *prometheus.CounterVec
	upstream         *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	dependencies     *prometheus.GaugeVec
	shed             prometheus.Counter
	fraud            *prometheus.CounterVec
}

// NewMetrics registers verifyd's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verifyd_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_verifications_started_total", Help: "Verification starts (code sends) by channel, destination country and outcome.",
		}, []string{"channel", "country", "outcome"}),
		checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_verifications_checked_total", Help: "Code checks by channel, destination country and outcome.",
		}, []string{"channel", "country", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_limit_refusals_total", Help: "Requests refused by a rate limit, by the limit's code.",
		}, []string{"limit"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_upstream_requests_total", Help: "HTTP attempts to Twilio Verify by operation, result and Twilio error code.",
		}, []string{"operation", "result", "twilio_code"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verifyd_upstream_request_duration_seconds", Help: "Latency of HTTP attempts to Twilio Verify by operation.",
			Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5, 10},
		}, []string{"operation"}),
	}
	m.dependencies = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "verifyd_dependency_state",
		Help: "The last readiness probe of each dependency: 1 for its state (ok, degraded, failing), 0 for the others.",
	}, []string{"dependency", "state"})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verifyd_load_shed_total",
		Help: "Requests answered 503 overloaded because UPSTREAM_MAX_IN_FLIGHT calls already waited on the upstream.",
	})
	m.fraud = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verifyd_fraud_decisions_total",
		Help: "Conversion-budget decisions on sends, by destination country, the rule that decided (none when within budget) and the action.",
	}, []string{"country", "rule", "action"})
	reg.MustRegister(m.requests, m.requestDuration, m.started, m.checked, m.refusals, m.upstream, m.upstreamDuration,
		m.dependencies, m.shed, m.fraud)
	return m
}

// middleware counts requests by route pattern, never the raw path: unknown
// paths must not become new series.
func (m *Metrics) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		began := time.Now()
		err := next(c)
		route := c.Path()
		if route == "" || route == "/*" {
			route = "unmatched"
		}
		method := methodLabel(c.Request().Method)
		m.requests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
		m.requestDuration.WithLabelValues(route, method).Observe(time.Since(began).Seconds())
		return err
	}
}

// ObserveFraud counts one budget decision. country comes from a parsed
// number (a closed set), rule and action from the abuse package's own.
func (m *Metrics) ObserveFraud(country, rule, action string) {
	if rule == "" {
		rule = "none"
	}
	m.fraud.WithLabelValues(country, rule, action).Inc()
}

// Shed counts one request refused by the bound on upstream calls.
func (m *Metrics) Shed() { m.shed.Inc() }

// observeDependency records a readiness probe's outcome.
func (m *Metrics) observeDependency(name, state string) {
	for _, s := range []string{"ok", "degraded", "failing"} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.dependencies.WithLabelValues(name, s).Set(v)
	}
}

// methodLabel folds any method outside HTTP's own into "other": a method
// is whatever string a client sends, and must not become a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// ObserveUpstream counts one HTTP attempt to Twilio.
func (m *Metrics) ObserveUpstream(a twiliohttp.Attempt) {
	code := ""
	if a.TwilioCode != 0 {
		code = strconv.Itoa(a.TwilioCode)
	}
	m.upstream.WithLabelValues(a.Operation, a.Result, code).Inc()
	m.upstreamDuration.WithLabelValues(a.Operation).Observe(a.Duration.Seconds())
}

// Verifier wraps next so that every start and check is counted, with the
// outcome it had. Wrapped around the abuse guard, it counts refusals too.
func (m *Metrics) Verifier(next verify.Verifier) verify.Verifier {
	return countingVerifier{next: next, m: m}
}

type countingVerifier struct {
	next verify.Verifier
	m    *Metrics
}

func (cv countingVerifier) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	v, err := cv.next.Start(ctx, req)
	outcome := "sent"
	if err != nil {
		outcome = cv.m.failure(err)
	}
	cv.m.started.WithLabelValues(string(req.Channel), country(req.To), outcome).Inc()
	return v, err
}

func (cv countingVerifier) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	v, err := cv.next.Check(ctx, req)
	to, channel := req.To, string(v.Channel)
	if to.IsZero() && v.To != "" {
		// Checked by SID: the answer names the number.
		to, _ = verify.PhoneParser{}.Parse(v.To)
	}
	if channel == "" {
		channel = "unknown"
	}
	var outcome string
	switch {
	case err != nil:
		outcome = cv.m.failure(err)
	case v.Status == verify.StatusApproved:
		outcome = "approved"
	case v.Status == verify.StatusPending:
		outcome = "wrong_code"
	default:
		outcome = cv.m.failure(verify.Outcome(v))
	}
	cv.m.checked.WithLabelValues(channel, country(to), outcome).Inc()
	return v, err
}

// failure names the outcome of a failed start or check, and counts a rate
// limit's refusal by its code.
func (m *Metrics) failure(err error) string {
	e := verify.AsError(err)
	switch e.Kind {
	case verify.KindTooMany:
		m.refusals.WithLabelValues(e.Code).Inc()
		return "limited"
	case verify.KindForbidden:
		return "blocked"
	case verify.KindGone:
		return "expired"
	case verify.KindInvalid:
		return "invalid"
	case verify.KindUnsupported:
		return "unsupported"
	case verify.KindMisconfigured, verify.KindUnavailable, verify.KindTimeout:
		return "upstream_error"
	case verify.KindDegraded:
		if e.Code == verify.ErrOverloaded.Code {
			return "overloaded"
		}
		return "unavailable"
	case verify.KindCanceled:
		return "canceled"
	}
	return "error"
}

// country is the destination's ISO region, for the per-country series.
func country(n verify.Number) string {
	if r := n.Region(); r != "" {
		return r
	}
	return "unknown"
}
