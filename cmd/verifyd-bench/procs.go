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
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"verifyd/cmd/internal/toolrun"
)

type standin struct{ *toolrun.Standin }

func startStandin(ctx context.Context, bin, dir string) (*standin, error) {
	s, err := toolrun.StartStandin(ctx, bin, filepath.Join(dir, "standin.pem"), "-fixed-code", "123456")
	if err != nil {
		return nil, err
	}
	return &standin{s}, nil
}

func (s *standin) setLatency(d time.Duration) error { return s.Admin("latency?d=" + d.String()) }

// client is an HTTP client for straight calls, pooled like verifyd's.
func (s *standin) client(conc int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.Pool}, MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}
}

// call makes the upstream call verifyd makes for op.
func (s *standin) call(ctx context.Context, c *http.Client, op, to string) bool {
	path, form, want := "/Verifications", url.Values{"To": {to}, "Channel": {"sms"}}, http.StatusCreated
	if op == "verify-otp" {
		path, form, want = "/VerificationCheck", url.Values{"To": {to}, "Code": {"123456"}}, http.StatusOK
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v2/Services/"+s.ServiceSID+path, strings.NewReader(form.Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.AccountSID, s.AuthToken)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == want
}

// prestart starts a verification for every number straight at the stand-in,
// with no latency, so that a check scenario has codes to check.
func (s *standin) prestart(ctx context.Context, nums []string, restore time.Duration) error {
	if err := s.setLatency(0); err != nil {
		return err
	}
	c := s.client(64)
	samples, _ := attack(ctx, make([]time.Duration, len(nums)), 64, func(ctx context.Context, i int) bool {
		return s.call(ctx, c, "request-otp", nums[i])
	})
	c.CloseIdleConnections()
	if sm := summarize(samples, time.Second); sm.Errors > 0 {
		return fmt.Errorf("prestart: %d of %d failed", sm.Errors, sm.Requests)
	}
	return s.setLatency(restore)
}

// verifyd is the running verifyd process.
type verifyd struct {
	*toolrun.Verifyd
	backend   string
	clockTick float64
}

// startVerifyd runs verifyd on backend with env, configured for a load run.
func startVerifyd(ctx context.Context, bin, dir, backend string, env []string) (*verifyd, error) {
	log, err := os.Create(filepath.Join(dir, "verifyd-"+backend+".log"))
	if err != nil {
		return nil, err
	}
	v, err := toolrun.StartVerifyd(ctx, bin, append([]string{"LOG_LEVEL=info", "TWILIO_MAX_CONNS=512",
		// One client sends everything: the abuse limits would refuse the load.
		"LIMIT_PHONE_COOLDOWN=0s", "LIMIT_PHONE_SENDS_PER_HOUR=0", "LIMIT_IP_SENDS_PER_HOUR=0",
		"LIMIT_IP_CHECKS_PER_HOUR=0", "LIMIT_GLOBAL_SENDS_PER_MINUTE=0",
		// A load run, not a pumping one: every number is new and few verify.
		"FRAUD_BUDGETS=off", "SEND_CHALLENGE=never"}, env...), log)
	if err != nil {
		return nil, err
	}
	return &verifyd{Verifyd: v, backend: backend, clockTick: 100}, nil
}

func (v *verifyd) call(ctx context.Context, c *http.Client, op, to string) bool {
	if op == "healthz" {
		resp, err := c.Get(v.URL + "/healthz")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	body := `{"phoneNumber":"` + to + `"}`
	if op == "verify-otp" {
		body = `{"phoneNumber":"` + to + `","code":"123456"}`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.URL+"/api/"+op, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

type usage struct {
	cpu       float64 // user+system seconds so far
	peakRSSMB float64 // since the last reset
}

// usage reads the process's CPU time and peak RSS from /proc, then resets
// the peak so the next reading covers the next scenario only.
func (v *verifyd) usage() (usage, error) {
	var u usage
	pid := strconv.Itoa(v.Pid())
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return u, err
	}
	// Fields after the command name (which may hold spaces): utime is the
	// 14th field of the line, stime the 15th.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	u.cpu = (utime + stime) / v.clockTick
	peak, err := v.ProcStatus("VmHWM")
	if err != nil {
		return u, err
	}
	u.peakRSSMB = math.Round(peak*10) / 10
	_ = os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) // reset the peak
	return u, nil
}

// profile saves a CPU profile of verifyd taken over d.
func (v *verifyd) profile(ctx context.Context, file string, d time.Duration) error {
	secs := max(1, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.DebugURL+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
