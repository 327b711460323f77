// Package receipttest verifies verifyd's receipts the way an application's
// backend would: a JWK set fetched from verifyd, a standard JOSE library
// (go-jose), the expected issuer and audience, and the clock. It is
// imported by tests only.
package receipttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims are a receipt's claims as a client reads them.
type Claims struct {
	jwt.Claims
	PhoneNumber         string `json:"phone_number"`
	PhoneNumberVerified bool   `json:"phone_number_verified"`
	Country             string `json:"country"`
	Channel             string `json:"channel"`
	Nonce               string `json:"nonce"`
}

// Header is what a receipt's protected header says.
type Header struct {
	Alg, Kid, Typ string
}

// Verify checks token against the key set jwks (JSON) and answers its
// claims: the signature by a published key with the algorithm that key
// declares, then issuer, audience and times at now (no leeway).
func Verify(token string, jwks []byte, issuer, audience string, now time.Time) (Claims, Header, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return Claims{}, Header{}, fmt.Errorf("key set: %w", err)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil {
		return Claims{}, Header{}, fmt.Errorf("parse: %w", err)
	}
	if len(tok.Headers) != 1 {
		return Claims{}, Header{}, errors.New("not exactly one signature")
	}
	h := tok.Headers[0]
	hdr := Header{Alg: h.Algorithm, Kid: h.KeyID}
	if typ, ok := h.ExtraHeaders[jose.HeaderType].(string); ok {
		hdr.Typ = typ
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		return Claims{}, hdr, fmt.Errorf("kid %q is not published", h.KeyID)
	}
	if keys[0].Algorithm != h.Algorithm || keys[0].Use != "sig" {
		return Claims{}, hdr, fmt.Errorf("key %q is for %s/%s, the token says %s", h.KeyID, keys[0].Algorithm, keys[0].Use, h.Algorithm)
	}
	var c Claims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		return Claims{}, hdr, fmt.Errorf("signature: %w", err)
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{audience}, Time: now}, 0); err != nil {
		return Claims{}, hdr, fmt.Errorf("claims: %w", err)
	}
	return c, hdr, nil
}
