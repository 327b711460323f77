package flow

import (
	"context"
	"fmt"
	"net/netip"

	"verifyd/server/receipt"
	"verifyd/server/verify"
)

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

// Check checks a code: the whole pipeline of a check, in the order it
// runs. A wrong code, or a verification that is over, is an error: only an
// approved check answers without one.
func (f *Flow) Check(ctx context.Context, in Check) (out Verified, err error) {
	// 1. What is asked: the number (parsed once, at the edge) or the SID,
	// and the code.
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
	if req.Code, err = verify.ParseCode(in.Code); err != nil {
		return Verified{}, err
	}
	// From here on, every outcome is an event. A check by SID learns its
	// number from the backend's answer.
	num := in.To
	var v verify.Verification
	defer func() {
		channel := string(v.Channel)
		if channel == "" {
			channel = "unknown"
		}
		f.observer.Observe(ctx, Checked{Channel: channel, Country: country(num), Err: err})
	}()

	// 2. The limits: the client's checks and the target's.
	if f.limits != nil {
		if err := f.limits.ReserveCheck(ctx, in.To, req.SID, in.ClientIP); err != nil {
			return Verified{}, err
		}
	}

	// 3. The check: a test number answers here; any other goes to the
	// backend, behind the gate.
	// A tarpitted send was never sent: its checks answer as a wrong code.
	v, test := f.tests.Check(req)
	switch {
	case test:
	case f.limits != nil && f.limits.Tarpitted(ctx, in.To, req.SID):
		v = verify.Verification{SID: req.SID, To: in.To.E164(), Status: verify.StatusPending}
		test = true // nothing to tell the budgets
	default:
		if v, err = call(ctx, f, f.backend.Check, req); err != nil {
			return Verified{}, err
		}
	}
	if v.To != "" && v.To != num.E164() {
		num, _ = f.phones.Parse(v.To) // the one read of the answer's number
	}

	// 4. The verdict, decided here and nowhere else.
	if err := verify.Outcome(v); err != nil {
		return Verified{}, err
	}
	out = Verified{To: v.To, SID: v.SID, Status: v.Status, Channel: v.Channel}
	if out.To == "" {
		out.To = in.To.E164()
	}

	// 5. The budgets learn of the approval: the destination earns room,
	// the number is trusted.
	if f.limits != nil && !test && !num.IsZero() {
		f.limits.Approved(ctx, num)
	}

	// 6. The receipt.
	if f.receipts != nil {
		if out.Receipt, err = f.issue(num, out, in.Nonce); err != nil {
			return Verified{}, err
		}
	}
	return out, nil
}

// issue signs the receipt for an approved check of num.
func (f *Flow) issue(num verify.Number, v Verified, nonce string) (receipt.Receipt, error) {
	if num.IsZero() {
		return receipt.Receipt{}, verify.ErrInternal.With(fmt.Errorf("approved number %s is not valid", verify.Mask(v.To)), 0)
	}
	country := num.Region()
	if len(country) != 2 { // "001" for numbers of no country
		country = ""
	}
	r, err := f.receipts.Issue(receipt.Claims{
		PhoneNumber: num.E164(),
		Country:     country,
		Channel:     string(v.Channel),
		Nonce:       nonce,
	})
	if err != nil {
		return receipt.Receipt{}, verify.ErrInternal.With(err, 0)
	}
	return r, nil
}
