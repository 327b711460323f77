package abuse_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"verifyd/server/abuse"
	"verifyd/server/abuse/redistest"
	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

// countingVerifier approves everything and counts what reached it.
type countingVerifier struct{ starts, checks atomic.Int64 }

func (c *countingVerifier) Start(_ context.Context, req verify.StartRequest) (verify.Verification, error) {
	c.starts.Add(1)
	return verify.Verification{SID: "VE0123456789abcdef0123456789abcdef", To: req.To.E164(), Status: verify.StatusPending}, nil
}

func (c *countingVerifier) Check(_ context.Context, req verify.CheckRequest) (verify.Verification, error) {
	c.checks.Add(1)
	return verify.Verification{To: req.To.E164(), Status: verify.StatusApproved}, nil
}

// switchableStore fails every call while down is set, and otherwise
// counts in memory.
type switchableStore struct {
	*abuse.MemoryStore
	down atomic.Bool
}

var errStoreDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (s *switchableStore) Allow(ctx context.Context, now time.Time, rules []abuse.Rule) (abuse.Decision, error) {
	if s.down.Load() {
		return abuse.Decision{}, errStoreDown
	}
	return s.MemoryStore.Allow(ctx, now, rules)
}

func (s *switchableStore) Undo(ctx context.Context, keys []string, event string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Undo(ctx, keys, event)
}

func (s *switchableStore) Count(ctx context.Context, now time.Time, r abuse.Rule) (int, error) {
	if s.down.Load() {
		return 0, errStoreDown
	}
	return s.MemoryStore.Count(ctx, now, r)
}

func (s *switchableStore) Add(ctx context.Context, now time.Time, series ...string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Add(ctx, now, series...)
}

func (s *switchableStore) Read(ctx context.Context, now time.Time, series ...string) ([]abuse.Tally, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.MemoryStore.Read(ctx, now, series...)
}

func (s *switchableStore) Mark(ctx context.Context, now time.Time, key string, ttl time.Duration) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Mark(ctx, now, key, ttl)
}

func (s *switchableStore) Marked(ctx context.Context, now time.Time, key string) (bool, error) {
	if s.down.Load() {
		return false, errStoreDown
	}
	return s.MemoryStore.Marked(ctx, now, key)
}

const (
	num1     = "+14155552671"
	num2     = "+14155552672"
	num3     = "+14155552673"
	ukMobile = "+447400123456"
)

var (
	ip1 = netip.MustParseAddr("203.0.113.1")
	ip2 = netip.MustParseAddr("203.0.113.2")
)

func newGuard(t *testing.T, cfg abuse.Config) (*pipeline, *countingVerifier, *verifytest.Clock) {
	t.Helper()
	backend := &countingVerifier{}
	g, clk := newGuardOver(t, cfg, backend, nil)
	return g, backend, clk
}

// newGuardOver is newGuard in front of backend, with test numbers.
func newGuardOver(t *testing.T, cfg abuse.Config, backend verify.Verifier, tests *abuse.TestNumbers) (*pipeline, *verifytest.Clock) {
	t.Helper()
	clk := verifytest.NewClock(t0)
	cfg.Now = clk.Now
	g, err := abuse.NewGuard(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return newPipeline(t, g, backend, tests), clk
}

func start(g *pipeline, to string, ip netip.Addr) error {
	_, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number(to), Channel: verify.ChannelSMS, ClientIP: ip})
	return err
}

func check(g *pipeline, to string, ip netip.Addr) error {
	_, err := g.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(to), Code: "123456", ClientIP: ip})
	return err
}

// wantRefused asserts err is the refusal want with the given wait.
func wantRefused(t *testing.T, what string, err error, want *verify.Error, wait time.Duration) {
	t.Helper()
	var e *verify.Error
	if !errors.As(err, &e) || e.Code != want.Code || e.RetryAfter != wait {
		t.Errorf("%s = %v, want %s after %v", what, err, want.Code, wait)
	}
}

