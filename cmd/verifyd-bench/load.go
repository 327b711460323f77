package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// schedule answers the intended start of each request of an open-loop run:
// rate per second, evenly spaced, over dur.
func schedule(rate float64, dur time.Duration) []time.Duration {
	n := int(math.Floor(rate * dur.Seconds()))
	out := make([]time.Duration, n)
	step := float64(time.Second) / rate
	for i := range out {
		out[i] = time.Duration(float64(i) * step)
	}
	return out
}

// sample is one request's outcome. Its latency runs from the request's
// intended start, not from when a worker got to it: when the server falls
// behind, the wait it causes is counted (no coordinated omission).
type sample struct {
	latency time.Duration
	ok      bool
}

// attack runs do once per scheduled start with at most conc requests in
// flight, and answers the samples and the time from the first intended
// start to the last completion.
func attack(ctx context.Context, starts []time.Duration, conc int, do func(ctx context.Context, i int) bool) ([]sample, time.Duration) {
	type job struct {
		i  int
		at time.Time
	}
	jobs := make(chan job, len(starts))
	samples := make([]sample, len(starts))
	begin := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for j := range jobs {
				ok := do(ctx, j.i)
				samples[j.i] = sample{latency: time.Since(j.at), ok: ok}
			}
		})
	}
	for i, s := range starts {
		at := begin.Add(s)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		jobs <- job{i: i, at: at}
	}
	close(jobs)
	wg.Wait()
	return samples, time.Since(begin)
}

// summary is what a run measured.
type summary struct {
	Requests   int           `json:"requests"`
	Errors     int           `json:"errors"`
	Throughput float64       `json:"throughput_rps"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

func summarize(samples []sample, elapsed time.Duration) summary {
	s := summary{Requests: len(samples)}
	lat := make([]time.Duration, 0, len(samples))
	for _, x := range samples {
		if !x.ok {
			s.Errors++
		}
		lat = append(lat, x.latency)
	}
	slices.Sort(lat)
	s.P50, s.P90, s.P99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	if elapsed > 0 {
		s.Throughput = float64(len(samples)-s.Errors) / elapsed.Seconds()
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// saturate runs do as fast as conc workers can for dur (closed loop, each
// worker sends its next request when the last one answered), and answers
// the operations that succeeded, those that failed, the time taken (the
// last answers come after dur) and every operation's latency, sorted.
func saturate(ctx context.Context, conc int, dur time.Duration, do func(ctx context.Context) bool) (int, int, time.Duration, []time.Duration) {
	var ok, errs atomic.Int64
	deadline := time.Now().Add(dur)
	begin := time.Now()
	var wg sync.WaitGroup
	lats := make([][]time.Duration, conc)
	for w := range conc {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t := time.Now()
				if do(ctx) {
					ok.Add(1)
				} else {
					errs.Add(1)
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	all := slices.Concat(lats...)
	slices.Sort(all)
	return int(ok.Load()), int(errs.Load()), time.Since(begin), all
}
