package receipt_test

import (
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
	"fmt"
	"strings"
	"testing"
	"time"

	"verifyd/server/receipt"
	"verifyd/server/receipt/receipttest"
	"verifyd/server/verify/verifytest"
)

const (
	issuer   = "https://verify.example.com"
	audience = "https://app.example.com"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECDSA(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeys(t *testing.T, pemData string) []receipt.Key {
	t.Helper()
	keys, err := receipt.ParseKeys([]byte(pemData))
	if err != nil {
		t.Fatalf("ParseKeys = %v", err)
	}
	return keys
}

func newIssuer(t *testing.T, keys []receipt.Key, clk *verifytest.Clock) *receipt.Issuer {
	t.Helper()
	iss, err := receipt.NewIssuer(receipt.IssuerConfig{Keys: keys, Issuer: issuer, Audience: audience, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func TestReceiptVerifiesAsAClientWould(t *testing.T) {
	for _, tt := range []struct {
		name, alg string
		key       any
	}{
		{"Ed25519", "EdDSA", newEd25519(t)},
		{"P-256", "ES256", newECDSA(t, elliptic.P256())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := verifytest.NewClock(t0)
			keys := mustKeys(t, pkcs8(t, tt.key))
			iss := newIssuer(t, keys, clk)
			r, err := iss.Issue(receipt.Claims{PhoneNumber: "+14155552671", Country: "US", Channel: "sms", Nonce: "n-1_x"})
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(receipt.DefaultTTL); !r.ExpiresAt.Equal(want) {
				t.Errorf("ExpiresAt = %v, want %v", r.ExpiresAt, want)
			}
			c, h, err := receipttest.Verify(r.Token, iss.JWKS(), issuer, audience, t0.Add(time.Minute))
			if err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if h.Alg != tt.alg || h.Kid != keys[0].ID() || h.Typ != "JWT" {
				t.Errorf("header = %+v, want alg %s, kid %s, typ JWT", h, tt.alg, keys[0].ID())
			}
			if c.Subject != "+14155552671" || c.PhoneNumber != "+14155552671" || !c.PhoneNumberVerified ||
				c.Country != "US" || c.Channel != "sms" || c.Nonce != "n-1_x" || c.ID == "" ||
				!c.IssuedAt.Time().Equal(t0) || !c.Expiry.Time().Equal(t0.Add(receipt.DefaultTTL)) {
				t.Errorf("claims = %+v", c)
			}
			// The audience is a plain string, as most libraries expect.
			payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(r.Token, ".")[1])
			var raw map[string]any
			if err := json.Unmarshal(payload, &raw); err != nil || raw["aud"] != audience {
				t.Errorf("payload %s: aud is not the string %q", payload, audience)
			}
		})
	}
}

// TestKidIsTheRFC7638Thumbprint checks the key id against the RFC's own
// example key (RFC 7638, section 3.1 uses RSA; RFC 8037 appendix A.3 gives
// the Ed25519 one).
func TestKidIsTheRFC7638Thumbprint(t *testing.T) {
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	keys := mustKeys(t, pkcs8(t, ed25519.NewKeyFromSeed(seed)))
	if got, want := keys[0].ID(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("kid = %s, want %s (RFC 8037 A.3)", got, want)
	}
}

func TestReceiptsRefused(t *testing.T) {
	clk := verifytest.NewClock(t0)
	keys := mustKeys(t, pkcs8(t, newEd25519(t)))
	iss := newIssuer(t, keys, clk)
	r, err := iss.Issue(receipt.Claims{PhoneNumber: "+14155552671"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(r.Token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), "+14155552671", "+14155550000", 2)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]

	other := newIssuer(t, mustKeys(t, pkcs8(t, newEd25519(t))), clk)
	unpublished, err := other.Issue(receipt.Claims{PhoneNumber: "+14155552671"})
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, token, aud string
		at               time.Time
	}{
		{"tampered payload", tampered, audience, t0},
		{"wrong audience", r.Token, "https://other.example.com", t0},
		{"expired", r.Token, audience, t0.Add(receipt.DefaultTTL + time.Second)},
		{"signed by an unpublished key", unpublished.Token, audience, t0},
		{"not a JWT", "abc.def.ghi", audience, t0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := receipttest.Verify(tt.token, iss.JWKS(), issuer, tt.aud, tt.at); err == nil {
				t.Errorf("Verify(%s) = nil, want an error", tt.name)
			}
		})
	}
}

// TestRotation: the new key first signs, the old one is still published,
// so receipts it signed before the rotation still verify.
func TestRotation(t *testing.T) {
	clk := verifytest.NewClock(t0)
	oldPEM, newPEM := pkcs8(t, newEd25519(t)), pkcs8(t, newECDSA(t, elliptic.P256()))
	before := newIssuer(t, mustKeys(t, oldPEM), clk)
	old, err := before.Issue(receipt.Claims{PhoneNumber: "+14155552671"})
	if err != nil {
		t.Fatal(err)
	}
	after := newIssuer(t, mustKeys(t, newPEM+oldPEM), clk)
	fresh, err := after.Issue(receipt.Claims{PhoneNumber: "+14155552671"})
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(after.JWKS(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS = %s, want two keys", after.JWKS())
	}
	for _, k := range set.Keys {
		if k["use"] != "sig" || k["kid"] == "" || k["alg"] == "" || k["d"] != nil {
			t.Errorf("published key %v: want use sig, kid, alg and no private part", k)
		}
	}
	for name, tok := range map[string]string{"old key's receipt": old.Token, "new key's receipt": fresh.Token} {
		if _, _, err := receipttest.Verify(tok, after.JWKS(), issuer, audience, t0); err != nil {
			t.Errorf("%s after rotation: %v", name, err)
		}
	}
	if _, h, _ := receipttest.Verify(fresh.Token, after.JWKS(), issuer, audience, t0); h.Alg != "ES256" {
		t.Errorf("after rotation the receipt is signed with %s, want the first key (ES256)", h.Alg)
	}
}

func TestParseKeysRefuses(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(newEd25519(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(newECDSA(t, elliptic.P256()))
	if err != nil {
		t.Fatal(err)
	}
	ed := pkcs8(t, newEd25519(t))
	for _, tt := range []struct {
		name, pem, want string
	}{
		{"empty", "", "no PEM private key"},
		{"not PEM", "hello", "no PEM private key"},
		{"a public key", pemOf(t, "PUBLIC KEY", pubDER), "must hold private keys"},
		{"an RSA key", pkcs8(t, rsaKey), "RSA"},
		{"a P-384 key", pkcs8(t, newECDSA(t, elliptic.P384())), "P-384"},
		{"a P-224 key", pkcs8(t, newECDSA(t, elliptic.P224())), "P-224"},
		{"an X25519 key", pkcs8(t, x25519), "cannot sign"},
		{"SEC 1, not PKCS#8", pemOf(t, "EC PRIVATE KEY", ecDER), "PKCS#8"},
		{"garbage in a PKCS#8 block", pemOf(t, "PRIVATE KEY", []byte("garbage")), "not a readable"},
		{"a good key then an RSA key", ed + pkcs8(t, rsaKey), "PEM block 2"},
		{"the same key twice", ed + ed, "repeats"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := receipt.ParseKeys([]byte(tt.pem))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKeys(%s) = %v, want an error saying %q", tt.name, err, tt.want)
			}
			if strings.Contains(err.Error(), "BEGIN") || strings.Contains(err.Error(), "MII") {
				t.Errorf("ParseKeys(%s) error quotes key material: %v", tt.name, err)
			}
		})
	}
}

func TestKeysNeverPrint(t *testing.T) {
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	k := mustKeys(t, pkcs8(t, ed25519.NewKeyFromSeed(seed)))[0]
	s := fmt.Sprintf("%v|%+v|%#v|%s", k, k, k, []receipt.Key{k})
	for _, leak := range []string{"0x9d, 0x61", "9d61b19d", "nWGxne"} {
		if strings.Contains(s, leak) {
			t.Errorf("a key prints its material: %s", s)
		}
	}
	if !strings.Contains(s, k.ID()) {
		t.Errorf("a key prints as %q, without its kid", s)
	}
	r := receipt.Receipt{Token: "secret.token.value"}
	if s := fmt.Sprintf("%v|%+v|%#v|%s", r, r, r, r); strings.Contains(s, "secret") {
		t.Errorf("a receipt prints as %q", s)
	}
}