func TestGuardLimitsAtTheirEdges(t *testing.T) {
	tests := []struct {
		name   string
		limits abuse.Limits
		// call makes the i-th request (0-based).
		call   func(g *pipeline, i int) error
		n      int // requests that pass
		want   *verify.Error
		wait   time.Duration // the refusal's RetryAfter, after n requests at t0
		window time.Duration // after this, one more passes
	}{
		{"phone cooldown", abuse.Limits{PhoneCooldown: 30 * time.Second},
			func(g *pipeline, i int) error { return start(g, num1, netip.Addr{}) },
			1, abuse.ErrPhoneCooldown, 30 * time.Second, 30 * time.Second},
		{"phone per hour", abuse.Limits{PhoneSendsPerHour: 3},
			func(g *pipeline, i int) error { return start(g, num1, netip.Addr{}) },
			3, abuse.ErrPhoneLimit, time.Hour, time.Hour},
		{"ip sends per hour", abuse.Limits{IPSendsPerHour: 2},
			func(g *pipeline, i int) error { return start(g, []string{num1, num2, num3}[i%3], ip1) },
			2, abuse.ErrIPSendLimit, time.Hour, time.Hour},
		{"ip checks per hour", abuse.Limits{IPChecksPerHour: 4},
			func(g *pipeline, i int) error { return check(g, []string{num1, num2, num3}[i%3], ip1) },
			4, abuse.ErrIPCheckLimit, time.Hour, time.Hour},
		// One host rotating through its IPv6 /64 is one client.
		{"ip sends per hour, rotating inside a /64", abuse.Limits{IPSendsPerHour: 2},
			func(g *pipeline, i int) error {
				return start(g, []string{num1, num2, num3}[i%3], netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
			},
			2, abuse.ErrIPSendLimit, time.Hour, time.Hour},
		{"ip checks per hour, rotating inside a /48 with a /48 prefix", abuse.Limits{IPChecksPerHour: 3, IPv6Prefix: 48},
			func(g *pipeline, i int) error {
				return check(g, []string{num1, num2, num3}[i%3], netip.MustParseAddr(fmt.Sprintf("2001:db8:1:%x::1", i+1)))
			},
			3, abuse.ErrIPCheckLimit, time.Hour, time.Hour},
		// Guesses at one number from rotating addresses.
		{"phone checks per hour", abuse.Limits{PhoneChecksPerHour: 15},
			func(g *pipeline, i int) error {
				return check(g, num1, netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}))
			},
			15, abuse.ErrPhoneCheckLimit, time.Hour, time.Hour},
		{"global sends per minute", abuse.Limits{GlobalSendsPerMinute: 2},
			func(g *pipeline, i int) error {
				return start(g, []string{num1, num2, num3}[i%3], []netip.Addr{ip1, ip2}[i%2])
			},
			2, abuse.ErrGlobalLimit, time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, backend, clk := newGuard(t, abuse.Config{Limits: tt.limits})
			for i := range tt.n {
				if err := tt.call(g, i); err != nil {
					t.Fatalf("request %d = %v, want it through", i+1, err)
				}
			}
			before := backend.starts.Load() + backend.checks.Load()
			wantRefused(t, "the next request", tt.call(g, tt.n), tt.want, tt.wait)
			if after := backend.starts.Load() + backend.checks.Load(); after != before {
				t.Errorf("a refused request reached the backend")
			}
			clk.Advance(tt.window - time.Millisecond)
			wantRefused(t, "the next request just before the wait ends", tt.call(g, tt.n), tt.want, time.Millisecond)
			clk.Advance(time.Millisecond)
			if err := tt.call(g, tt.n); err != nil {
				t.Errorf("the next request after the wait = %v, want it through", err)
			}
		})
	}
}

// TestGuardIPv6Networks: addresses in different /64s are different clients;
// an IPv4-mapped address is its IPv4 address.
func TestGuardIPv6Networks(t *testing.T) {
	g, _, _ := newGuard(t, abuse.Config{Limits: abuse.Limits{IPSendsPerHour: 1}})
	if err := start(g, num1, netip.MustParseAddr("2001:db8:1:1::1")); err != nil {
		t.Fatal(err)
	}
	if err := start(g, num2, netip.MustParseAddr("2001:db8:1:2::1")); err != nil {
		t.Errorf("another /64 = %v, want it through", err)
	}
	if err := start(g, num3, netip.MustParseAddr("2001:db8:1:1:ffff::9")); !errors.Is(err, abuse.ErrIPSendLimit) {
		t.Errorf("the first /64 again = %v, want %s", err, abuse.ErrIPSendLimit.Code)
	}
	if err := start(g, num1, netip.MustParseAddr("::ffff:203.0.113.1")); err != nil {
		t.Fatal(err)
	}
	if err := start(g, num2, ip1); !errors.Is(err, abuse.ErrIPSendLimit) {
		t.Errorf("an IPv4 address after its mapped form = %v, want %s", err, abuse.ErrIPSendLimit.Code)
	}
}

