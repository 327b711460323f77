// Package flow is verifyd's one verification pipeline: send a code to a
// number, check the code, and on approval issue a signed receipt. The JSON
// API and the form both call it with plain values and only translate HTTP
// to it and back, so every rule and every sentence a person reads has one
// owner.
//
// Start and Check each read top to bottom in the order things happen. Each
// step is a small interface held as a field of the Flow (the abuse guard,
// the test numbers, the gate in front of the backend, the backend, the
// receipt issuer), and what happened is told to one Observer as typed
// events: metrics and the decision log watch, they wrap nothing.
//
// It knows nothing of HTTP.
package flow

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"verifyd/server/abuse"
	"verifyd/server/delivery"
	"verifyd/server/receipt"
	"verifyd/server/verify"
)

// TestNumbers answers a few configured numbers locally (abuse.TestNumbers).
type TestNumbers interface {
	Has(n verify.Number) bool
	Start(n verify.Number, ch verify.Channel) verify.Verification
	// Check answers a check of a test number; ok is false for any other.
	Check(req verify.CheckRequest) (v verify.Verification, ok bool)
}

// Policy decides from the number alone whether it may be sent a code: the
// country allowlist and the refused number types (abuse.Guard).
type Policy interface {
	Destination(n verify.Number, ch verify.Channel, test bool) error
}

// StepUp applies the conversion budgets and the proof-of-work challenge to
// a send, and answers the decision it took (abuse.Guard).
type StepUp interface {
	StepUp(ctx context.Context, n verify.Number, ip netip.Addr, proof string) (abuse.BudgetDecision, error)
}

// Limits count sends and checks against their ceilings (abuse.Guard). A
// send reserves its places (the ceilings the step-up's decision names
// among them) before the backend is called and settles them after;
// Approved tells the budgets of a verified number. A send over its
// destination's ceiling may be tarpitted: answered as sent, never sent,
// and remembered so that checks of it answer as a wrong code.
type Limits interface {
	ReserveSend(ctx context.Context, n verify.Number, ip netip.Addr, test bool, d abuse.BudgetDecision) (*abuse.Reservation, error)
	ReserveCheck(ctx context.Context, n verify.Number, sid string, ip netip.Addr) error
	Approved(ctx context.Context, n verify.Number)
	Tarpit(ctx context.Context, n verify.Number, sid string)
	Tarpitted(ctx context.Context, n verify.Number, sid string) bool
	// ReserveLookup counts a delivery lookup against its client.
	ReserveLookup(ctx context.Context, ip netip.Addr) error
	// ForgiveResend gives back the resend wait of a verification whose
	// text did not arrive; Landline reports a number that takes no texts.
	ForgiveResend(ctx context.Context, sid string, landline bool)
	Landline(ctx context.Context, n verify.Number) bool
}

// Gate bounds the calls in flight to the backend (verify.Gate).
type Gate interface {
	Enter(ctx context.Context) (leave func(), err error)
}

