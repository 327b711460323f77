// Command verifyd-soak runs the real verifyd binary for minutes under mixed
// traffic while it injects faults: Twilio answering 503, Twilio hanging,
// Redis killed and restarted. It prints every answer by kind, what was lost
// (a request with no HTTP answer), and verifyd's RSS and goroutines at the
// start and the end. `make soak` builds the binaries and runs it for five
// minutes; it is a tool, never run by the tests. Everything is on loopback:
// a redis-server it starts, the Verify stand-in (cmd/twilio-standin) over
// TLS, and verifyd.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"

	"verifyd/cmd/internal/toolrun"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verifyd-soak:", err)
		os.Exit(1)
	}
}

type options struct {
	verifyd, standin, redis string
	duration                time.Duration
	rate                    int
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	flags := flag.NewFlagSet("verifyd-soak", flag.ContinueOnError)
	flags.StringVar(&o.verifyd, "verifyd", "bin/verifyd", "the verifyd binary")
	flags.StringVar(&o.standin, "standin", "bin/twilio-standin", "the stand-in binary")
	flags.StringVar(&o.redis, "redis", "redis-server", "the redis-server binary")
	flags.DurationVar(&o.duration, "duration", 5*time.Minute, "how long to run the traffic")
	flags.IntVar(&o.rate, "rate", 150, "requests a second")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if o.rate <= 0 || o.duration <= 0 {
		return errors.New("-rate and -duration must be positive")
	}
	dir, err := os.MkdirTemp("", "verifyd-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	redis, err := toolrun.StartRedis(ctx, o.redis, dir)
	if err != nil {
		return err
	}
	defer redis.Kill()
	st, err := toolrun.StartStandin(ctx, o.standin, filepath.Join(dir, "standin.pem"), "-fixed-code", "123456")
	if err != nil {
		return err
	}
	defer st.Stop()
	v, err := startVerifyd(ctx, o.verifyd, st, redis, dir)
	if err != nil {
		return err
	}
	defer v.Kill()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	d := &driver{v: v, client: client, counts: map[string]int{}}
	// A warm-up, then the baseline.
	d.traffic(ctx, 5*time.Second, o.rate)
	client.CloseIdleConnections()
	start, err := v.sample()
	if err != nil {
		return err
	}
	d.reset()

	faults := []struct {
		at   float64 // share of the duration
		name string
		do   func() error
		hold time.Duration
		undo func() error
	}{
		{0.2, "Twilio answers 503 for 15s", func() error { return st.Admin("failure?status=503&code=20503") }, 15 * time.Second, func() error { return st.Admin("failure") }},
		{0.45, "Twilio hangs for 15s", func() error { return st.Admin("failure?hang=1") }, 15 * time.Second, func() error { return st.Admin("failure") }},
		{0.7, "Redis killed, back after 10s", redis.Kill, 10 * time.Second, func() error { return redis.Restart(ctx) }},
	}
	var faultLog []string
	began := time.Now()
	trafficDone := make(chan struct{})
	go func() {
		d.traffic(ctx, o.duration, o.rate)
		close(trafficDone)
	}()
	for _, f := range faults {
		at := began.Add(time.Duration(f.at * float64(o.duration)))
		time.Sleep(time.Until(at))
		if err := f.do(); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		time.Sleep(f.hold)
		if err := f.undo(); err != nil {
			return fmt.Errorf("%s: undo: %w", f.name, err)
		}
		faultLog = append(faultLog, fmt.Sprintf("  at %4.0fs: %s", at.Sub(began).Seconds(), f.name))
	}
	<-trafficDone
	client.CloseIdleConnections()
	// Let what the faults left behind (timed-out calls, Redis reconnects,
	// idle connections) settle before the last sample.
	time.Sleep(5 * time.Second)
	end, err := v.sample()
	if err != nil {
		return err
	}
	exit := v.Stop()

	fmt.Fprintf(stdout, "verifyd-soak %s: %v of mixed traffic at %d/s\n\nfaults:\n%s\n\n", time.Now().UTC().Format("2006-01-02"),
		o.duration, o.rate, strings.Join(faultLog, "\n"))
	fmt.Fprint(stdout, d.report())
	fmt.Fprintf(stdout, "\n             start      end\n  RSS MB    %6.1f   %6.1f\n  goroutines %5d    %5d\n\n", start.rssMB, end.rssMB, start.goroutines, end.goroutines)
	fmt.Fprintf(stdout, "verifyd exit after SIGTERM: %v\n", exit)
	if d.lost.Load() > 0 {
		return fmt.Errorf("%d requests got no answer", d.lost.Load())
	}
	if end.goroutines > start.goroutines+10 {
		return fmt.Errorf("goroutines grew from %d to %d", start.goroutines, end.goroutines)
	}
	return exit
}

// driver sends the mixed traffic and counts the answers by kind.
type driver struct {
	v      *verifyd
	client *http.Client

	mu     sync.Mutex
	counts map[string]int
	sent   []string // numbers with a code on the way, for checks
	next   int      // for fresh numbers
	total  atomic.Int64
	lost   atomic.Int64
}

func (d *driver) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts = map[string]int{}
	d.total.Store(0)
	d.lost.Store(0)
}

