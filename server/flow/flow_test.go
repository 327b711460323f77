package flow_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/flow"
	"verifyd/server/receipt"
	"verifyd/server/receipt/receipttest"
	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

const (
	mobile = "+14155552671"
	sid    = "VE0123456789abcdef0123456789abcdef"
)

var client = netip.MustParseAddr("203.0.113.7")

// steps records, in order, every step the flow asked and every call that
// reached the backend, and can refuse at any step.
type steps struct {
	mu     sync.Mutex
	calls  []string
	refuse map[string]error // step name → its answer
	events []flow.Event
	start  func(verify.StartRequest) (verify.Verification, error)
	check  func(verify.CheckRequest) (verify.Verification, error)
}

func (s *steps) log(step string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, step)
	return s.refuse[step]
}

func (s *steps) Destination(n verify.Number, ch verify.Channel, test bool) error {
	if test {
		return s.log("destination(test)")
	}
	return s.log("destination")
}

func (s *steps) StepUp(_ context.Context, n verify.Number, ip netip.Addr, proof string) (abuse.BudgetDecision, error) {
	return abuse.BudgetDecision{Country: n.Region(), Action: "allowed"}, s.log("step-up")
}

func (s *steps) ReserveSend(_ context.Context, n verify.Number, ip netip.Addr, test bool, d abuse.BudgetDecision) (*abuse.Reservation, error) {
	// No reservation: the settling of a real one is abuse's own test
	// (TestGuardHonestCounting), through this flow.
	return nil, s.log("reserve-send")
}

func (s *steps) ReserveCheck(_ context.Context, n verify.Number, sid string, ip netip.Addr) error {
	return s.log("reserve-check")
}

func (s *steps) Approved(_ context.Context, n verify.Number) { s.log("approved " + n.E164()) }

func (s *steps) Tarpit(_ context.Context, n verify.Number, sid string) { s.log("tarpit") }

func (s *steps) ReserveLookup(context.Context, netip.Addr) error { return s.log("reserve-lookup") }

func (s *steps) ForgiveResend(_ context.Context, sid string, landline bool) {
	s.log(fmt.Sprintf("forgive-resend landline=%v", landline))
}

// Landline is asked before any step, of numbers sent by the default
// channel where calls are allowed: not a step of its own.
func (s *steps) Landline(context.Context, verify.Number) bool { return false }

func (s *steps) Tarpitted(_ context.Context, n verify.Number, sid string) bool {
	return s.log("tarpitted?") != nil // refuse["tarpitted?"] set: this check is of a tarpitted send
}

func (s *steps) Enter(context.Context) (func(), error) {
	if err := s.log("gate"); err != nil {
		return nil, err
	}
	return func() { s.log("leave") }, nil
}

func (s *steps) Start(_ context.Context, req verify.StartRequest) (verify.Verification, error) {
	s.log("backend-start")
	if s.start != nil {
		return s.start(req)
	}
	return verify.Verification{SID: sid, To: req.To.E164(), Status: verify.StatusPending, SendAttempts: 1}, nil
}

func (s *steps) Check(_ context.Context, req verify.CheckRequest) (verify.Verification, error) {
	s.log("backend-check")
	if s.check != nil {
		return s.check(req)
	}
	return verify.Verification{SID: sid, To: mobile, Channel: verify.ChannelSMS, Status: verify.StatusApproved}, nil
}

