package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/verifytest"
)

func newClock() *verifytest.Clock {
	return verifytest.NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
}

// recordingSender delivers every message into a list.
type recordingSender struct {
	mu   sync.Mutex
	msgs []engine.Message
}

func (s *recordingSender) Send(_ context.Context, m engine.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *recordingSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *recordingSender) all() []engine.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Message(nil), s.msgs...)
}

// last answers the code most recently sent.
func (s *recordingSender) last(t *testing.T) engine.Message {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) == 0 {
		t.Fatal("no message was sent")
	}
	return s.msgs[len(s.msgs)-1]
}

var errBoom = errors.New("carrier said no")

// failingSender fails every send, remembering what it was asked to send.
type failingSender struct{ recordingSender }

func (s *failingSender) Send(ctx context.Context, m engine.Message) error {
	s.recordingSender.Send(ctx, m)
	return errBoom
}

// flakySender fails the sends whose 1-based numbers are in fail, and
// delivers the others.
type flakySender struct {
	recordingSender
	fail  map[int]bool
	calls int
}

func (s *flakySender) Send(ctx context.Context, m engine.Message) error {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	if s.fail[n] {
		return errBoom
	}
	return s.recordingSender.Send(ctx, m)
}

// hangUpSender is a delivery during which the caller goes away.
type hangUpSender struct{ cancel context.CancelFunc }

func (s hangUpSender) Send(ctx context.Context, _ engine.Message) error {
	s.cancel()
	return ctx.Err()
}

// spyStore is a Store that remembers every record it is asked to write.
type spyStore struct {
	engine.Store
	mu      sync.Mutex
	written []*engine.Record
}

func (s *spyStore) Update(ctx context.Context, number string, fn func(*engine.Record) (*engine.Record, error)) error {
	return s.Store.Update(ctx, number, func(r *engine.Record) (*engine.Record, error) {
		next, err := fn(r)
		if err == nil && next != nil {
			s.mu.Lock()
			s.written = append(s.written, next.Clone())
			s.mu.Unlock()
		}
		return next, err
	})
}

// unreachableStore fails like a Redis that is down.
type unreachableStore struct{}

var errConnRefused = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (unreachableStore) Update(context.Context, string, func(*engine.Record) (*engine.Record, error)) error {
	return errConnRefused
}

func (unreachableStore) NumberOf(context.Context, string) (string, bool, error) {
	return "", false, errConnRefused
}

// testSecret is fixed so that tests can recompute code hashes.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

type rig struct {
	eng    *engine.Engine
	clock  *verifytest.Clock
	sender *recordingSender
	store  *engine.MemoryStore
}

// newRig builds an engine on a MemoryStore, an injected clock and a
// recordingSender.
func newRig(t testing.TB) rig {
	t.Helper()
	r := rig{clock: newClock(), sender: &recordingSender{}}
	r.store = engine.NewMemoryStore(r.clock.Now)
	r.eng = mustNew(t, engine.Config{Store: r.store, Sender: r.sender, Secret: testSecret, Now: r.clock.Now})
	return r
}

func mustNew(t testing.TB, cfg engine.Config) *engine.Engine {
	t.Helper()
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

const alice, bob = "+14155552671", "+447400123456"

func start(to string) verify.StartRequest {
	return verify.StartRequest{To: verifytest.Number(to), Channel: verify.ChannelSMS}
}

// mustStart starts a verification and answers it and the code sent.
func (r rig) mustStart(t *testing.T, to string) (verify.Verification, string) {
	t.Helper()
	v, err := r.eng.Start(context.Background(), start(to))
	if err != nil {
		t.Fatalf("Start(%q) = %v, want no error", to, err)
	}
	return v, r.sender.last(t).Code
}

// wrong answers a well-formed code that is not code.
func wrong(code string) string {
	last := code[len(code)-1]
	return code[:len(code)-1] + string('0'+(last-'0'+1)%10)
}

// sameErr reports whether err is want (both nil, or errors.Is).
func sameErr(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

func retryAfter(err error) time.Duration {
	var ve *verify.Error
	if errors.As(err, &ve) {
		return ve.RetryAfter
	}
	return -1
}
