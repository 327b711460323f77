// Command verifyd-pumping simulates an SMS-pumping attack on the real
// verifyd binary and prints what it cost, with conversion budgets enforced
// and then with them off, for comparison. verifyd runs on its development
// backend behind a trusted proxy header; the attack comes from 1,000
// rotating addresses (half IPv4, half IPv6 in different /64s) and asks for
// codes to numbers in two countries that never verify them, while honest
// people in four other countries ask for codes and verify them at a steady
// rate (solving the proof-of-work step-up when asked, as the form's script
// does). `make pumping` builds and runs it; it is never part of the tests.
// Everything is on loopback.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"

	"verifyd/cmd/internal/toolrun"
	"verifyd/server/challenge"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verifyd-pumping:", err)
		os.Exit(1)
	}
}

var (
	attacked = []string{"AZ", "UZ"}
	honest   = []string{"US", "GB", "DE", "FR"}
)

const (
	// attackerAddrs is how many addresses the attack rotates through:
	// half IPv4, half IPv6 in distinct /64s.
	attackerAddrs = 1000
	// unverifiedOneIn: one honest person in this many never types the code.
	unverifiedOneIn = 10
)

type options struct {
	verifyd                string
	duration               time.Duration
	attackRate, honestRate float64
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	flags := flag.NewFlagSet("verifyd-pumping", flag.ContinueOnError)
	flags.StringVar(&o.verifyd, "verifyd", "bin/verifyd", "the verifyd binary")
	flags.DurationVar(&o.duration, "duration", 2*time.Minute, "how long each run lasts")
	flags.Float64Var(&o.attackRate, "attack-rate", 10, "attack requests a second")
	flags.Float64Var(&o.honestRate, "honest-rate", 1, "honest verifications a second")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if o.attackRate <= 0 || o.honestRate <= 0 || o.duration <= 0 {
		return errors.New("-attack-rate, -honest-rate and -duration must be positive")
	}
	results := map[string]*tally{}
	for _, mode := range []string{"enforce", "off"} {
		fmt.Fprintf(os.Stderr, "run with FRAUD_BUDGETS=%s for %v…\n", mode, o.duration)
		t, err := simulate(ctx, o, mode)
		if err != nil {
			return fmt.Errorf("FRAUD_BUDGETS=%s: %w", mode, err)
		}
		results[mode] = t
	}
	on, off := results["enforce"], results["off"]
	fmt.Fprintf(stdout, "verifyd-pumping %s: %v per run; attack %.0f/s from %d rotating addresses to %s (never verified); "+
		"honest %.1f/s to %s (%.0f%% verified)\n\n", time.Now().UTC().Format("2006-01-02"), o.duration, o.attackRate,
		attackerAddrs, strings.Join(attacked, ", "), o.honestRate, strings.Join(honest, ", "), 100-100.0/unverifiedOneIn)
	fmt.Fprintf(stdout, "country  role     requests  sent (budgets on)  sent (budgets off)  honest refused (on)  honest refused (off)\n")
	var sentOn, sentOff, refusedOn, refusedOff int
	for _, c := range append(slices.Clone(attacked), honest...) {
		role := "honest"
		if slices.Contains(attacked, c) {
			role = "attacked"
			sentOn += on.sent[c]
			sentOff += off.sent[c]
		} else {
			refusedOn += on.refused[c]
			refusedOff += off.refused[c]
		}
		fmt.Fprintf(stdout, "%-7s  %-8s %8d  %17d  %18d  %19d  %20d\n", c, role, on.requests[c], on.sent[c], off.sent[c], on.refused[c], off.refused[c])
	}
	share := 0.0
	if sentOff > 0 {
		share = 100 * float64(sentOn) / float64(sentOff)
	}
	fmt.Fprintf(stdout, "\nattack sends that cost money: %d with budgets, %d without (%.1f%%); honest people refused: %d with budgets, %d without\n",
		sentOn, sentOff, share, refusedOn, refusedOff)
	fmt.Fprintf(stdout, "step-ups asked of honest people with budgets: %d (solved by their browsers)\n", on.challenged)
	return nil
}

// tally is what one run came to, per country.
type tally struct {
	mu                      sync.Mutex
	requests, sent, refused map[string]int
	challenged              int
	codes                   map[string]chan string // verification SID → its code, from the dev backend's log
}

