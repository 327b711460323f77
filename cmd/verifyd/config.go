package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"verifyd/server"
	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/receipt"
	"verifyd/server/redisclient"
	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
)

// config is verifyd's whole configuration, read from the environment. Field
// names are unique so that a parse error, which names the field, can be
// traced back to its variable.
type config struct {
	AppEnv   string     `env:"APP_ENV" envDefault:"development"`
	Host     string     `env:"HOST"`
	Port     int        `env:"PORT" envDefault:"8080"`
	LogLevel slog.Level `env:"LOG_LEVEL" envDefault:"info"`
	Backend  string     `env:"VERIFY_BACKEND"`

	AllowedChannels    []string      `env:"ALLOWED_CHANNELS" envDefault:"sms"`
	DefaultRegion      string        `env:"DEFAULT_REGION"`
	CORSAllowedOrigins []string      `env:"CORS_ALLOWED_ORIGINS"`
	ShutdownTimeout    time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	ShutdownDrain      time.Duration `env:"SHUTDOWN_DRAIN" envDefault:"5s"`

	UpstreamMaxInFlight int           `env:"UPSTREAM_MAX_IN_FLIGHT"`
	UpstreamMaxWait     time.Duration `env:"UPSTREAM_MAX_WAIT" envDefault:"250ms"`

	TwilioAccountSID     string        `env:"TWILIO_ACCOUNT_SID"`
	TwilioAuthToken      secret        `env:"TWILIO_AUTH_TOKEN"`
	TwilioAPIKey         string        `env:"TWILIO_API_KEY"`
	TwilioAPISecret      secret        `env:"TWILIO_API_SECRET"`
	TwilioServiceSID     string        `env:"TWILIO_VERIFY_SERVICE_SID"`
	TwilioBaseURL        string        `env:"TWILIO_VERIFY_BASE_URL" envDefault:"https://verify.twilio.com"`
	TwilioConnectTimeout time.Duration `env:"TWILIO_CONNECT_TIMEOUT" envDefault:"5s"`
	TwilioRequestTimeout time.Duration `env:"TWILIO_REQUEST_TIMEOUT" envDefault:"10s"`
	TwilioMaxConns       int           `env:"TWILIO_MAX_CONNS" envDefault:"256"`

	DevCodeSecret secret `env:"DEV_CODE_SECRET"`

	// The messaging backend: codes of our own over Twilio's Messages API.
	TwilioMessagingServiceSID string `env:"TWILIO_MESSAGING_SERVICE_SID"`
	TwilioFromNumber          string `env:"TWILIO_FROM_NUMBER"`
	TwilioWhatsAppFrom        string `env:"TWILIO_WHATSAPP_FROM"`
	TwilioAPIBaseURL          string `env:"TWILIO_API_BASE_URL" envDefault:"https://api.twilio.com"`
	CodeSecret                secret `env:"CODE_SECRET"`
	CodeLength                int    `env:"CODE_LENGTH" envDefault:"6"`
	AppName                   string `env:"APP_NAME"`
	AndroidAppHash            string `env:"ANDROID_APP_HASH"`

	MetricsAddr       string        `env:"METRICS_ADDR"`
	ReadinessCacheTTL time.Duration `env:"READINESS_CACHE_TTL" envDefault:"10s"`
	ReadinessTimeout  time.Duration `env:"READINESS_TIMEOUT" envDefault:"2s"`
	TLSCertFile       string        `env:"TLS_CERT_FILE"`
	TLSKeyFile        string        `env:"TLS_KEY_FILE"`

	FormSecret secret `env:"FORM_SECRET"`
	DebugAddr  string `env:"DEBUG_ADDR"`

	TrustedProxies         []string      `env:"TRUSTED_PROXIES"`
	RedisURL               secret        `env:"REDIS_URL"`
	RedisSentinelAddrs     []string      `env:"REDIS_SENTINEL_ADDRS"`
	RedisSentinelMaster    string        `env:"REDIS_SENTINEL_MASTER"`
	RedisSentinelPassword  secret        `env:"REDIS_SENTINEL_PASSWORD"`
	RedisClusterAddrs      []string      `env:"REDIS_CLUSTER_ADDRS"`
	RedisUsername          string        `env:"REDIS_USERNAME"`
	RedisPassword          secret        `env:"REDIS_PASSWORD"`
	LimitPhoneCooldown     time.Duration `env:"LIMIT_PHONE_COOLDOWN"`
	LimitPhoneSendsPerHour int           `env:"LIMIT_PHONE_SENDS_PER_HOUR"`
	LimitIPSendsPerHour    int           `env:"LIMIT_IP_SENDS_PER_HOUR"`
	LimitIPChecksPerHour   int           `env:"LIMIT_IP_CHECKS_PER_HOUR"`
	LimitGlobalSendsPerMin int           `env:"LIMIT_GLOBAL_SENDS_PER_MINUTE"`
	LimitPhoneChecksPerHr  int           `env:"LIMIT_PHONE_CHECKS_PER_HOUR"`
	LimitIPv6Prefix        int           `env:"LIMIT_IPV6_PREFIX"`
	LimitKeySecret         secret        `env:"LIMIT_KEY_SECRET"`

	FraudBudgets           string        `env:"FRAUD_BUDGETS" envDefault:"enforce"`
	FraudCountryFloor      int           `env:"FRAUD_COUNTRY_FLOOR"`
	FraudPrefixFloor       int           `env:"FRAUD_PREFIX_FLOOR"`
	FraudPrefixDigits      int           `env:"FRAUD_PREFIX_DIGITS"`
	FraudTrustedFor        time.Duration `env:"FRAUD_TRUSTED_FOR"`
	FraudAction            string        `env:"FRAUD_ACTION" envDefault:"refuse"`
	SendChallenge          string        `env:"SEND_CHALLENGE" envDefault:"risk"`
	ChallengeDifficulty    int64         `env:"CHALLENGE_DIFFICULTY"`
	ChallengeTTL           time.Duration `env:"CHALLENGE_TTL"`
	LimitFailOpenSends     bool          `env:"LIMIT_FAIL_OPEN_SENDS" envDefault:"false"`
	LimitFailOpenChecks    bool          `env:"LIMIT_FAIL_OPEN_CHECKS" envDefault:"true"`
	AllowedCountries       []string      `env:"ALLOWED_COUNTRIES"`
	TestNumbers            secret        `env:"TEST_NUMBERS"`
	AllowTestNumbersInProd bool          `env:"ALLOW_TEST_NUMBERS_IN_PRODUCTION" envDefault:"false"`

	PublicURL             string        `env:"PUBLIC_URL"`
	ReceiptAudience       string        `env:"RECEIPT_AUDIENCE"`
	ReceiptTTL            time.Duration `env:"RECEIPT_TTL" envDefault:"5m"`
	ReceiptSigningKeyFile string        `env:"RECEIPT_SIGNING_KEY_FILE"`
	ReceiptReturnOrigins  []string      `env:"RECEIPT_RETURN_ORIGINS"`

	// What check made of the values above, typed, so nothing parses a
	// setting twice.
	budgetMode    abuse.BudgetMode
	challengeMode abuse.ChallengeMode
	phones        verify.PhoneParser
	channels      verify.Channels
	trusted       []netip.Prefix
	countries     []string            // ALLOWED_COUNTRIES' countries, without calling codes
	testNumbers   map[string]string   // E.164 → code
	receiptKeys   []receipt.Key       // nil: generate one (development) or no receipts
	redis         *redisclient.Config // where Redis is, in one of its shapes; nil without any
	issuer        string              // the receipts' "iss"
	audience      string              // the receipts' "aud"
}

