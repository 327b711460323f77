package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
)

func TestPercentile(t *testing.T) {
	var vals []time.Duration
	for i := 1; i <= 100; i++ {
		vals = append(vals, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}}
	for _, tt := range tests {
		if got := percentile(vals, tt.p); got != tt.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("percentile([7], 99) = %v", got)
	}
}

func TestSchedule(t *testing.T) {
	s := schedule(4, 2*time.Second)
	want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond,
		time.Second, 1250 * time.Millisecond, 1500 * time.Millisecond, 1750 * time.Millisecond}
	if len(s) != len(want) {
		t.Fatalf("schedule(4/s, 2s) has %d starts, want %d", len(s), len(want))
	}
	for i := range want {
		if s[i] != want[i] {
			t.Errorf("start %d = %v, want %v", i, s[i], want[i])
		}
	}
}

// TestAttackCountsQueueing: with one worker and requests that take longer
// than their spacing, later requests wait; their latency includes the wait.
func TestAttackCountsQueueing(t *testing.T) {
	// Intended starts all at 0; each request "takes" until its own slot,
	// so the i-th completes no earlier than after i+1 service times.
	starts := make([]time.Duration, 5)
	var calls atomic.Int64
	samples, _ := attack(context.Background(), starts, 1, func(ctx context.Context, i int) bool {
		calls.Add(1)
		spin := time.Now().Add(2 * time.Millisecond)
		for time.Now().Before(spin) {
		}
		return i != 3
	})
	if calls.Load() != 5 {
		t.Fatalf("%d calls, want 5", calls.Load())
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].latency <= samples[i-1].latency {
			t.Errorf("latency %d = %v, not above latency %d = %v: queueing was not counted", i, samples[i].latency, i-1, samples[i-1].latency)
		}
	}
	s := summarize(samples, time.Second)
	if s.Requests != 5 || s.Errors != 1 || s.Throughput != 4 || s.Max != samples[4].latency {
		t.Errorf("summarize = %+v", s)
	}
}

func TestTable(t *testing.T) {
	rows := []row{{Scenario: "request-otp", Concurrency: 64, Upstream: 200 * time.Millisecond,
		Proxy:  summary{Requests: 10, Throughput: 319.5, P50: 201 * time.Millisecond, P90: 202 * time.Millisecond, P99: 210 * time.Millisecond, Max: 215 * time.Millisecond},
		Direct: &summary{}, AddedP50: 150 * time.Microsecond, AddedP99: 800 * time.Microsecond, UpstreamConns: 64, CPUPer1000: 0.42, PeakRSSMB: 21.5}}
	out := table(rows)
	for _, want := range []string{"request-otp", "64", "200.0ms", "319.5", "201.0ms", "150µs", "800µs", "0.42", "21.5"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestNumberSourceValid: the numbers handed out are valid and distinct
// at both ends of the range, which lets next skip the parse.
func TestNumberSourceValid(t *testing.T) {
	var ns numberSource
	first := ns.take(2000)
	ns.last.Store(lastNumber - 2000)
	last := ns.take(2000)
	seen := map[string]bool{}
	for _, s := range append(first, last...) {
		n, err := phonenumbers.Parse(s, "")
		if err != nil || !phonenumbers.IsValidNumber(n) || seen[s] {
			t.Fatalf("%s: invalid or handed out twice (%v)", s, err)
		}
		seen[s] = true
	}
	defer func() {
		if recover() == nil {
			t.Error("next past the range did not stop")
		}
	}()
	ns.next()
}
