package receipt_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"verifyd/server/receipt"
)

// verifyReceipt is the README's example of an app's backend checking a
// receipt; it is compiled and run here so that the example stays true.
func verifyReceipt(token string, jwks jose.JSONWebKeySet, wantNonce string) (string, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil {
		return "", err
	}
	keys := jwks.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		return "", errors.New("unknown key: fetch the JWKS again")
	}
	var std jwt.Claims
	var c struct {
		PhoneNumber string `json:"phone_number"`
		Verified    bool   `json:"phone_number_verified"`
		Nonce       string `json:"nonce"`
	}
	if err := tok.Claims(keys[0].Key, &std, &c); err != nil {
		return "", err
	}
	if err := std.Validate(jwt.Expected{Issuer: "https://verify.example.com",
		AnyAudience: jwt.Audience{"https://app.example.com"}, Time: time.Now()}); err != nil {
		return "", err
	}
	if !c.Verified || c.Nonce != wantNonce {
		return "", errors.New("not a receipt for this session")
	}
	// Single use: refuse std.ID if seen before; remember it until std.Expiry.
	return c.PhoneNumber, nil
}

func Example_verifyInYourBackend() {
	key, _ := receipt.GenerateKey()
	iss, _ := receipt.NewIssuer(receipt.IssuerConfig{Keys: []receipt.Key{key},
		Issuer: "https://verify.example.com", Audience: "https://app.example.com"})
	r, _ := iss.Issue(receipt.Claims{PhoneNumber: "+14155552671", Country: "US", Channel: "sms", Nonce: "session-1"})

	var jwks jose.JSONWebKeySet // in your backend: GET /.well-known/jwks.json
	if err := json.Unmarshal(iss.JWKS(), &jwks); err != nil {
		panic(err)
	}
	fmt.Println(verifyReceipt(r.Token, jwks, "session-1"))
	fmt.Println(verifyReceipt(r.Token, jwks, "another-session"))
	// Output:
	// +14155552671 <nil>
	//  not a receipt for this session
}
