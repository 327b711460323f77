package abuse_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
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

// newBudgetGuardFloors is an enforcing guard over store with the given
// country and prefix floors.
func newBudgetGuardFloors(t *testing.T, store abuse.Store, ch abuse.ChallengeMode, global, countryFloor, prefixFloor int) (*pipeline, *verifytest.Clock) {
	t.Helper()
	return newBudgetGuardWith(t, store, abuse.Config{Limits: abuse.Limits{GlobalSendsPerMinute: global},
		Budgets: abuse.Budgets{Mode: abuse.BudgetsEnforce, CountryFloor: countryFloor, PrefixFloor: prefixFloor}, Challenge: ch})
}

func newBudgetGuardOn(t *testing.T, store abuse.Store, mode abuse.BudgetMode, ch abuse.ChallengeMode, global int) (*pipeline, *verifytest.Clock) {
	t.Helper()
	return newBudgetGuardWith(t, store, abuse.Config{Limits: abuse.Limits{GlobalSendsPerMinute: global},
		Budgets: abuse.Budgets{Mode: mode, CountryFloor: 12, PrefixFloor: 6}, Challenge: ch})
}

// newBudgetGuardWith builds cfg's guard over store, with challenges.
func newBudgetGuardWith(t *testing.T, store abuse.Store, cfg abuse.Config) (*pipeline, *verifytest.Clock) {
	t.Helper()
	// One clock for the guard and the challenges, as cmd wires them: a
	// store read at two times sweeps one's windows by the other's.
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	iss, err := challenge.New(challenge.Config{Key: []byte(strings.Repeat("c", 32)), MaxNumber: 1000, TTL: time.Minute,
		Spent: abuse.SpendOnce(store, clk.Now), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Now, cfg.Challenges = store, clk.Now, iss
	g, err := abuse.NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	backend := &okVerifier{}
	p := newPipeline(t, g, backend, nil)
	p.clock, p.backend = clk, &backend.countingVerifier
	return p, clk
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

// TestBudgetsStepUpThenCeiling: below a scope's ceiling, risk mode asks
// for a proof of work once the scope is half full; a solution buys one
// send, for the number and client it was asked for; at the ceiling no
// proof lifts the refusal.
func TestBudgetsStepUpThenCeiling(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		// Prefix floor 24 a day: 4 unverified codes an hour in +44740.
		g, _ := newBudgetGuardFloors(t, store, abuse.ChallengeRisk, 0, 60, 24)
		ctx := context.Background()
		send := func(i int, proof string) error {
			_, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(gbNumber(i)), Channel: verify.ChannelSMS,
				ClientIP: netipAddr(i), Proof: proof})
			return err
		}
		if err := send(0, ""); err != nil {
			t.Fatalf("the first send (a quarter of the budget) = %v, want it through", err)
		}
		if err := send(5, ""); err != nil {
			t.Fatalf("the second send (half the budget) = %v, want it through", err)
		}
		err := send(1, "")
		e, ok := errors.AsType[*verify.Error](err)
		if !ok || e.Code != abuse.ErrChallengeRequired.Code || e.Challenge == nil {
			t.Fatalf("the third send (three quarters of the budget) = %v, want %s with a challenge", err, abuse.ErrChallengeRequired.Code)
		}
		solution, err := challenge.Solve(e.Challenge.(challenge.Challenge))
		if err != nil {
			t.Fatal(err)
		}
		// Bound: not for another number, nor from another client.
		if _, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(gbNumber(2)), Channel: verify.ChannelSMS,
			ClientIP: netipAddr(1), Proof: solution}); !errors.Is(err, abuse.ErrChallengeFailed) {
			t.Errorf("the solution for another number = %v, want %s", err, abuse.ErrChallengeFailed.Code)
		}
		if _, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(gbNumber(1)), Channel: verify.ChannelSMS,
			ClientIP: netipAddr(99), Proof: solution}); !errors.Is(err, abuse.ErrChallengeFailed) {
			t.Errorf("the solution from another client = %v, want %s", err, abuse.ErrChallengeFailed.Code)
		}
		if err := send(1, solution); err != nil {
			t.Fatalf("with its solution = %v, want it through", err)
		}
		if err := send(1, solution); !errors.Is(err, abuse.ErrChallengeFailed) && !errors.Is(err, abuse.ErrPhoneCooldown) {
			t.Errorf("the same solution again = %v, want it refused", err)
		}
		// One more fills the hour's 4; every send after is refused, solved
		// or not.
		for i := 2; i < 3; i++ {
			if err := solveAndSend(t, g, gbNumber(i), netipAddr(i)); err != nil {
				t.Fatalf("send %d below the ceiling, solved = %v", i, err)
			}
		}
		for i := 4; i < 10; i++ {
			if err := solveAndSend(t, g, gbNumber(i), netipAddr(i)); !errors.Is(err, abuse.ErrOverBudget) {
				t.Errorf("send %d over the ceiling, solved = %v, want %s", i, err, abuse.ErrOverBudget.Code)
			}
		}
		if last := g.last(); last.Action != "refused" || last.Rule != "prefix_hour" || last.Pressure <= 1 {
			t.Errorf("the last decision %+v, want prefix_hour refused over the ceiling", last)
		}
	})
}

