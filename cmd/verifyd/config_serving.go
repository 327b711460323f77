package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"verifyd/server"
	"verifyd/server/receipt"
)

// checkServing validates probes, metrics and TLS settings.
func (c *config) checkServing() problems {
	var p problems
	bad := p.add
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("METRICS_ADDR", "must be host:port such as 127.0.0.1:9090, not %q", c.MetricsAddr)
		}
	}
	checkBounds(&p,
		bound[time.Duration]{"READINESS_CACHE_TTL", c.ReadinessCacheTTL, 1, forever, "must be positive"},
		bound[time.Duration]{"READINESS_TIMEOUT", c.ReadinessTimeout, 1, forever, "must be positive"})
	if c.DebugAddr != "" {
		host, _, err := net.SplitHostPort(c.DebugAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			bad("DEBUG_ADDR", "must be a loopback host:port such as 127.0.0.1:6060: profiles show the process's insides")
		}
	}
	switch {
	case c.FormSecret != "" && len(c.FormSecret) < 32:
		bad("FORM_SECRET", "must be at least 32 characters (or unset for a random one per process)")
	case c.FormSecret == "" && c.AppEnv == "production":
		bad("FORM_SECRET", "required with APP_ENV=production: it signs the form's state, and every instance "+
			"must share it to read another's")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "TLS_CERT_FILE and TLS_KEY_FILE go together")
	}
	return p
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
	checkBounds(&p, bound[time.Duration]{"RECEIPT_TTL", c.ReceiptTTL, 1, maxReceiptTTL,
		fmt.Sprintf("must be positive and at most %v", maxReceiptTTL)})
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
