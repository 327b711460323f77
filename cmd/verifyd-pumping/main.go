// Command verifyd-pumping runs the attackers an SMS-pumping gang uses
// against verifyd's real pipeline (the HTTP handler, the flow, the abuse
// guard and the Twilio Verify backend over twilio-go) in front of the
// Verify stand-in, with verifyd's default limits, budgets and challenges,
// and prints for each: the texts that reached Twilio, what they would cost,
// and how many honest people verified during the attack and right after.
//
// Everything runs in this process on loopback, over real HTTP, on a fake
// clock: an attack of hours takes seconds, and the same run gives the same
// figures. `make pumping` builds and runs it; it is never part of the
// tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"verifyd/server/abuse"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "verifyd-pumping:", err)
		os.Exit(1)
	}
}

type options struct {
	action   string // FRAUD_ACTION: refuse or tarpit
	redisURL string // a Redis to keep the counters in; "" for memory
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	flags := flag.NewFlagSet("verifyd-pumping", flag.ContinueOnError)
	flags.StringVar(&o.action, "action", "refuse", "FRAUD_ACTION: refuse or tarpit")
	flags.StringVar(&o.redisURL, "redis", "", "keep the counters in this Redis (redis://...), as several instances do; default: in memory")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if o.action != "refuse" && o.action != "tarpit" {
		return errors.New("-action must be refuse or tarpit")
	}
	var results []result
	for _, a := range attackers {
		fmt.Fprintf(os.Stderr, "%s…\n", a.name)
		s, err := newSim(o)
		if err != nil {
			return err
		}
		r, err := a.run(ctx, s)
		s.close()
		if err != nil {
			return fmt.Errorf("%s: %w", a.name, err)
		}
		r.name = a.name
		results = append(results, r)
	}
	fmt.Fprintf(stdout, "verifyd-pumping %s: verifyd's defaults, FRAUD_ACTION=%s, counters in %s; texts counted at the Verify stand-in\n\n",
		time.Now().UTC().Format("2006-01-02"), o.action, map[bool]string{true: "memory", false: "Redis"}[o.redisURL == ""])
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "attacker\tsimulated\ttries\ttexts to Twilio\tcost (USD)\thonest verified during\thonest verified after\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%v\t%d\t%d\t%.2f\t%d of %d\t%d of %d\t\n", r.name, r.simulated.Round(time.Minute), r.tries, r.texts,
			r.cost, r.honestDuring.ok, r.honestDuring.of, r.honestAfter.ok, r.honestAfter.of)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	s, err := newSim(o)
	if err != nil {
		return err
	}
	reached, err := guessBySID(ctx, s)
	s.close()
	if err != nil {
		return fmt.Errorf("guessing by SID: %w", err)
	}
	fmt.Fprintf(stdout, "\nguessing one number's code by verificationSid from 40 addresses: %d of 40 guesses reached Twilio "+
		"(the per-number cap is %d an hour)\n", reached, abuse.DefaultLimits().PhoneChecksPerHour)
	fmt.Fprintf(stdout, "\nprices per text (USD, illustrative, in the range of Twilio's list): %s\n", priceList())
	return nil
}

// result is what one attacker came to.
type result struct {
	name                      string
	simulated                 time.Duration
	tries, texts              int
	cost                      float64
	honestDuring, honestAfter count
}

type count struct{ ok, of int }

func (c *count) add(ok bool) {
	c.of++
	if ok {
		c.ok++
	}
}

// attackers are the attacks a pumping gang runs, as the issue of this
// tool lists them.
var attackers = []struct {
	name string
	run  func(ctx context.Context, s *sim) (result, error)
}{
	{"rotating addresses, one GB prefix", func(ctx context.Context, s *sim) (result, error) {
		return rotating(ctx, s, false)
	}},
	{"the same, solving every challenge", func(ctx context.Context, s *sim) (result, error) {
		return rotating(ctx, s, true)
	}},
	{"low and slow, 300 addresses, 50 GB prefixes", lowAndSlow},
	{"spread over 20 countries, honest US verifying", spread},
}

