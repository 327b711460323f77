package flow

import (
	"context"
	"errors"
	"log/slog"

	"verifyd/server/abuse"
	"verifyd/server/delivery"
	"verifyd/server/verify"
)

// Observer is told what the flow did, as it happens: metrics count it, the
// decision log writes it down. Observe must not block.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// Event is one of Started, Checked, Decided and Shed.
type Event interface{ event() }

// Started is the end of a send that passed validation: sent, or refused
// by a step, or failed at the backend.
type Started struct {
	Channel verify.Channel
	Country string // ISO 3166 alpha-2 of the destination, "unknown" for none
	Err     error  // nil when sent
}

// Checked is the end of a check that passed validation.
type Checked struct {
	Channel string // "unknown" when the backend did not say
	Country string
	Err     error // nil when approved; verify.ErrWrongCode for a wrong code
}

// Decided is a step-up decision on a send (budgets and challenge).
type Decided struct {
	Decision abuse.BudgetDecision
}

// Delivered is a delivery's new state, from a status callback.
type Delivered struct {
	Channel verify.Channel
	Status  delivery.Status
}

// DeliveryUnrecorded is a send whose queued state could not be kept (the
// store was unreachable); its callbacks will be.
type DeliveryUnrecorded struct{ Err error }

// Shed is a call refused because the backend had as many calls in flight
// as the gate allows.
type Shed struct{}

func (Started) event() {}
func (Checked) event() {}
func (Decided) event() {}
func (Shed) event()    {}

func (Delivered) event()          {}
func (DeliveryUnrecorded) event() {}

// Outcome names how a send or a check ended, for the metrics: sent,
// approved, wrong_code, or the failure's class.
func (e Started) Outcome() string {
	switch {
	case e.Err == nil:
		return "sent"
	case errors.Is(e.Err, abuse.ErrTarpit):
		return "tarpitted" // answered as sent; nothing went out
	}
	return failure(e.Err)
}

// Outcome is as for Started.
func (e Checked) Outcome() string {
	switch {
	case e.Err == nil:
		return "approved"
	case verify.AsError(e.Err).Kind == verify.KindWrongCode:
		return "wrong_code"
	}
	return failure(e.Err)
}

// failure names the class of a failed send or check.
func failure(err error) string {
	e := verify.AsError(err)
	switch e.Kind {
	case verify.KindTooMany:
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

// Observers tells each of its observers in turn.
type Observers []Observer

// Observe tells every observer.
func (os Observers) Observe(ctx context.Context, e Event) {
	for _, o := range os {
		o.Observe(ctx, e)
	}
}

// DecisionLog writes down every step-up decision that held a send back, or
// would have, with the figures it used.
type DecisionLog struct{ Logger *slog.Logger }

// Observe logs the decisions worth a line.
func (l DecisionLog) Observe(ctx context.Context, e Event) {
	ev, ok := e.(Decided)
	if !ok || !ev.Decision.Logged() {
		return
	}
	d := ev.Decision
	level := slog.LevelWarn
	if d.Action == "challenge_passed" {
		level = slog.LevelInfo
	}
	l.Logger.Log(ctx, level, "fraud budget", "action", d.Action, "rule", d.Rule, "country", d.Country,
		"scope", d.Scope, "unverified", d.Unverified, "budget", d.Budget, "sends", d.Sends, "approvals", d.Approvals,
		"mode", d.Mode)
}

// country is the destination's ISO region, for the per-country series.
func country(n verify.Number) string {
	if r := n.Region(); r != "" {
		return r
	}
	return "unknown"
}
