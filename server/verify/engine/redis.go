package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"verifyd/server/verify"
)

// RedisStore is a Store in Redis, shared by every instance that uses the
// same server, so a code sent through one instance is checked on another
// and survives restarts. Nothing in it is readable: a number appears only
// as an HMAC in keys and sealed (AES-256-GCM) in the SID index, which needs
// it to answer NumberOf; records hold the code's HMAC and the code sealed
// for resends, as the engine makes them. Every key carries the {verifyd}
// hash tag, so the store also runs on Redis Cluster.
//
// Update is one optimistic transaction (WATCH, then MULTI/EXEC of the
// writes): a concurrent write to the same number makes it run fn again, so
// 50 concurrent wrong codes count as 50 on every instance.
type RedisStore struct {
	client redis.UniversalClient
	key    []byte      // keys the number hashes
	aead   cipher.AEAD // seals numbers in the SID index
	now    func() time.Time
	// waitFor, when positive, makes each write wait that long at most for
	// one replica to acknowledge it (WAIT 1), and late is told of each
	// write no replica acknowledged in time.
	waitFor time.Duration
	late    func()
}

// AwaitReplica makes every write wait up to timeout for one replica to
// acknowledge it (WAIT 1), so that a code a person was told of survives the
// primary's death: for Redis run with replicas (Sentinel, Cluster). late,
// when set, is told of each write no replica acknowledged in time.
func (s *RedisStore) AwaitReplica(timeout time.Duration, late func()) {
	s.waitFor, s.late = timeout, late
}

var _ Store = (*RedisStore)(nil)

// maxTxRetries bounds how often an Update runs fn again after a
// conflicting write; past it the caller hears of a busy store.
const maxTxRetries = 50

// NewRedisStore uses client with secret (at least MinSecretLen bytes, the
// same on every instance) and judges expiry by now (nil: time.Now).
func NewRedisStore(client redis.UniversalClient, secret []byte, now func() time.Time) (*RedisStore, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("engine: Redis store secret shorter than %d bytes", MinSecretLen)
	}
	if now == nil {
		now = time.Now
	}
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("verifyd redis store " + purpose))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("seal"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &RedisStore{client: client, key: derive("keys"), aead: aead, now: now}, nil
}

func (s *RedisStore) recordKey(number string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(number))
	return "{verifyd}:otp:n:" + hex.EncodeToString(m.Sum(nil)[:20])
}

func sidKey(sid string) string { return "{verifyd}:otp:sid:" + sid }

// stored is a Record as Redis keeps it: times as Unix nanoseconds, exactly.
type stored struct {
	Sends     []int64        `json:"s,omitempty"`
	Current   *storedPending `json:"c,omitempty"`
	ExpiresAt int64          `json:"e"`
}

type storedPending struct {
	SID          string `json:"sid"`
	Channel      string `json:"ch"`
	CreatedAt    int64  `json:"at"`
	SendAttempts int    `json:"n"`
	Checks       int    `json:"k"`
	CodeHash     []byte `json:"h"`
	SealedCode   []byte `json:"x"`
}

func toStored(r *Record) stored {
	s := stored{ExpiresAt: r.ExpiresAt.UnixNano()}
	for _, t := range r.Sends {
		s.Sends = append(s.Sends, t.UnixNano())
	}
	if p := r.Current; p != nil {
		s.Current = &storedPending{SID: p.SID, Channel: string(p.Channel), CreatedAt: p.CreatedAt.UnixNano(),
			SendAttempts: p.SendAttempts, Checks: p.Checks, CodeHash: p.CodeHash, SealedCode: p.SealedCode}
	}
	return s
}

func (s stored) record() *Record {
	r := &Record{ExpiresAt: time.Unix(0, s.ExpiresAt)}
	for _, t := range s.Sends {
		r.Sends = append(r.Sends, time.Unix(0, t))
	}
	if p := s.Current; p != nil {
		r.Current = &Pending{SID: p.SID, Channel: verify.Channel(p.Channel), CreatedAt: time.Unix(0, p.CreatedAt),
			SendAttempts: p.SendAttempts, Checks: p.Checks, CodeHash: p.CodeHash, SealedCode: p.SealedCode}
	}
	return r
}

// errConflict is an Update that lost to concurrent writes maxTxRetries
// times.
var errConflict = errors.New("engine: too many concurrent writes to one number")

// Update implements Store.
func (s *RedisStore) Update(ctx context.Context, number string, fn func(*Record) (*Record, error)) error {
	key := s.recordKey(number)
	var fnErr error
	txf := func(tx *redis.Tx) error {
		fnErr = nil
		var old *Record
		data, err := tx.Get(ctx, key).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			var st stored
			if err := json.Unmarshal(data, &st); err != nil {
				return fmt.Errorf("engine: stored record: %w", err)
			}
			if r := st.record(); s.now().Before(r.ExpiresAt) {
				old = r
			}
		}
		next, err := fn(old.Clone())
		if err != nil {
			fnErr = err
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if old != nil && old.Current != nil &&
				(next == nil || next.Current == nil || next.Current.SID != old.Current.SID) {
				p.Del(ctx, sidKey(old.Current.SID))
			}
			// Redis expires by its own clock: the record's life is given
			// as a duration from the engine's now.
			var ttl time.Duration
			if next != nil {
				ttl = next.ExpiresAt.Sub(s.now())
			}
			if ttl <= 0 {
				p.Del(ctx, key)
				return nil
			}
			data, err := json.Marshal(toStored(next))
			if err != nil {
				return err
			}
			p.Set(ctx, key, data, ttl)
			if next.Current != nil {
				sealed, err := s.seal(number, next.Current.SID)
				if err != nil {
					return err
				}
				p.Set(ctx, sidKey(next.Current.SID), sealed, ttl)
			}
			return nil
		})
		if err == nil && s.waitFor > 0 {
			// On the transaction's own connection: WAIT counts the writes
			// this connection made.
			if n, werr := tx.Wait(ctx, 1, s.waitFor).Result(); (werr != nil || n < 1) && s.late != nil {
				s.late()
			}
		}
		return err
	}
	for range maxTxRetries {
		err := s.client.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // another write won; read again and decide again
		}
		if err != nil {
			return fmt.Errorf("engine: redis update: %w", err)
		}
		return fnErr
	}
	return errConflict
}

// NumberOf implements Store.
func (s *RedisStore) NumberOf(ctx context.Context, sid string) (string, bool, error) {
	sealed, err := s.client.Get(ctx, sidKey(sid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("engine: redis sid index: %w", err)
	}
	number, err := s.open(sealed, sid)
	if err != nil {
		// Sealed under another secret: as good as absent.
		return "", false, nil
	}
	return number, true, nil
}

// seal encrypts number with the SID as additional data, so an index entry
// cannot be moved to another SID.
func (s *RedisStore) seal(number, sid string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(number), []byte(sid)), nil
}

func (s *RedisStore) open(sealed []byte, sid string) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(sid))
	return string(plain), err
}

// Ping checks that Redis answers, for readiness.
func (s *RedisStore) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }
