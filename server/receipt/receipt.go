// Package receipt issues verifyd's signed verification receipts: a JWT
// (compact JWS) that an application's backend verifies against verifyd's
// published keys (a JWK set), so it can trust that a phone number was
// verified without trusting the browser that carried the answer.
//
// It holds the signing keys and the JOSE encoding, through go-jose; it knows
// nothing of HTTP or of how a verification happened.
package receipt

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is one signing key: its private half, its algorithm and its key id
// (the RFC 7638 thumbprint of its public JWK). It never prints or logs its
// material.
type Key struct {
	private crypto.Signer
	alg     jose.SignatureAlgorithm
	kid     string
}

// ID is the key's id: its RFC 7638 SHA-256 thumbprint, base64url.
func (k Key) ID() string { return k.kid }

// String names the key without its material.
func (k Key) String() string { return string(k.alg) + " key " + k.kid }

// GoString keeps %#v from printing the key's material.
func (k Key) GoString() string { return "receipt.Key{" + k.String() + "}" }

// LogValue logs the key without its material.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("alg", string(k.alg)), slog.String("kid", k.kid))
}

// newKey checks that private is a key receipts may be signed with and
// works out its algorithm and id.
func newKey(private any) (Key, error) {
	var k Key
	switch p := private.(type) {
	case ed25519.PrivateKey:
		k.private, k.alg = p, jose.EdDSA
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return Key{}, fmt.Errorf("an ECDSA key on %s: only P-256 (ES256) is accepted", p.Curve.Params().Name)
		}
		k.private, k.alg = p, jose.ES256
	case *rsa.PrivateKey:
		return Key{}, errors.New("an RSA key: only Ed25519 (EdDSA) and P-256 (ES256) keys are accepted")
	case *ecdh.PrivateKey:
		return Key{}, errors.New("an ECDH key: it cannot sign; use an Ed25519 or P-256 signing key")
	default:
		return Key{}, fmt.Errorf("a %T: only Ed25519 and P-256 private keys are accepted", private)
	}
	thumb, err := (&jose.JSONWebKey{Key: k.private.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return Key{}, fmt.Errorf("thumbprint: %w", err)
	}
	k.kid = base64.RawURLEncoding.EncodeToString(thumb)
	return k, nil
}

// GenerateKey makes a new Ed25519 key, for development when no key file is
// configured: its receipts verify only while the process runs.
func GenerateKey() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	return newKey(priv)
}

// ParseKeys reads a PEM file of one or more PKCS#8 private keys (Ed25519 or
// P-256). The first signs; all are published. Its errors name the block at
// fault and never quote key material.
func ParseKeys(data []byte) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i := 1; ; i++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
		case "PUBLIC KEY", "CERTIFICATE":
			return nil, fmt.Errorf("PEM block %d is a %s: the file must hold private keys (PKCS#8 \"PRIVATE KEY\")", i, block.Type)
		default:
			return nil, fmt.Errorf("PEM block %d is %q: want PKCS#8 \"PRIVATE KEY\" (convert with openssl pkcs8 -topk8 -nocrypt)", i, block.Type)
		}
		priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not a readable PKCS#8 private key", i)
		}
		k, err := newKey(priv)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is %w", i, err)
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("PEM block %d repeats key %s", i, k.kid)
		}
		seen[k.kid] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM private key in the file")
	}
	return keys, nil
}

// Claims are what a receipt says, beyond the issuer, audience and times the
// Issuer adds.
type Claims struct {
	PhoneNumber string // E.164; also the subject
	Country     string // ISO 3166 alpha-2, "" when the number has none
	Channel     string // how the code went: sms, call, whatsapp
	Nonce       string // the client's nonce, "" when it gave none
}

// Receipt is a signed receipt and when it stops being valid.
type Receipt struct {
	Token     string
	ExpiresAt time.Time
}

// String hides the token: a receipt is a bearer credential until it
// expires, and must not reach a log.
func (r Receipt) String() string { return "[receipt]" }

// GoString hides the token from %#v.
func (r Receipt) GoString() string { return "receipt.Receipt{[receipt]}" }

// LogValue hides the token too.
func (r Receipt) LogValue() slog.Value { return slog.StringValue("[receipt]") }

// IssuerConfig configures an Issuer.
type IssuerConfig struct {
	Keys     []Key            // the first signs; all are published
	Issuer   string           // "iss": verifyd's external base URL
	Audience string           // "aud": who the receipts are for
	TTL      time.Duration    // how long a receipt is valid (default 5m)
	Now      func() time.Time // default time.Now
}

// DefaultTTL is how long a receipt is valid when IssuerConfig.TTL is 0:
// long enough for the browser to hand it over, short enough that a leaked
// one is soon worthless.
const DefaultTTL = 5 * time.Minute

// Issuer signs receipts. It is safe for concurrent use.
type Issuer struct {
	cfg    IssuerConfig
	signer jose.Signer
	jwks   []byte
}

// NewIssuer checks cfg and prepares the signer and the published key set.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	switch {
	case len(cfg.Keys) == 0:
		return nil, errors.New("receipt: no signing key")
	case cfg.Issuer == "":
		return nil, errors.New("receipt: no issuer")
	case cfg.Audience == "":
		return nil, errors.New("receipt: no audience")
	case cfg.TTL < 0:
		return nil, errors.New("receipt: negative TTL")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	first := cfg.Keys[0]
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: first.alg, Key: jose.JSONWebKey{Key: first.private, KeyID: first.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("receipt: signer: %w", err)
	}
	set := jose.JSONWebKeySet{}
	for _, k := range cfg.Keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.private.Public(), KeyID: k.kid,
			Algorithm: string(k.alg), Use: "sig"})
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("receipt: key set: %w", err)
	}
	return &Issuer{cfg: cfg, signer: signer, jwks: jwks}, nil
}

// JWKS is the published key set, as JSON: the public halves of every key.
func (i *Issuer) JWKS() []byte { return i.jwks }

// SigningKey is the key that signs new receipts.
func (i *Issuer) SigningKey() Key { return i.cfg.Keys[0] }

// receiptClaims are the claims beyond the registered ones.
type receiptClaims struct {
	PhoneNumber         string `json:"phone_number"`
	PhoneNumberVerified bool   `json:"phone_number_verified"`
	Country             string `json:"country,omitempty"`
	Channel             string `json:"channel,omitempty"`
	Nonce               string `json:"nonce,omitempty"`
}

// Issue signs a receipt for c, valid from now for the TTL.
func (i *Issuer) Issue(c Claims) (Receipt, error) {
	if c.PhoneNumber == "" {
		return Receipt{}, errors.New("receipt: no phone number")
	}
	now := i.cfg.Now().Truncate(time.Second)
	exp := now.Add(i.cfg.TTL)
	std := jwt.Claims{
		Issuer:   i.cfg.Issuer,
		Subject:  c.PhoneNumber,
		Audience: jwt.Audience{i.cfg.Audience},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(exp),
		ID:       rand.Text(),
	}
	token, err := jwt.Signed(i.signer).Claims(std).Claims(receiptClaims{
		PhoneNumber:         c.PhoneNumber,
		PhoneNumberVerified: true,
		Country:             c.Country,
		Channel:             c.Channel,
		Nonce:               c.Nonce,
	}).Serialize()
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt: sign: %w", err)
	}
	return Receipt{Token: token, ExpiresAt: exp}, nil
}
