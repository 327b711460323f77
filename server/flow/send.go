package flow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/delivery"
	"verifyd/server/verify"
)

// Start asks for a code to be sent.
type Start struct {
	To verify.Number
	// Channel is the channel asked for, "" for the default.
	Channel string
	// Locale is a locale asked for explicitly ("" for none); otherwise
	// AcceptLanguage (the browser's header) chooses one.
	Locale, AcceptLanguage string
	ClientIP               netip.Addr
	// Proof is a solved step-up challenge, "" when none was asked for.
	Proof string
}

// Sent is a code on its way.
type Sent struct {
	To           verify.Number
	SID          string
	Status       verify.Status
	Channel      verify.Channel
	Locale       string // "" when the backend chooses
	SendAttempts int    // sends of this verification so far, 0 when unknown
}

// Resent reports whether this send repeated an earlier one of the same
// verification (the same code, sent again).
func (s Sent) Resent() bool { return s.SendAttempts > 1 }

// Message says where the code went, as a person reads it, in t's language.
func (s Sent) Message(t Translate) string { return SentMessage(t, s.To, s.Channel, s.Resent()) }

// Start sends a code: the whole pipeline of a send, in the order it runs.
// Nothing reaches the backend unless every input is valid and every step
// let it through.
func (f *Flow) Start(ctx context.Context, in Start) (out Sent, err error) {
	// 1. What is asked: the number (parsed once, at the edge), the channel
	// and the language the code is sent in.
	to := in.To
	if to.IsZero() {
		return Sent{}, verify.ErrMissingTarget
	}
	channel, err := f.channels.Pick(in.Channel)
	if err != nil {
		return Sent{}, err
	}
	// A number Twilio said takes no texts is called, when calls are
	// allowed and the person chose no channel.
	if in.Channel == "" && channel != verify.ChannelCall && f.channels.Allows(verify.ChannelCall) &&
		f.limits != nil && f.limits.Landline(ctx, to) {
		channel = verify.ChannelCall
	}
	locale := in.Locale
	if locale == "" {
		locale = f.locales.FromAcceptLanguage(in.AcceptLanguage)
	} else if locale, err = f.locales.Exact(locale); err != nil {
		return Sent{}, err
	}
	// From here on, every outcome is an event.
	tarpitted := false
	defer func() {
		e := err
		if tarpitted && e == nil {
			e = abuse.ErrTarpit // answered as sent; counted as what it was
		}
		f.observer.Observe(ctx, Started{Channel: channel, Country: country(to), Err: e})
	}()

	// 2. Test numbers cost nothing: no number-type policy, no step-up, and
	// only the client's limit.
	test := f.tests.Has(to)

	// 3. The destination's country and number type.
	if f.policy != nil {
		if err := f.policy.Destination(to, channel, test); err != nil {
			return Sent{}, err
		}
	}

	// 4. The step-up: conversion budgets and the proof-of-work challenge.
	// Before the limits, so that a refused or challenged attempt does not
	// use up the global brake every honest user shares.
	// Over its destination's ceiling a send is refused, or tarpitted:
	// answered as sent, after a send's usual delay, and never sent.
	var d abuse.BudgetDecision
	if f.stepUp != nil && !test {
		d, err = f.stepUp.StepUp(ctx, to, in.ClientIP, in.Proof)
		if d.Action != "" {
			f.observer.Observe(ctx, Decided{Decision: d})
		}
		if errors.Is(err, abuse.ErrTarpit) && f.limits != nil {
			tarpitted = true
			return f.tarpit(ctx, to, channel, locale)
		}
		if err != nil {
			return Sent{}, err
		}
	}

	// 5. The limits: a place reserved under each (the number, the client,
	// the global brake, the destination's ceilings), in one atomic step.
	var res interface {
		Settle(ctx context.Context, sid string, sent bool)
	}
	if f.limits != nil {
		r, err := f.limits.ReserveSend(ctx, to, in.ClientIP, test, d)
		if err != nil {
			return Sent{}, err
		}
		res = r
	}

	// 6. The send: a test number answers here; any other goes to the
	// backend, behind the gate.
	var v verify.Verification
	if test {
		v = f.tests.Start(to, channel)
	} else {
		began := time.Now()
		v, err = call(ctx, f, f.backend.Start, verify.StartRequest{To: to, Channel: channel, Locale: locale,
			ClientIP: in.ClientIP, Proof: in.Proof})
		if err == nil {
			f.sendDelay.observe(time.Since(began))
		}
	}

	// 7. Settle: a send that went out (or may have) counts, and its SID is
	// remembered with its number; one that certainly did not gives its
	// places back.
	if res != nil {
		res.Settle(ctx, v.SID, err == nil || verify.MaybeSent(err))
	}
	// 8. The delivery: queued, until Twilio's callbacks say more.
	if err == nil && !test && f.deliveries != nil {
		now := f.now()
		if _, _, derr := f.deliveries.Record(context.WithoutCancel(ctx), v.SID,
			delivery.State{Channel: channel, Status: delivery.Queued, At: now, Since: now}); derr != nil {
			f.observer.Observe(ctx, DeliveryUnrecorded{Err: derr})
		}
	}
	if err != nil {
		if e := verify.AsError(err); (e.Kind == verify.KindTimeout || e.Kind == verify.KindUnavailable) && verify.MaybeSent(e) {
			// The code may still arrive: say so, rather than invite a
			// resend that the cooldown will refuse.
			c := *e
			c.Message = MaybeSentMessage
			return Sent{}, &c
		}
		return Sent{}, err
	}
	return Sent{To: to, SID: v.SID, Status: v.Status, Channel: channel, Locale: locale,
		SendAttempts: v.SendAttempts}, nil
}

// tarpit answers a send over its destination's ceiling as a send would,
// after a send's usual delay, with a verification SID of its own, and
// sends nothing; checks of it answer as a wrong code (see Check).
func (f *Flow) tarpit(ctx context.Context, to verify.Number, channel verify.Channel, locale string) (Sent, error) {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
	sid := "VE" + hex.EncodeToString(b[:])
	f.limits.Tarpit(ctx, to, sid)
	t := time.NewTimer(f.sendDelay.get())
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return Sent{}, verify.ErrClientGone.With(ctx.Err(), 0)
	}
	return Sent{To: to, SID: sid, Status: verify.StatusPending, Channel: channel, Locale: locale, SendAttempts: 1}, nil
}