func TestGuardLimitsAreIndependent(t *testing.T) {
	g, _, _ := newGuard(t, abuse.Config{Limits: abuse.Limits{PhoneCooldown: time.Minute, IPSendsPerHour: 1}})
	if err := start(g, num1, ip1); err != nil {
		t.Fatal(err)
	}
	if err := start(g, num2, ip2); err != nil {
		t.Errorf("another number from another client = %v, want it through", err)
	}
	if err := start(g, num3, netip.Addr{}); err != nil {
		t.Errorf("a client without an address = %v, want it through", err)
	}
}

func TestGuardDestinations(t *testing.T) {
	// example answers phonenumbers' own example of a type, from the first
	// region (in a fixed order) that has one.
	example := func(preferred string, typ phonenumbers.PhoneNumberType) string {
		regions := append([]string{preferred}, slices.Sorted(maps.Keys(phonenumbers.GetSupportedRegions()))...)
		for _, r := range regions {
			if n := phonenumbers.GetExampleNumberForType(r, typ); n != nil {
				return phonenumbers.Format(n, phonenumbers.E164)
			}
		}
		t.Fatalf("no example number of type %d", typ)
		return ""
	}
	tests := []struct {
		name      string
		countries []string
		to        string
		channel   verify.Channel
		want      *verify.Error
	}{
		{"any country by default", nil, ukMobile, verify.ChannelSMS, nil},
		{"allowed country", []string{"us", "GB"}, ukMobile, verify.ChannelSMS, nil},
		{"country not allowed", []string{"US"}, ukMobile, verify.ChannelSMS, abuse.ErrCountryNotAllowed},
		{"premium rate by sms", nil, example("GB", phonenumbers.PREMIUM_RATE), verify.ChannelSMS, abuse.ErrNumberTypeNotAllowed},
		{"shared cost by sms", nil, example("GB", phonenumbers.SHARED_COST), verify.ChannelSMS, abuse.ErrNumberTypeNotAllowed},
		{"personal number by sms", nil, example("GB", phonenumbers.PERSONAL_NUMBER), verify.ChannelSMS, abuse.ErrNumberTypeNotAllowed},
		{"uan by sms", nil, example("GB", phonenumbers.UAN), verify.ChannelSMS, abuse.ErrNumberTypeNotAllowed},
		// Calls to premium-rate numbers pay their owners as SMS do.
		{"premium rate by call", nil, example("GB", phonenumbers.PREMIUM_RATE), verify.ChannelCall, abuse.ErrNumberTypeNotAllowed},
		{"US premium rate by call", nil, "+19002530000", verify.ChannelCall, abuse.ErrNumberTypeNotAllowed},
		{"shared cost by call", nil, example("GB", phonenumbers.SHARED_COST), verify.ChannelCall, abuse.ErrNumberTypeNotAllowed},
		{"fixed line by call", nil, "+442071838750", verify.ChannelCall, nil},
		{"fixed line or mobile", nil, num1, verify.ChannelSMS, nil},
		// Satellite and international networks: refused unless their code
		// is allowed by name.
		{"Inmarsat +870", nil, "+870772001799", verify.ChannelSMS, abuse.ErrCountryNotAllowed},
		{"Iridium +881 by call", nil, "+881612345678", verify.ChannelCall, abuse.ErrCountryNotAllowed},
		{"international networks +883 allowed by code", []string{"+883"}, "+883510012345", verify.ChannelSMS, nil},
		{"+881 not allowed by another code", []string{"+883", "GB"}, "+881612345678", verify.ChannelSMS, abuse.ErrCountryNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, backend, _ := newGuard(t, abuse.Config{AllowedCountries: tt.countries})
			_, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number(tt.to), Channel: tt.channel})
			if tt.want == nil {
				if err != nil || backend.starts.Load() != 1 {
					t.Errorf("Start(%s by %s) = %v, want it through", tt.to, tt.channel, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Start(%s by %s) = %v, want %s", tt.to, tt.channel, err, tt.want.Code)
			}
			if backend.starts.Load() != 0 {
				t.Errorf("Start(%s) reached the backend", tt.to)
			}
		})
	}
	for _, bad := range []string{"XX", "+44", "+9", "+abc"} {
		if _, err := abuse.NewGuard(abuse.Config{AllowedCountries: []string{bad}}); err == nil {
			t.Errorf("NewGuard with country %q = nil error", bad)
		}
	}
}

