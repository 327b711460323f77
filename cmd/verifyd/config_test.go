package main

import (
	"strings"
	"testing"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testServiceSID = "VA0123456789abcdef0123456789abcdef"
	testToken      = "s3cr3tT0kenValue0123456789abcdef"
)

func twilioEnv(extra ...string) []string {
	return append([]string{
		"TWILIO_ACCOUNT_SID=" + testAccountSID,
		"TWILIO_AUTH_TOKEN=" + testToken,
		"TWILIO_VERIFY_SERVICE_SID=" + testServiceSID,
	}, extra...)
}

func TestLoadConfigChoosesBackend(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    string
	}{
		{"nothing set", nil, backendDev},
		{"credentials set", twilioEnv(), backendTwilio},
		{"explicit dev despite credentials", twilioEnv("VERIFY_BACKEND=dev"), backendDev},
		{"api key", []string{"TWILIO_ACCOUNT_SID=" + testAccountSID, "TWILIO_VERIFY_SERVICE_SID=" + testServiceSID,
			"TWILIO_API_KEY=SK0123456789abcdef0123456789abcdef", "TWILIO_API_SECRET=abc123"}, backendTwilio},
		{"production on twilio", twilioEnv("APP_ENV=production"), backendTwilio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.environ)
			if err != nil {
				t.Fatalf("loadConfig(%q) = %v", tt.environ, err)
			}
			if cfg.Backend != tt.want {
				t.Errorf("loadConfig(%q).Backend = %q, want %q", tt.environ, cfg.Backend, tt.want)
			}
		})
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 || cfg.TwilioBaseURL != "https://verify.twilio.com" ||
		len(cfg.AllowedChannels) != 1 || cfg.AllowedChannels[0] != "sms" || len(cfg.CORSAllowedOrigins) != 0 {
		t.Errorf("defaults = %+v", cfg)
	}
}

// TestLoadConfigNamesEveryBadVariable checks that one error lists every
// problem, each by its variable, and never echoes a secret.
func TestLoadConfigNamesEveryBadVariable(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"partial twilio", []string{"TWILIO_ACCOUNT_SID=" + testAccountSID},
			[]string{"TWILIO_AUTH_TOKEN", "TWILIO_VERIFY_SERVICE_SID"}},
		{"malformed values", []string{"PORT=eighty", "TWILIO_REQUEST_TIMEOUT=soon", "LOG_LEVEL=loud"},
			[]string{"PORT", "TWILIO_REQUEST_TIMEOUT", "LOG_LEVEL"}},
		{"production on dev", []string{"APP_ENV=production"}, []string{"VERIFY_BACKEND"}},
		{"unknown backend", []string{"VERIFY_BACKEND=sns"}, []string{"VERIFY_BACKEND"}},
		{"unknown app env", []string{"APP_ENV=prod"}, []string{"APP_ENV"}},
		{"many at once", twilioEnv("PORT=70000", "ALLOWED_CHANNELS=sms,pigeon", "DEFAULT_REGION=XX",
			"CORS_ALLOWED_ORIGINS=*", "TWILIO_VERIFY_BASE_URL=http://gateway.example.com", "TWILIO_MAX_CONNS=0"),
			[]string{"PORT", "ALLOWED_CHANNELS", "DEFAULT_REGION", "CORS_ALLOWED_ORIGINS", "TWILIO_VERIFY_BASE_URL", "TWILIO_MAX_CONNS"}},
		{"token with symbols", []string{"TWILIO_ACCOUNT_SID=" + testAccountSID, "TWILIO_VERIFY_SERVICE_SID=" + testServiceSID,
			"TWILIO_AUTH_TOKEN=hunter2!secret"}, []string{"TWILIO_AUTH_TOKEN"}},
		{"bad sids", []string{"TWILIO_ACCOUNT_SID=AC123", "TWILIO_AUTH_TOKEN=abc", "TWILIO_VERIFY_SERVICE_SID=VE0123456789abcdef0123456789abcdef"},
			[]string{"TWILIO_ACCOUNT_SID", "TWILIO_VERIFY_SERVICE_SID"}},
		{"abuse settings", []string{"TRUSTED_PROXIES=10.0.0.0/8,proxy.internal", "REDIS_URL=http://:hunter2@cache:6379",
			"LIMIT_IP_SENDS_PER_HOUR=-1", "LIMIT_PHONE_COOLDOWN=-5s", "ALLOWED_COUNTRIES=US,XX", "TEST_NUMBERS=+15005550006"},
			[]string{"TRUSTED_PROXIES", "REDIS_URL", "LIMIT_IP_SENDS_PER_HOUR", "LIMIT_PHONE_COOLDOWN", "ALLOWED_COUNTRIES", "TEST_NUMBERS"}},
		{"test numbers in production", twilioEnv("APP_ENV=production", "TEST_NUMBERS=+15005550006:123456"), []string{"TEST_NUMBERS"}},
		{"serving settings", []string{"METRICS_ADDR=9090", "READINESS_CACHE_TTL=0s", "READINESS_TIMEOUT=-1s", "TLS_CERT_FILE=/x.crt", "FORM_SECRET=short", "DEBUG_ADDR=0.0.0.0:6060"},
			[]string{"METRICS_ADDR", "READINESS_CACHE_TTL", "READINESS_TIMEOUT", "TLS_CERT_FILE", "FORM_SECRET", "DEBUG_ADDR"}},
		{"short dev secret", []string{"DEV_CODE_SECRET=short"}, []string{"DEV_CODE_SECRET"}},
		{"origin with path", []string{"CORS_ALLOWED_ORIGINS=https://app.example.com/login"}, []string{"CORS_ALLOWED_ORIGINS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.environ)
			if err == nil {
				t.Fatalf("loadConfig(%q) = nil, want an error naming %v", tt.environ, tt.want)
			}
			for _, name := range tt.want {
				if !strings.Contains(err.Error(), name+":") {
					t.Errorf("loadConfig(%q) = %q, want it to name %s", tt.environ, err, name)
				}
			}
			for _, s := range []string{testToken, "hunter2"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("loadConfig error leaks a secret: %q", err)
				}
			}
		})
	}
}

func TestLoadConfigAcceptsLoopbackHTTP(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8081", "http://localhost:9000/prefix", "http://[::1]:80", "https://gw.example.com/twilio"} {
		if _, err := loadConfig(twilioEnv("TWILIO_VERIFY_BASE_URL=" + u)); err != nil {
			t.Errorf("TWILIO_VERIFY_BASE_URL=%s: %v", u, err)
		}
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	cfg, err := loadConfig(twilioEnv())
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join([]string{cfg.TwilioAuthToken.String(), cfg.TwilioAuthToken.LogValue().String()}, " "); strings.Contains(s, testToken) {
		t.Errorf("secret prints as %q", s)
	}
}

func TestLoadConfigAbuse(t *testing.T) {
	cfg, err := loadConfig(twilioEnv("APP_ENV=production", "TEST_NUMBERS=+15005550006:123456",
		"ALLOW_TEST_NUMBERS_IN_PRODUCTION=true", "TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.7", "REDIS_URL=redis://:pw@127.0.0.1:6379/0"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.trustedProxies()
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "192.0.2.7/32" {
		t.Errorf("trustedProxies = %v, %v", got, err)
	}
	if !cfg.LimitFailOpenChecks || cfg.LimitFailOpenSends || cfg.LimitPhoneCooldown.Seconds() != 30 {
		t.Errorf("abuse defaults = %+v", cfg)
	}
}