// solveAndSend sends to, solving every challenge it is asked (twice at
// most), as a determined attacker does.
func solveAndSend(t *testing.T, g *pipeline, to string, ip netip.Addr) error {
	t.Helper()
	proof := ""
	for range 3 {
		_, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number(to), Channel: verify.ChannelSMS,
			ClientIP: ip, Proof: proof})
		e, ok := errors.AsType[*verify.Error](err)
		if !ok || e.Challenge == nil {
			return err
		}
		if proof, err = challenge.Solve(e.Challenge.(challenge.Challenge)); err != nil {
			t.Fatal(err)
		}
	}
	return errors.New("still challenged after two solutions")
}

// TestBrakeSparesConvertingCountries: once the global brake is 80% full,
// sends to countries whose codes are not verified are refused, while a
// country whose recent sends get verified keeps the rest.
func TestBrakeSparesConvertingCountries(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		g, _ := newBudgetGuardFloors(t, store, abuse.ChallengeNever, 10, 600, 600)
		ctx := context.Background()
		// The US converts: three verified sends earlier today.
		for i := range 3 {
			n := fmt.Sprintf("+1415555%04d", i)
			if err := start(g, n, netipAddr(200+i)); err != nil {
				t.Fatal(err)
			}
			if _, err := g.Check(ctx, verify.CheckRequest{To: verifytest.Number(n), Code: "123456", ClientIP: netipAddr(200 + i)}); err != nil {
				t.Fatal(err)
			}
		}
		g.clock.Advance(2 * time.Minute) // a fresh brake minute
		// An attack on many countries, none verified, fills 8 of 10.
		var refused int
		for i := range 20 {
			to := []string{"+447400%06d", "+33612%06d", "+491512%07d", "+34612%06d"}[i%4]
			if err := start(g, fmt.Sprintf(to, i), netipAddr(i)); errors.Is(err, abuse.ErrGlobalLimit) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if refused != 12 {
			t.Errorf("%d of 20 unverified sends refused by the brake, want 12 (8 of its 10 for them)", refused)
		}
		// The converting country still sends.
		for i := range 2 {
			if err := start(g, fmt.Sprintf("+1415555%04d", 10+i), netipAddr(300+i)); err != nil {
				t.Errorf("an honest send to the converting US = %v, want it through", err)
			}
		}
	})
}

// TestCeilingsHoldUnderConcurrency: sends racing for a scope's last places
// cannot overshoot its ceiling: the reservation holds it atomically.
func TestCeilingsHoldUnderConcurrency(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		g, _ := newBudgetGuardFloors(t, store, abuse.ChallengeNever, 0, 600, 24)
		var wg sync.WaitGroup
		var through atomic.Int64
		gate := make(chan struct{})
		for i := range 40 {
			wg.Go(func() {
				<-gate
				if err := start(g, gbNumber(i), netipAddr(i)); err == nil {
					through.Add(1)
				} else if !errors.Is(err, abuse.ErrOverBudget) {
					t.Error(err)
				}
			})
		}
		close(gate)
		wg.Wait()
		if got := through.Load(); got != 4 {
			t.Errorf("40 concurrent sends to one prefix with 4 places: %d through, want 4", got)
		}
	})
}