// Config is what a Flow depends on. Backend, Channels and Locales are
// required; every other step is skipped when nil.
type Config struct {
	Backend  verify.Verifier
	Phones   verify.PhoneParser
	Channels verify.Channels // allowed channels, the first is the default
	Locales  *verify.Locales

	Tests  TestNumbers
	Policy Policy
	StepUp StepUp
	Limits Limits
	Gate   Gate
	// Receipts signs a receipt for every approved check; nil means
	// verifyd runs without receipts.
	Receipts *receipt.Issuer
	// Observer is told of everything that happened (see Event).
	Observer Observer
	// Deliveries keeps what became of each send, as Twilio's status
	// callbacks tell it; nil for a backend that gets none (Twilio Verify):
	// every delivery is then unknown.
	Deliveries delivery.Store
	// ResendAfter is the wait before a person may ask for a new code (the
	// limits' per-number cooldown), after which a call is offered.
	ResendAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Flow runs verifications. It is safe for concurrent use.
type Flow struct {
	backend  verify.Verifier
	phones   verify.PhoneParser
	channels verify.Channels
	locales  *verify.Locales
	tests    TestNumbers
	policy   Policy
	stepUp   StepUp
	limits   Limits
	gate     Gate
	receipts *receipt.Issuer
	observer Observer
	// deliveries, resendAfter and now: see Config.
	deliveries  delivery.Store
	resendAfter time.Duration
	now         func() time.Time
	// sendDelay is how long a send to the backend usually takes, so that a
	// tarpitted send answers after as long.
	sendDelay delay
}

// New checks cfg.
func New(cfg Config) (*Flow, error) {
	switch {
	case cfg.Backend == nil:
		return nil, errors.New("flow: no backend")
	case len(cfg.Channels) == 0:
		return nil, errors.New("flow: no channel allowed")
	case cfg.Locales == nil:
		return nil, errors.New("flow: no locales")
	}
	f := &Flow{backend: cfg.Backend, phones: cfg.Phones, channels: cfg.Channels, locales: cfg.Locales,
		tests: cfg.Tests, policy: cfg.Policy, stepUp: cfg.StepUp, limits: cfg.Limits, gate: cfg.Gate,
		receipts: cfg.Receipts, observer: cfg.Observer, deliveries: cfg.Deliveries, resendAfter: cfg.ResendAfter,
		now: cfg.Now}
	if f.now == nil {
		f.now = time.Now
	}
	if f.tests == nil {
		f.tests = noTestNumbers{}
	}
	if f.observer == nil {
		f.observer = Observers(nil)
	}
	return f, nil
}

// Number reads a phone number as a person typed it.
func (f *Flow) Number(input string) (verify.Number, error) {
	return f.phones.Parse(input)
}

// NumberIn reads a phone number in the country a person chose (ISO 3166
// alpha-2; "" for the default region): "(415) 555-2671" with US, "07400
// 123456" with GB, and "+44 7400 123456" or "00 44 7400 123456" as such.
func (f *Flow) NumberIn(input, country string) (verify.Number, error) {
	if country == "" {
		return f.phones.Parse(input)
	}
	region, err := verify.ParseCountry(country)
	if err != nil {
		return verify.Number{}, err
	}
	return f.phones.ParseIn(input, region)
}

// DefaultRegion is the region national numbers are read in, "" for none.
func (f *Flow) DefaultRegion() string { return f.phones.DefaultRegion }

// JWKS is the published receipt key set as JSON, nil when receipts are off.
func (f *Flow) JWKS() []byte {
	if f.receipts == nil {
		return nil
	}
	return f.receipts.JWKS()
}

// Channels are the channels a person may choose, the default first.
func (f *Flow) Channels() verify.Channels { return f.channels }

// Receipts reports whether approved checks come with a receipt.
func (f *Flow) Receipts() bool { return f.receipts != nil }

// call runs one backend call behind the gate.
func call[T any](ctx context.Context, f *Flow, fn func(context.Context, T) (verify.Verification, error), req T) (verify.Verification, error) {
	if f.gate != nil {
		leave, err := f.gate.Enter(ctx)
		if err != nil {
			if errors.Is(err, verify.ErrOverloaded) {
				f.observer.Observe(ctx, Shed{})
			}
			return verify.Verification{}, err
		}
		defer leave()
	}
	return fn(ctx, req)
}

// noTestNumbers is the Flow's TestNumbers when none are configured.
type noTestNumbers struct{}

func (noTestNumbers) Has(verify.Number) bool { return false }
func (noTestNumbers) Start(verify.Number, verify.Channel) verify.Verification {
	return verify.Verification{}
}
func (noTestNumbers) Check(verify.CheckRequest) (verify.Verification, bool) {
	return verify.Verification{}, false
}

// delay is a moving average of durations, safe for concurrent use.
type delay struct {
	mu  sync.Mutex
	avg time.Duration
}

// defaultSendDelay is a send's delay before any was measured: about what
// Twilio takes.
const defaultSendDelay = 300 * time.Millisecond

func (d *delay) observe(took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.avg == 0 {
		d.avg = took
		return
	}
	d.avg += (took - d.avg) / 16
}

func (d *delay) get() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.avg == 0 {
		return defaultSendDelay
	}
	return d.avg
}
