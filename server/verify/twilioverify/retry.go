package twilioverify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
)

// do runs fn (one SDK call) under the caller's context bounded by
// RequestTimeout, through twiliohttp.Do: only Twilio's 20429 is retried.
func (b *Backend) do(parent context.Context, op operation, fn func(*openapi.ApiService) error) error {
	ctx, cancel := context.WithTimeout(parent, b.cfg.RequestTimeout)
	defer cancel()
	if err := ctxError(parent, ctx, parent.Err()); err != nil {
		return err // nobody waits for the answer: do not even ask
	}
	c, err := twiliohttp.Do(ctx, b.base, b.transport, b.maxRetries,
		func(c *twiliohttp.Call) error { return fn(b.api(c)) },
		func(c *twiliohttp.Call, err error, d time.Duration) { b.observe(op, err, c, parent, ctx, d) })
	if err == nil {
		return nil
	}
	if errors.Is(err, twiliohttp.ErrRetryWait) {
		// The caller left or our deadline passed while waiting.
		return ctxError(parent, ctx, fmt.Errorf("twilio %s: %w", op, err))
	}
	return classify(op, err, c, parent, ctx)
}

// observe reports one attempt to Config.Observe.
func (b *Backend) observe(op operation, err error, c *twiliohttp.Call, parent, ctx context.Context, d time.Duration) {
	if b.cfg.Observe == nil {
		return
	}
	a := Attempt{Operation: op.metricName(), Result: "ok", Duration: d}
	if err != nil {
		a.Result = verify.AsError(classify(op, err, c, parent, ctx)).Code
		var te *client.TwilioRestError
		if errors.As(err, &te) {
			a.TwilioCode = te.Code
		}
	}
	b.cfg.Observe(a)
}