func TestGuardStoreOutage(t *testing.T) {
	tests := []struct {
		name                    string
		failOpenSends, openChks bool
		wantStart, wantCheck    error
	}{
		{"default: closed for sends, open for checks", false, true, abuse.ErrLimiterDown, nil},
		{"open for both", true, true, nil, nil},
		{"closed for both", false, false, abuse.ErrLimiterDown, abuse.ErrLimiterDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &switchableStore{MemoryStore: abuse.NewMemoryStore()}
			var logs bytes.Buffer
			g, backend, _ := newGuard(t, abuse.Config{Store: store, FailOpenSends: tt.failOpenSends, FailOpenChecks: tt.openChks,
				Limits: abuse.Limits{IPSendsPerHour: 100, IPChecksPerHour: 100}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			store.down.Store(true)
			for range 3 {
				if err := start(g, num1, ip1); !errors.Is(err, tt.wantStart) || (tt.wantStart == nil) != (err == nil) {
					t.Fatalf("Start during the outage = %v, want %v", err, tt.wantStart)
				}
				if err := check(g, num1, ip1); !errors.Is(err, tt.wantCheck) || (tt.wantCheck == nil) != (err == nil) {
					t.Fatalf("Check during the outage = %v, want %v", err, tt.wantCheck)
				}
			}
			if g.State() != "degraded" {
				t.Errorf("State during the outage = %q", g.State())
			}
			if tt.wantStart != nil && backend.starts.Load() != 0 {
				t.Error("a send reached the backend while failing closed")
			}
			store.down.Store(false)
			if err := start(g, num2, ip1); err != nil {
				t.Errorf("Start after recovery = %v", err)
			}
			if g.State() != "ok" {
				t.Errorf("State after recovery = %q", g.State())
			}
			if n := strings.Count(logs.String(), "unreachable"); n != 1 {
				t.Errorf("the outage was logged %d times, want once:\n%s", n, logs.String())
			}
			if n := strings.Count(logs.String(), "reachable again"); n != 1 {
				t.Errorf("the recovery was logged %d times, want once", n)
			}
		})
	}
}

// TestGuardConcurrentSendsToOneNumber: 200 simultaneous requests for one
// number let exactly the allowed count reach the backend, in memory and in
// Redis.
func TestGuardConcurrentSendsToOneNumber(t *testing.T) {
	run := func(t *testing.T, store abuse.Store) {
		g, backend, _ := newGuard(t, abuse.Config{Store: store, Limits: abuse.Limits{PhoneSendsPerHour: 5}})
		var wg sync.WaitGroup
		var refused atomic.Int64
		gate := make(chan struct{})
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				err := start(g, num1, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
				if errors.Is(err, abuse.ErrPhoneLimit) {
					refused.Add(1)
				} else if err != nil {
					t.Error(err)
				}
			}()
		}
		close(gate)
		wg.Wait()
		if got := backend.starts.Load(); got != 5 || refused.Load() != 195 {
			t.Errorf("200 concurrent sends: %d reached the backend, %d refused; want 5 and 195", got, refused.Load())
		}
	}
	t.Run("memory", func(t *testing.T) { run(t, abuse.NewMemoryStore()) })
	t.Run("redis", func(t *testing.T) {
		run(t, abuse.NewRedisStore(redistest.Start(t).Client(t)))
	})
}