// rotating sends to 200 fresh numbers of one GB prefix, each from an
// address of its own, one every two seconds, with an honest person in the
// US verifying every tenth; then ten honest people in the US, at once.
func rotating(ctx context.Context, s *sim, solve bool) (result, error) {
	var r result
	began := s.clock.Now()
	for i := range 200 {
		s.clock.Advance(2 * time.Second)
		if err := s.attack(ctx, &r, i, attackerAddr(i), ukNumber(0, i), solve, i%10 == 9); err != nil {
			return r, err
		}
	}
	return s.after(ctx, r, began)
}

// lowAndSlow sends from 300 addresses, each three times an hour, to fresh
// numbers over 50 prefixes of GB, for six hours, solving every challenge;
// an honest person in the US verifies every minute of it.
func lowAndSlow(ctx context.Context, s *sim) (result, error) {
	var r result
	began := s.clock.Now()
	const addrs, perHour, hours = 300, 3, 6
	step := time.Hour / (addrs * perHour)
	nextHonest := began
	for i := range addrs * perHour * hours {
		s.clock.Advance(step)
		honestNow := !s.clock.Now().Before(nextHonest)
		if honestNow {
			nextHonest = s.clock.Now().Add(time.Minute)
		}
		if err := s.attack(ctx, &r, i, attackerAddr(i%addrs), ukNumber(i%50, i/50), true, honestNow); err != nil {
			return r, err
		}
	}
	return s.after(ctx, r, began)
}

// spread sends to fresh numbers in 20 countries, round robin, one a second
// from rotating addresses, solving every challenge, for 40 minutes; honest
// people in one of those countries (the US, numbers in +1 415) verify
// every ten seconds of it.
func spread(ctx context.Context, s *sim) (result, error) {
	var r result
	began := s.clock.Now()
	for i := range 2400 {
		s.clock.Advance(time.Second)
		to := numberIn(spreadCountries[i%len(spreadCountries)], i)
		if err := s.attack(ctx, &r, i, attackerAddr(i), to, true, i%10 == 9); err != nil {
			return r, err
		}
	}
	return s.after(ctx, r, began)
}

func priceList() string {
	var b strings.Builder
	for i, c := range append([]string{"GB"}, spreadCountries...) {
		if i > 0 && c == "GB" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.4f", c, prices[c])
	}
	return b.String()
}

// guessBySID sends one code, then guesses it 40 times by its verification
// SID, each guess from an address of its own, and answers how many
// guesses reached Twilio.
func guessBySID(ctx context.Context, s *sim) (int, error) {
	to := usNumber(0)
	status, got, err := s.post(ctx, "/api/request-otp", honestAddr(0), map[string]string{"phoneNumber": to})
	if err != nil || status != 200 {
		return 0, fmt.Errorf("the send = %d, %v", status, err)
	}
	sid, _ := got["verificationSid"].(string)
	code, _ := s.standin.Code(to)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	before := s.standin.Requests()
	for i := range 40 {
		if _, _, err := s.post(ctx, "/api/verify-otp", attackerAddr(i), map[string]string{"verificationSid": sid, "code": wrong}); err != nil {
			return 0, err
		}
	}
	return int(s.standin.Requests() - before), nil
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// after ends an attack's run: the time it took, ten honest people in the
// US verifying right after it, and the texts it cost.
func (s *sim) after(ctx context.Context, r result, began time.Time) (result, error) {
	r.simulated = s.clock.Now().Sub(began)
	for i := range 10 {
		ok, err := s.honest(ctx, honestAddr(1000000+i), usNumber(1000000+i))
		if err != nil {
			return r, err
		}
		r.honestAfter.add(ok)
	}
	r.texts, r.cost = s.bill()
	return r, nil
}

// attack sends to to from addr (solving challenges when solve), and every
// tenth try an honest person in the US verifies, counted in r.
func (s *sim) attack(ctx context.Context, r *result, i int, addr, to string, solve, honestNow bool) error {
	r.tries++
	if _, err := s.send(ctx, addr, to, solve); err != nil {
		return err
	}
	s.attacked(to)
	if !honestNow {
		return nil
	}
	ok, err := s.honest(ctx, honestAddr(i), usNumber(i))
	r.honestDuring.add(ok)
	return err
}
