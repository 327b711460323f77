package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"

	"verifyd/server"
	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/flow"
	"verifyd/server/redisclient"
	"verifyd/server/verify"
	"verifyd/server/verify/twilioverify"
	"verifyd/server/verify/twilioverify/twiliotest"
	"verifyd/server/verify/verifytest"
	"verifyd/static"
	"verifyd/web"
)

// sim is verifyd's pipeline as cmd/verifyd wires it, with its defaults,
// behind a trusted proxy (so each request names its address), in front of
// the Verify stand-in, on one fake clock.
type sim struct {
	clock    *verifytest.Clock // the load tools' fake clock, as the tests'
	standin  *twiliotest.Server
	srv      *httptest.Server
	client   *http.Client
	mu       sync.Mutex
	attacks  map[string]bool // the numbers the attacker sent to
	cleanups []func()
}

func newSim(o options) (*sim, error) {
	s := &sim{clock: verifytest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)), attacks: map[string]bool{}}
	s.standin = twiliotest.NewServer(twiliotest.Options{Now: s.clock.Now})
	s.cleanups = append(s.cleanups, s.standin.Close)
	backend, err := twilioverify.New(twilioverify.Config{
		AccountSID: s.standin.AccountSID(), Username: s.standin.AccountSID(), Password: s.standin.AuthToken(),
		ServiceSID: s.standin.ServiceSID(), BaseURL: s.standin.URL(), RequestTimeout: 10 * time.Second,
	})
	if err != nil {
		s.close()
		return nil, err
	}
	s.cleanups = append(s.cleanups, backend.Close)

	var store abuse.Store = abuse.NewMemoryStore()
	if o.redisURL != "" {
		rdb, err := redisclient.New(o.redisURL)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("-redis: %w", err)
		}
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			rdb.Close()
			s.close()
			return nil, fmt.Errorf("-redis: %w", err)
		}
		s.cleanups = append(s.cleanups, func() { rdb.Close() })
		store = abuse.NewRedisStore(rdb)
	}
	challenges, err := challenge.New(challenge.Config{Key: []byte(rand.Text() + rand.Text()),
		MaxNumber: challenge.DefaultDifficulty, TTL: challenge.DefaultTTL,
		Spent: abuse.SpendOnce(store, s.clock.Now), Now: s.clock.Now})
	if err != nil {
		s.close()
		return nil, err
	}
	guard, err := abuse.NewGuard(abuse.Config{Store: store, Limits: abuse.DefaultLimits(), Budgets: abuse.DefaultBudgets(),
		Challenge: abuse.ChallengeRisk, Challenges: challenges, Tarpit: o.action == "tarpit", Now: s.clock.Now})
	if err != nil {
		s.close()
		return nil, err
	}
	fl, err := flow.New(flow.Config{Backend: backend, Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales(),
		Policy: guard, StepUp: guard, Limits: guard, Gate: verify.NewGate(256, 250*time.Millisecond)})
	if err != nil {
		s.close()
		return nil, err
	}
	h, err := server.NewHandler(server.Config{Logger: slog.New(slog.DiscardHandler), Flow: fl, Web: web.FS, Static: static.FS,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Now: s.clock.Now})
	if err != nil {
		s.close()
		return nil, err
	}
	s.srv = httptest.NewServer(h)
	s.cleanups = append(s.cleanups, s.srv.Close)
	s.client = s.srv.Client()
	return s, nil
}

func (s *sim) close() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// post sends body as JSON from addr (the trusted proxy's X-Forwarded-For).
func (s *sim) post(ctx context.Context, path, addr string, body map[string]string) (int, map[string]any, error) {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+path, bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s answered %d without JSON: %w", path, resp.StatusCode, err)
	}
	return resp.StatusCode, m, nil
}

