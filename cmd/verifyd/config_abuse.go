package main

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/redisclient"
)

// checkAbuse validates the abuse-protection settings (see server/abuse).
func (c *config) checkAbuse() problems {
	var p problems
	bad := p.add
	var err error
	if c.trusted, err = c.trustedProxies(); err != nil {
		bad("TRUSTED_PROXIES", "%v", err)
	}
	rc := redisclient.Config{URL: string(c.RedisURL), SentinelAddrs: trimAll(c.RedisSentinelAddrs),
		SentinelMaster: c.RedisSentinelMaster, SentinelPassword: string(c.RedisSentinelPassword),
		ClusterAddrs: trimAll(c.RedisClusterAddrs), Username: c.RedisUsername, Password: string(c.RedisPassword)}
	for _, pr := range rc.Check() {
		bad(pr.Setting, "%s", pr.Why)
	}
	if rc.Shape() != redisclient.None {
		c.redis = &rc
	}
	const off = "must not be negative (0 turns the limit off)"
	checkBounds(&p,
		bound[int]{"LIMIT_PHONE_SENDS_PER_HOUR", c.LimitPhoneSendsPerHour, 0, math.MaxInt, off},
		bound[int]{"LIMIT_IP_SENDS_PER_HOUR", c.LimitIPSendsPerHour, 0, math.MaxInt, off},
		bound[int]{"LIMIT_IP_CHECKS_PER_HOUR", c.LimitIPChecksPerHour, 0, math.MaxInt, off},
		bound[int]{"LIMIT_GLOBAL_SENDS_PER_MINUTE", c.LimitGlobalSendsPerMin, 0, math.MaxInt, off},
		bound[int]{"LIMIT_PHONE_CHECKS_PER_HOUR", c.LimitPhoneChecksPerHr, 0, math.MaxInt, off},
		bound[int]{"FRAUD_COUNTRY_FLOOR", min(c.FraudCountryFloor, c.FraudPrefixFloor), 1, math.MaxInt,
			"FRAUD_COUNTRY_FLOOR and FRAUD_PREFIX_FLOOR must be at least 1"},
		bound[int]{"FRAUD_PREFIX_DIGITS", c.FraudPrefixDigits, 1, 8, "must be between 1 and 8"},
		bound[int]{"LIMIT_IPV6_PREFIX", c.LimitIPv6Prefix, 16, 128, "must be between 16 and 128 (64 groups a host's /64)"})
	checkBounds(&p,
		bound[time.Duration]{"LIMIT_PHONE_COOLDOWN", c.LimitPhoneCooldown, 0, forever, "must not be negative"},
		// 0 would reach the guard as "unset" and mean its 90 days: the
		// opposite of what someone who writes 0 wants.
		bound[time.Duration]{"FRAUD_TRUSTED_FOR", c.FraudTrustedFor, 1, forever,
			"must be positive (a short one, such as 1h, trusts a verified number little)"},
		bound[time.Duration]{"CHALLENGE_TTL", c.ChallengeTTL, 10 * time.Second, challenge.MaxTTL, "must be between 10s and 10m"})
	checkBounds(&p, bound[int64]{"CHALLENGE_DIFFICULTY", c.ChallengeDifficulty, 1000, 100_000_000,
		"must be between 1000 and 100000000 (hashes a solver tries at most)"})
	if c.countries, _, err = abuse.ParseAllowedCountries(c.AllowedCountries); err != nil {
		bad("ALLOWED_COUNTRIES", "%v", err)
	}
	if c.budgetMode, err = abuse.ParseBudgetMode(c.FraudBudgets); err != nil {
		bad("FRAUD_BUDGETS", "%v", err)
	}
	if c.FraudAction != "refuse" && c.FraudAction != "tarpit" {
		bad("FRAUD_ACTION", "must be refuse or tarpit, not %q", c.FraudAction)
	}
	if c.challengeMode, err = abuse.ParseChallengeMode(c.SendChallenge); err != nil {
		bad("SEND_CHALLENGE", "%v", err)
	}
	switch {
	case c.LimitKeySecret != "" && len(c.LimitKeySecret) < 32:
		bad("LIMIT_KEY_SECRET", "must be at least 32 characters")
	case c.LimitKeySecret == "" && c.redis != nil && c.AppEnv == "production":
		bad("LIMIT_KEY_SECRET", "required with Redis in production: it keys the hashes that stand for "+
			"numbers in Redis and signs the challenges, and every instance must share it")
	}
	if c.TestNumbers != "" {
		if c.testNumbers, err = abuse.ParseTestNumbers(string(c.TestNumbers), c.phones); err != nil {
			bad("TEST_NUMBERS", "%v (want +15005550006:123456,...)", err)
		}
		if c.AppEnv == "production" && !c.AllowTestNumbersInProd {
			bad("TEST_NUMBERS", "test numbers have fixed codes anyone could guess; they are refused with "+
				"APP_ENV=production unless ALLOW_TEST_NUMBERS_IN_PRODUCTION=true")
		}
	}
	return p
}

// trustedProxies parses TRUSTED_PROXIES: CIDRs, or bare addresses.
func (c *config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trimAll drops the spaces around each entry of a comma-separated list,
// and the empty ones.
func trimAll(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
