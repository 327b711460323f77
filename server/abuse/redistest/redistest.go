// Package redistest starts a real redis-server for tests, on a free loopback
// port, and stops it when the test ends. Without redis-server installed the
// test is skipped, except under CI=true, where it fails: CI must never pass
// by skipping what it was meant to check.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"verifyd/server/redisclient"
)

// Server is one redis-server process.
type Server struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	dir  string
	t    testing.TB
}

// Start starts redis-server and waits until it answers PING.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (CI installs it with apt-get install redis-server): %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	s := &Server{dir: t.TempDir(), t: t}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s.URL = "redis://" + s.Addr + "/0"
	_, port, _ := net.SplitHostPort(s.Addr)
	s.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "no")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	s.waitReady()
	return s
}

// Stop kills the server; Stop twice is harmless.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Client answers a client of the server, built as verifyd builds its one
// (see redisclient), closed when the test ends.
func (s *Server) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	c, err := redisclient.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Entry is one key of the server.
type Entry struct {
	Key   string
	Value string        // when the key holds a string, else ""
	TTL   time.Duration // how long until Redis expires it; <= 0 when never
}

// Dump answers every key of the server, sorted by key.
func (s *Server) Dump(t testing.TB) []Entry {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer client.Close()
	ctx := context.Background()
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("redis KEYS: %v", err)
	}
	slices.Sort(keys)
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		e := Entry{Key: k}
		if typ, err := client.Type(ctx, k).Result(); err != nil {
			t.Fatalf("redis TYPE %s: %v", k, err)
		} else if typ == "string" {
			if e.Value, err = client.Get(ctx, k).Result(); err != nil {
				t.Fatalf("redis GET %s: %v", k, err)
			}
		}
		if e.TTL, err = client.PTTL(ctx, k).Result(); err != nil {
			t.Fatalf("redis PTTL %s: %v", k, err)
		}
		out = append(out, e)
	}
	return out
}

// String writes the entries one a line, for a test's failure message.
func String(entries []Entry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s = %q (ttl %v)\n", e.Key, e.Value, e.TTL)
	}
	return b.String()
}

func (s *Server) waitReady() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s never answered PING: %v", s.Addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("answered %q", line)
	}
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
