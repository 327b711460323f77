package abuse

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"verifyd/server/challenge"
	"verifyd/server/verify"
)

// Limits are the ceilings the Guard enforces. A zero value turns that limit
// off.
type Limits struct {
	PhoneCooldown        time.Duration // between two sends to one number
	PhoneSendsPerHour    int           // sends to one number
	IPSendsPerHour       int           // sends requested by one client
	IPChecksPerHour      int           // code checks by one client, across all numbers
	GlobalSendsPerMinute int           // every send: the brake when IPs and numbers rotate
	// PhoneChecksPerHour bounds code checks of one number, across its
	// verifications and clients (test numbers included): rotating
	// addresses must not buy unlimited guesses.
	PhoneChecksPerHour int
	// IPv6Prefix is how many leading bits of an IPv6 address name one
	// client (default 64: one host or home network gets a /64 and rotates
	// freely inside it); IPv4 clients are counted by address.
	IPv6Prefix int
}

// DefaultLimits are the limits verifyd runs with unless told otherwise:
// written here once; the configuration starts from them.
func DefaultLimits() Limits {
	return Limits{
		PhoneCooldown:        30 * time.Second,
		PhoneSendsPerHour:    5,
		IPSendsPerHour:       20,
		IPChecksPerHour:      60,
		GlobalSendsPerMinute: 60,
		PhoneChecksPerHour:   15,
		IPv6Prefix:           DefaultIPv6Prefix,
	}
}

// Config configures a Guard.
type Config struct {
	Store  Store // default: a MemoryStore
	Limits Limits
	// AllowedCountries are ISO 3166 alpha-2 codes; empty allows every
	// country. An entry "+882" (a calling code) allows the non-geographic
	// numbers of that code, which are refused otherwise.
	AllowedCountries []string
	// KeySecret keys the hashes that stand for numbers in the Store's keys
	// (HMAC-SHA256): without it, anyone reading the store could recover
	// every number from a list of candidates in a second. Instances that
	// share a Store must share it. Empty: a random key for this process.
	KeySecret []byte
	// FailOpenSends and FailOpenChecks say what happens while the Store is
	// unreachable: let requests through (open) or refuse them (closed).
	// Closed is the safe choice for sends, each of which costs money.
	FailOpenSends, FailOpenChecks bool
	// Budgets are the conversion budgets per destination (see Budgets).
	Budgets Budgets
	// Challenge says when a send must come with a solved proof-of-work
	// challenge, which Challenges issues and checks (nil: never).
	Challenge  ChallengeMode
	Challenges *challenge.Issuer
	// Tarpit answers a send over its destination's ceiling as if it were
	// sent, and sends nothing (FRAUD_ACTION=tarpit); otherwise it is
	// refused.
	Tarpit bool
	Logger *slog.Logger
	Now    func() time.Time
}

// ChallengeMode says when a send needs a proof-of-work step-up.
type ChallengeMode int

