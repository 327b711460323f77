package abuse

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"verifyd/server/verify"
)

// BudgetMode says what an over-budget destination gets.
type BudgetMode int

// The budget modes.
const (
	BudgetsOff     BudgetMode = iota // not counted, not decided (the zero Budgets)
	BudgetsShadow                    // decide, log and count, but let through: for tuning
	BudgetsEnforce                   // step up (a challenge) or refuse
)

// ParseBudgetMode reads FRAUD_BUDGETS.
func ParseBudgetMode(s string) (BudgetMode, error) {
	switch s {
	case "enforce", "":
		return BudgetsEnforce, nil
	case "shadow":
		return BudgetsShadow, nil
	case "off":
		return BudgetsOff, nil
	}
	return 0, fmt.Errorf("%q is not enforce, shadow or off", s)
}

func (m BudgetMode) String() string {
	return [...]string{"off", "shadow", "enforce"}[m]
}

// Budgets configures conversion budgets: how many unverified codes a
// destination may have for its recent approvals. SMS pumping sends codes
// nobody verifies, so a country or a number prefix whose sends outrun its
// approvals is where the money goes.
type Budgets struct {
	Mode BudgetMode
	// CountryFloor and PrefixFloor are the unverified codes a day any
	// country, or any prefix, may have whatever its approvals (defaults 60
	// and 20); an hour gets a sixth.
	CountryFloor, PrefixFloor int
	// PrefixDigits is how many digits of the national number, after the
	// country code, make a prefix (default 3).
	PrefixDigits int
	// TrustedFor is how long a number verified once is never held back
	// (default 90 days).
	TrustedFor time.Duration
}

func (b *Budgets) defaults() {
	if b.CountryFloor == 0 {
		b.CountryFloor = 60
	}
	if b.PrefixFloor == 0 {
		b.PrefixFloor = 20
	}
	if b.PrefixDigits == 0 {
		b.PrefixDigits = 3
	}
	if b.TrustedFor == 0 {
		b.TrustedFor = 90 * 24 * time.Hour
	}
}

// BudgetDecision is one budget decision, for the log and the metrics.
type BudgetDecision struct {
	Country string // ISO 3166 alpha-2, or "+882" for a non-geographic code
	Scope   string // the country, or the prefix ("+44740") that decided
	Rule    string // country_hour, country_day, prefix_hour, prefix_day; "" when within budget
	// Unverified is sends minus approvals in the rule's window, Budget
	// what the rule allows; Sends and Approvals are the window's figures.
	Unverified, Budget, Sends, Approvals int
	// Action: allowed, trusted (verified before), shadow (over, let
	// through), challenged, challenge_passed, challenge_failed, refused.
	Action string
	Mode   string // the budgets' mode: off, shadow, enforce
}

// Logged reports whether a decision held something back, or would have:
// those are logged with their figures, the rest only counted.
func (d BudgetDecision) Logged() bool {
	return d.Action != "allowed" && d.Action != "trusted" && d.Action != ""
}

// ErrChallengeRequired asks the client to solve a proof-of-work challenge
// and send the request again with the solution; Challenge carries it.
var ErrChallengeRequired = &verify.Error{Kind: verify.KindForbidden, Code: "challenge_required",
	Message: "Please wait a moment while we check that this request comes from a person."}

// ErrChallengeFailed refuses a solution that does not check.
var ErrChallengeFailed = &verify.Error{Kind: verify.KindForbidden, Code: "challenge_failed",
	Message: "The check that this request comes from a person did not pass. Please try again."}

// ErrOverBudget refuses a send to a destination over its budget when no
// step-up is possible.
var ErrOverBudget = &verify.Error{Kind: verify.KindTooMany, Code: "destination_over_budget",
	Message: "We cannot send codes to this destination right now. Please try again later."}

