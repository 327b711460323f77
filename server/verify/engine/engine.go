// Package engine is verifyd's in-process verification backend: it makes,
// delivers and checks codes itself, with Twilio Verify's rules (10-minute
// codes, 5 sends per number, 5 wrong checks), and answers the verify
// package's errors as the Twilio backend does.
//
// With a MemoryStore and a LogSender it is the development backend
// (VERIFY_BACKEND=dev): nothing leaves the process, codes appear in the log.
// Its state and its delivery sit behind two small interfaces, Store and
// Sender, so that a shared store (Redis) and a real delivery (Twilio
// Programmable Messaging) can make it a self-hosted production backend.
//
// It is not a client of Twilio Verify, and it never logs.
package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"verifyd/server/verify"
)

// Twilio Verify's defaults (see TWILIO.md).
const (
	DefaultTTL       = 10 * time.Minute
	DefaultMaxSends  = 5
	DefaultMaxChecks = 5
)

// MinSecretLen is the shortest Config.Secret New accepts: as long as an
// HMAC-SHA256 output, and what New generates when none is given. A shorter,
// typed-in secret would be the weak point of every code hash.
const MinSecretLen = 32

// undoTimeout bounds taking back a failed send, which runs even when the
// caller has gone away (a half-made verification must not stay behind).
const undoTimeout = 5 * time.Second

// sealInfo labels the key derived from the secret for sealing codes, so it
// can never coincide with a key derived for anything else.
const sealInfo = "verifyd engine: code sealing key v1"

// Config configures an Engine. Only Sender is required.
type Config struct {
	Store  Store  // default: a MemoryStore on Now
	Sender Sender // required

	// Secret keys the code hashes and, through HKDF, the sealing of codes.
	// Nil means 32 random bytes, so codes do not survive a restart; a store
	// shared by several processes needs them to share the secret.
	// Changing it invalidates every pending code.
	Secret []byte

	Now func() time.Time // default: time.Now

	// TTL is both a verification's lifetime, from its creation, and the
	// width of the sliding window the send limit counts in, as in Twilio
	// Verify. Default DefaultTTL.
	TTL time.Duration

	MaxSends  int // sends per number per TTL; default DefaultMaxSends
	MaxChecks int // wrong checks per verification; default DefaultMaxChecks

	// CodeLength is how many digits a code has, 4 to 10 (default 6).
	CodeLength int
}

// Engine implements verify.Verifier over a Store and a Sender. It is safe for
// concurrent use: all its state is in the Store.
type Engine struct {
	store     Store
	sender    Sender
	now       func() time.Time
	ttl       time.Duration
	maxSends  int
	maxChecks int
	digits    int
	secret    []byte
	seal      cipher.AEAD
}

var _ verify.Verifier = (*Engine)(nil)

