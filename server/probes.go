package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"verifyd/server/verify"
)

// Check is one readiness dependency: the Twilio Verify service, Redis.
//
// Readiness means "this instance, as configured, can serve". A probe error
// that says the configuration is wrong (Fatal: credentials Twilio refuses,
// a service that does not exist, a Redis password that is refused) makes
// the instance unready; any other (Twilio 5xx or timeouts, Redis down) is a
// shared outage that every instance sees alike: taking them all out of the
// load balancer would help nobody, so it is reported as degraded in
// /readyz, /health and the metrics, and the instance stays ready.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
	// Fatal tells a configuration error from an outage; nil means an error
	// of kind verify.KindMisconfigured.
	Fatal func(error) bool
}

func (c Check) fatal(err error) bool {
	if c.Fatal != nil {
		return c.Fatal(err)
	}
	e, ok := errors.AsType[*verify.Error](err)
	return ok && e.Kind == verify.KindMisconfigured
}

// Readiness defaults: probes come every few seconds from every kubelet or
// load balancer, so answers are cached, and a probe never waits long.
const (
	defaultReadinessTTL     = 10 * time.Second
	defaultReadinessTimeout = 2 * time.Second
	// refreshTimeout bounds one upstream check, which may outlive the probe
	// that started it: the next probes read its answer.
	refreshTimeout = 10 * time.Second
)

// cachedCheck runs its Probe at most once per ttl, with at most one run in
// flight, whatever the number of concurrent probes.
type cachedCheck struct {
	Check
	ttl     time.Duration
	now     func() time.Time
	observe func(name, state string) // told each probe's outcome; may be nil

	mu        sync.Mutex
	checkedAt time.Time
	checked   bool
	err       error
	running   chan struct{} // closed when the run in flight ends
	// stalled is set when a probe gave up waiting for the run in flight:
	// the dependency hangs. From that moment /readyz, /health and the
	// metric all say so, rather than /health and the metric waiting for
	// the run's own, longer deadline.
	stalled bool
}

var errProbeTimeout = errors.New("no answer within the probe deadline")

// result answers the cached result, refreshing it when stale; it waits for
// the refresh no longer than ctx allows, and then answers the last result
// known, or errProbeTimeout when there is none.
func (c *cachedCheck) result(ctx context.Context) error {
	c.mu.Lock()
	if c.checked && c.now().Sub(c.checkedAt) < c.ttl {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if c.running == nil {
		c.running = make(chan struct{})
		go c.refresh(c.running)
	}
	done := c.running
	c.mu.Unlock()

	select {
	case <-done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.checked && c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		first := c.running != nil && !c.stalled
		if c.running != nil {
			c.stalled = true
		}
		c.mu.Unlock()
		if first && c.observe != nil {
			c.observe(c.Name, "degraded")
		}
		return errProbeTimeout
	}
}

// last answers the last result known without probing: "ok", "degraded",
// "failing", or "unknown" before the first probe.
func (c *cachedCheck) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stalled && (!c.checked || c.err == nil):
		return "degraded" // what /readyz answers while the run hangs
	case !c.checked:
		return "unknown"
	case c.err == nil:
		return "ok"
	case c.fatal(c.err):
		return "failing"
	}
	return "degraded"
}

func (c *cachedCheck) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	err := c.Probe(ctx)
	c.mu.Lock()
	c.err, c.checkedAt, c.checked, c.running, c.stalled = err, c.now(), true, nil, false
	c.mu.Unlock()
	if c.observe != nil {
		c.observe(c.Name, c.last())
	}
	close(done)
}

type checkStatus struct {
	Status string `json:"status"` // "ok", "degraded" (an outage: still ready) or "failing"
	Error  string `json:"error,omitempty"`
}

type readyResponse struct {
	Status string                 `json:"status"` // "READY" or "NOT_READY"
	Checks map[string]checkStatus `json:"checks"`
}

// handleReadyz answers 503 while the instance drains or while a check
// finds its configuration wrong, 200 otherwise, naming each check's state.
// It runs the checks concurrently.
func handleReadyz(checks []*cachedCheck, timeout time.Duration, draining func() bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		resp := readyResponse{Status: "READY", Checks: make(map[string]checkStatus, len(checks)+1)}
		if draining != nil && draining() {
			// Shutting down: out of the load balancer first, while
			// everything is still served.
			resp.Status = "NOT_READY"
			resp.Checks["shutdown"] = checkStatus{Status: "failing", Error: "draining"}
			return c.JSON(http.StatusServiceUnavailable, resp)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
		defer cancel()
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, ch := range checks {
			wg.Go(func() { errs[i] = ch.result(ctx) })
		}
		wg.Wait()
		status := http.StatusOK
		for i, ch := range checks {
			switch {
			case errs[i] == nil:
				resp.Checks[ch.Name] = checkStatus{Status: "ok"}
			case ch.fatal(errs[i]):
				status, resp.Status = http.StatusServiceUnavailable, "NOT_READY"
				resp.Checks[ch.Name] = checkStatus{Status: "failing", Error: describe(errs[i])}
			default:
				resp.Checks[ch.Name] = checkStatus{Status: "degraded", Error: describe(errs[i])}
			}
		}
		return c.JSON(status, resp)
	}
}

// describe says what is wrong without a secret: a domain error by its code,
// anything else by its text with phone-like runs masked.
func describe(err error) string {
	if e, ok := errors.AsType[*verify.Error](err); ok {
		return e.Code
	}
	return redact(err.Error())
}

// handleHealthz is liveness: the process serves. It touches nothing
// external, so a Twilio outage never gets healthy instances restarted.
func handleHealthz(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"status": "UP"})
}
