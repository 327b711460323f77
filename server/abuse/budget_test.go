package abuse_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

// TestTallies: rolling hour and day and the busiest earlier day, on both
// stores.
func TestTallies(t *testing.T) {
	stores(t, func(t *testing.T, s abuse.Store) {
		ctx := context.Background()
		series := "s:test:" + t.Name()
		add := func(at time.Time, n int) {
			for range n {
				if err := s.Add(ctx, at, series); err != nil {
					t.Fatal(err)
				}
			}
		}
		now := time.Date(2026, 11, 20, 0, 30, 0, 0, time.UTC) // just after midnight: yesterday counts
		add(now.AddDate(0, 0, -3), 7)                         // a busy day three days ago
		add(now.AddDate(0, 0, -2), 4)
		add(now.Add(-23*time.Hour), 2) // yesterday, within 24 hours
		add(now.Add(-2*time.Hour), 3)  // yesterday evening
		add(now.Add(-20*time.Minute), 5)
		add(now, 1)
		got, err := s.Read(ctx, now, series, "s:nothing")
		if err != nil {
			t.Fatal(err)
		}
		if want := (abuse.Tally{Hour: 6, Day: 11, MaxDay: 7}); got[0] != want {
			t.Errorf("Read = %+v, want %+v", got[0], want)
		}
		if got[1] != (abuse.Tally{}) {
			t.Errorf("an empty series reads %+v", got[1])
		}
		if ok, _ := s.Marked(ctx, now, "m:"+t.Name()); ok {
			t.Error("marked before Mark")
		}
		if err := s.Mark(ctx, now, "m:"+t.Name(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Marked(ctx, now.Add(59*time.Minute), "m:"+t.Name()); !ok || err != nil {
			t.Errorf("Marked after Mark = %v, %v", ok, err)
		}
		// In memory a mark ends by the caller's clock (Redis ends it by
		// its own, which TestRedisStoreExpiresEverything checks).
		if _, mem := s.(*abuse.MemoryStore); mem {
			if ok, _ := s.Marked(ctx, now.Add(time.Hour), "m:"+t.Name()); ok {
				t.Error("marked after its hour")
			}
		}
	})
}

// okVerifier sends and approves everything, counting.
type okVerifier struct{ countingVerifier }

func newBudgetGuard(t *testing.T, mode abuse.BudgetMode, ch abuse.ChallengeMode, global int) (*pipeline, *verifytest.Clock) {
	t.Helper()
	return newBudgetGuardOn(t, abuse.NewMemoryStore(), mode, ch, global)
}

func newBudgetGuardOn(t *testing.T, store abuse.Store, mode abuse.BudgetMode, ch abuse.ChallengeMode, global int) (*pipeline, *verifytest.Clock) {
	t.Helper()
	iss, err := challenge.New(challenge.Config{Key: []byte(strings.Repeat("c", 32)), MaxNumber: 1000, TTL: time.Minute,
		Spent: abuse.SpendOnce(store, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	g, err := abuse.NewGuard(abuse.Config{Store: store, Now: clk.Now,
		Limits:     abuse.Limits{GlobalSendsPerMinute: global},
		Budgets:    abuse.Budgets{Mode: mode, CountryFloor: 12, PrefixFloor: 6},
		Challenge:  ch,
		Challenges: iss,
	})
	if err != nil {
		t.Fatal(err)
	}
	return newPipeline(t, g, &okVerifier{}, nil), clk
}

// gbNumber answers distinct valid UK mobiles in one prefix (+447400…).
func gbNumber(i int) string { return fmt.Sprintf("+4474001%05d", i) }

func TestBudgetsHoldAPumpedPrefix(t *testing.T) {
	g, clk := newBudgetGuard(t, abuse.BudgetsEnforce, abuse.ChallengeNever, 0)
	// Prefix floor 6 a day: an hour may have a sixth of it, 1 unverified
	// code in +44740 (44, then three digits); the sends beyond refuse.
	var refused int
	for i := range 10 {
		if err := start(g, gbNumber(i), netipAddr(i)); errors.Is(err, abuse.ErrOverBudget) {
			refused++
		} else if err != nil {
			t.Fatalf("send %d = %v", i, err)
		}
	}
	if refused != 9 {
		t.Errorf("%d of 10 unverified sends refused, want 9 (the hourly prefix budget is 1)", refused)
	}
	seen := g.seen()
	last := seen[len(seen)-1]
	if last.Rule != "prefix_hour" || last.Scope != "+44740" || last.Country != "GB" || last.Action != "refused" ||
		last.Budget != 1 || last.Unverified != 1 {
		t.Errorf("the last decision %+v, want prefix_hour on +44740 refused: 1 unverified, budget 1", last)
	}
	// Another country is not held back.
	if err := start(g, "+14155552671", netipAddr(99)); err != nil {
		t.Errorf("a send to another country = %v", err)
	}
	// Honest use verifies its codes: in the same prefix, sends that are
	// verified keep the unverified count down and go on.
	clk.Advance(2 * time.Hour)
	for i := range 30 {
		n := fmt.Sprintf("+4474002%05d", i)
		if err := start(g, n, netipAddr(i)); err != nil {
			t.Fatalf("honest send %d (each verified) = %v", i, err)
		}
		if err := check(g, n, netipAddr(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A number verified before is never held back, even over budget.
	clk.Advance(2 * time.Hour)
	trusted := gbNumber(0)
	check(g, trusted, netipAddr(1))
	for i := 100; i < 110; i++ {
		start(g, gbNumber(i), netipAddr(i))
	}
	if err := start(g, trusted, netipAddr(2)); err != nil {
		t.Errorf("a number verified before = %v, want it through", err)
	}
}

// netipAddr answers a distinct client address for i, so the per-client
// limits stay out of the way.
func netipAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, byte(i / 256), byte(i % 256)})
}

func TestBudgetsShadow(t *testing.T) {
	g, _ := newBudgetGuard(t, abuse.BudgetsShadow, abuse.ChallengeNever, 0)
	for i := range 10 {
		if err := start(g, gbNumber(i), netipAddr(i)); err != nil {
			t.Fatalf("send %d in shadow mode = %v, want it through", i, err)
		}
	}
	var shadow int
	for _, d := range g.seen() {
		if d.Action == "shadow" {
			shadow++
		}
	}
	if shadow != 9 {
		t.Errorf("%d shadow decisions, want 9", shadow)
	}
}

func TestBudgetsStepUp(t *testing.T) {
	g, _ := newBudgetGuard(t, abuse.BudgetsEnforce, abuse.ChallengeRisk, 0)
	if err := start(g, gbNumber(0), netipAddr(0)); err != nil {
		t.Fatal(err)
	}
	_, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number(gbNumber(2)), Channel: verify.ChannelSMS})
	var e *verify.Error
	if !errors.As(err, &e) || e.Code != "challenge_required" || e.Challenge == nil {
		t.Fatalf("over budget with risk mode = %v, want challenge_required with a challenge", err)
	}
	solution, err := challenge.Solve(e.Challenge.(challenge.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	req := verify.StartRequest{To: verifytest.Number(gbNumber(2)), Channel: verify.ChannelSMS, Proof: solution}
	if _, err := g.Start(context.Background(), req); err != nil {
		t.Errorf("with the solution = %v, want it through", err)
	}
	req.To = verifytest.Number(gbNumber(3))
	if _, err := g.Start(context.Background(), req); !errors.Is(err, abuse.ErrChallengeFailed) {
		t.Errorf("the same solution again = %v, want %s", err, abuse.ErrChallengeFailed.Code)
	}
}

func TestChallengeWhenTheGlobalBrakeIsNear(t *testing.T) {
	g, _ := newBudgetGuard(t, abuse.BudgetsOff, abuse.ChallengeRisk, 10)
	for i := range 8 {
		if err := start(g, fmt.Sprintf("+1415555%04d", i), netipAddr(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := start(g, "+14155559999", netipAddr(9)); !errors.Is(err, abuse.ErrChallengeRequired) {
		t.Errorf("with 8 of 10 global sends used = %v, want %s", err, abuse.ErrChallengeRequired.Code)
	}
}

func TestChallengeAlways(t *testing.T) {
	g, _ := newBudgetGuard(t, abuse.BudgetsOff, abuse.ChallengeAlways, 0)
	_, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number("+14155552671"), Channel: verify.ChannelSMS})
	e, ok := errors.AsType[*verify.Error](err)
	if !ok || e.Code != abuse.ErrChallengeRequired.Code || e.Challenge == nil {
		t.Fatalf("a first send with SEND_CHALLENGE=always = %v, want %s with a challenge", err, abuse.ErrChallengeRequired.Code)
	}
	solution, err := challenge.Solve(e.Challenge.(challenge.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	req := verify.StartRequest{To: verifytest.Number("+14155552671"), Channel: verify.ChannelSMS, Proof: solution}
	if _, err := g.Start(context.Background(), req); err != nil {
		t.Errorf("with the solution = %v, want it through", err)
	}
}

// TestChallengeAlwaysWhenTheStoreIsDown: budgets that cannot be judged do
// not lift SEND_CHALLENGE=always.
func TestChallengeAlwaysWhenTheStoreIsDown(t *testing.T) {
	store := &switchableStore{MemoryStore: abuse.NewMemoryStore()}
	g, _ := newBudgetGuardOn(t, store, abuse.BudgetsEnforce, abuse.ChallengeAlways, 0)
	store.down.Store(true)
	if err := start(g, "+14155552671", netipAddr(1)); !errors.Is(err, abuse.ErrChallengeRequired) {
		t.Errorf("a send without proof while the store is down = %v, want %s", err, abuse.ErrChallengeRequired.Code)
	}
}

// TestBudgetsCountryRules: a country's own hourly and daily budgets hold
// sends spread over its prefixes and over the hours.
func TestBudgetsCountryRules(t *testing.T) {
	g, clk := newBudgetGuard(t, abuse.BudgetsEnforce, abuse.ChallengeNever, 0)
	prefixes := []string{"+447400", "+447500", "+447700", "+447800", "+447900"}
	n := 0
	send := func() error {
		n++
		return start(g, fmt.Sprintf("%s%06d", prefixes[n%len(prefixes)], n), netipAddr(n))
	}
	// Country floor 12 a day: 2 unverified an hour, whatever the prefix.
	for i := range 2 {
		if err := send(); err != nil {
			t.Fatalf("send %d = %v", i, err)
		}
	}
	if err := send(); !errors.Is(err, abuse.ErrOverBudget) || g.last().Rule != "country_hour" {
		t.Fatalf("a third unverified send in the hour = %v (%+v), want country_hour", err, g.last())
	}
	// Two an hour for six hours fill the day's 12.
	for h := 1; h < 6; h++ {
		clk.Advance(time.Hour)
		for i := range 2 {
			if err := send(); err != nil {
				t.Fatalf("hour %d send %d = %v", h, i, err)
			}
		}
	}
	clk.Advance(time.Hour)
	if err := send(); !errors.Is(err, abuse.ErrOverBudget) || g.last().Rule != "country_day" {
		t.Errorf("the 13th unverified send in a day = %v (%+v), want country_day", err, g.last())
	}
}
