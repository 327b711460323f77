package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testServiceSID = "VA0123456789abcdef0123456789abcdef"
	testToken      = "s3cr3tT0kenValue0123456789abcdef"
)

// prodFormSecret is the FORM_SECRET production requires.
const prodFormSecret = "FORM_SECRET=0123456789abcdef0123456789abcdef-form"

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
		{"production on twilio", twilioEnv("APP_ENV=production", prodFormSecret), backendTwilio},
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
		{"fraud settings", []string{"LIMIT_KEY_SECRET=short", "LIMIT_IPV6_PREFIX=8", "ALLOWED_COUNTRIES=+44", "LIMIT_PHONE_CHECKS_PER_HOUR=-1",
			"FRAUD_TRUSTED_FOR=0s"},
			[]string{"LIMIT_KEY_SECRET", "LIMIT_IPV6_PREFIX", "ALLOWED_COUNTRIES", "LIMIT_PHONE_CHECKS_PER_HOUR", "FRAUD_TRUSTED_FOR"}},
		{"messaging without its senders", []string{"VERIFY_BACKEND=messaging", "TWILIO_ACCOUNT_SID=" + testAccountSID,
			"TWILIO_AUTH_TOKEN=" + testToken, "ALLOWED_CHANNELS=sms,call,whatsapp", "CODE_SECRET=short", "CODE_LENGTH=12"},
			[]string{"REDIS_URL", "TWILIO_MESSAGING_SERVICE_SID", "TWILIO_FROM_NUMBER", "TWILIO_WHATSAPP_FROM", "CODE_SECRET", "CODE_LENGTH"}},
		{"messaging with malformed senders", []string{"VERIFY_BACKEND=messaging", "TWILIO_ACCOUNT_SID=" + testAccountSID,
			"TWILIO_AUTH_TOKEN=" + testToken, "REDIS_URL=redis://127.0.0.1:6379/0", "TWILIO_MESSAGING_SERVICE_SID=MG123",
			"TWILIO_FROM_NUMBER=5005550006", "ANDROID_APP_HASH=short", "TWILIO_API_BASE_URL=http://api.example.com"},
			[]string{"TWILIO_MESSAGING_SERVICE_SID", "TWILIO_FROM_NUMBER", "ANDROID_APP_HASH", "TWILIO_API_BASE_URL"}},
		{"messaging in production without a code secret", twilioEnv("APP_ENV=production", "VERIFY_BACKEND=messaging",
			"REDIS_URL=redis://127.0.0.1:6379/0", "LIMIT_KEY_SECRET=0123456789abcdef0123456789abcdef", "TWILIO_FROM_NUMBER=+15005550006"),
			[]string{"CODE_SECRET"}},
		{"shared Redis in production without a key", twilioEnv("APP_ENV=production", "REDIS_URL=redis://127.0.0.1:6379/0"), []string{"LIMIT_KEY_SECRET"}},
		{"production without the secrets instances share", twilioEnv("APP_ENV=production", "VERIFY_BACKEND=messaging",
			"REDIS_SENTINEL_ADDRS=127.0.0.1:26379", "REDIS_SENTINEL_MASTER=verifyd", "TWILIO_FROM_NUMBER=+15005550006"),
			[]string{"FORM_SECRET", "CODE_SECRET", "LIMIT_KEY_SECRET"}},
		{"two Redis shapes at once", []string{"REDIS_URL=redis://127.0.0.1:6379/0", "REDIS_CLUSTER_ADDRS=127.0.0.1:7000"},
			[]string{"REDIS_URL"}}, // its sentence names both
		{"a master name without Sentinels", []string{"REDIS_SENTINEL_MASTER=verifyd"}, []string{"REDIS_SENTINEL_MASTER"}},
		{"Sentinels without a master name", []string{"REDIS_SENTINEL_ADDRS=127.0.0.1:26379"}, []string{"REDIS_SENTINEL_MASTER"}},
		{"a seed that is not host:port", []string{"REDIS_CLUSTER_ADDRS=127.0.0.1:7000, cache"}, []string{"REDIS_CLUSTER_ADDRS"}},
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
	cfg, err := loadConfig(twilioEnv("APP_ENV=production", prodFormSecret, "TEST_NUMBERS=+15005550006:123456",
		"ALLOW_TEST_NUMBERS_IN_PRODUCTION=true", "TRUSTED_PROXIES=10.0.0.0/8, 192.0.2.7", "REDIS_URL=redis://:pw@127.0.0.1:6379/0",
		"LIMIT_KEY_SECRET=0123456789abcdef0123456789abcdef", "ALLOWED_COUNTRIES=US,GB,+883"))
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

