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
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
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
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	checkedAt time.Time
	checked   bool
	err       error
	running   chan struct{} // closed when the run in flight ends
}

var errProbeTimeout = errors.New("no answer within the probe deadline")

// result answers the cached result, refreshing it when stale; it waits for
// the refresh no longer than ctx allows.
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
		return errProbeTimeout
	}
}

func (c *cachedCheck) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	err := c.Probe(ctx)
	c.mu.Lock()
	c.err, c.checkedAt, c.checked, c.running = err, c.now(), true, nil
	c.mu.Unlock()
	close(done)
}

type checkStatus struct {
	Status string `json:"status"` // "ok" or "failing"
	Error  string `json:"error,omitempty"`
}

type readyResponse struct {
	Status string                 `json:"status"` // "READY" or "NOT_READY"
	Checks map[string]checkStatus `json:"checks"`
}

// handleReadyz answers 200 only when every dependency works, 503 otherwise,
// naming what is wrong. It runs the checks concurrently.
func handleReadyz(checks []*cachedCheck, timeout time.Duration) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
		defer cancel()
		resp := readyResponse{Status: "READY", Checks: make(map[string]checkStatus, len(checks))}
		errs := make([]error, len(checks))
		var wg sync.WaitGroup
		for i, ch := range checks {
			wg.Go(func() { errs[i] = ch.result(ctx) })
		}
		wg.Wait()
		status := http.StatusOK
		for i, ch := range checks {
			if errs[i] == nil {
				resp.Checks[ch.Name] = checkStatus{Status: "ok"}
				continue
			}
			status, resp.Status = http.StatusServiceUnavailable, "NOT_READY"
			resp.Checks[ch.Name] = checkStatus{Status: "failing", Error: describe(errs[i])}
		}
		c.Response().Header().Set("Cache-Control", "no-store")
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
