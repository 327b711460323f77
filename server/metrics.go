package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"verifyd/server/abuse"
	"verifyd/server/delivery"
	"verifyd/server/flow"
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
	deliveries       *prometheus.CounterVec
	unacked          prometheus.Counter
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
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verifyd_deliveries_total",
		Help: "What became of the messaging backend's texts and calls, by channel and the status Twilio's callbacks reported (each status once per send).",
	}, []string{"channel", "status"})
	// Closed label sets, known in advance: every series exists from the
	// start, so a query or an alert never meets a missing one.
	for _, ch := range []verify.Channel{verify.ChannelSMS, verify.ChannelCall, verify.ChannelWhatsApp} {
		for _, st := range delivery.Statuses {
			m.deliveries.WithLabelValues(string(ch), string(st))
		}
	}
	m.unacked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verifyd_redis_unacknowledged_writes_total",
		Help: "Codes written to a Redis primary that no replica acknowledged within the wait (WAIT 1): what a failover then could lose.",
	})
	reg.MustRegister(m.requests, m.requestDuration, m.started, m.checked, m.refusals, m.upstream, m.upstreamDuration,
		m.dependencies, m.shed, m.fraud, m.deliveries, m.unacked)
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

// UnacknowledgedWrite counts one code no replica acknowledged in time.
func (m *Metrics) UnacknowledgedWrite() { m.unacked.Inc() }

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

// Observe counts what the flow did: sends and checks by channel, country
// and outcome, refusals by the limit's code, step-up decisions, and calls
// shed at the gate.
func (m *Metrics) Observe(_ context.Context, e flow.Event) {
	switch e := e.(type) {
	case flow.Started:
		m.started.WithLabelValues(string(e.Channel), e.Country, e.Outcome()).Inc()
		m.refused(e.Err)
	case flow.Checked:
		m.checked.WithLabelValues(e.Channel, e.Country, e.Outcome()).Inc()
		m.refused(e.Err)
	case flow.Decided:
		rule := e.Decision.Rule
		if rule == "" {
			rule = "none"
		}
		m.fraud.WithLabelValues(e.Decision.Country, rule, e.Decision.Action).Inc()
	case flow.Shed:
		m.shed.Inc()
	case flow.Delivered:
		m.deliveries.WithLabelValues(string(e.Channel), string(e.Status)).Inc()
	}
}

// Expect starts at zero the series of sends and approvals of every channel
// and country given, so that conversion can be graphed and alerted on from
// the start. The countries are a closed set (ALLOWED_COUNTRIES, or every
// region phonenumbers knows: about 245), so the series stay bounded: two
// per channel and country.
func (m *Metrics) Expect(channels verify.Channels, countries []string) {
	for _, c := range countries {
		for _, ch := range channels {
			m.started.WithLabelValues(string(ch), c, "sent")
			m.checked.WithLabelValues(string(ch), c, "approved")
		}
		m.fraud.WithLabelValues(c, "none", "allowed")
	}
	// Every limit's refusals, the fraud ceilings' among them: a closed set.
	for _, e := range []*verify.Error{abuse.ErrPhoneCooldown, abuse.ErrPhoneLimit, abuse.ErrIPSendLimit,
		abuse.ErrIPCheckLimit, abuse.ErrGlobalLimit, abuse.ErrPhoneCheckLimit, abuse.ErrOverBudget, abuse.ErrTarpit,
		verify.ErrTooManyAttempts, verify.ErrTooManySends, verify.ErrTooManyConcurrent, verify.ErrUpstreamBusy} {
		m.refusals.WithLabelValues(e.Code)
	}
}

// ExpectUpstream starts at zero the successful attempts of each of the
// backend's operations, so that an error ratio has a denominator from the
// start.
func (m *Metrics) ExpectUpstream(operations ...string) {
	for _, op := range operations {
		m.upstream.WithLabelValues(op, "ok", "")
	}
}

// refused counts a rate limit's refusal by its code.
func (m *Metrics) refused(err error) {
	if err == nil {
		return
	}
	if e := verify.AsError(err); e.Kind == verify.KindTooMany {
		m.refusals.WithLabelValues(e.Code).Inc()
	}
}