func TestChallengeWhenTheGlobalBrakeIsNear(t *testing.T) {
	g, _ := newBudgetGuard(t, abuse.BudgetsOff, abuse.ChallengeRisk, 10)
	for i := range 5 {
		if err := start(g, fmt.Sprintf("+1415555%04d", i), netipAddr(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := start(g, "+14155559999", netipAddr(9)); !errors.Is(err, abuse.ErrChallengeRequired) {
		t.Errorf("with 5 of 10 global sends used = %v, want %s", err, abuse.ErrChallengeRequired.Code)
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

// TestChecksBySIDCountAgainstTheNumber: guesses at one number by its
// verification SID, from many addresses, meet the number's check cap as
// guesses by number do.
func TestChecksBySIDCountAgainstTheNumber(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		g, _ := newBudgetGuardWith(t, store, abuse.Config{Limits: abuse.Limits{PhoneChecksPerHour: 15}})
		ctx := context.Background()
		v, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(num1), Channel: verify.ChannelSMS, ClientIP: ip1})
		if err != nil {
			t.Fatal(err)
		}
		var checked int
		for i := range 40 {
			_, err := g.Check(ctx, verify.CheckRequest{SID: v.SID, Code: "000000", ClientIP: netipAddr(i)})
			switch {
			case err == nil:
				checked++
			case !errors.Is(err, abuse.ErrPhoneCheckLimit):
				t.Fatalf("guess %d = %v", i, err)
			}
		}
		if checked != 15 {
			t.Errorf("40 guesses by SID from 40 addresses: %d checked, want 15", checked)
		}
		if _, err := g.Check(ctx, verify.CheckRequest{To: verifytest.Number(num1), Code: "000000", ClientIP: ip2}); !errors.Is(err, abuse.ErrPhoneCheckLimit) {
			t.Errorf("a guess by number after them = %v, want %s: one cap, however the number is named", err, abuse.ErrPhoneCheckLimit.Code)
		}
	})
}

// TestTarpit: with FRAUD_ACTION=tarpit a send over its destination's
// ceiling is answered as sent, with a SID, and reaches no backend; checks
// of it, by SID or by number, answer as a wrong code.
func TestTarpit(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		g, _ := newBudgetGuardWith(t, store, abuse.Config{Tarpit: true,
			Budgets: abuse.Budgets{Mode: abuse.BudgetsEnforce, CountryFloor: 60, PrefixFloor: 6}, Challenge: abuse.ChallengeNever})
		backend := g.backend
		ctx := context.Background()
		if err := start(g, gbNumber(0), netipAddr(0)); err != nil {
			t.Fatal(err)
		}
		before := backend.starts.Load()
		v, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(gbNumber(1)), Channel: verify.ChannelSMS, ClientIP: netipAddr(1)})
		if err != nil || !verify.ValidSID(v.SID) || v.Status != verify.StatusPending {
			t.Fatalf("a send over the ceiling = %+v, %v; want it answered as sent, with a SID", v, err)
		}
		if backend.starts.Load() != before {
			t.Error("a tarpitted send reached the backend")
		}
		if last := g.last(); last.Action != "tarpit" || last.Rule != "prefix_hour" {
			t.Errorf("the decision %+v, want prefix_hour tarpit", last)
		}
		checksBefore := backend.checks.Load()
		for _, req := range []verify.CheckRequest{{SID: v.SID, Code: "123456"}, {To: verifytest.Number(gbNumber(1)), Code: "123456"}} {
			if got, err := g.Check(ctx, req); err != nil || got.Status != verify.StatusPending {
				t.Errorf("a check of the tarpitted send = %+v, %v; want a wrong code", got, err)
			}
		}
		if backend.checks.Load() != checksBefore {
			t.Error("a check of a tarpitted send reached the backend")
		}
	})
}

// TestConvertingPrefixKeepsItsShare: an attack on a country's other
// prefixes fills the country's ceiling, and honest people in a prefix whose
// sends get verified still get their codes.
func TestConvertingPrefixKeepsItsShare(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		// Country floor 12 a day: 2 unverified an hour.
		g, _ := newBudgetGuardFloors(t, store, abuse.ChallengeNever, 0, 12, 600)
		ctx := context.Background()
		honest := func(i int) error {
			n := fmt.Sprintf("+1415555%04d", i)
			if err := start(g, n, netipAddr(100+i)); err != nil {
				return err
			}
			_, err := g.Check(ctx, verify.CheckRequest{To: verifytest.Number(n), Code: "123456", ClientIP: netipAddr(100 + i)})
			return err
		}
		for i := range 3 { // +1415 converts
			if err := honest(i); err != nil {
				t.Fatal(err)
			}
		}
		var out int
		for i := range 20 { // the attack, in +1212
			if err := start(g, fmt.Sprintf("+1212555%04d", i), netipAddr(i)); err == nil {
				out++
			} else if !errors.Is(err, abuse.ErrOverBudget) {
				t.Fatal(err)
			}
		}
		if out != 2 {
			t.Errorf("%d of 20 attack sends went out, want 2 (the country's hourly budget)", out)
		}
		for i := 3; i < 8; i++ {
			if err := honest(i); err != nil {
				t.Errorf("honest person %d in the converting prefix = %v, want verified", i, err)
			}
		}
		if err := start(g, "+12125559999", netipAddr(99)); !errors.Is(err, abuse.ErrOverBudget) {
			t.Errorf("the attack after them = %v, want %s", err, abuse.ErrOverBudget.Code)
		}
	})
}

// TestAFailedTextGivesItsResendBack: a text Twilio could not deliver gives
// back its number's resend wait (not its place in the hourly ceiling), and
// a number that takes no texts is called the next time it asks with no
// channel of its own.
func TestAFailedTextGivesItsResendBack(t *testing.T) {
	stores(t, func(t *testing.T, store abuse.Store) {
		g, _ := newBudgetGuardWith(t, store, abuse.Config{Limits: abuse.Limits{PhoneCooldown: time.Minute}})
		ctx := context.Background()
		v, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(num1), ClientIP: ip1})
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, "a resend at once", start(g, num1, ip1), abuse.ErrPhoneCooldown, time.Minute)
		g.ForgiveResend(ctx, v.SID, true)
		got, err := g.Start(ctx, verify.StartRequest{To: verifytest.Number(num1), ClientIP: ip1})
		if err != nil || got.Channel != verify.ChannelCall {
			t.Errorf("a send after the text failed as a landline = %v by %q, want it through, by call", err, got.Channel)
		}
		g.ForgiveResend(ctx, "VE"+strings.Repeat("0", 32), false) // a SID never sent: nothing to give back
		wantRefused(t, "a resend after the call", start(g, num1, ip1), abuse.ErrPhoneCooldown, time.Minute)
	})
}
