package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// saturation is the most operations a second the machine carries,
// straight to the stand-in and through verifyd, in the same run: their
// ratio is verifyd's cost where it matters, on a busy machine. An
// operation is one request-otp, or a whole verification: request-otp then
// verify-otp for the same number, as a person does.
type saturation struct {
	Operation   string        `json:"operation"`
	Concurrency int           `json:"concurrency"`
	Direct      saturationRun `json:"direct"`
	Proxy       saturationRun `json:"proxy"`
}

// saturationRun is one side of a saturation: operations that succeeded a
// second, over the time measured, and the operations that failed.
type saturationRun struct {
	OpsPerSec float64       `json:"ops_per_s"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Errors    int           `json:"errors"`
	P99       time.Duration `json:"p99_ns"`
	// CPUPerOp is the process's CPU time an operation (hops only).
	CPUPerOp time.Duration `json:"cpu_per_op_ns,omitempty"`
}

func saturateBoth(ctx context.Context, o options, st *standin, v *verifyd, op string, conc int) (*saturation, error) {
	dur := 4 * time.Second
	if o.short {
		dur = 2 * time.Second
	}
	s := &saturation{Operation: op, Concurrency: conc}
	steps := []string{"request-otp"}
	if op == "verification" {
		steps = append(steps, "verify-otp")
	}
	// measure warms up for a quarter of dur, calls measuring, then runs
	// closed loop for dur, each operation on a new number.
	measure := func(call func(ctx context.Context, step, to string) bool, measuring func()) saturationRun {
		each := func(ctx context.Context) bool {
			to := o.numbers.next()
			for _, step := range steps {
				if !call(ctx, step, to) {
					return false
				}
			}
			return true
		}
		saturate(ctx, conc, dur/4, each)
		measuring()
		ok, errs, elapsed, lat := saturate(ctx, conc, dur, each)
		return saturationRun{OpsPerSec: float64(ok) / elapsed.Seconds(), Elapsed: elapsed, Errors: errs, P99: percentile(lat, 99)}
	}

	dc := st.client(conc)
	s.Direct = measure(func(ctx context.Context, step, to string) bool { return st.call(ctx, dc, step, to) }, func() {})
	dc.CloseIdleConnections()

	pc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 30 * time.Second}
	profiled := make(chan error, 1)
	profile := func() { profiled <- nil }
	if o.cpuProfile != "" && strings.Contains(o.only, "saturate") {
		// The proxied side of the last saturation run writes the profile.
		profile = func() { go func() { profiled <- v.profile(ctx, o.cpuProfile, dur) }() }
	}
	s.Proxy = measure(func(ctx context.Context, step, to string) bool { return v.call(ctx, pc, step, to) }, profile)
	pc.CloseIdleConnections()
	if err := <-profiled; err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "saturation %s c=%d: direct %.0f/s, verifyd %.0f/s\n", op, conc, s.Direct.OpsPerSec, s.Proxy.OpsPerSec)
	return s, nil
}

// hops is request-otp at one concurrency, closed loop, through the bare Go
// hop, the bare Node hop and verifyd (every limit lifted), in the same
// run. Each side is measured rounds times, the sides taking turns so that
// what else the machine does falls on all of them alike; the median round
// of each is kept.
type hops struct {
	Concurrency int                      `json:"concurrency"`
	Rounds      int                      `json:"rounds"`
	Sides       map[string]saturationRun `json:"sides"` // "go", "node", "verifyd"
	Order       []string                 `json:"order"`
}

func compareHops(ctx context.Context, o options, dir string, st *standin, v *verifyd, conc int) (*hops, error) {
	dur, rounds := 3*time.Second, 3
	if o.short {
		dur, rounds = 1500*time.Millisecond, 2
	}
	sides := map[string]*verifyd{"verifyd": v}
	order := []string{"go"}
	for _, lang := range []string{"go", "node"} {
		hop, err := startHop(ctx, lang, dir, st)
		if err != nil {
			if lang == "node" {
				fmt.Fprintf(os.Stderr, "bare node hop: %v (left out)\n", err)
				continue
			}
			return nil, err
		}
		defer hop.Stop()
		sides[lang] = hop
		if lang == "node" {
			order = append(order, "node")
		}
	}
	order = append(order, "verifyd")
	runs := map[string][]saturationRun{}
	for range rounds {
		for _, side := range order {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 30 * time.Second}
			each := func(ctx context.Context) bool { return sides[side].call(ctx, c, "request-otp", o.numbers.next()) }
			saturate(ctx, conc, dur/4, each)
			before, err := sides[side].usage()
			if err != nil {
				return nil, err
			}
			ok, errs, elapsed, lat := saturate(ctx, conc, dur, each)
			after, err := sides[side].usage()
			if err != nil {
				return nil, err
			}
			c.CloseIdleConnections()
			runs[side] = append(runs[side], saturationRun{OpsPerSec: float64(ok) / elapsed.Seconds(), Elapsed: elapsed,
				Errors: errs, P99: percentile(lat, 99), CPUPerOp: time.Duration((after.cpu - before.cpu) / float64(ok+errs) * 1e9)})
			fmt.Fprintf(os.Stderr, "request-otp c=%d %s: %.0f/s p99 %v\n", conc, side, runs[side][len(runs[side])-1].OpsPerSec,
				runs[side][len(runs[side])-1].P99)
		}
	}
	h := &hops{Concurrency: conc, Rounds: rounds, Sides: map[string]saturationRun{}, Order: order}
	for side, rs := range runs {
		slices.SortFunc(rs, func(a, b saturationRun) int { return int(a.OpsPerSec - b.OpsPerSec) })
		h.Sides[side] = rs[len(rs)/2]
	}
	return h, nil
}

// String is the comparison as the bench prints it.
func (h *hops) String() string {
	var b strings.Builder
	names := map[string]string{"go": "bare Go hop", "node": "bare Node hop", "verifyd": "verifyd"}
	fmt.Fprintf(&b, "request-otp, %d connections, closed loop, limits lifted (median of %d rounds):\n", h.Concurrency, h.Rounds)
	for _, side := range h.Order {
		r := h.Sides[side]
		fmt.Fprintf(&b, "  %-14s %7.0f/s  p99 %-8s cpu %-6s/op  %d errors", names[side], r.OpsPerSec, ms(r.P99), ms(r.CPUPerOp), r.Errors)
		if side == "verifyd" {
			for _, base := range h.Order[:len(h.Order)-1] {
				ref := h.Sides[base]
				fmt.Fprintf(&b, "; %.2f of the %s's rate, p99 %.2fx", r.OpsPerSec/ref.OpsPerSec, names[base],
					float64(r.P99)/float64(ref.P99))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
