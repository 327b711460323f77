package main

import (
	"regexp"
	"strings"
	"time"

	"verifyd/server"
	"verifyd/server/twiliohttp"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
)

// checkTwilio validates the Twilio account and transport settings both
// Twilio backends use.
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
	checkBounds(&p,
		bound[time.Duration]{"TWILIO_CONNECT_TIMEOUT", c.TwilioConnectTimeout, 1, forever, "must be positive"},
		bound[time.Duration]{"TWILIO_REQUEST_TIMEOUT", c.TwilioRequestTimeout, 1, forever, "must be positive"})
	checkBounds(&p, bound[int]{"TWILIO_MAX_CONNS", c.TwilioMaxConns, 1, 10000, "must be between 1 and 10000"})
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
	if c.redis == nil {
		bad("REDIS_URL", "required with VERIFY_BACKEND=messaging (or REDIS_SENTINEL_ADDRS, or REDIS_CLUSTER_ADDRS): "+
			"the codes live in Redis, shared by the instances")
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
	checkBounds(&p, bound[int]{"CODE_LENGTH", c.CodeLength, 4, 10, "must be between 4 and 10"})
	if c.AndroidAppHash != "" && !androidHash.MatchString(c.AndroidAppHash) {
		bad("ANDROID_APP_HASH", "must be the 11-character app hash of the SMS Retriever API")
	}
	if c.PublicURL != "" && c.TwilioAuthToken == "" {
		bad("TWILIO_AUTH_TOKEN", "required with PUBLIC_URL and VERIFY_BACKEND=messaging: Twilio signs its status callbacks "+
			"with the account's auth token, also when the API is called with an API key")
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

// statusCallbackURL is where Twilio posts the messaging backend's status
// callbacks: PUBLIC_URL + /webhooks/twilio/status; "" without PUBLIC_URL,
// or for the other backends, which get none.
func (c *config) statusCallbackURL() string {
	if c.Backend != backendMessaging || c.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(c.PublicURL, "/") + server.StatusCallbackPath
}
