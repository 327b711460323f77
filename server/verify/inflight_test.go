package verify_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

// hanging blocks every call until released.
type hanging struct {
	release chan struct{}
	entered atomic.Int32
}

func (h *hanging) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	h.entered.Add(1)
	<-h.release
	return verify.Verification{Status: verify.StatusPending}, nil
}

func (h *hanging) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	h.entered.Add(1)
	<-h.release
	return verify.Verification{Status: verify.StatusApproved}, nil
}

func TestLimitInFlight(t *testing.T) {
	up := &hanging{release: make(chan struct{})}
	var shed atomic.Int32
	v := verify.LimitInFlight(up, 4, 20*time.Millisecond, func() { shed.Add(1) })
	req := verify.StartRequest{To: verifytest.Number("+14155552671"), Channel: verify.ChannelSMS}

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := v.Start(context.Background(), req)
			errs <- err
		})
	}
	// Four reach the upstream and hang; the sixteen others are refused
	// after the short wait, while the four still hang.
	var overloaded int
	for range 16 {
		if err := <-errs; errors.Is(err, verify.ErrOverloaded) {
			overloaded++
		}
	}
	if overloaded != 16 || up.entered.Load() != 4 || shed.Load() != 16 {
		t.Errorf("overloaded %d, upstream entered %d, shed %d; want 16, 4, 16", overloaded, up.entered.Load(), shed.Load())
	}
	if e := verify.AsError(verify.ErrOverloaded); e.RetryAfter <= 0 || e.Kind != verify.KindDegraded {
		t.Errorf("ErrOverloaded = %+v, want a 503 kind with a Retry-After", e)
	}
	close(up.release)
	wg.Wait()
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("a call in flight = %v, want it through", err)
		}
	}
	// The places are free again.
	if _, err := v.Check(context.Background(), verify.CheckRequest{To: req.To, Code: "123456"}); err != nil {
		t.Errorf("Check after the load = %v", err)
	}

	// A caller that goes away while waiting is not an overload.
	holder := &hanging{release: make(chan struct{})}
	defer close(holder.release)
	full := verify.LimitInFlight(holder, 1, time.Minute, nil)
	go full.Start(context.Background(), req)
	verifytest.WaitFor(t, "the first call to hold the place", func() bool { return holder.entered.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := full.Start(ctx, req); !errors.Is(err, verify.ErrClientGone) {
		t.Errorf("waiting caller gone = %v, want %v", err, verify.ErrClientGone)
	}
}