// The challenge modes.
const (
	ChallengeRisk   ChallengeMode = iota // when a budget trips or the global brake is near
	ChallengeNever                       // never: over budget is refused
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

// brakeShare is the part of the global brake that scopes whose sends do not
// get verified may fill: the rest is kept for the scopes that convert (and
// numbers verified before), so an attack that fills the brake refuses its
// own kind first.
const brakeShare = 0.8

// Guard decides whether a send or a check may go ahead: the flow asks it
// at each of its steps (destination, step-up, limits) and tells it what
// came of the call. It wraps nothing.
type Guard struct {
	cfg       Config
	countries map[string]bool
	codes     map[int]bool // non-geographic calling codes allowed explicitly
	// servedMessage refuses a country, naming those served.
	servedMessage string
	degraded      atomic.Bool
}

// The refusals, each limit with its own code so that operators (and the
// metrics) can tell them apart.
var (
	ErrPhoneCooldown = &verify.Error{Kind: verify.KindTooMany, Code: "phone_cooldown",
		Message: "A code was just sent to this number. Please wait before asking for another."}
	ErrPhoneLimit = &verify.Error{Kind: verify.KindTooMany, Code: "phone_limit",
		Message: "Too many codes were sent to this number. Please try again later."}
	ErrIPSendLimit = &verify.Error{Kind: verify.KindTooMany, Code: "ip_send_limit",
		Message: "Too many codes were requested from your network. Please try again later."}
	ErrIPCheckLimit = &verify.Error{Kind: verify.KindTooMany, Code: "ip_check_limit",
		Message: "Too many codes were tried from your network. Please try again later."}
	ErrGlobalLimit = &verify.Error{Kind: verify.KindTooMany, Code: "global_send_limit",
		Message: "We are receiving too many requests right now. Please try again in a minute."}
	ErrPhoneCheckLimit = &verify.Error{Kind: verify.KindTooMany, Code: "phone_check_limit",
		Message: "Too many codes were tried for this number. Please try again later."}
	ErrCountryNotAllowed = &verify.Error{Kind: verify.KindForbidden, Code: "country_not_allowed",
		Message: "We cannot send codes to phone numbers in this country."}
	ErrNumberTypeNotAllowed = &verify.Error{Kind: verify.KindForbidden, Code: "number_type_not_allowed",
		Message: "We cannot send codes to this kind of number. Use a mobile number."}
	// ErrLimiterDown answers while the store is unreachable (a Redis
	// failover takes a few seconds): 503 with a short wait.
	ErrLimiterDown = &verify.Error{Kind: verify.KindDegraded, Code: "limiter_unavailable",
		Message: "Verification is temporarily unavailable. Please try again in a moment.", RetryAfter: 2 * time.Second}
)

// NewGuard checks cfg and fills its defaults.
func NewGuard(cfg Config) (*Guard, error) {
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Budgets.defaults()
	if cfg.Challenges == nil && cfg.Challenge != ChallengeNever {
		if cfg.Challenge == ChallengeAlways {
			return nil, errors.New("abuse: Challenge always without Challenges")
		}
		cfg.Challenge = ChallengeNever
	}
	if len(cfg.KeySecret) == 0 {
		cfg.KeySecret = []byte(rand.Text() + rand.Text())
	}
	if cfg.Limits.IPv6Prefix == 0 {
		cfg.Limits.IPv6Prefix = DefaultIPv6Prefix
	}
	if p := cfg.Limits.IPv6Prefix; p < 1 || p > 128 {
		return nil, fmt.Errorf("abuse: IPv6Prefix %d is not between 1 and 128", p)
	}
	g := &Guard{cfg: cfg, countries: map[string]bool{}, codes: map[int]bool{}}
	countries, codes, err := ParseAllowedCountries(cfg.AllowedCountries)
	if err != nil {
		return nil, fmt.Errorf("abuse: %w", err)
	}
	for _, c := range countries {
		g.countries[c] = true
	}
	for _, n := range codes {
		g.codes[n] = true
	}
	if len(g.countries) > 0 {
		names := display.English.Regions()
		var served []string
		for c := range g.countries {
			served = append(served, names.Name(language.MustParseRegion(c)))
		}
		slices.Sort(served)
		g.servedMessage = "We can send codes only to phone numbers in " + strings.Join(served, ", ") + "."
	}
	return g, nil
}

// clientKey names a client for the per-client limits: an IPv4 address, or
// the IPv6 prefix it belongs to.
func (g *Guard) clientKey(ip netip.Addr) string {
	if ip.Is4() || ip.Is4In6() {
		return ip.Unmap().String()
	}
	p, _ := ip.Prefix(g.cfg.Limits.IPv6Prefix)
	return p.String()
}

// limitedRule pairs a rule with the refusal it gives.
type limitedRule struct {
	rule Rule
	err  *verify.Error
}

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

// Approved counts an approval for n's destination and trusts n: its
// destination's budget grows, and n is not held back again for a while.
func (g *Guard) Approved(ctx context.Context, n verify.Number) {
	g.recordApproval(ctx, n)
}

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

// State answers "ok", or "degraded" while the Store is unreachable.
func (g *Guard) State() string {
	if g.degraded.Load() {
		return "degraded"
	}
	return "ok"
}

func appendRule(rules []limitedRule, key string, limit int, window time.Duration, err *verify.Error) []limitedRule {
	if limit <= 0 || window <= 0 {
		return rules
	}
	return append(rules, limitedRule{Rule{Key: key, Limit: limit, Window: window}, err})
}

// allow asks the Store, and handles its outage: logged once when it starts
// and once when it ends, and answered open or closed as configured. It
// answers the recorded event's name ("" when nothing was recorded).
func (g *Guard) allow(ctx context.Context, rules []limitedRule, failOpen bool) (string, error) {
	if len(rules) == 0 {
		return "", nil
	}
	rs := make([]Rule, len(rules))
	for i, r := range rules {
		rs[i] = r.rule
	}
	d, err := g.cfg.Store.Allow(ctx, g.cfg.Now(), rs)
	if err != nil {
		if ctx.Err() != nil {
			return "", verify.ErrClientGone.With(err, 0)
		}
		if g.degraded.CompareAndSwap(false, true) {
			g.cfg.Logger.Error("abuse limiter store unreachable", "err", err,
				"sends", failMode(g.cfg.FailOpenSends), "checks", failMode(g.cfg.FailOpenChecks))
		}
		if failOpen {
			return "", nil
		}
		return "", ErrLimiterDown.With(err, ErrLimiterDown.RetryAfter)
	}
	if g.degraded.CompareAndSwap(true, false) {
		g.cfg.Logger.Info("abuse limiter store reachable again")
	}
	if !d.Allowed {
		return "", rules[d.Rule].err.With(nil, d.RetryAfter)
	}
	return d.Event, nil
}

func failMode(open bool) string {
	if open {
		return "allowed (fail open)"
	}
	return "refused (fail closed)"
}

// hashKey keeps phone numbers out of the store's keys: a Redis shared by
// several services should not hold a list of everyone's numbers. It is
// keyed, so that the hashes cannot be reversed by hashing every candidate.
func (g *Guard) hashKey(s string) string {
	m := hmac.New(sha256.New, g.cfg.KeySecret)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil)[:16])
}
