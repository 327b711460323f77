package abuse_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/abuse/redistest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// stores runs a test against every Store: the same rules must hold in
// memory and in a real Redis.
func stores(t *testing.T, test func(t *testing.T, s abuse.Store)) {
	t.Run("memory", func(t *testing.T) { test(t, abuse.NewMemoryStore()) })
	t.Run("redis", func(t *testing.T) {
		test(t, abuse.NewRedisStore(redistest.Start(t).Client(t)))
	})
}

func TestStoreSlidingWindowEdge(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		rules := []abuse.Rule{{Key: "k:" + t.Name(), Limit: 3, Window: time.Minute}}
		at := func(d time.Duration) abuse.Decision {
			t.Helper()
			got, err := s.Allow(ctx, t0.Add(d), rules)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		for i, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
			if got := at(d); !got.Allowed {
				t.Fatalf("event %d at +%v = %+v, want allowed", i+1, d, got)
			}
		}
		// The 4th within the window is refused until the 1st leaves it.
		if got := at(30 * time.Second); got.Allowed || got.RetryAfter != 30*time.Second {
			t.Errorf("4th event at +30s = %+v, want refused for 30s", got)
		}
		if got := at(59*time.Second + 999*time.Millisecond); got.Allowed {
			t.Errorf("event at +59.999s = %+v, want refused", got)
		}
		if got := at(time.Minute); !got.Allowed {
			t.Errorf("event at +60s = %+v, want allowed (the first left the window)", got)
		}
		// Now +10s, +20s and +60s are in the window: refused until +70s.
		if got := at(65 * time.Second); got.Allowed || got.RetryAfter != 5*time.Second {
			t.Errorf("event at +65s = %+v, want refused for 5s", got)
		}
	})
}

// TestStoreAllOrNothing: when one rule refuses, no rule counts the event.
func TestStoreAllOrNothing(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		wide := abuse.Rule{Key: "wide:" + t.Name(), Limit: 10, Window: time.Hour}
		narrow := abuse.Rule{Key: "narrow:" + t.Name(), Limit: 1, Window: time.Minute}
		if d, _ := s.Allow(ctx, t0, []abuse.Rule{wide, narrow}); !d.Allowed {
			t.Fatal("first event refused")
		}
		for i := 1; i <= 20; i++ {
			d, err := s.Allow(ctx, t0.Add(time.Duration(i)*time.Second), []abuse.Rule{wide, narrow})
			if err != nil || d.Allowed || d.Rule != 1 {
				t.Fatalf("event %d = %+v, %v; want refused by rule 1", i, d, err)
			}
		}
		// 20 refusals later, the wide rule has still counted only one.
		for i := 0; i < 9; i++ {
			if d, _ := s.Allow(ctx, t0.Add(time.Minute), []abuse.Rule{wide}); !d.Allowed {
				t.Fatalf("wide event %d refused: refused events were counted", i+2)
			}
		}
		if d, _ := s.Allow(ctx, t0.Add(time.Minute), []abuse.Rule{wide}); d.Allowed {
			t.Fatal("the 11th wide event was allowed")
		}
	})
}

// TestStoreReportsTheLongestWait: of several refusing rules, the one that
// frees up last is named.
func TestStoreReportsTheLongestWait(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		short := abuse.Rule{Key: "short:" + t.Name(), Limit: 1, Window: 30 * time.Second}
		long := abuse.Rule{Key: "long:" + t.Name(), Limit: 1, Window: time.Hour}
		s.Allow(ctx, t0, []abuse.Rule{short, long})
		d, err := s.Allow(ctx, t0.Add(time.Second), []abuse.Rule{short, long})
		if err != nil || d.Allowed || d.Rule != 1 || d.RetryAfter != time.Hour-time.Second {
			t.Errorf("Allow = %+v, %v; want refused by rule 1 for 59m59s", d, err)
		}
	})
}

// TestStoreConcurrency: 200 simultaneous events under a limit of 5 let
// exactly 5 through.
func TestStoreConcurrency(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		rules := []abuse.Rule{{Key: "c:" + t.Name(), Limit: 5, Window: time.Hour}}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := s.Allow(context.Background(), t0, rules)
				if err != nil {
					t.Error(err)
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got := allowed.Load(); got != 5 {
			t.Errorf("200 concurrent events let %d through, want 5", got)
		}
	})
}

func TestMemoryStoreForgets(t *testing.T) {
	s := abuse.NewMemoryStore()
	for i := range 100 {
		s.Allow(context.Background(), t0, []abuse.Rule{{Key: string(rune('a' + i)), Limit: 1, Window: time.Minute}})
	}
	s.Allow(context.Background(), t0.Add(2*time.Minute), []abuse.Rule{{Key: "now", Limit: 1, Window: time.Minute}})
	if got := s.Len(); got != 1 {
		t.Errorf("after the window passed the store holds %d keys, want 1", got)
	}
}

