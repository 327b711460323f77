package verify_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"verifyd/server/verify"
)

func TestGate(t *testing.T) {
	g := verify.NewGate(4, 20*time.Millisecond)
	var leaves []func()
	for i := range 4 {
		leave, err := g.Enter(context.Background())
		if err != nil {
			t.Fatalf("Enter #%d = %v, want a place", i+1, err)
		}
		leaves = append(leaves, leave)
	}
	// Every place is held: sixteen more are refused after the short wait.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := g.Enter(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, verify.ErrOverloaded) {
			t.Errorf("Enter while full = %v, want %v", err, verify.ErrOverloaded)
		}
	}
	if e := verify.AsError(verify.ErrOverloaded); e.RetryAfter <= 0 || e.Kind != verify.KindDegraded {
		t.Errorf("ErrOverloaded = %+v, want a 503 kind with a Retry-After", e)
	}

	// A caller that goes away while waiting is not an overload.
	slow := verify.NewGate(1, time.Minute)
	leave, err := slow.Enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := slow.Enter(ctx); !errors.Is(err, verify.ErrClientGone) {
		t.Errorf("waiting caller gone = %v, want %v", err, verify.ErrClientGone)
	}
	// A place given back is taken by the next caller.
	leave()
	if l, err := slow.Enter(context.Background()); err != nil {
		t.Errorf("Enter after a place was given back = %v", err)
	} else {
		l()
	}
	for _, l := range leaves {
		l()
	}
	if l, err := g.Enter(context.Background()); err != nil {
		t.Errorf("Enter after the load = %v", err)
	} else {
		l()
	}
}