// traffic sends rate requests a second for dur, each in its own goroutine
// (open loop: a slow answer does not slow the offered load).
func (d *driver) traffic(ctx context.Context, dur time.Duration, rate int) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	deadline := time.After(dur)
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		select {
		case <-deadline:
			wg.Wait()
			return
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		wg.Go(func() { d.one(ctx, i) })
	}
}

// one sends the i-th request of the mix: 40% sends to new numbers, 30%
// right codes, 10% wrong codes, 10% bad numbers, 5% pages, 5% health.
func (d *driver) one(ctx context.Context, i int) {
	var method, path, body string
	switch n := i % 20; {
	case n < 8:
		method, path, body = http.MethodPost, "/api/request-otp", `{"phoneNumber":"`+d.fresh()+`"}`
	case n < 14:
		to := d.pending()
		if to == "" {
			return
		}
		method, path, body = http.MethodPost, "/api/verify-otp", `{"phoneNumber":"`+to+`","code":"123456"}`
	case n < 16:
		method, path, body = http.MethodPost, "/api/verify-otp", `{"phoneNumber":"+14155552671","code":"000000"}`
	case n < 18:
		method, path, body = http.MethodPost, "/api/request-otp", `{"phoneNumber":"12"}`
	case n < 19:
		method, path = http.MethodGet, "/"
	default:
		method, path = http.MethodGet, "/health"
	}
	req, err := http.NewRequestWithContext(ctx, method, d.v.URL+path, strings.NewReader(body))
	if err != nil {
		return
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	d.total.Add(1)
	resp, err := d.client.Do(req)
	if err != nil {
		d.lost.Add(1)
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the same for every one of a kind
		}
		d.count("lost: " + err.Error())
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	kind := path + " " + strconv.Itoa(resp.StatusCode)
	var e struct{ Code string }
	if resp.StatusCode >= 400 && json.Unmarshal(data, &e) == nil && e.Code != "" {
		kind += " " + e.Code
	}
	d.count(kind)
	if path == "/api/request-otp" && resp.StatusCode == 200 {
		d.mu.Lock()
		var sent struct{ PhoneNumber string }
		if json.Unmarshal(data, &sent) == nil {
			d.sent = append(d.sent, sent.PhoneNumber)
		}
		d.mu.Unlock()
	}
}

func (d *driver) count(kind string) {
	d.mu.Lock()
	d.counts[kind]++
	d.mu.Unlock()
}

// fresh answers a valid US number not used before in this run.
func (d *driver) fresh() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		d.next++
		s := fmt.Sprintf("+1212%07d", 2000000+d.next)
		if num, err := phonenumbers.Parse(s, ""); err == nil && phonenumbers.IsValidNumber(num) {
			return s
		}
	}
}

// pending answers a number a code was sent to, once.
func (d *driver) pending() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.sent) == 0 {
		return ""
	}
	to := d.sent[0]
	d.sent = d.sent[1:]
	return to
}

func (d *driver) report() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	kinds := make([]string, 0, len(d.counts))
	for k := range d.counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "requests %d, answered %d, lost %d\n\n", d.total.Load(), d.total.Load()-d.lost.Load(), d.lost.Load())
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %7d  %s\n", d.counts[k], k)
	}
	return b.String()
}

// verifyd is the running binary, with a log in the run's directory.
type verifyd struct{ *toolrun.Verifyd }

type sample struct {
	rssMB      float64
	goroutines int
}

func startVerifyd(ctx context.Context, bin string, st *toolrun.Standin, r *toolrun.Redis, dir string) (*verifyd, error) {
	log, err := os.Create(filepath.Join(dir, "verifyd.log"))
	if err != nil {
		return nil, err
	}
	v, err := toolrun.StartVerifyd(ctx, bin, append(st.VerifyEnv(),
		"REDIS_URL="+r.URL(), "TWILIO_REQUEST_TIMEOUT=2s", "SHUTDOWN_DRAIN=1s",
		// One client sends everything: per-client and global limits would
		// refuse the load; per-number limits stay on.
		"LIMIT_IP_SENDS_PER_HOUR=0", "LIMIT_IP_CHECKS_PER_HOUR=0", "LIMIT_GLOBAL_SENDS_PER_MINUTE=0",
		// A soak, not a pumping run: the budgets would step its sends up.
		"FRAUD_BUDGETS=off", "SEND_CHALLENGE=never"), log)
	if err != nil {
		return nil, err
	}
	return &verifyd{v}, nil
}

// sample reads the RSS from /proc and the goroutines from the pprof index.
func (v *verifyd) sample() (sample, error) {
	var s sample
	var err error
	if s.rssMB, err = v.ProcStatus("VmRSS"); err != nil {
		return s, err
	}
	resp, err := http.Get(v.DebugURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n') // "goroutine profile: total N"
	_, n, _ := strings.Cut(strings.TrimSpace(first), "total ")
	s.goroutines, err = strconv.Atoi(n)
	return s, err
}
