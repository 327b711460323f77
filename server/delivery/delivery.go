// Package delivery keeps what became of each verification's message or
// call, as Twilio's status callbacks tell it: queued, sent, delivered,
// undelivered or failed, with Twilio's error code. A status never goes
// back (callbacks arrive out of order and twice), and a state is kept
// with the verification's life, keyed by a keyed hash of its SID: no
// number is kept.
//
// It decides nothing about HTTP or signatures: the server checks those and
// hands over the parameters.
package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"verifyd/server/verify"
)

// Status is a delivery's state, as verifyd tells it.
type Status string

// The statuses, in the order they may follow one another; the last three
// are final.
const (
	Unknown     Status = "unknown" // no callback yet, or a backend that gets none
	Queued      Status = "queued"
	Sent        Status = "sent"
	Delivered   Status = "delivered"
	Undelivered Status = "undelivered"
	Failed      Status = "failed"
)

// Statuses are every status, for metrics that start every series at zero.
var Statuses = []Status{Queued, Sent, Delivered, Undelivered, Failed}

// rank orders statuses: a state only moves to a higher rank.
func (s Status) rank() int {
	switch s {
	case Queued:
		return 1
	case Sent:
		return 2
	case Delivered, Undelivered, Failed:
		return 3
	}
	return 0
}

// Failed reports a definite failure: the text or call did not reach the
// phone.
func (s Status) Failed() bool { return s == Undelivered || s == Failed }

// State is what became of one verification's latest message or call.
type State struct {
	Channel   verify.Channel `json:"c"`
	Status    Status         `json:"s"`
	ErrorCode int            `json:"e,omitempty"` // Twilio's, on undelivered and failed
	At        time.Time      `json:"t"`           // when verifyd learned it
	// Since is when the send was made: the resend wait runs from it.
	Since time.Time `json:"f"`
}

// Landline reports an error code that says the number cannot take texts
// (30006: a landline or an unreachable carrier).
func (s State) Landline() bool { return s.ErrorCode == 30006 }

// ErrNotACallback refuses parameters that are not a status callback of a
// message or a call.
var ErrNotACallback = errors.New("delivery: not a message or call status callback")

// FromCallback reads a status callback's parameters: MessageStatus (with
// ErrorCode) for a message, CallStatus for a call.
func FromCallback(params map[string]string, at time.Time) (State, error) {
	st := State{At: at}
	if s, ok := params["MessageStatus"]; ok {
		st.Channel = verify.ChannelSMS
		if len(params["To"]) > 9 && params["To"][:9] == "whatsapp:" {
			st.Channel = verify.ChannelWhatsApp
		}
		switch s {
		case "accepted", "scheduled", "queued", "sending":
			st.Status = Queued
		case "sent":
			st.Status = Sent
		case "delivered", "read":
			st.Status = Delivered
		case "undelivered":
			st.Status = Undelivered
		case "failed":
			st.Status = Failed
		default:
			return State{}, fmt.Errorf("%w: MessageStatus %q", ErrNotACallback, s)
		}
	} else if s, ok := params["CallStatus"]; ok {
		st.Channel = verify.ChannelCall
		switch s {
		case "queued", "initiated":
			st.Status = Queued
		case "ringing", "in-progress":
			st.Status = Sent
		case "completed":
			st.Status = Delivered
		case "busy", "no-answer":
			st.Status = Undelivered
		case "failed", "canceled":
			st.Status = Failed
		default:
			return State{}, fmt.Errorf("%w: CallStatus %q", ErrNotACallback, s)
		}
	} else {
		return State{}, ErrNotACallback
	}
	if c := params["ErrorCode"]; c != "" && st.Status.Failed() {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > 99999 {
			return State{}, fmt.Errorf("%w: ErrorCode %q", ErrNotACallback, c)
		}
		st.ErrorCode = n
	}
	return st, nil
}

// TTL is how long a state is kept: a code's life and some.
const TTL = 15 * time.Minute

// Store keeps the states. Record moves a verification's state forward and
// answers the state kept and whether it changed; a state of a lower rank
// than the one kept changes nothing, and so does one of another channel's
// older send (a new send, of any channel, starts again from queued).
type Store interface {
	Record(ctx context.Context, sid string, st State) (State, bool, error)
	Get(ctx context.Context, sid string) (State, bool, error)
}

// advance decides the next state from the kept one.
func advance(kept State, ok bool, next State) (State, bool) {
	switch {
	case !ok:
		return next, true
	case next.Status == Queued && next.Channel != kept.Channel:
		return next, true // a new send over another channel
	case next.Status.rank() <= kept.Status.rank():
		if kept.Since.IsZero() && !next.Since.IsZero() {
			// The send's own record, after a callback that outran it: the
			// state stays, the send's time is learned.
			kept.Since = next.Since
			return kept, true
		}
		return kept, false
	}
	if next.Since.IsZero() {
		next.Since = kept.Since // a callback says what became of the same send
	}
	return next, true
}

// MemoryStore keeps states in this process.
type MemoryStore struct {
	mu     sync.Mutex
	states map[string]State
	now    func() time.Time
}

// NewMemoryStore returns an empty store on clock now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	return &MemoryStore{states: map[string]State{}, now: now}
}

// Record implements Store.
func (m *MemoryStore) Record(_ context.Context, sid string, st State) (State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	kept, ok := m.states[sid]
	next, changed := advance(kept, ok, st)
	if changed {
		m.states[sid] = next
	}
	return next, changed, nil
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, sid string) (State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.states[sid]
	if ok && m.now().Sub(st.At) > TTL {
		return State{}, false, nil
	}
	return st, ok, nil
}

func (m *MemoryStore) sweep() {
	now := m.now()
	for k, st := range m.states {
		if now.Sub(st.At) > TTL {
			delete(m.states, k)
		}
	}
}

// RedisStore keeps states in Redis, with their time to live, under a keyed
// hash of the SID, so instances share them.
type RedisStore struct {
	client redis.UniversalClient
	key    []byte
}

// NewRedisStore keeps states through client, keying SIDs with secret.
func NewRedisStore(client redis.UniversalClient, secret []byte) *RedisStore {
	return &RedisStore{client: client, key: secret}
}

func (r *RedisStore) redisKey(sid string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte("delivery\x00" + sid))
	return "{verifyd}:delivery:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// Record implements Store: a read and a conditional write in one
// optimistic transaction, so that two callbacks at once cannot move a
// state back.
func (r *RedisStore) Record(ctx context.Context, sid string, st State) (State, bool, error) {
	key := r.redisKey(sid)
	var out State
	var changed bool
	var err error
	for range 5 { // another callback winning the race: read again
		if err = r.client.Watch(ctx, func(tx *redis.Tx) error {
			kept, ok, err := r.read(ctx, tx, key)
			if err != nil {
				return err
			}
			out, changed = advance(kept, ok, st)
			if !changed {
				return nil
			}
			data, err := json.Marshal(out)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, data, TTL)
				return nil
			})
			return err
		}, key); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return State{}, false, fmt.Errorf("redis delivery: %w", err)
	}
	return out, changed, nil
}

// Get implements Store.
func (r *RedisStore) Get(ctx context.Context, sid string) (State, bool, error) {
	st, ok, err := r.read(ctx, r.client, r.redisKey(sid))
	if err != nil {
		return State{}, false, fmt.Errorf("redis delivery: %w", err)
	}
	return st, ok, nil
}

func (r *RedisStore) read(ctx context.Context, c redis.Cmdable, key string) (State, bool, error) {
	data, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, false, err
	}
	return st, true, nil
}
