package engine_test

import (
	"context"
	"fmt"
	"testing"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/verifytest"
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
	// The send limit is out of the way: each number is used many times.
	e := mustNew(b, engine.Config{Sender: sender, MaxSends: 1 << 30})
	ctx := context.Background()
	numbers := make([]verify.Number, 1000)
	for i := range numbers {
		numbers[i] = verifytest.Number(fmt.Sprintf("+1415555%04d", i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		to := numbers[i%len(numbers)]
		i++
		if _, err := e.Start(ctx, verify.StartRequest{To: to, Channel: verify.ChannelSMS}); err != nil {
			b.Fatalf("Start(%v) = %v", to, err)
		}
		v, err := e.Check(ctx, verify.CheckRequest{To: to, Code: sender.code})
		if err != nil || v.Status != verify.StatusApproved {
			b.Fatalf("Check(%q) = %q, %v, want approved", sender.code, v.Status, err)
		}
	}
}