// send asks for a code to to from addr; with solve, it solves every
// challenge it is asked (twice at most), as the form's script and a
// determined attacker do. It answers whether verifyd said it was sent.
func (s *sim) send(ctx context.Context, addr, to string, solve bool) (bool, error) {
	body := map[string]string{"phoneNumber": to}
	for tries := 0; ; tries++ {
		status, got, err := s.post(ctx, "/api/request-otp", addr, body)
		if err != nil || status == http.StatusOK {
			return status == http.StatusOK, err
		}
		if !solve || tries == 2 || got["challenge"] == nil {
			return false, nil
		}
		data, _ := json.Marshal(got["challenge"])
		var c challenge.Challenge
		if err := json.Unmarshal(data, &c); err != nil {
			return false, err
		}
		if body["altcha"], err = challenge.Solve(c); err != nil {
			return false, err
		}
	}
}

// honest is a person verifying their number: a send (solving what the
// browser solves), then the code the stand-in sent, typed in.
func (s *sim) honest(ctx context.Context, addr, to string) (bool, error) {
	if ok, err := s.send(ctx, addr, to, true); !ok || err != nil {
		return false, err
	}
	code, ok := s.standin.Code(to)
	if !ok {
		return false, nil
	}
	s.clock.Advance(20 * time.Second) // reading the text, typing it
	status, _, err := s.post(ctx, "/api/verify-otp", addr, map[string]string{"phoneNumber": to, "code": code})
	return status == http.StatusOK, err
}

// attacked remembers a number the attacker sent to, for the bill.
func (s *sim) attacked(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attacks[to] = true
}

// bill counts the texts the stand-in sent to the attacker's numbers, and
// their price.
func (s *sim) bill() (int, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var texts int
	var cost float64
	for to, n := range s.standin.Sent() {
		if !s.attacks[to] {
			continue
		}
		texts += n
		num, err := phonenumbers.Parse(to, "")
		if err != nil {
			continue
		}
		cost += float64(n) * prices[phonenumbers.GetRegionCodeForNumber(num)]
	}
	return texts, cost
}

// attackerAddr is address i of the attack's pool: IPv4 for even i, IPv6
// in distinct /64s for odd.
func attackerAddr(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("203.0.%d.%d", 100+(i/2/250)%100, 1+(i/2)%250)
	}
	return fmt.Sprintf("2001:db8:%x:%x::1", (i/2/256)%65536, (i/2)%256)
}

// honestAddr is an honest person's address: each their own.
func honestAddr(i int) string {
	return fmt.Sprintf("198.51.%d.%d", (i/250)%256, 1+i%250)
}

// usNumber is honest person i's number, in +1 415.
func usNumber(i int) string { return fmt.Sprintf("+1415%07d", 2000000+i%8000000) }

// ukNumber is a GB mobile in prefix p of 50 (+44 740 … +44 789), number i
// of it.
func ukNumber(p, i int) string { return fmt.Sprintf("+447%02d%07d", 40+p%50, i%10000000) }

// spreadCountries are the countries of the spread attack, the US (where
// honest people verify) among them.
var spreadCountries = []string{"US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "MX", "IN",
	"ID", "PH", "NG", "KE", "PK", "BD", "VN", "TR", "EG", "AZ"}

// numberIn is a valid mobile number of region, the i-th the attack draws:
// the region's example mobile with its last digits replaced.
func numberIn(region string, i int) string {
	ex := phonenumbers.GetExampleNumberForType(region, phonenumbers.MOBILE)
	base := phonenumbers.Format(ex, phonenumbers.E164)
	for j := 0; ; j++ {
		s := base[:len(base)-5] + fmt.Sprintf("%05d", (i*7919+j*104729)%100000)
		if n, err := phonenumbers.Parse(s, ""); err == nil && phonenumbers.IsValidNumber(n) {
			return s
		}
	}
}

// prices are what one text costs, in USD: illustrative, in the range of
// Twilio's list.
var prices = map[string]float64{
	"US": 0.0083, "GB": 0.0463, "DE": 0.0869, "FR": 0.0797, "ES": 0.0839, "IT": 0.0853, "NL": 0.1037,
	"BR": 0.0444, "MX": 0.0598, "IN": 0.0832, "ID": 0.4093, "PH": 0.2084, "NG": 0.2914, "KE": 0.1842,
	"PK": 0.2652, "BD": 0.3247, "VN": 0.0956, "TR": 0.0452, "EG": 0.2311, "AZ": 0.3027,
}
