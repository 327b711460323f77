package flow

import (
	"context"
	"net/netip"

	"verifyd/server/delivery"
	"verifyd/server/verify"
)

// Delivery is what a person may know of their code's delivery: no number.
type Delivery struct {
	SID       string
	Status    delivery.Status
	Channel   verify.Channel // "" when unknown
	ErrorCode int            // Twilio's, on undelivered and failed
	// CallNow reports that a call may be asked for now: calls are allowed,
	// and the text failed or the resend wait is over.
	CallNow bool
}

// Delivery answers what became of verification sid's latest send, for the
// client at ip (each lookup counts against it).
func (f *Flow) Delivery(ctx context.Context, sid string, ip netip.Addr) (Delivery, error) {
	if !verify.ValidSID(sid) {
		return Delivery{}, verify.ErrInvalidSID
	}
	if f.limits != nil {
		if err := f.limits.ReserveLookup(ctx, ip); err != nil {
			return Delivery{}, err
		}
	}
	out := Delivery{SID: sid, Status: delivery.Unknown}
	if f.deliveries == nil {
		return out, nil
	}
	st, ok, err := f.deliveries.Get(ctx, sid)
	if err != nil {
		return Delivery{}, verify.ErrUnavailable.With(err, 0)
	}
	if !ok {
		return out, nil
	}
	out.Status, out.Channel, out.ErrorCode = st.Status, st.Channel, st.ErrorCode
	textFailed := st.Status.Failed() && st.Channel != verify.ChannelCall
	out.CallNow = f.channels.Allows(verify.ChannelCall) && (textFailed || !f.now().Before(st.Since.Add(f.resendAfter)))
	return out, nil
}

// StatusCallback takes what Twilio said became of verification sid's send
// (the caller checked its signature). A text that did not arrive gives its
// resend back (not its budget: it was paid for), and a number that takes
// no texts is remembered, so its next send is a call.
func (f *Flow) StatusCallback(ctx context.Context, sid string, st delivery.State) error {
	if !verify.ValidSID(sid) {
		return verify.ErrInvalidSID
	}
	if f.deliveries == nil {
		return nil
	}
	kept, changed, err := f.deliveries.Record(ctx, sid, st)
	if err != nil {
		return verify.ErrUnavailable.With(err, 0)
	}
	if !changed {
		return nil
	}
	f.observer.Observe(ctx, Delivered{Channel: kept.Channel, Status: kept.Status})
	if kept.Status.Failed() && kept.Channel != verify.ChannelCall && f.limits != nil {
		f.limits.ForgiveResend(ctx, sid, kept.Landline())
	}
	return nil
}
