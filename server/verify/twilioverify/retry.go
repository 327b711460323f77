package twilioverify

import (
	"context"

	openapi "github.com/twilio/twilio-go/rest/verify/v2"

	"verifyd/server/twiliohttp"
)

// do runs fn (one SDK call) under the caller's context bounded by
// RequestTimeout, through twiliohttp: only Twilio's 20429 is retried.
func (b *Backend) do(parent context.Context, op operation, fn func(*openapi.ApiService) error) error {
	return b.api.Run(parent, string(op), op.metricName(), func(c *twiliohttp.Call) error { return fn(b.sdk(c)) })
}
