package abuse

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"verifyd/server/verify"
)

// The step-up: the conversion budgets' ceilings and the proof-of-work
// challenge below them, asked of a send before any limit counts it.

// ChallengeMode says when a send needs a proof-of-work step-up.
type ChallengeMode int

// The challenge modes.
const (
	ChallengeRisk   ChallengeMode = iota // in the band below a ceiling, or with the global brake half full
	ChallengeNever                       // never (the ceilings hold all the same)
	ChallengeAlways                      // every send (numbers verified before too)
)

// ParseChallengeMode reads SEND_CHALLENGE.
func ParseChallengeMode(s string) (ChallengeMode, error) {
	switch s {
	case "risk", "":
		return ChallengeRisk, nil
	case "never":
		return ChallengeNever, nil
	case "always":
		return ChallengeAlways, nil
	}
	return 0, fmt.Errorf("%q is not never, risk or always", s)
}

// globalNearShare is how full the global brake's window must be for risk
// mode to ask every send not from a trusted number for a step-up: before it
// trips, make sending cost something.
const globalNearShare = 0.5

// StepUp applies the conversion budgets and the challenge policy to a send
// to n from the client at ip, that came with proof ("" for none). Over its
// destination's ceiling a send is refused (or tarpitted) whatever proof it
// brings; in the band below it, risk mode asks for a proof of work, harder
// the closer the scope is, bound to this number and client, good for one
// send. It answers the decision it took, for the flow's events and the
// reservation, and an error when the send may not go ahead.
func (g *Guard) StepUp(ctx context.Context, n verify.Number, ip netip.Addr, proof string) (BudgetDecision, error) {
	mode := g.cfg.Budgets.Mode
	need := g.cfg.Challenge == ChallengeAlways
	country, _ := g.scopes(n)
	d := BudgetDecision{Country: country, Scope: country, Action: "allowed", Mode: mode.String()}
	if need {
		d.Rule = "always"
	}
	if mode != BudgetsOff {
		jd, err := g.judge(ctx, n)
		jd.Mode = d.Mode
		switch {
		case err != nil && !need:
			// The store is down, so the budgets cannot be judged: the
			// limits that follow answer that, open or closed as configured.
			return BudgetDecision{}, nil
		case err != nil:
			// SEND_CHALLENGE=always holds whatever the store.
		default:
			if jd.Rule == "" {
				jd.Rule = d.Rule // "always", if so
			}
			d = jd
			cause := func() error {
				return fmt.Errorf("%s %s: %d unverified, budget %d", d.Rule, d.Scope, d.Unverified, d.Budget)
			}
			switch {
			case d.Action == "trusted":
			case d.Pressure > 1 && mode == BudgetsShadow:
				d.Action = "shadow"
			case d.Pressure > 1 && g.cfg.Tarpit:
				d.Action = "tarpit"
				return d, ErrTarpit.With(cause(), 0)
			case d.Pressure > 1:
				d.Action = "refused"
				return d, ErrOverBudget.With(cause(), time.Hour)
			case d.Pressure >= stepUpShare && mode == BudgetsEnforce && g.cfg.Challenge == ChallengeRisk:
				// Not for the retry of a text Twilio could not deliver.
				retry, _ := g.cfg.Store.Marked(ctx, g.cfg.Now(), "retry:"+g.hashKey(n.E164()))
				need = !retry
			}
		}
	}
	if !need && g.cfg.Challenge == ChallengeRisk && d.Action != "trusted" && g.globalNear(ctx) {
		need, d.Rule = true, "global_near"
	}
	if !need {
		return d, nil
	}
	// Harder with the pressure: from the configured difficulty at the
	// band's floor to four times it at the ceiling.
	bind, base := g.bind(n, ip), g.cfg.Challenges.Difficulty()
	over := min(max((d.Pressure-stepUpShare)/(1-stepUpShare), 0), 1)
	d.Difficulty = base + int64(3*over*float64(base))
	if proof == "" {
		d.Action = "challenged"
		return d, g.challengeError(ErrChallengeRequired, nil, bind, d.Difficulty)
	}
	if err := g.cfg.Challenges.Verify(ctx, proof, bind); err != nil {
		d.Action = "challenge_failed"
		return d, g.challengeError(ErrChallengeFailed, err, bind, d.Difficulty)
	}
	d.Action = "challenge_passed"
	return d, nil
}

// bind names what a challenge is for: this number, from this client.
func (g *Guard) bind(n verify.Number, ip netip.Addr) string {
	client := ""
	if ip.IsValid() {
		client = g.clientKey(ip)
	}
	return g.hashKey("challenge\x00" + n.E164() + "\x00" + client)
}

// challengeError answers e with a fresh challenge to solve, for bind at
// difficulty.
func (g *Guard) challengeError(e *verify.Error, cause error, bind string, difficulty int64) error {
	c, err := g.cfg.Challenges.NewFor(bind, difficulty)
	if err != nil {
		return verify.ErrInternal.With(fmt.Errorf("new challenge: %w", err), 0)
	}
	out := e.With(cause, 0)
	out.Challenge = c
	return out
}

// globalNear reports whether the global brake is close to tripping.
func (g *Guard) globalNear(ctx context.Context) bool {
	limit := g.cfg.Limits.GlobalSendsPerMinute
	if limit <= 0 {
		return false
	}
	n, err := g.cfg.Store.Count(ctx, g.cfg.Now(), Rule{Key: "{verifyd}:rl:global:sends", Window: time.Minute})
	return err == nil && float64(n) >= globalNearShare*float64(limit)
}

// SpendOnce answers a challenge.Spent over store: a solution is recorded
// as one event under its own key, which allows only one.
func SpendOnce(store Store, now func() time.Time) func(ctx context.Context, id string, until time.Time) (bool, error) {
	return func(ctx context.Context, id string, until time.Time) (bool, error) {
		t := now()
		window := until.Sub(t)
		if window <= 0 {
			return false, nil
		}
		d, err := store.Allow(ctx, t, []Rule{{Key: id, Limit: 1, Window: window}})
		return d.Allowed, err
	}
}
