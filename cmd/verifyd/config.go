package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/redis/go-redis/v9"

	"verifyd/server"
	"verifyd/server/abuse"
	"verifyd/server/receipt"
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
	LimitPhoneCooldown     time.Duration `env:"LIMIT_PHONE_COOLDOWN" envDefault:"30s"`
	LimitPhoneSendsPerHour int           `env:"LIMIT_PHONE_SENDS_PER_HOUR" envDefault:"5"`
	LimitIPSendsPerHour    int           `env:"LIMIT_IP_SENDS_PER_HOUR" envDefault:"20"`
	LimitIPChecksPerHour   int           `env:"LIMIT_IP_CHECKS_PER_HOUR" envDefault:"60"`
	LimitGlobalSendsPerMin int           `env:"LIMIT_GLOBAL_SENDS_PER_MINUTE" envDefault:"60"`
	LimitPhoneChecksPerHr  int           `env:"LIMIT_PHONE_CHECKS_PER_HOUR" envDefault:"15"`
	LimitIPv6Prefix        int           `env:"LIMIT_IPV6_PREFIX" envDefault:"64"`
	LimitKeySecret         secret        `env:"LIMIT_KEY_SECRET"`

	FraudBudgets           string        `env:"FRAUD_BUDGETS" envDefault:"enforce"`
	FraudCountryFloor      int           `env:"FRAUD_COUNTRY_FLOOR" envDefault:"60"`
	FraudPrefixFloor       int           `env:"FRAUD_PREFIX_FLOOR" envDefault:"20"`
	FraudPrefixDigits      int           `env:"FRAUD_PREFIX_DIGITS" envDefault:"3"`
	FraudTrustedFor        time.Duration `env:"FRAUD_TRUSTED_FOR" envDefault:"2160h"`
	SendChallenge          string        `env:"SEND_CHALLENGE" envDefault:"risk"`
	ChallengeDifficulty    int64         `env:"CHALLENGE_DIFFICULTY" envDefault:"50000"`
	ChallengeTTL           time.Duration `env:"CHALLENGE_TTL" envDefault:"5m"`
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
	countries     []string          // ALLOWED_COUNTRIES' countries, without calling codes
	testNumbers   map[string]string // E.164 → code
	receiptKeys   []receipt.Key     // nil: generate one (development) or no receipts
	issuer        string            // the receipts' "iss"
	audience      string            // the receipts' "aud"
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
	var cfg config
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
	if c.Port < 0 || c.Port > 65535 {
		bad("PORT", "must be a port number, not %d", c.Port)
	}
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
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.ShutdownDrain < 0 {
		bad("SHUTDOWN_DRAIN", "must not be negative (0 skips the drain)")
	}
	if c.UpstreamMaxInFlight < 0 || c.UpstreamMaxInFlight > 100000 {
		bad("UPSTREAM_MAX_IN_FLIGHT", "must be between 1 and 100000 (unset: TWILIO_MAX_CONNS)")
	}
	if c.UpstreamMaxInFlight == 0 {
		// Sized for the pool: more calls in flight than connections only
		// queue inside the transport, holding memory and a client.
		c.UpstreamMaxInFlight = max(c.TwilioMaxConns, 1)
	}
	if c.UpstreamMaxWait < 0 || c.UpstreamMaxWait > 10*time.Second {
		bad("UPSTREAM_MAX_WAIT", "must be between 0 and 10s")
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

func (c *config) checkTwilio() problems {
	var p problems
	bad := p.add
	if err := twiliohttp.CheckAccountSID(c.TwilioAccountSID); err != nil {
		bad("TWILIO_ACCOUNT_SID", "required: %v", err)
	}
	switch {
	case c.TwilioAPIKey != "" || c.TwilioAPISecret != "":
		if err := twiliohttp.CheckAPIKey(c.TwilioAPIKey); err != nil {
			bad("TWILIO_API_KEY", "%v", err)
		}
		if err := twiliohttp.CheckCredential(string(c.TwilioAPISecret)); err != nil {
			bad("TWILIO_API_SECRET", "required with TWILIO_API_KEY: %v", err)
		}
	case c.TwilioAuthToken == "":
		bad("TWILIO_AUTH_TOKEN", "required (or TWILIO_API_KEY and TWILIO_API_SECRET)")
	default:
		if err := twiliohttp.CheckCredential(string(c.TwilioAuthToken)); err != nil {
			bad("TWILIO_AUTH_TOKEN", "%v", err)
		}
	}
	if c.TwilioConnectTimeout <= 0 {
		bad("TWILIO_CONNECT_TIMEOUT", "must be positive")
	}
	if c.TwilioRequestTimeout <= 0 {
		bad("TWILIO_REQUEST_TIMEOUT", "must be positive")
	}
	if c.TwilioMaxConns < 1 || c.TwilioMaxConns > 10000 {
		bad("TWILIO_MAX_CONNS", "must be between 1 and 10000")
	}
	return p
}

// androidHash is the SMS Retriever's 11-character app hash.
var androidHash = regexp.MustCompile(`^[A-Za-z0-9+/]{11}$`)

// checkMessaging validates the messaging backend: its senders, its Redis,
// its code secret, and the channels it can serve.
func (c *config) checkMessaging() problems {
	var p problems
	bad := p.add
	if _, err := twiliohttp.CheckBaseURL(c.TwilioAPIBaseURL); err != nil {
		bad("TWILIO_API_BASE_URL", "%v", err)
	}
	if c.RedisURL == "" {
		bad("REDIS_URL", "required with VERIFY_BACKEND=messaging: the codes live in Redis, shared by the instances")
	}
	if c.TwilioMessagingServiceSID != "" {
		if err := twiliohttp.CheckMessagingServiceSID(c.TwilioMessagingServiceSID); err != nil {
			bad("TWILIO_MESSAGING_SERVICE_SID", "%v", err)
		}
	}
	if c.TwilioFromNumber != "" {
		if n, err := (verify.PhoneParser{}).Parse(c.TwilioFromNumber); err != nil || n.E164() != c.TwilioFromNumber {
			bad("TWILIO_FROM_NUMBER", "must be a Twilio number in E.164, such as +15005550006")
		}
	}
	if c.TwilioMessagingServiceSID == "" && c.TwilioFromNumber == "" {
		bad("TWILIO_MESSAGING_SERVICE_SID", "one of TWILIO_MESSAGING_SERVICE_SID (preferred) or TWILIO_FROM_NUMBER is required")
	}
	if c.channels.Allows(verify.ChannelCall) && c.TwilioFromNumber == "" {
		bad("TWILIO_FROM_NUMBER", "required with call in ALLOWED_CHANNELS: calls come from a voice-capable Twilio number")
	}
	if c.channels.Allows(verify.ChannelWhatsApp) {
		if n, err := (verify.PhoneParser{}).Parse(c.TwilioWhatsAppFrom); err != nil || n.E164() != c.TwilioWhatsAppFrom {
			bad("TWILIO_WHATSAPP_FROM", "required with whatsapp in ALLOWED_CHANNELS: the WhatsApp sender in E.164")
		}
	}
	switch {
	case c.CodeSecret != "" && len(c.CodeSecret) < engine.MinSecretLen:
		bad("CODE_SECRET", "must be at least %d characters", engine.MinSecretLen)
	case c.CodeSecret == "" && c.AppEnv == "production":
		bad("CODE_SECRET", "required with VERIFY_BACKEND=messaging in production: it keys the codes' hashes "+
			"and seals, and every instance must share it")
	}
	if c.CodeLength < 4 || c.CodeLength > 10 {
		bad("CODE_LENGTH", "must be between 4 and 10")
	}
	if c.AndroidAppHash != "" && !androidHash.MatchString(c.AndroidAppHash) {
		bad("ANDROID_APP_HASH", "must be the 11-character app hash of the SMS Retriever API")
	}
	if len(c.AppName) > 30 {
		bad("APP_NAME", "must be at most 30 characters: it goes into every SMS")
	}
	return p
}

// codeSecret is the engine's key: CODE_SECRET, else DEV_CODE_SECRET, else
// nil (a random one per process).
func (c *config) codeSecret() []byte {
	if c.CodeSecret != "" {
		return []byte(c.CodeSecret)
	}
	return secretBytes(c.DevCodeSecret)
}

// secretBytes answers nil for an unset secret, so that the consumer picks a
// random one rather than keying with nothing.
func secretBytes(s secret) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// checkAbuse validates the abuse-protection settings (see server/abuse).
func (c *config) checkAbuse() problems {
	var p problems
	bad := p.add
	var err error
	if c.trusted, err = c.trustedProxies(); err != nil {
		bad("TRUSTED_PROXIES", "%v", err)
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(string(c.RedisURL)); err != nil {
			// The parser's error may quote the URL, password and all.
			bad("REDIS_URL", "must be a redis:// or rediss:// URL")
		}
	}
	if c.LimitPhoneCooldown < 0 {
		bad("LIMIT_PHONE_COOLDOWN", "must not be negative")
	}
	for name, v := range map[string]int{
		"LIMIT_PHONE_SENDS_PER_HOUR":    c.LimitPhoneSendsPerHour,
		"LIMIT_IP_SENDS_PER_HOUR":       c.LimitIPSendsPerHour,
		"LIMIT_IP_CHECKS_PER_HOUR":      c.LimitIPChecksPerHour,
		"LIMIT_GLOBAL_SENDS_PER_MINUTE": c.LimitGlobalSendsPerMin,
		"LIMIT_PHONE_CHECKS_PER_HOUR":   c.LimitPhoneChecksPerHr,
	} {
		if v < 0 {
			bad(name, "must not be negative (0 turns the limit off)")
		}
	}
	if c.countries, _, err = abuse.ParseAllowedCountries(c.AllowedCountries); err != nil {
		bad("ALLOWED_COUNTRIES", "%v", err)
	}
	if c.budgetMode, err = abuse.ParseBudgetMode(c.FraudBudgets); err != nil {
		bad("FRAUD_BUDGETS", "%v", err)
	}
	if c.challengeMode, err = abuse.ParseChallengeMode(c.SendChallenge); err != nil {
		bad("SEND_CHALLENGE", "%v", err)
	}
	if c.FraudCountryFloor < 1 || c.FraudPrefixFloor < 1 {
		bad("FRAUD_COUNTRY_FLOOR", "FRAUD_COUNTRY_FLOOR and FRAUD_PREFIX_FLOOR must be at least 1")
	}
	if c.FraudPrefixDigits < 1 || c.FraudPrefixDigits > 8 {
		bad("FRAUD_PREFIX_DIGITS", "must be between 1 and 8")
	}
	if c.FraudTrustedFor <= 0 {
		// 0 would reach the guard as "unset" and mean its 90 days: the
		// opposite of what someone who writes 0 wants.
		bad("FRAUD_TRUSTED_FOR", "must be positive (a short one, such as 1h, trusts a verified number little)")
	}
	if c.ChallengeDifficulty < 1000 || c.ChallengeDifficulty > 100_000_000 {
		bad("CHALLENGE_DIFFICULTY", "must be between 1000 and 100000000 (hashes a solver tries at most)")
	}
	if c.ChallengeTTL < 10*time.Second || c.ChallengeTTL > time.Hour {
		bad("CHALLENGE_TTL", "must be between 10s and 1h")
	}
	if c.LimitIPv6Prefix < 16 || c.LimitIPv6Prefix > 128 {
		bad("LIMIT_IPV6_PREFIX", "must be between 16 and 128 (64 groups a host's /64)")
	}
	switch {
	case c.LimitKeySecret != "" && len(c.LimitKeySecret) < 32:
		bad("LIMIT_KEY_SECRET", "must be at least 32 characters")
	case c.LimitKeySecret == "" && c.RedisURL != "" && c.AppEnv == "production":
		bad("LIMIT_KEY_SECRET", "required with REDIS_URL in production: it keys the hashes that stand for "+
			"numbers in Redis, and every instance must share it")
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

// checkServing validates probes, metrics and TLS settings.
func (c *config) checkServing() problems {
	var p problems
	bad := p.add
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("METRICS_ADDR", "must be host:port such as 127.0.0.1:9090, not %q", c.MetricsAddr)
		}
	}
	if c.ReadinessCacheTTL <= 0 {
		bad("READINESS_CACHE_TTL", "must be positive")
	}
	if c.ReadinessTimeout <= 0 {
		bad("READINESS_TIMEOUT", "must be positive")
	}
	if c.DebugAddr != "" {
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			bad("DEBUG_ADDR", "must be a loopback host:port such as 127.0.0.1:6060: profiles show the process's insides")
		}
	}
	if c.FormSecret != "" && len(c.FormSecret) < 32 {
		bad("FORM_SECRET", "must be at least 32 characters (or unset for a random one per process)")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE go together")
	}
	return p
}