func TestTestNumbers(t *testing.T) {
	codes, err := abuse.ParseTestNumbers(" +1 415 555 0100:123456, +14155550101:0000", verify.PhoneParser{})
	if err != nil {
		t.Fatal(err)
	}
	backend := &countingVerifier{}
	g, _ := newGuardOver(t, abuse.Config{Limits: abuse.Limits{PhoneCooldown: time.Minute, GlobalSendsPerMinute: 1, IPChecksPerHour: 3}},
		backend, abuse.NewTestNumbers(codes))

	// Exempt from the cooldown and the global brake: they cost nothing.
	var sid string
	for i := range 3 {
		v, err := g.Start(context.Background(), verify.StartRequest{To: verifytest.Number("+14155550100"), Channel: verify.ChannelSMS, ClientIP: ip1})
		if err != nil {
			t.Fatalf("start %d of a test number = %v", i+1, err)
		}
		sid = v.SID
	}
	ctx := context.Background()
	if v, err := g.Check(ctx, verify.CheckRequest{To: verifytest.Number("+14155550100"), Code: "654321", ClientIP: ip1}); err != nil || v.Status != verify.StatusPending {
		t.Errorf("wrong code for a test number = %v, %v; want pending", v.Status, err)
	}
	if v, err := g.Check(ctx, verify.CheckRequest{SID: sid, Code: "123456", ClientIP: ip1}); err != nil || v.Status != verify.StatusApproved {
		t.Errorf("right code by SID = %v, %v; want approved", v.Status, err)
	}
	if backend.starts.Load()+backend.checks.Load() != 0 {
		t.Error("a test number reached the backend")
	}
	// Guessing is still limited per client.
	if v, err := g.Check(ctx, verify.CheckRequest{To: verifytest.Number("+14155550101"), Code: "0000", ClientIP: ip1}); err != nil || v.Status != verify.StatusApproved {
		t.Errorf("the second test number = %v, %v", v.Status, err)
	}
	wantRefused(t, "a 4th check from one client", check(g, "+14155550100", ip1), abuse.ErrIPCheckLimit, time.Hour)

	// Other numbers go through to the backend and are limited as usual.
	if err := start(g, num1, ip2); err != nil || backend.starts.Load() != 1 {
		t.Errorf("a real number = %v, want it through to the backend", err)
	}
	wantRefused(t, "a second real number within the global minute", start(g, num2, ip2), abuse.ErrGlobalLimit, time.Minute)

	for _, bad := range []string{"+14155550100", "+14155550100:12", "12:123456", "+14155550100:abcdef"} {
		if _, err := abuse.ParseTestNumbers(bad, verify.PhoneParser{}); err == nil {
			t.Errorf("ParseTestNumbers(%q) = nil error", bad)
		}
	}
}

// failingVerifier fails every start with err.
type failingVerifier struct {
	countingVerifier
	err error
}

func (f *failingVerifier) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	f.starts.Add(1)
	return verify.Verification{}, f.err
}

// TestGuardHonestCounting: a send that certainly did not go out gives back
// what it took from the number's limits; one whose fate is unknown keeps
// it. The client's limit counts every attempt.
func TestGuardHonestCounting(t *testing.T) {
	maybe := verify.ErrUnavailable.With(errors.New("connection reset after the request"), 0)
	maybe.MaybeSent = true
	for _, tt := range []struct {
		name     string
		err      error
		refunded bool
	}{
		{"Twilio refused the number (60205)", verify.ErrLandline, true},
		{"Twilio refused our credentials (401)", verify.ErrMisconfigured, true},
		{"Twilio answered 503", verify.ErrUnavailable, true},
		{"Twilio invalid parameter (60200)", verify.ErrInvalidParameter, true},
		{"timeout after the request went out", verify.ErrTimeout, false},
		{"the connection broke after the request", maybe, false},
		{"the caller went away mid-call", verify.ErrClientGone, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			backend := &failingVerifier{err: tt.err}
			g, _ := newGuardOver(t, abuse.Config{Limits: abuse.Limits{
				PhoneCooldown: 30 * time.Second, PhoneSendsPerHour: 5, GlobalSendsPerMinute: 60, IPSendsPerHour: 2}}, backend, nil)
			if err := start(g, num1, ip1); !errors.Is(err, tt.err) {
				t.Fatalf("Start = %v, want %v", err, tt.err)
			}
			err := start(g, num1, ip1)
			if tt.refunded {
				if !errors.Is(err, tt.err) || backend.starts.Load() != 2 {
					t.Errorf("a retry after a send that did not go out = %v (%d upstream), want it through", err, backend.starts.Load())
				}
				// The client's limit (2) counted both attempts.
				wantRefused(t, "a third attempt", start(g, num2, ip1), abuse.ErrIPSendLimit, time.Hour)
			} else {
				wantRefused(t, "a retry after a send of unknown fate", err, abuse.ErrPhoneCooldown, 30*time.Second)
			}
		})
	}
}

func TestCountryRefusalNamesTheCountriesServed(t *testing.T) {
	g, _, _ := newGuard(t, abuse.Config{AllowedCountries: []string{"us", "GB"}})
	err := start(g, "+33612345678", netip.Addr{})
	if e := verify.AsError(err); e.Code != abuse.ErrCountryNotAllowed.Code ||
		e.Message != "We can send codes only to phone numbers in United Kingdom, United States." {
		t.Errorf("a French number = %v (%q)", err, e.Message)
	}
}