func (s *steps) Observe(_ context.Context, e flow.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *steps) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func newFlow(t *testing.T, s *steps, tests flow.TestNumbers, receipts *receipt.Issuer) *flow.Flow {
	t.Helper()
	cfg := flow.Config{Backend: s, Channels: verify.Channels{verify.ChannelSMS, verify.ChannelCall},
		Locales: verify.NewLocales(), Policy: s, StepUp: s, Limits: s, Gate: s, Observer: s, Receipts: receipts}
	if tests != nil {
		cfg.Tests = tests
	}
	f, err := flow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestStartRunsTheStepsInOrder: a send asks each step once, in the order
// the pipeline promises, and only then the backend, behind the gate.
func TestStartRunsTheStepsInOrder(t *testing.T) {
	s := &steps{}
	f := newFlow(t, s, nil, nil)
	sent, err := f.Start(context.Background(), flow.Start{To: verifytest.Number(mobile), ClientIP: client})
	if err != nil {
		t.Fatalf("Start = %v", err)
	}
	want := []string{"destination", "step-up", "reserve-send", "gate", "backend-start", "leave"}
	if got := s.got(); !slices.Equal(got, want) {
		t.Errorf("steps = %v, want %v", got, want)
	}
	if sent.SID != sid || sent.Channel != verify.ChannelSMS || sent.To.E164() != mobile {
		t.Errorf("Start = %+v, want the backend's SID, SMS, the number", sent)
	}
	if len(s.events) != 2 {
		t.Fatalf("events = %#v, want the decision and the send", s.events)
	}
	if e, ok := s.events[1].(flow.Started); !ok || e.Outcome() != "sent" || e.Country != "US" {
		t.Errorf("last event = %#v, want Started sent to US", s.events[1])
	}
}

// TestStartStopsAtTheFirstRefusal: a refusing step ends the send there;
// nothing after it runs, and the refusal is the answer and the event.
func TestStartStopsAtTheFirstRefusal(t *testing.T) {
	for _, tt := range []struct {
		step string
		err  *verify.Error
		want []string
	}{
		{"destination", abuse.ErrCountryNotAllowed, []string{"destination"}},
		{"step-up", abuse.ErrChallengeRequired, []string{"destination", "step-up"}},
		{"reserve-send", abuse.ErrPhoneCooldown, []string{"destination", "step-up", "reserve-send"}},
		{"gate", verify.ErrOverloaded, []string{"destination", "step-up", "reserve-send", "gate"}},
	} {
		t.Run(tt.step, func(t *testing.T) {
			s := &steps{refuse: map[string]error{tt.step: tt.err}}
			f := newFlow(t, s, nil, nil)
			_, err := f.Start(context.Background(), flow.Start{To: verifytest.Number(mobile)})
			if !errors.Is(err, tt.err) {
				t.Errorf("Start = %v, want %v", err, tt.err)
			}
			if got := s.got(); !slices.Equal(got, tt.want) {
				t.Errorf("steps = %v, want %v", got, tt.want)
			}
			last, ok := s.events[len(s.events)-1].(flow.Started)
			if !ok || !errors.Is(last.Err, tt.err) {
				t.Errorf("last event = %#v, want Started with %v", s.events[len(s.events)-1], tt.err)
			}
		})
	}
}

// TestStartRefusesBadInputBeforeAnyStep: input that is not valid reaches
// no step and is no event.
func TestStartRefusesBadInputBeforeAnyStep(t *testing.T) {
	s := &steps{}
	f := newFlow(t, s, nil, nil)
	ctx := context.Background()
	for _, in := range []flow.Start{
		{},
		{To: verifytest.Number(mobile), Channel: "whatsapp"},
		{To: verifytest.Number(mobile), Locale: "xx-nope"},
	} {
		if _, err := f.Start(ctx, in); verify.AsError(err).Kind != verify.KindInvalid {
			t.Errorf("Start(%+v) = %v, want an invalid-input error", in, err)
		}
	}
	if got := s.got(); len(got) != 0 || len(s.events) != 0 {
		t.Errorf("bad input reached %v and made %d events", got, len(s.events))
	}
}

// TestTestNumbersNeverReachTheBackend: a test number passes the country
// policy (but not the number-type one), skips the step-up, reserves only
// as a test number, and is answered locally.
func TestTestNumbersNeverReachTheBackend(t *testing.T) {
	codes, err := abuse.ParseTestNumbers(mobile+":123456", verify.PhoneParser{})
	if err != nil {
		t.Fatal(err)
	}
	s := &steps{}
	f := newFlow(t, s, abuse.NewTestNumbers(codes), nil)
	ctx := context.Background()
	sent, err := f.Start(ctx, flow.Start{To: verifytest.Number(mobile)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Check(ctx, flow.Check{SID: sent.SID, Code: "123456"}); err != nil {
		t.Errorf("the test number's code by SID = %v, want approved", err)
	}
	want := []string{"destination(test)", "reserve-send", "reserve-check"}
	if got := s.got(); !slices.Equal(got, want) {
		t.Errorf("steps = %v, want %v (no step-up, no backend, no budget approval)", got, want)
	}
}

// TestCheckBySIDReadsTheAnswersNumber: a check by SID learns its number
// from the backend's answer, and that number is what the budgets, the
// receipt and the event see.
func TestCheckBySIDReadsTheAnswersNumber(t *testing.T) {
	key, err := receipt.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := receipt.NewIssuer(receipt.IssuerConfig{Keys: []receipt.Key{key}, Issuer: "https://verifyd.test", Audience: "app"})
	if err != nil {
		t.Fatal(err)
	}
	s := &steps{check: func(verify.CheckRequest) (verify.Verification, error) {
		return verify.Verification{SID: sid, To: "+447400123456", Channel: verify.ChannelCall, Status: verify.StatusApproved}, nil
	}}
	f := newFlow(t, s, nil, iss)
	v, err := f.Check(context.Background(), flow.Check{SID: sid, Code: "123 456", Nonce: "n-1"})
	if err != nil {
		t.Fatalf("Check = %v", err)
	}
	want := []string{"reserve-check", "tarpitted?", "gate", "backend-check", "leave", "approved +447400123456"}
	if got := s.got(); !slices.Equal(got, want) {
		t.Errorf("steps = %v, want %v", got, want)
	}
	claims, _, err := receipttest.Verify(v.Receipt.Token, iss.JWKS(), "https://verifyd.test", "app", time.Now())
	if err != nil {
		t.Fatalf("the receipt does not verify: %v", err)
	}
	if claims.PhoneNumber != "+447400123456" || claims.Country != "GB" || claims.Channel != "call" || claims.Nonce != "n-1" {
		t.Errorf("receipt claims = %+v, want the answer's GB number by call, with the nonce", claims)
	}
	if e, ok := s.events[0].(flow.Checked); !ok || e.Outcome() != "approved" || e.Country != "GB" || e.Channel != "call" {
		t.Errorf("event = %#v, want Checked approved, GB, call", s.events[0])
	}
}

// TestCheckVerdicts: only an approved answer is a success; the flow's one
// verdict names the rest, and only an approval is told to the budgets.
func TestCheckVerdicts(t *testing.T) {
	for _, tt := range []struct {
		status  verify.Status
		want    error
		outcome string
	}{
		{verify.StatusApproved, nil, "approved"},
		{verify.StatusPending, verify.ErrWrongCode, "wrong_code"},
		{verify.StatusExpired, verify.ErrExpired, "expired"},
		{verify.StatusMaxAttemptsReached, verify.ErrMaxAttemptsReached, "expired"},
		{verify.StatusCanceled, verify.ErrCanceled, "expired"},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			s := &steps{check: func(req verify.CheckRequest) (verify.Verification, error) {
				return verify.Verification{SID: sid, To: req.To.E164(), Status: tt.status}, nil
			}}
			f := newFlow(t, s, nil, nil)
			_, err := f.Check(context.Background(), flow.Check{To: verifytest.Number(mobile), Code: "123456"})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Check answered %s = %v, want %v", tt.status, err, tt.want)
			}
			approved := slices.ContainsFunc(s.got(), func(c string) bool { return strings.HasPrefix(c, "approved") })
			if approved != (tt.want == nil) {
				t.Errorf("budgets told of an approval: %v, want %v", approved, tt.want == nil)
			}
			if e := s.events[0].(flow.Checked); e.Outcome() != tt.outcome {
				t.Errorf("outcome = %q, want %q", e.Outcome(), tt.outcome)
			}
		})
	}
}

// TestMaybeSentSaysSo: a send whose fate is unknown tells the person the
// code may still arrive, keeping the error's code.
func TestMaybeSentSaysSo(t *testing.T) {
	s := &steps{start: func(verify.StartRequest) (verify.Verification, error) {
		return verify.Verification{}, verify.ErrTimeout.With(errors.New("deadline"), 0)
	}}
	f := newFlow(t, s, nil, nil)
	_, err := f.Start(context.Background(), flow.Start{To: verifytest.Number(mobile)})
	e := verify.AsError(err)
	if e.Code != verify.ErrTimeout.Code || e.Message != flow.MaybeSentMessage {
		t.Errorf("Start after a timeout = %q %q, want %q with the may-still-arrive sentence", e.Code, e.Message, verify.ErrTimeout.Code)
	}
}