// Backend names.
const (
	backendTwilio    = "twilio"
	backendMessaging = "messaging"
	backendDev       = "dev"
)

// secret is a configuration value that must never reach a log.
type secret string

func (s *secret) UnmarshalText(b []byte) error { *s = secret(b); return nil }
func (s secret) String() string                { return "[redacted]" }
func (s secret) LogValue() slog.Value          { return slog.StringValue("[redacted]") }

// loadConfig reads and checks the configuration. Its error names every bad
// variable, one per line, so an operator fixes them all in one go.
func loadConfig(environ []string) (config, error) {
	cfg := defaultConfig()
	vars := envMap(environ)
	var problems []string
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: vars}); err != nil {
		problems = append(problems, parseProblems(err)...)
	}
	problems = append(problems, cfg.check(vars)...)
	if len(problems) > 0 {
		return cfg, fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// defaultConfig is where the settings whose defaults their packages own
// start from: a variable that is set replaces its field, an unset one
// leaves the package's default.
func defaultConfig() config {
	l, b := abuse.DefaultLimits(), abuse.DefaultBudgets()
	return config{
		LimitPhoneCooldown:     l.PhoneCooldown,
		LimitPhoneSendsPerHour: l.PhoneSendsPerHour,
		LimitIPSendsPerHour:    l.IPSendsPerHour,
		LimitIPChecksPerHour:   l.IPChecksPerHour,
		LimitGlobalSendsPerMin: l.GlobalSendsPerMinute,
		LimitPhoneChecksPerHr:  l.PhoneChecksPerHour,
		LimitIPv6Prefix:        l.IPv6Prefix,
		FraudCountryFloor:      b.CountryFloor,
		FraudPrefixFloor:       b.PrefixFloor,
		FraudPrefixDigits:      b.PrefixDigits,
		FraudTrustedFor:        b.TrustedFor,
		ChallengeDifficulty:    challenge.DefaultDifficulty,
		ChallengeTTL:           challenge.DefaultTTL,
	}
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// parseProblems turns env's errors, which name struct fields, into lines
// that name variables.
func parseProblems(err error) []string {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			out = append(out, fmt.Sprintf("%s: cannot parse: %v", fieldKey(pe.Name), pe.Err))
			continue
		}
		out = append(out, e.Error())
	}
	return out
}