// problems collects configuration errors, one line per variable.
type problems []string

func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, name+": "+fmt.Sprintf(format, args...))
}

// maxReceiptTTL bounds RECEIPT_TTL: a receipt is a bearer proof, meant to
// be handed over at once, not kept.
const maxReceiptTTL = time.Hour

// checkReceipts validates the receipt settings and loads the signing keys.
// Without a key file, development signs with a key made per process and
// production runs without receipts (run says so at start).
func (c *config) checkReceipts() problems {
	var p problems
	bad := p.add
	prod := c.AppEnv == "production"
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			bad("PUBLIC_URL", "must be verifyd's external base URL, such as https://verify.example.com")
		} else if prod && u.Scheme != "https" {
			bad("PUBLIC_URL", "must be https with APP_ENV=production")
		}
		c.issuer = strings.TrimRight(c.PublicURL, "/")
	}
	if c.ReceiptTTL <= 0 || c.ReceiptTTL > maxReceiptTTL {
		bad("RECEIPT_TTL", "must be positive and at most %v", maxReceiptTTL)
	}
	for _, o := range c.ReceiptReturnOrigins {
		if _, err := server.ExactOrigin(o); err != nil {
			bad("RECEIPT_RETURN_ORIGINS", "%v", err)
		}
	}
	if f := c.ReceiptSigningKeyFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			// The path is the operator's own; the error says missing or
			// not readable.
			bad("RECEIPT_SIGNING_KEY_FILE", "cannot read %q: %v", f, errors.Unwrap(err))
		} else if c.receiptKeys, err = receipt.ParseKeys(data); err != nil {
			bad("RECEIPT_SIGNING_KEY_FILE", "%v", err)
		}
	}
	c.audience = c.ReceiptAudience
	if prod && c.ReceiptSigningKeyFile != "" {
		if c.PublicURL == "" {
			bad("PUBLIC_URL", "required with RECEIPT_SIGNING_KEY_FILE in production: it is the receipts' issuer")
		}
		if c.ReceiptAudience == "" {
			bad("RECEIPT_AUDIENCE", "required with RECEIPT_SIGNING_KEY_FILE in production: name the app the receipts are for")
		}
	}
	// Development defaults: this machine as issuer, the issuer as audience.
	if c.issuer == "" {
		c.issuer = "http://localhost:" + strconv.Itoa(c.Port)
	}
	if c.audience == "" {
		c.audience = c.issuer
	}
	return p
}

// receiptsOn reports whether verifyd signs receipts: always outside
// production, where a key is made when none is configured; in production
// only with a key file.
func (c *config) receiptsOn() bool {
	return c.AppEnv != "production" || c.receiptKeys != nil
}