func simulate(ctx context.Context, o options, mode string) (*tally, error) {
	t := &tally{requests: map[string]int{}, sent: map[string]int{}, refused: map[string]int{}, codes: map[string]chan string{}}
	// The development backend's delivery lines carry the codes.
	out, logged := io.Pipe()
	defer logged.Close()
	go t.readCodes(out)
	v, err := toolrun.StartVerifyd(ctx, o.verifyd, []string{"VERIFY_BACKEND=dev",
		"TRUSTED_PROXIES=127.0.0.1", "FRAUD_BUDGETS=" + mode, "SHUTDOWN_DRAIN=0s",
		// A site sized for 1,000 sends a minute: the global brake is not
		// what stops this attack.
		"LIMIT_GLOBAL_SENDS_PER_MINUTE=1000", "LOG_LEVEL=warn", "CHALLENGE_DIFFICULTY=20000"}, logged)
	if err != nil {
		return nil, err
	}
	defer v.Stop()
	url := v.URL

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	stop := time.Now().Add(o.duration)
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	pick := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }

	loop := func(rate float64, one func(i int)) {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := 0; time.Now().Before(stop); i++ {
			<-tick.C
			wg.Add(1)
			go func() { defer wg.Done(); one(i) }()
		}
	}
	wg.Add(2)
	go loop(o.attackRate, func(i int) {
		country := attacked[i%len(attacked)]
		addr := attackerAddr(pick(attackerAddrs))
		status, _ := t.post(client, url+"/api/request-otp", addr, map[string]string{"phoneNumber": number(country, pick)})
		t.count(country, status == 200, false)
	})
	go loop(o.honestRate, func(i int) {
		country := honest[i%len(honest)]
		addr := fmt.Sprintf("192.0.2.%d", 1+i%250)
		body := map[string]string{"phoneNumber": number(country, pick)}
		status, got := t.post(client, url+"/api/request-otp", addr, body)
		for tries := 0; tries < 2 && status == 403 && got["challenge"] != nil; tries++ {
			t.mu.Lock()
			t.challenged++
			t.mu.Unlock()
			data, _ := json.Marshal(got["challenge"])
			var c challenge.Challenge
			json.Unmarshal(data, &c)
			solution, err := challenge.Solve(c)
			if err != nil {
				break
			}
			body["altcha"] = solution
			status, got = t.post(client, url+"/api/request-otp", addr, body)
		}
		if status != 200 {
			t.count(country, false, true)
			return
		}
		t.count(country, true, false)
		if pick(unverifiedOneIn) == 0 {
			return // this person never types the code
		}
		sid, _ := got["verificationSid"].(string)
		code := t.codeFor(sid)
		if status, _ := t.post(client, url+"/api/verify-otp", addr, map[string]string{"verificationSid": sid, "code": code}); status != 200 {
			t.mu.Lock()
			t.refused[country]++
			t.mu.Unlock()
		}
	})
	wg.Wait()
	return t, nil
}

func (t *tally) count(country string, sent, refused bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests[country]++
	if sent {
		t.sent[country]++
	}
	if refused {
		t.refused[country]++
	}
}

// post sends body as JSON from addr (the trusted proxy's X-Forwarded-For).
func (t *tally) post(c *http.Client, url, addr string, body map[string]string) (int, map[string]any) {
	data, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// readCodes reads the development backend's delivery lines.
func (t *tally) readCodes(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct{ Sid, Code string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Code != "" {
			select {
			case t.code(l.Sid) <- l.Code:
			default: // a resend's line: the code is the same
			}
		}
	}
}

// code answers the channel sid's code arrives on, made by whichever of
// the log reader and the person asks first.
func (t *tally) code(sid string) chan string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := t.codes[sid]
	if ch == nil {
		ch = make(chan string, 1)
		t.codes[sid] = ch
	}
	return ch
}

// codeFor waits up to 5 s for sid's code, "" if it never came.
func (t *tally) codeFor(sid string) string {
	select {
	case c := <-t.code(sid):
		return c
	case <-time.After(5 * time.Second):
		return ""
	}
}

// attackerAddr is address i of attackerAddrs: IPv4 in the first half,
// IPv6 in distinct /64s in the second.
func attackerAddr(i int) string {
	if i < attackerAddrs/2 {
		return fmt.Sprintf("203.0.%d.%d", 100+i/250, 1+i%250)
	}
	return fmt.Sprintf("2001:db8:%x:%x::1", i/256, i%256)
}

// number answers a valid mobile number of region: its example mobile with
// the last six digits drawn at random.
func number(region string, pick func(int) int) string {
	ex := phonenumbers.GetExampleNumberForType(region, phonenumbers.MOBILE)
	base := phonenumbers.Format(ex, phonenumbers.E164)
	for {
		s := base[:len(base)-6] + fmt.Sprintf("%06d", pick(1000000))
		if n, err := phonenumbers.Parse(s, ""); err == nil && phonenumbers.IsValidNumber(n) {
			return s
		}
	}
}