// fieldKey answers the variable behind a config field.
func fieldKey(name string) string {
	f, ok := reflect.TypeFor[config]().FieldByName(name)
	if !ok {
		return name
	}
	key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return key
}

// check validates what parsing cannot, and chooses the backend when
// VERIFY_BACKEND is unset.
func (c *config) check(vars map[string]string) problems {
	var p problems
	bad := p.add

	switch c.AppEnv {
	case "development", "test", "staging", "production":
	default:
		bad("APP_ENV", "must be development, test, staging or production, not %q", c.AppEnv)
	}
	checkBounds(&p, bound[int]{"PORT", c.Port, 0, 65535, fmt.Sprintf("must be a port number, not %d", c.Port)})
	if c.Host != "" && net.ParseIP(c.Host) == nil && c.Host != "localhost" {
		bad("HOST", "must be an IP address to listen on, not %q", c.Host)
	}
	var err error
	if c.channels, err = verify.ParseChannels(c.AllowedChannels); err != nil {
		bad("ALLOWED_CHANNELS", "%v", err)
	}
	if c.phones, err = verify.NewPhoneParser(c.DefaultRegion); err != nil {
		bad("DEFAULT_REGION", "%v (want an ISO 3166 alpha-2 code such as US)", err)
	}
	for _, o := range c.CORSAllowedOrigins {
		if _, err := server.ExactOrigin(o); err != nil {
			bad("CORS_ALLOWED_ORIGINS", "%v", err)
		}
	}
	checkBounds(&p,
		bound[time.Duration]{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 1, forever, "must be positive"},
		bound[time.Duration]{"SHUTDOWN_DRAIN", c.ShutdownDrain, 0, forever, "must not be negative (0 skips the drain)"},
		bound[time.Duration]{"UPSTREAM_MAX_WAIT", c.UpstreamMaxWait, 0, 10 * time.Second, "must be between 0 and 10s"})
	checkBounds(&p, bound[int]{"UPSTREAM_MAX_IN_FLIGHT", c.UpstreamMaxInFlight, 0, 100000,
		"must be between 1 and 100000 (unset: TWILIO_MAX_CONNS)"})
	if c.UpstreamMaxInFlight == 0 {
		// Sized for the pool: more calls in flight than connections only
		// queue inside the transport, holding memory and a client.
		c.UpstreamMaxInFlight = max(c.TwilioMaxConns, 1)
	}
	p = append(p, c.checkAbuse()...)
	p = append(p, c.checkServing()...)
	p = append(p, c.checkReceipts()...)

	if c.Backend == "" {
		c.Backend = backendDev
		for _, k := range []string{"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY",
			"TWILIO_API_SECRET", "TWILIO_VERIFY_SERVICE_SID"} {
			if vars[k] != "" {
				c.Backend = backendTwilio
			}
		}
	}
	switch c.Backend {
	case backendTwilio:
		p = append(p, c.checkTwilio()...)
		if _, err := twiliohttp.CheckBaseURL(c.TwilioBaseURL); err != nil {
			bad("TWILIO_VERIFY_BASE_URL", "%v", err)
		}
		if err := twiliohttp.CheckServiceSID(c.TwilioServiceSID); err != nil {
			bad("TWILIO_VERIFY_SERVICE_SID", "required: %v", err)
		}
	case backendMessaging:
		p = append(p, c.checkTwilio()...)
		p = append(p, c.checkMessaging()...)
	case backendDev:
		if c.DevCodeSecret != "" && len(c.DevCodeSecret) < engine.MinSecretLen {
			bad("DEV_CODE_SECRET", "must be at least %d characters (or unset for a random one)", engine.MinSecretLen)
		}
		if c.AppEnv == "production" {
			bad("VERIFY_BACKEND", "the development backend prints codes to its log and never sends them; "+
				"it cannot run with APP_ENV=production (configure Twilio)")
		}
	default:
		bad("VERIFY_BACKEND", "must be twilio, messaging or dev, not %q", c.Backend)
	}
	return p
}

// problems collects configuration errors, one line per variable.
type problems []string

func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, name+": "+fmt.Sprintf(format, args...))
}

// Range rules: the settings whose only rule is a range are checked from
// these tables, one line each, rather than an if apiece.
type bound[T int | int64 | time.Duration] struct {
	name   string
	v      T
	lo, hi T
	say    string // what the setting must be, as the operator reads it
}

func checkBounds[T int | int64 | time.Duration](p *problems, rules ...bound[T]) {
	for _, r := range rules {
		if r.v < r.lo || r.v > r.hi {
			p.add(r.name, "%s", r.say)
		}
	}
}

// forever is an upper bound that is no bound.
const forever = time.Duration(1<<63 - 1)
