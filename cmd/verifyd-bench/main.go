// Command verifyd-bench measures what verifyd adds on top of Twilio Verify.
// It runs the real verifyd binary in Twilio mode against the Verify
// stand-in run as a process over TLS (cmd/twilio-standin), all on loopback,
// drives open-loop load at several concurrencies and upstream latencies, and
// makes the same calls straight to the stand-in in the same run, so the
// difference is verifyd's own cost. `make bench` builds the binaries and
// runs it. It is a tool, never run by the tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"verifyd/cmd/internal/toolrun"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-hop" {
		// The bench starts itself as the bare Go hop (see hop.go).
		if err := serveHop(); err != nil {
			fmt.Fprintln(os.Stderr, "verifyd-bench -hop:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verifyd-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	numbers          *numberSource
	verifyd, standin string
	jsonOut          string
	cpuProfile       string
	short            bool
	only             string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o := options{numbers: &numberSource{}}
	flags := flag.NewFlagSet("verifyd-bench", flag.ContinueOnError)
	flags.StringVar(&o.verifyd, "verifyd", "bin/verifyd", "the verifyd binary")
	flags.StringVar(&o.standin, "standin", "bin/twilio-standin", "the stand-in binary")
	flags.StringVar(&o.jsonOut, "json", "", "also write the table as JSON to this file")
	flags.StringVar(&o.cpuProfile, "cpuprofile", "", "write verifyd's CPU profile of the busiest scenario here")
	flags.BoolVar(&o.short, "short", false, "shorter runs (a quick look, noisier figures)")
	flags.StringVar(&o.only, "only", "", "run only scenarios whose op/backend/concurrency/upstream contains this, e.g. request-otp/twilio/256/200ms")
	if err := flags.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "verifyd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	st, err := startStandin(ctx, o.standin, dir)
	if err != nil {
		return err
	}
	defer st.Stop()

	var rows []row
	twilio, err := startVerifyd(ctx, o.verifyd, dir, "twilio", st.VerifyEnv())
	if err != nil {
		return err
	}
	for _, upstream := range []time.Duration{0, 200 * time.Millisecond} {
		if err := st.setLatency(upstream); err != nil {
			return err
		}
		for _, conc := range []int{1, 64, 256} {
			for _, op := range []string{"request-otp", "verify-otp"} {
				if !strings.Contains(fmt.Sprintf("%s/twilio/%d/%v", op, conc, upstream), o.only) {
					continue
				}
				profile := ""
				if upstream == 0 && conc == 256 && op == "request-otp" {
					profile = o.cpuProfile
				}
				r, err := scenario(ctx, o, st, twilio, op, conc, upstream, profile)
				if err != nil {
					twilio.Stop()
					return fmt.Errorf("%s c=%d upstream=%v: %w", op, conc, upstream, err)
				}
				fmt.Fprintf(os.Stderr, "%s c=%d upstream=%v: %.1f/s p99 %v errors %d\n", op, conc, upstream, r.Proxy.Throughput, r.Proxy.P99, r.Proxy.Errors)
				rows = append(rows, r)
			}
		}
	}
	var hopRun *hops
	if strings.Contains("hops/request-otp/twilio/64/0s", o.only) {
		if err := st.setLatency(0); err != nil {
			return err
		}
		if hopRun, err = compareHops(ctx, o, dir, st, twilio, 64); err != nil {
			twilio.Stop()
			return fmt.Errorf("bare hops: %w", err)
		}
	}
	var sats []*saturation
	for _, op := range []string{"request-otp", "verification"} {
		if !strings.Contains("saturate/"+op+"/twilio/64/0s", o.only) {
			continue
		}
		if err := st.setLatency(0); err != nil {
			return err
		}
		sat, err := saturateBoth(ctx, o, st, twilio, op, 64)
		if err != nil {
			twilio.Stop()
			return fmt.Errorf("saturation: %w", err)
		}
		sats = append(sats, sat)
	}
	// The floor: one loopback HTTP round trip to verifyd and a handler that
	// does nothing. What the proxy adds above it is its own work.
	if strings.Contains("healthz/twilio/1/0s", o.only) {
		r, err := scenario(ctx, o, nil, twilio, "healthz", 1, 0, "")
		if err != nil {
			twilio.Stop()
			return fmt.Errorf("healthz: %w", err)
		}
		rows = append(rows, r)
	}
	twilio.Stop()

	dev, err := startVerifyd(ctx, o.verifyd, dir, "dev", []string{"VERIFY_BACKEND=dev"})
	if err != nil {
		return err
	}
	for _, conc := range []int{1, 64, 256} {
		if !strings.Contains(fmt.Sprintf("request-otp/dev/%d/0s", conc), o.only) {
			continue
		}
		r, err := scenario(ctx, o, nil, dev, "request-otp", conc, 0, "")
		if err != nil {
			dev.Stop()
			return fmt.Errorf("dev request-otp c=%d: %w", conc, err)
		}
		rows = append(rows, r)
	}
	dev.Stop()

	// The messaging backend: verifyd's own codes in a real redis-server,
	// sent to the 2010 API's stand-in (a process, plain HTTP).
	if strings.Contains("request-otp/messaging/64/0s", o.only) || strings.Contains("request-otp/messaging/1/0s", o.only) {
		msgRows, err := messagingRows(ctx, o, dir)
		if err != nil {
			return fmt.Errorf("messaging: %w", err)
		}
		rows = append(rows, msgRows...)
	}

	fmt.Fprintf(stdout, "verifyd-bench %s, %d cores (%s)\n\n%s", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), table(rows))
	for _, sat := range sats {
		fmt.Fprintf(stdout, "\nsaturation, %s, %d connections, closed loop:\n"+
			"  straight to the stand-in  %7.0f/s  over %v, %d errors\n"+
			"  through verifyd           %7.0f/s  over %v, %d errors (%.0f%% of direct)\n",
			sat.Operation, sat.Concurrency, sat.Direct.OpsPerSec, sat.Direct.Elapsed.Round(time.Millisecond), sat.Direct.Errors,
			sat.Proxy.OpsPerSec, sat.Proxy.Elapsed.Round(time.Millisecond), sat.Proxy.Errors, 100*sat.Proxy.OpsPerSec/sat.Direct.OpsPerSec)
	}
	if hopRun != nil {
		fmt.Fprintf(stdout, "\n%s", hopRun)
	}
	if o.jsonOut != "" {
		data, err := json.MarshalIndent(map[string]any{"date": time.Now().UTC().Format(time.RFC3339), "cores": runtime.NumCPU(),
			"rows": rows, "saturation": sats, "hops": hopRun}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.jsonOut, data, 0o644)
	}
	return nil
}

