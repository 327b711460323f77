package engine_test

import (
	"context"
	"fmt"
	"testing"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
)

// lastCode keeps the latest code; the benchmark is single-goroutine.
type lastCode struct{ code string }

func (s *lastCode) Send(_ context.Context, m engine.Message) error {
	s.code = m.Code
	return nil
}

// BenchmarkStartCheck measures a whole verification: a start (code, hash,
// seal, store) and the right check (hash, compare, delete).
func BenchmarkStartCheck(b *testing.B) {
	sender := &lastCode{}
	e := mustNew(b, engine.Config{Sender: sender})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A new number each time keeps the send limit out of the way.
		to := fmt.Sprintf("+1%010d", i)
		i++
		if _, err := e.Start(ctx, verify.StartRequest{To: to, Channel: verify.ChannelSMS}); err != nil {
			b.Fatalf("Start(%q) = %v", to, err)
		}
		v, err := e.Check(ctx, verify.CheckRequest{To: to, Code: sender.code})
		if err != nil || v.Status != verify.StatusApproved {
			b.Fatalf("Check(%q) = %q, %v, want approved", sender.code, v.Status, err)
		}
	}
}
