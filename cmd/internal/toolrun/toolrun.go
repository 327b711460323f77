// Package toolrun starts and stops the processes verifyd's load tools
// (verifyd-bench, verifyd-soak, verifyd-pumping) run against: verifyd
// itself, the Twilio stand-in and redis-server, each on a free loopback
// port, and reads what they say about themselves.
package toolrun

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreeAddr answers a loopback address with a port free now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Ready is the line the stand-in prints once it serves.
type Ready struct {
	URL        string `json:"url"`
	AccountSID string `json:"account_sid"`
	AuthToken  string `json:"auth_token"`
	ServiceSID string `json:"service_sid,omitempty"`
	Admin      string `json:"admin,omitempty"`
}

// Stats are the stand-in's counters, from its admin /stats.
type Stats struct {
	Requests    int64 `json:"requests"`
	Connections int64 `json:"connections"`
}

// Standin is a running twilio-standin process.
type Standin struct {
	Ready
	// CertFile and Pool are its TLS certificate, when it serves TLS.
	CertFile string
	Pool     *x509.CertPool
	cmd      *exec.Cmd
}

// StartStandin runs the stand-in binary with args and reads its ready
// line. With certFile set it serves Verify over TLS with the certificate
// it writes there; without, args say what it serves (-api: the 2010 API,
// plain HTTP).
func StartStandin(ctx context.Context, bin, certFile string, args ...string) (*Standin, error) {
	s := &Standin{CertFile: certFile}
	if certFile != "" {
		args = append([]string{"-cert-out", certFile}, args...)
	}
	s.cmd = exec.CommandContext(ctx, bin, args...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start stand-in: %w", err)
	}
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &s.Ready)
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("stand-in said %q: %w", line, err)
	}
	if certFile != "" {
		pem, err := os.ReadFile(certFile)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.Pool = x509.NewCertPool()
		s.Pool.AppendCertsFromPEM(pem)
	}
	return s, nil
}

// Stop interrupts the stand-in and waits for it.
func (s *Standin) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
}

// Admin posts to one of the stand-in's admin routes ("latency?d=200ms",
// "failure?status=503").
func (s *Standin) Admin(route string) error {
	resp, err := http.Post(s.Ready.Admin+"/"+route, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stand-in /%s: %s", route, resp.Status)
	}
	return nil
}

// Stats reads the stand-in's counters.
func (s *Standin) Stats() (Stats, error) {
	var st Stats
	resp, err := http.Get(s.Ready.Admin + "/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// VerifyEnv is the configuration that points verifyd's Verify backend at
// the stand-in.
func (s *Standin) VerifyEnv() []string {
	return []string{"TWILIO_ACCOUNT_SID=" + s.AccountSID, "TWILIO_AUTH_TOKEN=" + s.AuthToken,
		"TWILIO_VERIFY_SERVICE_SID=" + s.ServiceSID, "TWILIO_VERIFY_BASE_URL=" + s.URL,
		"SSL_CERT_FILE=" + s.CertFile}
}

// Redis is a running redis-server on a loopback port, with nothing on disk.
type Redis struct {
	Addr     string
	bin, dir string
	cmd      *exec.Cmd
}

// StartRedis runs redis-server (bin) and waits until it answers PING.
func StartRedis(ctx context.Context, bin, dir string) (*Redis, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: addr, bin: bin, dir: dir}
	return r, r.Restart(ctx)
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Restart starts the server again on its port after Kill.
func (r *Redis) Restart(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.CommandContext(ctx, r.bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server (apt-get install redis-server): %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.Addr); err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			r.Kill()
			return errors.New("redis-server never answered PING")
		}
	}
}

// Kill stops the server at once.
func (r *Redis) Kill() error {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	return nil
}

// Verifyd is a running verifyd process.
type Verifyd struct {
	URL, DebugURL string
	cmd           *exec.Cmd
}

// StartVerifyd runs verifyd (bin) on free loopback ports for its API and
// its debug server, with env added to this process's environment and its
// output to log, and waits until /healthz answers 200.
func StartVerifyd(ctx context.Context, bin string, env []string, log io.Writer) (*Verifyd, error) {
	return StartServer(ctx, []string{bin}, env, log)
}

// StartServer runs argv as verifyd is run (HOST, PORT and DEBUG_ADDR in
// its environment): any server that answers /healthz when it is up, such
// as the load tools' bare proxies.
func StartServer(ctx context.Context, argv []string, env []string, log io.Writer) (*Verifyd, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	debug, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	v := &Verifyd{URL: "http://" + addr, DebugURL: "http://" + debug}
	v.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	v.cmd.Env = append(append(os.Environ(), "HOST=127.0.0.1", "PORT="+port, "DEBUG_ADDR="+debug), env...)
	v.cmd.Stdout, v.cmd.Stderr = log, log
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(v.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v, nil
			}
		}
		if time.Now().After(deadline) {
			v.Kill()
			return nil, fmt.Errorf("%s never answered /healthz with 200", argv[0])
		}
	}
}

// Pid is the process's id, for reading /proc.
func (v *Verifyd) Pid() int { return v.cmd.Process.Pid }

// Stop sends SIGTERM, as a platform stopping it does, and answers how the
// process ended.
func (v *Verifyd) Stop() error {
	v.cmd.Process.Signal(syscall.SIGTERM)
	if err := v.cmd.Wait(); err != nil {
		return fmt.Errorf("verifyd: %w", err)
	}
	return nil
}

// Kill stops the process at once, unless it has ended.
func (v *Verifyd) Kill() {
	if v.cmd.ProcessState == nil {
		v.cmd.Process.Kill()
		v.cmd.Wait()
	}
}

// ProcStatus answers a field of /proc/PID/status in MiB ("VmRSS",
// "VmHWM").
func (v *Verifyd) ProcStatus(field string) (float64, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(v.Pid()) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc status has no %s", field)
}
