package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"verifyd/server/verify"
)

// newCode draws a SID and a code from crypto/rand.
func (e *Engine) newCode() (*freshCode, error) {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand crashes the program instead
	sid := "VE" + hex.EncodeToString(b[:])

	// rand.Int is uniform over [0, 10^digits): no modulo bias.
	n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e.digits)), nil))
	if err != nil {
		return nil, fmt.Errorf("draw code: %w", err)
	}
	code := fmt.Sprintf("%0*d", e.digits, n.Int64())
	return &freshCode{
		sid:    sid,
		code:   code,
		hash:   e.hash(sid, code),
		sealed: e.seal.Seal(nil, nil, []byte(code), []byte(sid)),
	}, nil
}

// hash is HMAC-SHA256(secret, sid + ":" + code). Keying it with the SID
// makes equal codes of different verifications hash differently.
func (e *Engine) hash(sid, code string) []byte {
	m := hmac.New(sha256.New, e.secret)
	m.Write([]byte(sid + ":" + code))
	return m.Sum(nil)
}

// open recovers p's code for a resend, or "" when it was sealed under
// another secret (or tampered with).
func (e *Engine) open(p *Pending) string {
	code, err := e.seal.Open(nil, nil, p.SealedCode, []byte(p.SID))
	if err != nil {
		return ""
	}
	return string(code)
}

// ctxError maps the caller's context ending to the verify error for it.
func ctxError(err error) *verify.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return verify.ErrTimeout.With(err, 0)
	}
	return verify.ErrClientGone.With(err, 0)
}

// storeError maps a failure of the store: the caller's context, or the store
// being unavailable.
func storeError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctxError(ctx.Err()).With(fmt.Errorf("%s: %w", op, err), 0)
	}
	return ErrStoreUnavailable.With(fmt.Errorf("%s: store: %w", op, err), 0)
}

// ErrStoreUnavailable answers while the code store cannot be reached: a
// code cannot be sent or checked without it, and nothing is lost, since
// pending codes wait in the store with their lifetime.
var ErrStoreUnavailable = &verify.Error{Kind: verify.KindDegraded, Code: "store_unavailable",
	Message: "Verification is temporarily unavailable. Please try again in a moment.", RetryAfter: 5 * time.Second}
