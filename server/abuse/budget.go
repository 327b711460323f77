package abuse

import (
	"cmp"
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

// DefaultBudgets are the budgets verifyd enforces unless told otherwise:
// written here once; the configuration starts from them.
func DefaultBudgets() Budgets {
	return Budgets{Mode: BudgetsEnforce, CountryFloor: 60, PrefixFloor: 20, PrefixDigits: 3, TrustedFor: 90 * 24 * time.Hour}
}

// defaults fills what b leaves unset from DefaultBudgets.
func (b *Budgets) defaults() {
	d := DefaultBudgets()
	b.CountryFloor = cmp.Or(b.CountryFloor, d.CountryFloor)
	b.PrefixFloor = cmp.Or(b.PrefixFloor, d.PrefixFloor)
	b.PrefixDigits = cmp.Or(b.PrefixDigits, d.PrefixDigits)
	b.TrustedFor = cmp.Or(b.TrustedFor, d.TrustedFor)
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
	// through), challenged, challenge_passed, challenge_failed, refused,
	// tarpit.
	Action string
	Mode   string // the budgets' mode: off, shadow, enforce
	// Pressure is the tightest rule's unverified codes, this send
	// included, over its budget: above 1 the scope is over its ceiling.
	Pressure float64
	// Converting reports a country whose recent sends get verified: it
	// keeps the global brake's reserved share.
	Converting bool
	// Difficulty is the challenge's, when one was asked for.
	Difficulty int64
	// ceilings are the scope rules the reservation holds.
	ceilings []limitedRule
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

// ErrOverBudget refuses a send to a destination over its budget: a
// ceiling, which no proof of work lifts.
var ErrOverBudget = &verify.Error{Kind: verify.KindTooMany, Code: "destination_over_budget",
	Message: "We cannot send codes to this destination right now. Please try again later."}

// ErrTarpit is a send over its destination's ceiling with FRAUD_ACTION=
// tarpit: the flow answers it as sent, and sends nothing. No person reads
// it.
var ErrTarpit = &verify.Error{Kind: verify.KindTooMany, Code: "tarpit",
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

// stepUpShare is how close to its ceiling a scope must be (its unverified
// codes, this send included, over its budget) for risk mode to ask a send
// for a proof of work: a bot slows down before the ceiling, which no proof
// lifts.
const stepUpShare = 0.75

// Converting scopes: a country whose last day's sends were verified at
// least this often, with at least this many approvals, keeps the global
// brake's reserved share.
const (
	convertingShare     = 0.5
	convertingApprovals = 3
)

// reservedShare is how much higher a converting prefix's country ceilings
// are than the rest of the country's, as a share of the budget.
const reservedShare = 0.5

// converting reports a scope whose last day's sends were verified at least
// convertingShare of the time, with at least convertingApprovals approvals.
func converting(approvals Tally, daySends int) bool {
	return approvals.Day >= convertingApprovals && float64(approvals.Day) >= convertingShare*float64(daySends)
}

// unlimited is a ceiling rule's limit when it only records (a trusted
// number, shadow mode): sends still count for the scope.
const unlimited = 1 << 30

// judge weighs a send to n against its destination's budgets: for each
// scope (the country, the prefix) and window (hour, day), the unverified
// codes the send would make against what the scope's approvals allow. It
// answers the tightest rule and the ceilings the reservation must hold.
func (g *Guard) judge(ctx context.Context, n verify.Number) (BudgetDecision, error) {
	now := g.cfg.Now()
	country, prefix := g.scopes(n)
	d := BudgetDecision{Country: country, Scope: country, Action: "allowed"}
	trusted, err := g.cfg.Store.Marked(ctx, now, "trusted:"+g.hashKey(n.E164()))
	if err != nil {
		return d, err
	}
	t, err := g.cfg.Store.Read(ctx, now, "a:"+country, "a:"+prefix)
	if err != nil {
		return d, err
	}
	b := g.cfg.Budgets
	// A prefix whose recent sends get verified keeps a reserved share of
	// its country's ceilings: an attack on the country's other prefixes
	// fills only the rest, and the honest people of a converting prefix are
	// not refused for it.
	prefixDaySends, err := g.cfg.Store.Count(ctx, now, Rule{Key: "{verifyd}:rl:scope:" + prefix + ":day", Window: 24 * time.Hour})
	if err != nil {
		return d, err
	}
	spared := converting(t[1], prefixDaySends)
	countryDaySends := 0
	for i, sc := range []struct {
		name, scope string
		ok          Tally
		floorDaily  int
	}{
		{"country", country, t[0], b.CountryFloor},
		{"prefix", prefix, t[1], b.PrefixFloor},
	} {
		// A day may have max(floor, 0.2 × the busiest approval day of the
		// last two weeks) unverified codes; an hour max(floor/6, a sixth
		// of that, 0.2 × the last hour's approvals).
		day := max(sc.floorDaily, ceil(0.2*float64(max(sc.ok.MaxDay, sc.ok.Day))))
		hour := max(ceil(float64(sc.floorDaily)/6), ceil(float64(day)/6), ceil(0.2*float64(sc.ok.Hour)))
		for _, w := range []struct {
			span              string
			window            time.Duration
			budget, approvals int
		}{
			{"hour", time.Hour, hour, sc.ok.Hour},
			{"day", 24 * time.Hour, day, sc.ok.Day},
		} {
			key := "{verifyd}:rl:scope:" + sc.scope + ":" + w.span
			sends := prefixDaySends
			if key != "{verifyd}:rl:scope:"+prefix+":day" {
				if sends, err = g.cfg.Store.Count(ctx, now, Rule{Key: key, Window: w.window}); err != nil {
					return d, err
				}
			}
			if i == 0 && w.span == "day" {
				countryDaySends = sends
			}
			budget := w.budget
			if i == 0 && spared {
				budget += ceil(reservedShare * float64(w.budget))
			}
			u := sends - w.approvals
			if p := float64(u+1) / float64(budget); p > d.Pressure {
				d.Pressure, d.Scope, d.Rule = p, sc.scope, sc.name+"_"+w.span
				d.Unverified, d.Budget, d.Sends, d.Approvals = u, budget, sends, w.approvals
			}
			// The ceiling, held by the reservation in the same atomic step
			// as every other limit: sends < budget + approvals is
			// unverified < budget. Approvals read a moment ago only grow,
			// so the ceiling is never looser than the truth.
			limit := budget + w.approvals
			if trusted || b.Mode == BudgetsShadow {
				limit = unlimited
			}
			d.ceilings = append(d.ceilings, limitedRule{Rule{Key: key, Limit: limit, Window: w.window}, ErrOverBudget})
		}
	}
	d.Converting = converting(t[0], countryDaySends)
	if trusted {
		d.Action = "trusted"
	}
	if d.Pressure < stepUpShare {
		d.Rule = "" // within budget: no rule is near
	}
	return d, nil
}

func ceil(f float64) int { return int(math.Ceil(f)) }

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
