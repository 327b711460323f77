// Package challenge issues and checks proof-of-work challenges in the
// ALTCHA protocol (version 1: SHA-256 over a signed salt and a secret
// number), so ALTCHA's open-source widget and libraries interoperate with
// verifyd's own solver. A challenge is signed and short-lived, carries its
// difficulty in its signed salt, and each solution is accepted once.
//
// No maintained Go library of the protocol is reachable from this
// project's module proxy, so the few lines of it live here, following the
// reference implementation (altcha-lib v1: createChallenge, verifySolution).
package challenge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only hash verifyd issues and accepts.
const Algorithm = "SHA-256"

// Challenge is what a client solves, as the ALTCHA widget reads it.
type Challenge struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int64  `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Payload is a solved challenge, as the widget posts it (base64 of this
// JSON).
type Payload struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	Number    int64  `json:"number"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Spent remembers solutions already used, until they expire: it answers
// true the first time it sees id, false after. abuse's stores do this.
type Spent func(ctx context.Context, id string, until time.Time) (first bool, err error)

// The defaults verifyd runs with unless told otherwise (CHALLENGE_DIFFICULTY,
// CHALLENGE_TTL): written here once; the configuration starts from them.
const (
	DefaultDifficulty = 50_000
	DefaultTTL        = 5 * time.Minute
)

// Config configures an Issuer.
type Config struct {
	Key        []byte        // signs challenges; shared by every instance
	MaxNumber  int64         // the difficulty: a solver tries up to this many hashes, half on average
	TTL        time.Duration // how long a challenge may be solved and used
	Spent      Spent
	Now        func() time.Time
	randNumber func(max int64) (int64, error) // tests
}

// Issuer makes and checks challenges. It is safe for concurrent use.
type Issuer struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Issuer, error) {
	switch {
	case len(cfg.Key) < 32:
		return nil, errors.New("challenge: key shorter than 32 bytes")
	case cfg.MaxNumber < 1000 || cfg.MaxNumber > 100_000_000:
		return nil, fmt.Errorf("challenge: difficulty %d is not between 1,000 and 100,000,000", cfg.MaxNumber)
	case cfg.TTL <= 0:
		return nil, errors.New("challenge: no TTL")
	case cfg.Spent == nil:
		return nil, errors.New("challenge: nothing remembers spent solutions")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.randNumber == nil {
		cfg.randNumber = func(max int64) (int64, error) {
			n, err := rand.Int(rand.Reader, big.NewInt(max+1))
			if err != nil {
				return 0, err
			}
			return n.Int64(), nil
		}
	}
	return &Issuer{cfg: cfg}, nil
}

// MaxTTL caps a challenge's life, however it is configured: a solution is
// for the send it was asked for, not to be stockpiled.
const MaxTTL = 10 * time.Minute

// New makes an unbound challenge at the configured difficulty (for ALTCHA's
// widget); a send needs one bound to it (NewFor).
func (i *Issuer) New() (Challenge, error) { return i.NewFor("", i.cfg.MaxNumber) }

// NewFor makes a challenge bound to bind (what the caller says it is for:
// a number and a client, hashed) at difficulty maxNumber (at least the
// configured one). Its salt carries the expiry, the difficulty and the
// binding, all covered by the signature.
func (i *Issuer) NewFor(bind string, maxNumber int64) (Challenge, error) {
	maxNumber = max(maxNumber, i.cfg.MaxNumber)
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return Challenge{}, err
	}
	params := url.Values{}
	params.Set("expires", strconv.FormatInt(i.cfg.Now().Add(min(i.cfg.TTL, MaxTTL)).Unix(), 10))
	params.Set("maxnumber", strconv.FormatInt(maxNumber, 10))
	if bind != "" {
		params.Set("for", bind)
	}
	// The trailing "&" keeps a number from being spliced into a parameter.
	salt := hex.EncodeToString(raw) + "?" + params.Encode() + "&"
	n, err := i.cfg.randNumber(maxNumber)
	if err != nil {
		return Challenge{}, err
	}
	ch := hashHex(salt + strconv.FormatInt(n, 10))
	return Challenge{Algorithm: Algorithm, Challenge: ch, MaxNumber: maxNumber, Salt: salt, Signature: i.sign(ch)}, nil
}

// Difficulty is the configured difficulty, the least a challenge has.
func (i *Issuer) Difficulty() int64 { return i.cfg.MaxNumber }

// The reasons a payload is refused.
var (
	ErrMalformed  = errors.New("challenge: payload is not base64 JSON of a solution")
	ErrForged     = errors.New("challenge: not a solution of a challenge this service signed")
	ErrExpired    = errors.New("challenge: expired")
	ErrDifficulty = errors.New("challenge: issued at another difficulty")
	ErrReplayed   = errors.New("challenge: solution already used")
	ErrUnbound    = errors.New("challenge: solved for another send")
)

// Verify checks a payload (base64 JSON, as the widget posts it) made for
// bind ("" for an unbound one) and spends it: a second Verify of the same
// solution answers ErrReplayed, on any instance that shares the Spent.
func (i *Issuer) Verify(ctx context.Context, payload, bind string) error {
	if len(payload) > 2048 {
		return ErrMalformed
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return ErrMalformed
	}
	var p Payload
	if err := json.Unmarshal(data, &p); err != nil || p.Algorithm != Algorithm || p.Number < 0 {
		return ErrMalformed
	}
	if !hmac.Equal([]byte(p.Signature), []byte(i.sign(p.Challenge))) ||
		subtle.ConstantTimeCompare([]byte(hashHex(p.Salt+strconv.FormatInt(p.Number, 10))), []byte(p.Challenge)) != 1 {
		return ErrForged
	}
	_, query, _ := strings.Cut(p.Salt, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return ErrForged
	}
	expires, err := strconv.ParseInt(params.Get("expires"), 10, 64)
	if err != nil || !i.cfg.Now().Before(time.Unix(expires, 0)) {
		return ErrExpired
	}
	// Signed here, so never longer; checked all the same, should a key
	// ever have signed one.
	if time.Unix(expires, 0).Sub(i.cfg.Now()) > MaxTTL {
		return ErrExpired
	}
	if subtle.ConstantTimeCompare([]byte(params.Get("for")), []byte(bind)) != 1 {
		return ErrUnbound
	}
	if max, err := strconv.ParseInt(params.Get("maxnumber"), 10, 64); err != nil || max < i.cfg.MaxNumber {
		return ErrDifficulty
	}
	first, err := i.cfg.Spent(ctx, "{verifyd}:challenge:"+p.Signature, time.Unix(expires, 0))
	if err != nil {
		return fmt.Errorf("challenge: remember the solution: %w", err)
	}
	if !first {
		return ErrReplayed
	}
	return nil
}

func (i *Issuer) sign(challenge string) string {
	m := hmac.New(sha256.New, i.cfg.Key)
	m.Write([]byte(challenge))
	return hex.EncodeToString(m.Sum(nil))
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Solve finds the number of c by brute force, as a client does: for tests
// and the pumping simulation.
func Solve(c Challenge) (string, error) {
	for n := int64(0); n <= c.MaxNumber; n++ {
		if hashHex(c.Salt+strconv.FormatInt(n, 10)) == c.Challenge {
			data, err := json.Marshal(Payload{Algorithm: c.Algorithm, Challenge: c.Challenge, Number: n, Salt: c.Salt, Signature: c.Signature})
			if err != nil {
				return "", err
			}
			return base64.StdEncoding.EncodeToString(data), nil
		}
	}
	return "", errors.New("challenge: no solution up to maxnumber")
}
