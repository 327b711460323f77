package engine_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"verifyd/server/abuse/redistest"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/verifytest"
)

// redisRig is two engines (two instances) over one real redis-server.
type redisRig struct {
	a, b   *engine.Engine
	sender *recordingSender
	clock  *verifytest.Clock
	srv    *redistest.Server
}

func newRedisRig(t *testing.T) redisRig {
	t.Helper()
	srv := redistest.Start(t)
	r := redisRig{sender: &recordingSender{}, clock: newClock(), srv: srv}
	build := func() *engine.Engine {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr})
		t.Cleanup(func() { client.Close() })
		store, err := engine.NewRedisStore(client, testSecret, r.clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		return mustNew(t, engine.Config{Store: store, Sender: r.sender, Secret: testSecret, Now: r.clock.Now})
	}
	r.a, r.b = build(), build()
	return r
}

func (r redisRig) lastCode(t *testing.T) string {
	t.Helper()
	msgs := r.sender.all()
	if len(msgs) == 0 {
		t.Fatal("nothing was sent")
	}
	return msgs[len(msgs)-1].Code
}

// TestRedisStoreSharedByInstances: a code sent through one instance is
// checked on the other; a resend sends the same code; after approval the
// code is gone on both; checks by SID work across instances.
func TestRedisStoreSharedByInstances(t *testing.T) {
	r := newRedisRig(t)
	ctx := context.Background()
	v, err := r.a.Start(ctx, start(alice))
	if err != nil {
		t.Fatal(err)
	}
	code := r.lastCode(t)
	if got, err := r.b.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: verifytest.WrongCode(code)}); err != nil || got.Status != verify.StatusPending {
		t.Fatalf("a wrong code on the other instance = %+v, %v", got, err)
	}
	again, err := r.b.Start(ctx, start(alice))
	if err != nil || again.SID != v.SID || again.SendAttempts != 2 || r.lastCode(t) != code {
		t.Fatalf("a resend on the other instance = %+v, %v (code %s, want the same %s)", again, err, r.lastCode(t), code)
	}
	got, err := r.b.Check(ctx, verify.CheckRequest{SID: v.SID, Code: code})
	if err != nil || got.Status != verify.StatusApproved || got.To != alice {
		t.Fatalf("the right code by SID on the other instance = %+v, %v", got, err)
	}
	for _, e := range []*engine.Engine{r.a, r.b} {
		if _, err := e.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code}); !errors.Is(err, verify.ErrNotFound) {
			t.Errorf("after approval = %v, want %v on every instance", err, verify.ErrNotFound)
		}
	}
}

// TestRedisStoreConcurrentWrongChecks: 50 concurrent wrong codes across two
// instances count as exactly 5; the rest, and the right code after, are
// refused.
func TestRedisStoreConcurrentWrongChecks(t *testing.T) {
	r := newRedisRig(t)
	ctx := context.Background()
	if _, err := r.a.Start(ctx, start(bob)); err != nil {
		t.Fatal(err)
	}
	code := r.lastCode(t)
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 50 {
		e := []*engine.Engine{r.a, r.b}[i%2]
		wg.Go(func() {
			got, err := e.Check(ctx, verify.CheckRequest{To: verifytest.Number(bob), Code: verifytest.WrongCode(code)})
			key := string(got.Status)
			if err != nil {
				key = verify.AsError(err).Code
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if outcomes["pending"] != engine.DefaultMaxChecks {
		t.Errorf("outcomes %v: want exactly %d wrong codes counted", outcomes, engine.DefaultMaxChecks)
	}
	if _, err := r.b.Check(ctx, verify.CheckRequest{To: verifytest.Number(bob), Code: code}); err == nil {
		t.Error("the right code after the limit was accepted")
	}
}

// TestRedisStoreNothingReadable scans every key and value after sends:
// neither a number nor a code is there in the clear (nor in base64, as
// JSON writes bytes), and Redis itself expires every record within the
// verification's life.
func TestRedisStoreNothingReadable(t *testing.T) {
	r := newRedisRig(t)
	ctx := context.Background()
	for _, n := range []string{alice, bob} {
		if _, err := r.a.Start(ctx, start(n)); err != nil {
			t.Fatal(err)
		}
	}
	dump := r.srv.Dump(t)
	text := redistest.String(dump)
	if !strings.Contains(text, "{verifyd}:otp:") {
		t.Fatalf("no engine keys in Redis:\n%s", text)
	}
	for _, m := range r.sender.all() {
		for _, secret := range []string{m.To[1:], m.To[len(m.To)-7:], m.Code} {
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
				if strings.Contains(text, form) {
					t.Errorf("Redis holds %q as %q:\n%s", secret, form, text)
				}
			}
		}
	}
	for _, e := range dump {
		if e.TTL <= 0 || e.TTL > engine.DefaultTTL {
			t.Errorf("%s expires in %v, want within %v", e.Key, e.TTL, engine.DefaultTTL)
		}
	}
}

// TestRedisStoreRestartAndExpiry: a new instance (a restart) still checks
// a pending code; an approved verification leaves no record behind to
// resend; a record past its life is gone.
func TestRedisStoreRestartAndExpiry(t *testing.T) {
	r := newRedisRig(t)
	ctx := context.Background()
	if _, err := r.a.Start(ctx, start(alice)); err != nil {
		t.Fatal(err)
	}
	code := r.lastCode(t)
	restarted := newRedisRigOn(t, r)
	if got, err := restarted.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code}); err != nil || got.Status != verify.StatusApproved {
		t.Fatalf("after a restart = %+v, %v, want approved", got, err)
	}
	if _, err := r.a.Start(ctx, start(bob)); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(engine.DefaultTTL + 1)
	if _, err := r.b.Check(ctx, verify.CheckRequest{To: verifytest.Number(bob), Code: r.lastCode(t)}); !errors.Is(err, verify.ErrNotFound) {
		t.Errorf("past its life = %v, want %v", err, verify.ErrNotFound)
	}
}

// newRedisRigOn builds one more engine on r's Redis and clock.
func newRedisRigOn(t *testing.T, r redisRig) *engine.Engine {
	client := redis.NewClient(&redis.Options{Addr: r.srv.Addr})
	t.Cleanup(func() { client.Close() })
	store, err := engine.NewRedisStore(client, testSecret, r.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return mustNew(t, engine.Config{Store: store, Sender: r.sender, Secret: testSecret, Now: r.clock.Now})
}