func TestRedisStoreDown(t *testing.T) {
	srv := redistest.Start(t)
	s := abuse.NewRedisStore(srv.Client(t))
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	srv.Stop()
	if _, err := s.Allow(context.Background(), t0, []abuse.Rule{{Key: "x", Limit: 1, Window: time.Minute}}); err == nil {
		t.Error("Allow with Redis stopped = nil error, want one")
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping with Redis stopped = nil error")
	}
}

// TestStoreUndo: an event taken back leaves every key it was recorded
// under, and only that event.
func TestStoreUndo(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		a := abuse.Rule{Key: "{verifyd}:a:" + t.Name(), Limit: 2, Window: time.Hour}
		b := abuse.Rule{Key: "{verifyd}:b:" + t.Name(), Limit: 2, Window: time.Hour}
		first, err := s.Allow(ctx, t0, []abuse.Rule{a, b})
		if err != nil || !first.Allowed || first.Event == "" {
			t.Fatalf("first Allow = %+v, %v", first, err)
		}
		second, err := s.Allow(ctx, t0.Add(time.Second), []abuse.Rule{a, b})
		if err != nil || !second.Allowed || second.Event == first.Event {
			t.Fatalf("second Allow = %+v, %v", second, err)
		}
		if d, _ := s.Allow(ctx, t0.Add(2*time.Second), []abuse.Rule{a}); d.Allowed {
			t.Fatal("a third event passed a limit of 2")
		}
		if err := s.Undo(ctx, []string{a.Key}, first.Event); err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Allow(ctx, t0.Add(3*time.Second), []abuse.Rule{a}); !d.Allowed {
			t.Error("after the undo there is no room under a")
		}
		if d, _ := s.Allow(ctx, t0.Add(4*time.Second), []abuse.Rule{b}); d.Allowed {
			t.Error("undo under a made room under b too")
		}
		if err := s.Undo(ctx, []string{a.Key, b.Key}, "no-such-event"); err != nil {
			t.Errorf("undo of an unknown event = %v", err)
		}
	})
}

// TestStoreCountOnlyReads: Count answers the events in its window, the
// lower edge excluded, and changes nothing: a narrow count leaves the
// older events to a wider one.
func TestStoreCountOnlyReads(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		key := "c:" + t.Name()
		for _, d := range []time.Duration{0, 20 * time.Minute, 50 * time.Minute} {
			if _, err := s.Allow(ctx, t0.Add(d), []abuse.Rule{{Key: key, Limit: 10, Window: time.Hour}}); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(time.Hour)
		for _, tt := range []struct {
			window time.Duration
			want   int
		}{{time.Minute, 0}, {11 * time.Minute, 1}, {40 * time.Minute, 1}, {45 * time.Minute, 2}, {time.Hour, 2}, {2 * time.Hour, 3}} {
			if n, err := s.Count(ctx, now, abuse.Rule{Key: key, Window: tt.window}); err != nil || n != tt.want {
				t.Errorf("Count over %v = %d, %v; want %d", tt.window, n, err, tt.want)
			}
		}
	})
}

// TestRedisStoreExpiresEverything: Redis itself expires every key the
// store writes (limits, tallies, marks), each within its own life, so
// nothing outlives the traffic that made it.
func TestRedisStoreExpiresEverything(t *testing.T) {
	srv := redistest.Start(t)
	s := abuse.NewRedisStore(srv.Client(t))
	ctx, now := context.Background(), time.Now()
	if _, err := s.Allow(ctx, now, []abuse.Rule{{Key: "minute", Limit: 5, Window: time.Minute}, {Key: "hour", Limit: 5, Window: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, now, "sends:GB"); err != nil {
		t.Fatal(err)
	}
	if err := s.Mark(ctx, now, "trusted", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	longest := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "trusted": 24 * time.Hour, "sends:GB": 15 * 24 * time.Hour}
	dump := srv.Dump(t)
	seen := map[string]bool{}
	for _, e := range dump {
		for name, life := range longest {
			if strings.Contains(e.Key, name) {
				seen[name] = true
				if e.TTL <= 0 || e.TTL > life {
					t.Errorf("%s expires in %v, want within %v", e.Key, e.TTL, life)
				}
			}
		}
	}
	if len(seen) != len(longest) {
		t.Errorf("keys seen %v, want each of %v:\n%s", seen, longest, redistest.String(dump))
	}
}