// New returns an Engine, filling in cfg's defaults.
func New(cfg Config) (*Engine, error) {
	if cfg.Sender == nil {
		return nil, errors.New("engine: Config.Sender is required")
	}
	if cfg.TTL < 0 || cfg.MaxSends < 0 || cfg.MaxChecks < 0 {
		return nil, errors.New("engine: TTL, MaxSends and MaxChecks must not be negative")
	}
	if cfg.CodeLength != 0 && (cfg.CodeLength < 4 || cfg.CodeLength > 10) {
		return nil, errors.New("engine: CodeLength must be between 4 and 10")
	}
	e := &Engine{
		store:     cfg.Store,
		sender:    cfg.Sender,
		now:       cfg.Now,
		ttl:       orDefault(cfg.TTL, DefaultTTL),
		maxSends:  orDefault(cfg.MaxSends, DefaultMaxSends),
		maxChecks: orDefault(cfg.MaxChecks, DefaultMaxChecks),
		digits:    orDefault(cfg.CodeLength, 6),
		secret:    slices.Clone(cfg.Secret),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.store == nil {
		e.store = NewMemoryStore(e.now)
	}
	switch {
	case e.secret == nil:
		e.secret = make([]byte, MinSecretLen)
		rand.Read(e.secret) // never fails: crypto/rand crashes the program instead
	case len(e.secret) < MinSecretLen:
		return nil, fmt.Errorf("engine: Config.Secret has %d bytes, want at least %d", len(e.secret), MinSecretLen)
	}

	// Why codes are sealed, and not derived: a resend must send the same
	// code, which the hash cannot give back. Deriving the code as
	// HMAC(secret, SID) would store nothing, but then the code is a
	// function of the SID alone, which every client is told: whoever learns
	// the secret (a leaked environment, a config dump) could compute the code
	// of any verification, even one started later. Sealing a code drawn from
	// crypto/rand needs both the secret and the store to recover it, and
	// whoever has both could brute-force the 10^digits codes from the hash
	// anyway, so the sealed copy costs nothing in secrecy. AES-GCM binds it
	// to its SID (additional data), so a copy moved to another record does
	// not open. Random 96-bit nonces are safe for 2^32 seals per key: rotate
	// the secret long before that many verifications.
	key, err := hkdf.Key(sha256.New, e.secret, nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("engine: derive sealing key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("engine: sealing cipher: %w", err)
	}
	if e.seal, err = cipher.NewGCMWithRandomNonce(block); err != nil {
		return nil, fmt.Errorf("engine: sealing cipher: %w", err)
	}
	return e, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Start sends a code to req.To. Within a verification's lifetime it sends
// the same code again, as another send of the same verification; otherwise it
// starts a new one. The send limit is per number and survives the end of a
// verification.
func (e *Engine) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	if err := ctx.Err(); err != nil {
		return verify.Verification{}, ctxError(err)
	}
	if req.To.IsZero() {
		return verify.Verification{}, verify.ErrMissingTarget
	}
	to := req.To.E164()
	if !req.Channel.Valid() {
		return verify.Verification{}, verify.ErrChannelNotAllowed
	}
	now := e.now()

	// The transaction decides and reserves; the send happens after it
	// commits, because fn may run more than once and must not have effects.
	// fresh is made at most once, however many times fn runs.
	var (
		fresh      *freshCode
		genErr     error
		refused    bool
		retryAfter time.Duration
		msg        Message
		out        verify.Verification
	)
	err := e.store.Update(ctx, to, func(rec *Record) (*Record, error) {
		refused, retryAfter, msg, out = false, 0, Message{}, verify.Verification{}
		rec = e.settle(rec, now)
		if rec == nil {
			rec = &Record{}
		}
		if n := len(rec.Sends); n >= e.maxSends {
			// The limit lifts when enough of the oldest sends have left the
			// window to make room for one more.
			refused = true
			retryAfter = rec.Sends[n-e.maxSends].Add(e.ttl).Sub(now)
			return rec, nil
		}

		cur, code := rec.Current, ""
		if cur != nil && cur.Checks < e.maxChecks {
			code = e.open(cur) // "" when sealed under another secret
		}
		if code == "" {
			// Nothing to resend: no verification, a maxed-out one awaiting
			// its last check, or one from before a secret change.
			if fresh == nil {
				if fresh, genErr = e.newCode(); genErr != nil {
					return nil, genErr
				}
			}
			cur = &Pending{
				SID:        fresh.sid,
				CreatedAt:  now,
				CodeHash:   fresh.hash,
				SealedCode: fresh.sealed,
			}
			code = fresh.code
		}
		cur.SendAttempts++
		cur.Channel = req.Channel
		rec.Current = cur
		rec.Sends = insertTime(rec.Sends, now)

		msg = Message{SID: cur.SID, To: to, Channel: req.Channel, Locale: req.Locale, Code: code}
		out = view(to, cur, verify.StatusPending)
		return e.settle(rec, now), nil
	})
	switch {
	case genErr != nil:
		return verify.Verification{}, verify.ErrInternal.With(fmt.Errorf("start verification: %w", genErr), 0)
	case err != nil:
		return verify.Verification{}, storeError(ctx, "start verification", err)
	case refused:
		return verify.Verification{}, verify.ErrTooManySends.With(nil, retryAfter)
	}

	if err := e.sender.Send(ctx, msg); err != nil {
		cause := fmt.Errorf("send code: %w", err)
		// A sender reports the domain's errors (an invalid number, a
		// destination its provider refuses, a send of unknown fate);
		// anything else is an outage that sent nothing.
		failure, maybeSent := verify.ErrUnavailable.With(cause, 0), false
		if de, ok := errors.AsType[*verify.Error](err); ok {
			failure = de.With(cause, de.RetryAfter) // With keeps MaybeSent
			maybeSent = verify.MaybeSent(de)
		}
		if ctx.Err() != nil {
			// Nobody reads the answer; the log tells why.
			failure = ctxError(ctx.Err()).With(cause, 0)
		}
		if maybeSent {
			// The message may be on its way: the send counts, and the code
			// stays, so that a resend sends the same one.
			failure.MaybeSent = true
			return verify.Verification{}, failure
		}
		// Certainly not sent: take the send back, even if the caller has
		// gone, so it does not count and a code that never left is not
		// "resent".
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		defer cancel()
		if uerr := e.unsend(undoCtx, to, msg.SID, now); uerr != nil {
			failure.Err = errors.Join(cause, fmt.Errorf("take back send: %w", uerr))
		}
		return verify.Verification{}, failure
	}
	return out, nil
}

// unsend takes back the send made at time at for the verification sid: it
// leaves the window, and the verification loses it too, going away once no
// send of it remains (none succeeded, none is in flight).
func (e *Engine) unsend(ctx context.Context, number, sid string, at time.Time) error {
	return e.store.Update(ctx, number, func(rec *Record) (*Record, error) {
		if rec == nil {
			return nil, nil
		}
		if i := slices.IndexFunc(rec.Sends, at.Equal); i >= 0 {
			rec.Sends = slices.Delete(rec.Sends, i, i+1)
		}
		if cur := rec.Current; cur != nil && cur.SID == sid {
			if cur.SendAttempts--; cur.SendAttempts <= 0 {
				rec.Current = nil
			}
		}
		return e.settle(rec, e.now()), nil
	})
}

// Check compares req.Code with the code of the verification for req.To or
// req.SID. A wrong code answers the verification, still pending, and counts;
// once MaxChecks wrong codes have been counted the next check answers
// ErrTooManyAttempts and ends the verification. The right code answers it
// approved and ends it. An unknown, ended or expired verification answers
// ErrNotFound: like Twilio, the engine cannot tell these apart.
func (e *Engine) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	if err := ctx.Err(); err != nil {
		return verify.Verification{}, ctxError(err)
	}
	switch {
	case !req.To.IsZero() && req.SID != "":
		return verify.Verification{}, verify.ErrInvalidParameter.With(errors.New("check: both To and SID set"), 0)
	case req.To.IsZero() && req.SID == "":
		return verify.Verification{}, verify.ErrMissingTarget
	case req.Code == "":
		return verify.Verification{}, verify.ErrInvalidCode
	}

	number := req.To.E164()
	if req.SID != "" {
		n, ok, err := e.store.NumberOf(ctx, req.SID)
		if err != nil {
			return verify.Verification{}, storeError(ctx, "check verification", err)
		}
		if !ok {
			return verify.Verification{}, verify.ErrNotFound
		}
		number = n
	}
	now := e.now()

	var (
		out     verify.Verification
		verdict error
	)
	err := e.store.Update(ctx, number, func(rec *Record) (*Record, error) {
		out, verdict = verify.Verification{}, nil
		rec = e.settle(rec, now)
		if rec == nil || rec.Current == nil || (req.SID != "" && rec.Current.SID != req.SID) {
			verdict = verify.ErrNotFound
			return rec, nil
		}
		cur := rec.Current
		switch {
		case cur.Checks >= e.maxChecks:
			rec.Current = nil
			verdict = verify.ErrTooManyAttempts
		case hmac.Equal(e.hash(cur.SID, req.Code), cur.CodeHash):
			rec.Current = nil
			out = view(number, cur, verify.StatusApproved)
		default:
			cur.Checks++
			out = view(number, cur, verify.StatusPending)
		}
		return e.settle(rec, now), nil
	})
	if err != nil {
		return verify.Verification{}, storeError(ctx, "check verification", err)
	}
	if verdict != nil {
		return verify.Verification{}, verdict
	}
	return out, nil
}

// settle drops what has expired by now from rec (sends that left the window,
// a verification past its lifetime) and sets its ExpiresAt. It answers nil
// when nothing is left, so the store deletes the record.
func (e *Engine) settle(rec *Record, now time.Time) *Record {
	if rec == nil {
		return nil
	}
	i := 0
	for i < len(rec.Sends) && !now.Before(rec.Sends[i].Add(e.ttl)) {
		i++
	}
	rec.Sends = rec.Sends[i:]
	if rec.Current != nil && !now.Before(rec.Current.CreatedAt.Add(e.ttl)) {
		rec.Current = nil
	}
	if rec.Current == nil && len(rec.Sends) == 0 {
		return nil
	}
	var exp time.Time
	if rec.Current != nil {
		exp = rec.Current.CreatedAt.Add(e.ttl)
	}
	if n := len(rec.Sends); n > 0 {
		if t := rec.Sends[n-1].Add(e.ttl); t.After(exp) {
			exp = t
		}
	}
	rec.ExpiresAt = exp
	return rec
}

// insertTime adds t to the sorted ts. Concurrent starts read the clock
// before they queue for the store, so they may commit out of time order.
func insertTime(ts []time.Time, t time.Time) []time.Time {
	i, _ := slices.BinarySearchFunc(ts, t, time.Time.Compare)
	return slices.Insert(ts, i, t)
}

// view is what the caller sees of a verification.
func view(to string, p *Pending, s verify.Status) verify.Verification {
	return verify.Verification{
		SID:          p.SID,
		To:           to,
		Channel:      p.Channel,
		Status:       s,
		SendAttempts: p.SendAttempts,
		CreatedAt:    p.CreatedAt,
	}
}

// freshCode is a new verification's SID and code, with the forms of the code
// that may be stored.
type freshCode struct {
	sid, code    string
	hash, sealed []byte
}
