package abuse

import (
	"context"
	"net/netip"
	"time"

	"verifyd/server/verify"
)

// The limits a send and a check count against, reserved before the
// backend is called and settled after.

// Reservation is a send's place in the counters it touches, taken before
// the backend is called; Settle keeps or gives it back.
type Reservation struct {
	g     *Guard
	to    verify.Number
	test  bool
	event string
	// refundable are the keys a send that certainly did not go out gives
	// back: the number's own limits, the global brake and its scopes'
	// ceilings, which stand for money spent. The client's limit keeps it:
	// refused sends are still attempts.
	refundable []string
}

// ReserveSend takes a send's place under every limit it counts against
// (the number's cooldown and hourly ceiling, the global brake, the
// destination's ceilings that d, the step-up's decision, names, the
// client's ceiling) in one atomic step, or refuses it (429 with the wait).
// A test number counts only against its client's limit: it costs nothing.
func (g *Guard) ReserveSend(ctx context.Context, to verify.Number, ip netip.Addr, test bool, d BudgetDecision) (*Reservation, error) {
	l := g.cfg.Limits
	var rules []limitedRule
	if !test {
		phone := "{verifyd}:rl:phone:" + g.hashKey(to.E164())
		rules = appendRule(rules, phone+":cooldown", 1, l.PhoneCooldown, ErrPhoneCooldown)
		rules = appendRule(rules, phone+":hour", l.PhoneSendsPerHour, time.Hour, ErrPhoneLimit)
		brake := l.GlobalSendsPerMinute
		if brake > 0 && g.cfg.Budgets.Mode != BudgetsOff && !d.Converting && d.Action != "trusted" {
			brake = max(1, ceil(brakeShare*float64(brake)))
		}
		rules = appendRule(rules, "{verifyd}:rl:global:sends", brake, time.Minute, ErrGlobalLimit)
		rules = append(rules, d.ceilings...)
	}
	r := &Reservation{g: g, to: to, test: test, refundable: make([]string, 0, len(rules))}
	for _, rule := range rules {
		r.refundable = append(r.refundable, rule.rule.Key)
	}
	if ip.IsValid() {
		rules = appendRule(rules, "{verifyd}:rl:ip:"+g.clientKey(ip)+":sends", l.IPSendsPerHour, time.Hour, ErrIPSendLimit)
	}
	event, err := g.allow(ctx, rules, g.cfg.FailOpenSends)
	if err != nil {
		return nil, err
	}
	r.event = event
	return r, nil
}

// sidTTL is how long a verification's SID is remembered with its number:
// past a code's ten minutes, with room for a clock's drift.
const sidTTL = 15 * time.Minute

// Settle tells the counters what came of the send of verification sid: one
// that went out (or may have) keeps its places, and its SID is remembered
// with its number, so that checks by SID count against the number; one
// that certainly did not gives its places back, so that "a code was just
// sent" does not answer a retry after a send that never happened. The
// caller may have gone; the settling must not go with it.
func (r *Reservation) Settle(ctx context.Context, sid string, sent bool) {
	if r == nil || r.test {
		return
	}
	ctx = context.WithoutCancel(ctx)
	g := r.g
	if sent {
		if sid == "" {
			return
		}
		if err := g.cfg.Store.Remember(ctx, g.cfg.Now(), "sid:"+g.hashKey(sid), g.hashKey(r.to.E164()), sidTTL); err != nil {
			g.cfg.Logger.WarnContext(ctx, "abuse limiter: could not remember a verification's number", "err", err)
		}
		return
	}
	if r.event == "" || len(r.refundable) == 0 {
		return
	}
	undoCtx, cancel := context.WithTimeout(ctx, refundTimeout)
	defer cancel()
	if err := g.cfg.Store.Undo(undoCtx, r.refundable, r.event); err != nil {
		g.cfg.Logger.WarnContext(ctx, "abuse limiter: could not give back a send that did not go out", "err", err)
	}
}

// refundTimeout bounds giving back a send that did not go out.
const refundTimeout = 2 * time.Second

// ReserveCheck counts a check against its client and its target (the
// number, or the verification SID when the check names no number), or
// refuses it: guessing codes across many numbers, or at one number from
// many addresses, is abuse too.
func (g *Guard) ReserveCheck(ctx context.Context, to verify.Number, sid string, ip netip.Addr) error {
	var rules []limitedRule
	if ip.IsValid() {
		rules = appendRule(rules, "{verifyd}:rl:ip:"+g.clientKey(ip)+":checks", g.cfg.Limits.IPChecksPerHour, time.Hour, ErrIPCheckLimit)
	}
	// By SID, the number the SID was sent to, when this store saw the
	// send: guesses at one number count alike, however they name it.
	target := "phone:" + g.hashKey(to.E164())
	if to.IsZero() {
		target = "sid:" + g.hashKey(sid)
		if h, err := g.cfg.Store.Recall(ctx, g.cfg.Now(), "sid:"+g.hashKey(sid)); err == nil && h != "" {
			target = "phone:" + h
		}
	}
	rules = appendRule(rules, "{verifyd}:rl:"+target+":checks", g.cfg.Limits.PhoneChecksPerHour, time.Hour, ErrPhoneCheckLimit)
	_, err := g.allow(ctx, rules, g.cfg.FailOpenChecks)
	return err
}

// Approved counts an approval for n's destination and trusts n: its
// destination's budget grows, and n is not held back again for a while.
func (g *Guard) Approved(ctx context.Context, n verify.Number) {
	g.recordApproval(ctx, n)
}
