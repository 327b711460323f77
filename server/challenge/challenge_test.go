package challenge_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"verifyd/server/challenge"
	"verifyd/server/verify/verifytest"
)

// memorySpent remembers ids in a map, for the tests.
func memorySpent() challenge.Spent {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(_ context.Context, id string, _ time.Time) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		first := !seen[id]
		seen[id] = true
		return first, nil
	}
}

func newIssuer(t *testing.T, clk *verifytest.Clock, maxNumber int64) *challenge.Issuer {
	t.Helper()
	i, err := challenge.New(challenge.Config{Key: []byte(strings.Repeat("k", 32)), MaxNumber: maxNumber,
		TTL: 5 * time.Minute, Spent: memorySpent(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestChallenge(t *testing.T) {
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	iss := newIssuer(t, clk, 5000)
	ctx := context.Background()
	c, err := iss.New()
	if err != nil {
		t.Fatal(err)
	}
	if c.Algorithm != "SHA-256" || c.MaxNumber != 5000 || !strings.Contains(c.Salt, "expires=") || !strings.HasSuffix(c.Salt, "&") {
		t.Errorf("challenge %+v", c)
	}
	solution, err := challenge.Solve(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.Verify(ctx, solution, ""); err != nil {
		t.Fatalf("Verify(a solution) = %v", err)
	}
	if err := iss.Verify(ctx, solution, ""); !errors.Is(err, challenge.ErrReplayed) {
		t.Errorf("Verify(the same solution again) = %v, want %v", err, challenge.ErrReplayed)
	}

	// Expired: solved in time, posted too late.
	late, _ := iss.New()
	lateSolution, _ := challenge.Solve(late)
	clk.Advance(5*time.Minute + time.Second)
	if err := iss.Verify(ctx, lateSolution, ""); !errors.Is(err, challenge.ErrExpired) {
		t.Errorf("Verify(an expired solution) = %v, want %v", err, challenge.ErrExpired)
	}

	// Issued at a lower difficulty than is asked now.
	easy, _ := newIssuer(t, clk, 1000).New()
	easySolution, _ := challenge.Solve(easy)
	if err := iss.Verify(ctx, easySolution, ""); !errors.Is(err, challenge.ErrDifficulty) {
		t.Errorf("Verify(a solution at a lower difficulty) = %v, want %v", err, challenge.ErrDifficulty)
	}

	// Forged: another number, another salt, another key's signature.
	fresh, _ := iss.New()
	good, _ := challenge.Solve(fresh)
	var p challenge.Payload
	data, _ := base64.StdEncoding.DecodeString(good)
	json.Unmarshal(data, &p)
	for name, mutate := range map[string]func(p *challenge.Payload){
		"wrong number":    func(p *challenge.Payload) { p.Number++ },
		"easier salt":     func(p *challenge.Payload) { p.Salt = strings.Replace(p.Salt, "maxnumber=5000", "maxnumber=9999", 1) },
		"self-signed":     func(p *challenge.Payload) { p.Signature = strings.Repeat("0", 64) },
		"other algorithm": func(p *challenge.Payload) { p.Algorithm = "SHA-1" },
	} {
		q := p
		mutate(&q)
		b, _ := json.Marshal(q)
		if err := iss.Verify(ctx, base64.StdEncoding.EncodeToString(b), ""); err == nil {
			t.Errorf("Verify(%s) = nil, want a refusal", name)
		}
	}
	for _, junk := range []string{"", "not base64!", base64.StdEncoding.EncodeToString([]byte("{")), strings.Repeat("A", 4096)} {
		if err := iss.Verify(ctx, junk, ""); !errors.Is(err, challenge.ErrMalformed) {
			t.Errorf("Verify(%.20q) = %v, want %v", junk, err, challenge.ErrMalformed)
		}
	}
	// The untouched solution still works once.
	if err := iss.Verify(ctx, good, ""); err != nil {
		t.Errorf("Verify(the good solution) = %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []challenge.Config{
		{Key: []byte("short"), MaxNumber: 5000, TTL: time.Minute, Spent: memorySpent()},
		{Key: []byte(strings.Repeat("k", 32)), MaxNumber: 10, TTL: time.Minute, Spent: memorySpent()},
		{Key: []byte(strings.Repeat("k", 32)), MaxNumber: 5000, Spent: memorySpent()},
		{Key: []byte(strings.Repeat("k", 32)), MaxNumber: 5000, TTL: time.Minute},
	} {
		if _, err := challenge.New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

// TestChallengeIsBoundAndShortLived: a challenge made for one send is
// refused for another, or unbound; its difficulty is at least the
// configured one; and its life is capped at MaxTTL whatever the TTL.
func TestChallengeIsBoundAndShortLived(t *testing.T) {
	clk := verifytest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	iss, err := challenge.New(challenge.Config{Key: []byte(strings.Repeat("k", 32)), MaxNumber: 1000,
		TTL: time.Hour, Spent: memorySpent(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := iss.NewFor("number-a|client-1", 4000)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxNumber != 4000 || !strings.Contains(c.Salt, "for=number-a%7Cclient-1") {
		t.Errorf("bound challenge %+v, want difficulty 4000 and the binding in its salt", c)
	}
	if easy, _ := iss.NewFor("x", 10); easy.MaxNumber != 1000 {
		t.Errorf("NewFor below the configured difficulty gave %d, want 1000", easy.MaxNumber)
	}
	solution, err := challenge.Solve(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{"number-b|client-1", "number-a|client-2", ""} {
		if err := iss.Verify(ctx, solution, other); !errors.Is(err, challenge.ErrUnbound) {
			t.Errorf("Verify for %q = %v, want %v", other, err, challenge.ErrUnbound)
		}
	}
	clk.Advance(challenge.MaxTTL + time.Second) // the configured hour is not honoured
	if err := iss.Verify(ctx, solution, "number-a|client-1"); !errors.Is(err, challenge.ErrExpired) {
		t.Errorf("Verify after MaxTTL = %v, want %v", err, challenge.ErrExpired)
	}
}
