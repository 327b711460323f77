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