// TestLoadConfigReceipts: every way a receipt setting can be wrong is named
// at start, and nothing half-starts.
func TestLoadConfigReceipts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, _ := writeKeyFile(t, 1)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := writePEM(t, dir, "pub.pem", "PUBLIC KEY", rsaKey.Public())
	rsaFile := writePEM(t, dir, "rsa.pem", "PRIVATE KEY", rsaKey)
	weakFile := writePEM(t, dir, "p384.pem", "PRIVATE KEY", p384)
	unreadable := write("unreadable.pem", "x", 0o000)

	tests := []struct {
		name    string
		environ []string
		want    string // a piece of the message, beside the variable's name
	}{
		{"missing file", []string{"RECEIPT_SIGNING_KEY_FILE=" + filepath.Join(dir, "nope.pem")}, "no such file"},
		{"a directory", []string{"RECEIPT_SIGNING_KEY_FILE=" + dir}, "is a directory"},
		{"empty file", []string{"RECEIPT_SIGNING_KEY_FILE=" + write("empty.pem", "", 0o600)}, "no PEM private key"},
		{"a public key", []string{"RECEIPT_SIGNING_KEY_FILE=" + pub}, "private keys"},
		{"an RSA key", []string{"RECEIPT_SIGNING_KEY_FILE=" + rsaFile}, "RSA"},
		{"a P-384 key", []string{"RECEIPT_SIGNING_KEY_FILE=" + weakFile}, "P-384"},
		{"TTL zero", []string{"RECEIPT_TTL=0s"}, "positive"},
		{"TTL a day", []string{"RECEIPT_TTL=24h"}, "at most"},
		{"public URL not a URL", []string{"PUBLIC_URL=verify.example.com"}, "base URL"},
		{"return origin with a path", []string{"RECEIPT_RETURN_ORIGINS=https://app.example.com/cb"}, "exact origin"},
		{"production key without issuer or audience", twilioEnv("APP_ENV=production", "RECEIPT_SIGNING_KEY_FILE="+good), "required"},
		{"production over plain http", twilioEnv("APP_ENV=production", "RECEIPT_SIGNING_KEY_FILE="+good,
			"PUBLIC_URL=http://verify.example.com", "RECEIPT_AUDIENCE=app"), "https"},
	}
	if os.Geteuid() != 0 { // root reads anything; "a directory" fails for root too
		tests = append(tests, struct {
			name    string
			environ []string
			want    string
		}{"unreadable file", []string{"RECEIPT_SIGNING_KEY_FILE=" + unreadable}, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadConfig(%q) = %v, want an error saying %q", tt.environ, err, tt.want)
			}
			name := strings.SplitN(tt.environ[len(tt.environ)-1], "=", 2)[0]
			if strings.HasPrefix(tt.name, "production") {
				name = "PUBLIC_URL"
			}
			if !strings.Contains(err.Error(), name+":") {
				t.Errorf("loadConfig(%q) = %q, want it to name %s", tt.environ, err, name)
			}
			if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), "MII") {
				t.Errorf("the error quotes key material: %v", err)
			}
		})
	}

	// The good cases: production with everything, and production without a
	// key (no receipts), and development without a key (one per process).
	cfg, err := loadConfig(twilioEnv("APP_ENV=production", prodFormSecret, "RECEIPT_SIGNING_KEY_FILE="+good,
		"PUBLIC_URL=https://verify.example.com/", "RECEIPT_AUDIENCE=https://app.example.com", "RECEIPT_RETURN_ORIGINS=https://app.example.com"))
	if err != nil || len(cfg.receiptKeys) != 1 || cfg.issuer != "https://verify.example.com" || cfg.audience != "https://app.example.com" || !cfg.receiptsOn() {
		t.Errorf("production with a key: %+v, %v", cfg, err)
	}
	if cfg, err := loadConfig(twilioEnv("APP_ENV=production", prodFormSecret)); err != nil || cfg.receiptsOn() {
		t.Errorf("production without a key: receipts on = %v, %v; want off", cfg.receiptsOn(), err)
	}
	if cfg, err := loadConfig(nil); err != nil || !cfg.receiptsOn() || cfg.issuer != "http://localhost:8080" {
		t.Errorf("development without a key: receipts on = %v, issuer %q, %v", cfg.receiptsOn(), cfg.issuer, err)
	}
}

// writePEM writes key as one PEM block of type typ (PKCS#8 for a private
// key, PKIX for a public one) and answers the file's path.
func writePEM(t *testing.T, dir, name, typ string, key any) string {
	t.Helper()
	var der []byte
	var err error
	if typ == "PUBLIC KEY" {
		der, err = x509.MarshalPKIXPublicKey(key)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(key)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
