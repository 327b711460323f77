package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/redisclient"
)

// guarded are the abuse protections the flow asks at its steps, and what
// to close.
type guarded struct {
	guard      *abuse.Guard
	tests      *abuse.TestNumbers // nil without TEST_NUMBERS
	challenges *challenge.Issuer
}

// newGuarded builds the abuse guard (its counters in Redis when rdb is
// set, in memory otherwise), the challenge issuer and the test numbers.
func newGuarded(cfg config, logger *slog.Logger, rdb redis.UniversalClient, now func() time.Time) (guarded, error) {
	var g guarded
	if len(cfg.testNumbers) > 0 {
		g.tests = abuse.NewTestNumbers(cfg.testNumbers)
		logger.Warn("test numbers configured: they answer fixed codes and never reach the backend", "count", len(cfg.testNumbers))
	}

	var store abuse.Store = abuse.NewMemoryStore()
	keySecret := secretBytes(cfg.LimitKeySecret)
	switch {
	case keySecret != nil:
	case cfg.redis != nil:
		// Outside production (loadConfig refuses it there): a key every
		// instance knows, so they share limits; readable by anyone who
		// reads this source.
		keySecret = []byte(devLimitKeySecret)
		logger.Warn("LIMIT_KEY_SECRET is not set: the number hashes in Redis use a development key " +
			"anyone can read in verifyd's source; set one shared secret on every instance")
	default:
		// In memory: one instance, so a key of this process's own.
		keySecret = []byte(rand.Text() + rand.Text())
	}
	if rdb != nil {
		store = abuse.NewRedisStore(rdb)
	}
	// The challenge key is derived from LIMIT_KEY_SECRET: instances that
	// share the one share the other. Without it, a key of this process's
	// own: nothing in verifyd's source can mint a challenge.
	challengeKey := []byte(rand.Text() + rand.Text())
	if secret := secretBytes(cfg.LimitKeySecret); secret != nil {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("verifyd challenge key"))
		challengeKey = mac.Sum(nil)
	} else if cfg.redis != nil {
		logger.Warn("LIMIT_KEY_SECRET is not set: proof-of-work challenges are signed with a key made for this " +
			"process, so a challenge issued by one instance does not pass on another")
	}
	challenges, err := challenge.New(challenge.Config{Key: challengeKey, MaxNumber: cfg.ChallengeDifficulty,
		TTL: cfg.ChallengeTTL, Spent: abuse.SpendOnce(store, now), Now: now})
	if err != nil {
		return g, err
	}
	g.challenges = challenges
	guard, err := abuse.NewGuard(abuse.Config{
		Now: now,
		Budgets: abuse.Budgets{Mode: cfg.budgetMode, CountryFloor: cfg.FraudCountryFloor, PrefixFloor: cfg.FraudPrefixFloor,
			PrefixDigits: cfg.FraudPrefixDigits, TrustedFor: cfg.FraudTrustedFor},
		Challenge:  cfg.challengeMode,
		Challenges: challenges,
		Tarpit:     cfg.FraudAction == "tarpit",
		Store:      store,
		Limits: abuse.Limits{
			PhoneCooldown:        cfg.LimitPhoneCooldown,
			PhoneSendsPerHour:    cfg.LimitPhoneSendsPerHour,
			IPSendsPerHour:       cfg.LimitIPSendsPerHour,
			IPChecksPerHour:      cfg.LimitIPChecksPerHour,
			GlobalSendsPerMinute: cfg.LimitGlobalSendsPerMin,
			PhoneChecksPerHour:   cfg.LimitPhoneChecksPerHr,
			IPv6Prefix:           cfg.LimitIPv6Prefix,
		},
		KeySecret:        keySecret,
		AllowedCountries: cfg.AllowedCountries,
		FailOpenSends:    cfg.LimitFailOpenSends,
		FailOpenChecks:   cfg.LimitFailOpenChecks,
		Logger:           logger,
	})
	if err != nil {
		return g, err
	}
	g.guard = guard
	return g, nil
}

// devLimitKeySecret keys the number hashes in a shared Redis outside
// production when LIMIT_KEY_SECRET is not set.
const devLimitKeySecret = "verifyd-development-limit-key-not-secret"

// newRedis builds the one Redis client every part shares, in the shape the
// configuration names (REDIS_URL, Sentinel or Cluster); nil without one.
func newRedis(cfg config, logger *slog.Logger) (redis.UniversalClient, error) {
	if cfg.redis == nil {
		return nil, nil
	}
	// go-redis logs every failed dial on its own; the guard and the code
	// store log an outage once, so its lines go to debug.
	redis.SetLogger(redisLogger{logger})
	client, err := redisclient.NewFrom(*cfg.redis)
	if err != nil {
		return nil, err
	}
	logger.Info("redis", "shape", cfg.redis.Shape())
	return client, nil
}

// redisLogger sends go-redis's own messages to debug.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// redisMisconfigured tells a Redis error a deploy got wrong (a host that
// does not resolve, a refused password, a database that does not exist)
// from an outage (refused connections, timeouts), during which the limits
// fail open or closed as configured and the instance stays ready.
func redisMisconfigured(err error) bool {
	if err == nil {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"NOAUTH", "WRONGPASS", "invalid password", "invalid username-password",
		"called without any password configured", "DB index is out of range", "invalid DB index"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
