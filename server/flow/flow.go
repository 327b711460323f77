// Package flow is verifyd's one verification flow: send a code to a number,
// check the code, and on approval issue a signed receipt. The JSON API and
// the form both call it with plain values and only translate HTTP to it and
// back, so every rule and every sentence a person reads has one owner.
//
// It knows nothing of HTTP; the backends behind verify.Verifier know nothing
// of it.
package flow

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"verifyd/server/receipt"
	"verifyd/server/verify"
)

// Config is what a Flow depends on.
type Config struct {
	Verifier verify.Verifier
	Phones   verify.PhoneParser
	Channels verify.Channels // allowed channels, the first is the default
	Locales  *verify.Locales
	// Receipts signs a receipt for every approved check; nil means
	// verifyd runs without receipts.
	Receipts *receipt.Issuer
}

// Flow runs verifications. It is safe for concurrent use.
type Flow struct {
	cfg Config
}

// New checks cfg.
func New(cfg Config) (*Flow, error) {
	switch {
	case cfg.Verifier == nil:
		return nil, errors.New("flow: no verifier")
	case len(cfg.Channels) == 0:
		return nil, errors.New("flow: no channel allowed")
	case cfg.Locales == nil:
		return nil, errors.New("flow: no locales")
	}
	return &Flow{cfg: cfg}, nil
}

// Number reads a phone number as a person typed it.
func (f *Flow) Number(input string) (verify.Number, error) {
	return f.cfg.Phones.Parse(input)
}

// NumberIn reads a phone number in the country a person chose (ISO 3166
// alpha-2; "" for the default region): "(415) 555-2671" with US, "07400
// 123456" with GB, and "+44 7400 123456" or "00 44 7400 123456" as such.
func (f *Flow) NumberIn(input, country string) (verify.Number, error) {
	if country == "" {
		return f.cfg.Phones.Parse(input)
	}
	region, err := verify.ParseCountry(country)
	if err != nil {
		return verify.Number{}, err
	}
	return f.cfg.Phones.ParseIn(input, region)
}

// DefaultRegion is the region national numbers are read in, "" for none.
func (f *Flow) DefaultRegion() string { return f.cfg.Phones.DefaultRegion }

// JWKS is the published receipt key set as JSON, nil when receipts are off.
func (f *Flow) JWKS() []byte {
	if f.cfg.Receipts == nil {
		return nil
	}
	return f.cfg.Receipts.JWKS()
}

// Channels are the channels a person may choose, the default first.
func (f *Flow) Channels() verify.Channels { return f.cfg.Channels }

// Receipts reports whether approved checks come with a receipt.
func (f *Flow) Receipts() bool { return f.cfg.Receipts != nil }

// Start asks for a code to be sent.
type Start struct {
	To verify.Number
	// Channel is the channel asked for, "" for the default.
	Channel string
	// Locale is a locale asked for explicitly ("" for none); otherwise
	// AcceptLanguage (the browser's header) chooses one.
	Locale, AcceptLanguage string
	ClientIP               netip.Addr
	// Proof is a solved step-up challenge, "" when none was asked for.
	Proof string
}

// Sent is a code on its way.
type Sent struct {
	To           verify.Number
	SID          string
	Status       verify.Status
	Channel      verify.Channel
	Locale       string // "" when the backend chooses
	SendAttempts int    // sends of this verification so far, 0 when unknown
}

// Resent reports whether this send repeated an earlier one of the same
// verification (the same code, sent again).
func (s Sent) Resent() bool { return s.SendAttempts > 1 }

// Message says where the code went, as a person reads it, in t's language.
func (s Sent) Message(t Translate) string { return SentMessage(t, s.To, s.Channel, s.Resent()) }

