package delivery_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"verifyd/server/abuse/redistest"
	"verifyd/server/delivery"
	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

func TestFromCallback(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		params map[string]string
		want   delivery.State
	}{
		{map[string]string{"MessageStatus": "queued", "To": "+14155552671"}, delivery.State{Channel: verify.ChannelSMS, Status: delivery.Queued}},
		{map[string]string{"MessageStatus": "sent"}, delivery.State{Channel: verify.ChannelSMS, Status: delivery.Sent}},
		{map[string]string{"MessageStatus": "delivered"}, delivery.State{Channel: verify.ChannelSMS, Status: delivery.Delivered}},
		{map[string]string{"MessageStatus": "undelivered", "ErrorCode": "30006"}, delivery.State{Channel: verify.ChannelSMS, Status: delivery.Undelivered, ErrorCode: 30006}},
		{map[string]string{"MessageStatus": "read", "To": "whatsapp:+14155552671"}, delivery.State{Channel: verify.ChannelWhatsApp, Status: delivery.Delivered}},
		{map[string]string{"CallStatus": "completed"}, delivery.State{Channel: verify.ChannelCall, Status: delivery.Delivered}},
		{map[string]string{"CallStatus": "no-answer"}, delivery.State{Channel: verify.ChannelCall, Status: delivery.Undelivered}},
		{map[string]string{"CallStatus": "failed"}, delivery.State{Channel: verify.ChannelCall, Status: delivery.Failed}},
	} {
		got, err := delivery.FromCallback(tt.params, at)
		tt.want.At = at
		if err != nil || got != tt.want {
			t.Errorf("FromCallback(%v) = %+v, %v; want %+v", tt.params, got, err, tt.want)
		}
	}
	for _, bad := range []map[string]string{{}, {"MessageStatus": "exploded"}, {"CallStatus": "x"},
		{"MessageStatus": "failed", "ErrorCode": "30x"}, {"MessageStatus": "failed", "ErrorCode": "-1"}} {
		if _, err := delivery.FromCallback(bad, at); !errors.Is(err, delivery.ErrNotACallback) {
			t.Errorf("FromCallback(%v) = %v, want %v", bad, err, delivery.ErrNotACallback)
		}
	}
}

// TestStatesNeverGoBack: callbacks out of order and twice leave the most
// advanced state; a new send over another channel starts again.
func TestStatesNeverGoBack(t *testing.T) {
	clk := verifytest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	stores := map[string]func(t *testing.T) delivery.Store{
		"memory": func(t *testing.T) delivery.Store { return delivery.NewMemoryStore(clk.Now) },
		"redis": func(t *testing.T) delivery.Store {
			return delivery.NewRedisStore(redistest.Start(t).Client(t), []byte("a secret of thirty-two bytes, yes"))
		},
	}
	for name, make := range stores {
		t.Run(name, func(t *testing.T) {
			s, ctx := make(t), context.Background()
			const sid = "VE0123456789abcdef0123456789abcdef"
			if _, ok, err := s.Get(ctx, sid); ok || err != nil {
				t.Fatalf("Get before any = %v, %v", ok, err)
			}
			steps := []struct {
				status  delivery.Status
				channel verify.Channel
				want    delivery.Status
				changed bool
			}{
				{delivery.Queued, verify.ChannelSMS, delivery.Queued, true},
				{delivery.Delivered, verify.ChannelSMS, delivery.Delivered, true},
				{delivery.Sent, verify.ChannelSMS, delivery.Delivered, false},      // late
				{delivery.Delivered, verify.ChannelSMS, delivery.Delivered, false}, // twice
				{delivery.Undelivered, verify.ChannelSMS, delivery.Delivered, false},
				{delivery.Queued, verify.ChannelCall, delivery.Queued, true}, // a call after the text
				{delivery.Failed, verify.ChannelCall, delivery.Failed, true},
			}
			for i, st := range steps {
				got, changed, err := s.Record(ctx, sid, delivery.State{Channel: st.channel, Status: st.status, At: clk.Now()})
				if err != nil || got.Status != st.want || changed != st.changed {
					t.Errorf("step %d: Record(%s by %s) = %s, changed %v, %v; want %s, %v", i+1, st.status, st.channel,
						got.Status, changed, err, st.want, st.changed)
				}
			}
			if got, ok, err := s.Get(ctx, sid); !ok || err != nil || got.Status != delivery.Failed || got.Channel != verify.ChannelCall {
				t.Errorf("Get = %+v, %v, %v; want the call failed", got, ok, err)
			}
		})
	}
}
