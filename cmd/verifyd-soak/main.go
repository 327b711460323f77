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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nyaruka/phonenumbers"
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
	dir, err := os.MkdirTemp("", "verifyd-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	redis, err := startRedis(ctx, o.redis, dir)
	if err != nil {
		return err
	}
	defer redis.stop()
	st, err := startStandin(ctx, o.standin, dir)
	if err != nil {
		return err
	}
	defer st.stop()
	v, err := startVerifyd(ctx, o.verifyd, st, redis, dir)
	if err != nil {
		return err
	}
	defer v.kill()

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
		{0.2, "Twilio answers 503 for 15s", func() error { return st.fail("status=503&code=20503") }, 15 * time.Second, func() error { return st.fail("") }},
		{0.45, "Twilio hangs for 15s", func() error { return st.fail("hang=1") }, 15 * time.Second, func() error { return st.fail("") }},
		{0.7, "Redis killed, back after 10s", redis.kill, 10 * time.Second, func() error { return redis.restart(ctx) }},
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
	exit := v.stop()

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
	req, err := http.NewRequestWithContext(ctx, method, d.v.url+path, strings.NewReader(body))
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

// verifyd is the running binary.
type verifyd struct {
	cmd           *exec.Cmd
	url, debugURL string
}

type sample struct {
	rssMB      float64
	goroutines int
}

func startVerifyd(ctx context.Context, bin string, st *standin, r *redis, dir string) (*verifyd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	debug, err := freePort()
	if err != nil {
		return nil, err
	}
	v := &verifyd{url: "http://127.0.0.1:" + strconv.Itoa(port), debugURL: "http://127.0.0.1:" + strconv.Itoa(debug)}
	v.cmd = exec.CommandContext(ctx, bin)
	v.cmd.Env = append(os.Environ(),
		"HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "DEBUG_ADDR=127.0.0.1:"+strconv.Itoa(debug),
		"REDIS_URL=redis://127.0.0.1:"+strconv.Itoa(r.port)+"/0",
		"TWILIO_ACCOUNT_SID="+st.ready.AccountSID, "TWILIO_AUTH_TOKEN="+st.ready.AuthToken,
		"TWILIO_VERIFY_SERVICE_SID="+st.ready.ServiceSID, "TWILIO_VERIFY_BASE_URL="+st.ready.URL,
		"SSL_CERT_FILE="+st.certFile, "TWILIO_REQUEST_TIMEOUT=2s", "SHUTDOWN_DRAIN=1s",
		// One client sends everything: per-client and global limits would
		// refuse the load; per-number limits stay on.
		"LIMIT_IP_SENDS_PER_HOUR=0", "LIMIT_IP_CHECKS_PER_HOUR=0", "LIMIT_GLOBAL_SENDS_PER_MINUTE=0",
		// A soak, not a pumping run: the budgets would step its sends up.
		"FRAUD_BUDGETS=off", "SEND_CHALLENGE=never")
	log, err := os.Create(filepath.Join(dir, "verifyd.log"))
	if err != nil {
		return nil, err
	}
	v.cmd.Stdout, v.cmd.Stderr = log, log
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start verifyd: %w", err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(v.url + "/healthz"); err == nil {
			resp.Body.Close()
			return v, nil
		}
		if time.Now().After(deadline) {
			v.kill()
			return nil, errors.New("verifyd never answered /healthz")
		}
	}
}

// sample reads the RSS from /proc and the goroutines from the pprof index.
func (v *verifyd) sample() (sample, error) {
	var s sample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.cmd.Process.Pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			s.rssMB = kb / 1024
		}
	}
	resp, err := http.Get(v.debugURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n') // "goroutine profile: total N"
	_, n, _ := strings.Cut(strings.TrimSpace(first), "total ")
	s.goroutines, err = strconv.Atoi(n)
	return s, err
}

// stop sends SIGTERM and answers how the process ended.
func (v *verifyd) stop() error {
	v.cmd.Process.Signal(syscall.SIGTERM)
	if err := v.cmd.Wait(); err != nil {
		return fmt.Errorf("verifyd: %w", err)
	}
	return nil
}

func (v *verifyd) kill() {
	if v.cmd.ProcessState == nil {
		v.cmd.Process.Kill()
		v.cmd.Wait()
	}
}

// standin is the running Verify stand-in.
type standin struct {
	cmd   *exec.Cmd
	ready struct {
		URL, Admin, AccountSID, AuthToken, ServiceSID string
	}
	certFile string
}

func startStandin(ctx context.Context, bin, dir string) (*standin, error) {
	s := &standin{certFile: filepath.Join(dir, "standin.pem")}
	s.cmd = exec.CommandContext(ctx, bin, "-cert-out", s.certFile, "-fixed-code", "123456")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stand-in: %w", err)
	}
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("stand-in: %w", err)
	}
	var ready struct {
		URL        string `json:"url"`
		AccountSID string `json:"account_sid"`
		AuthToken  string `json:"auth_token"`
		ServiceSID string `json:"service_sid"`
		Admin      string `json:"admin"`
	}
	if err := json.Unmarshal(line, &ready); err != nil {
		s.stop()
		return nil, fmt.Errorf("stand-in said %q: %w", line, err)
	}
	s.ready.URL, s.ready.Admin = ready.URL, ready.Admin
	s.ready.AccountSID, s.ready.AuthToken, s.ready.ServiceSID = ready.AccountSID, ready.AuthToken, ready.ServiceSID
	return s, nil
}

// fail makes every request to the stand-in fail as query says ("" clears).
func (s *standin) fail(query string) error {
	resp, err := http.Post(s.ready.Admin+"/failure?"+query, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("stand-in /failure: %s", resp.Status)
	}
	return nil
}

func (s *standin) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
}

// redis is a redis-server on a loopback port, with nothing on disk.
type redis struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
}

func startRedis(ctx context.Context, bin, dir string) (*redis, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redis{bin: bin, dir: dir, port: port}
	return r, r.restart(ctx)
}

func (r *redis) restart(ctx context.Context) error {
	r.cmd = exec.CommandContext(ctx, r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("redis-server never answered PING")
		}
	}
}

func (r *redis) kill() error {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	return nil
}

func (r *redis) stop() { r.kill() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