// Start validates in and sends a code. Nothing reaches the backend unless
// every input is valid.
func (f *Flow) Start(ctx context.Context, in Start) (Sent, error) {
	if in.To.IsZero() {
		return Sent{}, verify.ErrMissingTarget
	}
	channel, err := f.cfg.Channels.Pick(in.Channel)
	if err != nil {
		return Sent{}, err
	}
	locale := in.Locale
	if locale == "" {
		locale = f.cfg.Locales.FromAcceptLanguage(in.AcceptLanguage)
	} else if locale, err = f.cfg.Locales.Exact(locale); err != nil {
		return Sent{}, err
	}
	v, err := f.cfg.Verifier.Start(ctx, verify.StartRequest{
		To: in.To, Channel: channel, Locale: locale, ClientIP: in.ClientIP, Proof: in.Proof,
	})
	if err != nil {
		if e, ok := errors.AsType[*verify.Error](err); ok && (e.Kind == verify.KindTimeout || e.Kind == verify.KindUnavailable) && verify.MaybeSent(e) {
			// The code may still arrive: say so, rather than invite a
			// resend that the cooldown will refuse.
			c := *e
			c.Message = MaybeSentMessage
			return Sent{}, &c
		}
		return Sent{}, err
	}
	return Sent{To: in.To, SID: v.SID, Status: v.Status, Channel: channel, Locale: locale,
		SendAttempts: v.SendAttempts}, nil
}

// Check asks whether a code is right, for a number or a verification SID.
type Check struct {
	// To is the number the code went to; the zero Number to check by SID.
	// When both are given the number wins: it is what the client is asking
	// about, and checking by SID could approve another number.
	To   verify.Number
	SID  string
	Code string // as typed: spaces and dashes are ignored
	// Nonce, when not "", is bound into the receipt; the caller has checked
	// it with verify.ParseNonce.
	Nonce    string
	ClientIP netip.Addr
}

// Verified is an approved check.
type Verified struct {
	To      string // E.164, as the backend answered
	SID     string
	Status  verify.Status
	Channel verify.Channel // "" when the backend does not say
	// Receipt is the signed proof; the zero Receipt when receipts are off.
	Receipt receipt.Receipt
}

// Check validates in and checks the code. A wrong code, or a verification
// that is over, is an error: only an approved check answers without one.
func (f *Flow) Check(ctx context.Context, in Check) (Verified, error) {
	req := verify.CheckRequest{To: in.To, ClientIP: in.ClientIP}
	switch {
	case !in.To.IsZero():
	case in.SID != "":
		if !verify.ValidSID(in.SID) {
			return Verified{}, verify.ErrInvalidSID
		}
		req.SID = in.SID
	default:
		return Verified{}, verify.ErrMissingTarget
	}
	code, err := verify.ParseCode(in.Code)
	if err != nil {
		return Verified{}, err
	}
	req.Code = code
	v, err := f.cfg.Verifier.Check(ctx, req)
	if err != nil {
		return Verified{}, err
	}
	if err := verify.Outcome(v); err != nil {
		return Verified{}, err
	}
	out := Verified{To: v.To, SID: v.SID, Status: v.Status, Channel: v.Channel}
	if out.To == "" {
		out.To = in.To.E164()
	}
	if f.cfg.Receipts != nil {
		if out.Receipt, err = f.issue(out, in); err != nil {
			return Verified{}, err
		}
	}
	return out, nil
}

// issue signs the receipt for an approved check. The number is read again
// from the backend's answer: a check by SID names it only there.
func (f *Flow) issue(v Verified, in Check) (receipt.Receipt, error) {
	num := in.To
	if num.IsZero() || num.E164() != v.To {
		var err error
		if num, err = f.cfg.Phones.Parse(v.To); err != nil {
			return receipt.Receipt{}, verify.ErrInternal.With(fmt.Errorf("approved number is not valid: %w", err), 0)
		}
	}
	country := num.Region()
	if len(country) != 2 { // "001" for numbers of no country
		country = ""
	}
	r, err := f.cfg.Receipts.Issue(receipt.Claims{
		PhoneNumber: num.E164(),
		Country:     country,
		Channel:     string(v.Channel),
		Nonce:       in.Nonce,
	})
	if err != nil {
		return receipt.Receipt{}, verify.ErrInternal.With(err, 0)
	}
	return r, nil
}
