package abuse

import (
	"context"
	"net/netip"
	"time"

	"verifyd/server/verify"
)

// What a send's fate changes: a text that did not arrive gives its resend
// back, a tarpitted send is remembered, a delivery lookup is counted.

// landlineFor is how long a number that could not take a text is
// remembered so: long enough to offer the next tries a call first.
const landlineFor = 30 * 24 * time.Hour

// ForgiveResend gives back the resend wait of the number verification sid
// was sent to, after Twilio said its text did not arrive (the text was
// paid for: the budgets keep it); with landline, it remembers that the
// number cannot take texts.
func (g *Guard) ForgiveResend(ctx context.Context, sid string, landline bool) {
	ctx = context.WithoutCancel(ctx)
	h, err := g.cfg.Store.Recall(ctx, g.cfg.Now(), "sid:"+g.hashKey(sid))
	if err != nil || h == "" {
		return
	}
	if err := g.cfg.Store.Forget(ctx, "{verifyd}:rl:phone:"+h+":cooldown"); err != nil {
		g.cfg.Logger.WarnContext(ctx, "abuse limiter: could not give back a resend", "err", err)
	}
	// The person asking again (a call, most likely) is not asked for a
	// proof of work for it: the ceilings still hold.
	if err := g.cfg.Store.Mark(ctx, g.cfg.Now(), "retry:"+h, sidTTL); err != nil {
		g.cfg.Logger.WarnContext(ctx, "abuse limiter: could not remember a failed text", "err", err)
	}
	if landline {
		if err := g.cfg.Store.Mark(ctx, g.cfg.Now(), "landline:"+h, landlineFor); err != nil {
			g.cfg.Logger.WarnContext(ctx, "abuse limiter: could not remember a number that takes no texts", "err", err)
		}
	}
}

// Landline reports a number Twilio said could not take a text (30006).
func (g *Guard) Landline(ctx context.Context, n verify.Number) bool {
	ok, err := g.cfg.Store.Marked(ctx, g.cfg.Now(), "landline:"+g.hashKey(n.E164()))
	return err == nil && ok
}

// ReserveLookup counts a delivery lookup against its client: polled
// gently by a page, it has a ceiling of its own, ten times the client's
// checks.
func (g *Guard) ReserveLookup(ctx context.Context, ip netip.Addr) error {
	if !ip.IsValid() {
		return nil
	}
	rules := appendRule(nil, "{verifyd}:rl:ip:"+g.clientKey(ip)+":lookups", 10*g.cfg.Limits.IPChecksPerHour, time.Hour, ErrIPCheckLimit)
	_, err := g.allow(ctx, rules, g.cfg.FailOpenChecks)
	return err
}

// Tarpit remembers a send answered as sent but never sent (to n, as
// verification sid), for a code's life: checks against it answer as a
// wrong code.
func (g *Guard) Tarpit(ctx context.Context, n verify.Number, sid string) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range []string{"tarpit:" + g.hashKey(n.E164()), "tarpit:" + g.hashKey(sid)} {
		if err := g.cfg.Store.Mark(ctx, g.cfg.Now(), k, sidTTL); err != nil {
			g.cfg.Logger.WarnContext(ctx, "fraud: could not remember a tarpitted send", "err", err)
		}
	}
}

// Tarpitted reports whether a check of n (or, by SID, of sid) is of a
// tarpitted send.
func (g *Guard) Tarpitted(ctx context.Context, n verify.Number, sid string) bool {
	key := "tarpit:" + g.hashKey(sid)
	if !n.IsZero() {
		key = "tarpit:" + g.hashKey(n.E164())
	}
	ok, err := g.cfg.Store.Marked(ctx, g.cfg.Now(), key)
	return err == nil && ok
}