// messagingRows runs request-otp on the messaging backend at 1 and 64
// connections, against a redis-server and the 2010 API's stand-in.
func messagingRows(ctx context.Context, o options, dir string) ([]row, error) {
	redis, err := toolrun.StartRedis(ctx, "redis-server", dir)
	if err != nil {
		return nil, err
	}
	defer redis.Kill()
	api, err := toolrun.StartStandin(ctx, o.standin, "", "-api")
	if err != nil {
		return nil, err
	}
	defer api.Stop()
	v, err := startVerifyd(ctx, o.verifyd, dir, "messaging", []string{"VERIFY_BACKEND=messaging",
		"REDIS_URL=" + redis.URL(), "TWILIO_API_BASE_URL=" + api.URL,
		"TWILIO_ACCOUNT_SID=" + api.AccountSID, "TWILIO_AUTH_TOKEN=" + api.AuthToken,
		"TWILIO_FROM_NUMBER=+15005550006", "CODE_SECRET=bench-code-secret-0123456789abcdef"})
	if err != nil {
		return nil, err
	}
	defer v.Stop()
	var rows []row
	for _, conc := range []int{1, 64} {
		if !strings.Contains(fmt.Sprintf("request-otp/messaging/%d/0s", conc), o.only) {
			continue
		}
		r, err := scenario(ctx, o, nil, v, "request-otp", conc, 0, "")
		if err != nil {
			return nil, fmt.Errorf("request-otp c=%d: %w", conc, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// offered answers the open-loop rate and the duration of a scenario. With an
// upstream latency the rate is the ideal one, concurrency/latency; without,
// a rate this machine's two cores carry for all three processes.
func offered(conc int, upstream time.Duration, short bool) (float64, time.Duration) {
	dur := 4 * time.Second
	if upstream > 0 {
		dur = 6 * time.Second
	}
	if short {
		dur /= 2
	}
	if upstream > 0 {
		return float64(conc) / upstream.Seconds(), dur
	}
	switch conc {
	case 1:
		return 200, dur
	case 64:
		return 800, dur
	}
	return 1200, dur
}

// scenario measures op through verifyd and, when st is set, straight to the
// stand-in.
func scenario(ctx context.Context, o options, st *standin, v *verifyd, op string, conc int, upstream time.Duration, profile string) (row, error) {
	rate, dur := offered(conc, upstream, o.short)
	starts := schedule(rate, dur)
	// Each run starts with a warm-up at its own rate, not measured: it opens
	// the connections a burst of this size needs (a TLS handshake storm on
	// the first burst), as a running service has them. Connections are
	// still counted from before it.
	warm := schedule(rate, dur/4)
	warmUp := func(call func(ctx context.Context, i int, to string) bool) {
		nums := o.numbers.take(len(warm))
		attack(ctx, warm, conc, func(ctx context.Context, i int) bool { return call(ctx, i, nums[i]) })
	}
	r := row{Scenario: op, Backend: v.backend, Concurrency: conc, Upstream: upstream, Rate: rate}

	proxyNumbers := o.numbers.take(len(starts))
	if st != nil {
		directNumbers := o.numbers.take(len(starts))
		if op == "verify-otp" {
			if err := st.prestart(ctx, append(slices.Clone(proxyNumbers), directNumbers...), upstream); err != nil {
				return r, err
			}
		}
		client := st.client(conc)
		warmUp(func(ctx context.Context, _ int, to string) bool { return st.call(ctx, client, "request-otp", to) })
		samples, elapsed := attack(ctx, starts, conc, func(ctx context.Context, i int) bool {
			return st.call(ctx, client, op, directNumbers[i])
		})
		d := summarize(samples, elapsed)
		r.Direct = &d
		client.CloseIdleConnections()
	}

	var connsBefore int64
	if st != nil {
		s, err := st.Stats()
		if err != nil {
			return r, err
		}
		connsBefore = s.Connections
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 30 * time.Second}
	warmUp(func(ctx context.Context, _ int, to string) bool { return v.call(ctx, client, "request-otp", to) })
	before, err := v.usage() // also resets the peak RSS: it covers the measured run
	if err != nil {
		return r, err
	}
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- v.profile(ctx, profile, dur*3/4) }()
	}
	samples, elapsed := attack(ctx, starts, conc, func(ctx context.Context, i int) bool {
		return v.call(ctx, client, op, proxyNumbers[i])
	})
	client.CloseIdleConnections()
	r.Proxy = summarize(samples, elapsed)
	after, err := v.usage()
	if err != nil {
		return r, err
	}
	if st != nil {
		s, err := st.Stats()
		if err != nil {
			return r, err
		}
		r.UpstreamConns = s.Connections - connsBefore
	}
	if profile != "" {
		if err := <-profiled; err != nil {
			return r, err
		}
	}
	if r.Direct != nil {
		r.AddedP50 = r.Proxy.P50 - r.Direct.P50
		r.AddedP99 = r.Proxy.P99 - r.Direct.P99
	}
	r.CPUPer1000 = (after.cpu - before.cpu) / float64(r.Proxy.Requests) * 1000
	r.PeakRSSMB = after.peakRSSMB
	return r, nil
}

// numberSource hands out distinct US numbers, none twice in a run (the
// stand-in, like Twilio, limits sends per number): +1 415 200-0001
// upwards, every one valid (a test checks), so that handing one out costs
// the saturation loop next to nothing. It is safe for concurrent use.
type numberSource struct{ last atomic.Int64 }

// lastNumber bounds the range: +1 415 999-9999.
const lastNumber = 7999999

// next answers one number.
func (ns *numberSource) next() string {
	i := ns.last.Add(1)
	if i > lastNumber {
		panic("verifyd-bench: out of numbers")
	}
	return fmt.Sprintf("+1415%07d", 2000000+i)
}

func (ns *numberSource) take(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ns.next()
	}
	return out
}

// standin is the running Verify stand-in.