// scopes answers the country and prefix series of a number.
func (g *Guard) scopes(n verify.Number) (country, prefix string) {
	cc := strconv.Itoa(n.CountryCode())
	country = n.Region()
	if len(country) != 2 {
		country = "+" + cc
	}
	national := n.E164()[1+len(cc):]
	prefix = "+" + cc + national[:min(len(national), g.cfg.Budgets.PrefixDigits)]
	return country, prefix
}

// judge decides whether a send to n is within its destination's budget.
func (g *Guard) judge(ctx context.Context, n verify.Number) (BudgetDecision, error) {
	country, prefix := g.scopes(n)
	d := BudgetDecision{Country: country, Scope: country, Action: "allowed"}
	if trusted, err := g.cfg.Store.Marked(ctx, g.cfg.Now(), "trusted:"+g.hashKey(n.E164())); err != nil {
		return d, err
	} else if trusted {
		d.Action = "trusted"
		return d, nil
	}
	t, err := g.cfg.Store.Read(ctx, g.cfg.Now(), "s:"+country, "a:"+country, "s:"+prefix, "a:"+prefix)
	if err != nil {
		return d, err
	}
	b := g.cfg.Budgets
	for _, sc := range []struct {
		name       string
		scope      string
		sends, ok  Tally
		floorDaily int
	}{
		{"country", country, t[0], t[1], b.CountryFloor},
		{"prefix", prefix, t[2], t[3], b.PrefixFloor},
	} {
		// A day may have max(floor, 0.2 × the busiest approval day of the
		// last two weeks) unverified codes; an hour max(floor/6, a sixth
		// of that, 0.2 × the last hour's approvals).
		day := max(sc.floorDaily, ceil(0.2*float64(max(sc.ok.MaxDay, sc.ok.Day))))
		hour := max(ceil(float64(sc.floorDaily)/6), ceil(float64(day)/6), ceil(0.2*float64(sc.ok.Hour)))
		if u := sc.sends.Hour - sc.ok.Hour; u+1 > hour {
			return BudgetDecision{Country: country, Scope: sc.scope, Rule: sc.name + "_hour", Unverified: u, Budget: hour,
				Sends: sc.sends.Hour, Approvals: sc.ok.Hour}, nil
		}
		if u := sc.sends.Day - sc.ok.Day; u+1 > day {
			return BudgetDecision{Country: country, Scope: sc.scope, Rule: sc.name + "_day", Unverified: u, Budget: day,
				Sends: sc.sends.Day, Approvals: sc.ok.Day}, nil
		}
	}
	return d, nil
}

func ceil(f float64) int { return int(math.Ceil(f)) }

// recordSend counts a send that went out (or may have) to n's destination.
func (g *Guard) recordSend(ctx context.Context, n verify.Number) {
	if g.cfg.Budgets.Mode == BudgetsOff {
		return
	}
	country, prefix := g.scopes(n)
	if err := g.cfg.Store.Add(context.WithoutCancel(ctx), g.cfg.Now(), "s:"+country, "s:"+prefix); err != nil {
		g.cfg.Logger.WarnContext(ctx, "fraud budget: could not count a send", "err", err)
	}
}

// recordApproval counts an approval for n's destination and trusts n.
func (g *Guard) recordApproval(ctx context.Context, n verify.Number) {
	if g.cfg.Budgets.Mode == BudgetsOff {
		return
	}
	ctx = context.WithoutCancel(ctx)
	country, prefix := g.scopes(n)
	if err := g.cfg.Store.Add(ctx, g.cfg.Now(), "a:"+country, "a:"+prefix); err != nil {
		g.cfg.Logger.WarnContext(ctx, "fraud budget: could not count an approval", "err", err)
	}
	if err := g.cfg.Store.Mark(ctx, g.cfg.Now(), "trusted:"+g.hashKey(n.E164()), g.cfg.Budgets.TrustedFor); err != nil {
		g.cfg.Logger.WarnContext(ctx, "fraud budget: could not remember a verified number", "err", err)
	}
}
