package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelSet is a primary, two replicas and three Sentinels watching them
// as MasterName, every one a real redis-server on loopback.
type SentinelSet struct {
	MasterName string
	Sentinels  []string // host:port of each Sentinel
	Nodes      []*Server
	t          testing.TB
}

// StartSentinel starts a Sentinel set: a failover begins one second after
// the primary stops answering.
func StartSentinel(t testing.TB) *SentinelSet {
	t.Helper()
	// No delay before a full sync (Redis waits 5 s by default, for more
	// replicas to join one diskless transfer): the replicas are in sync
	// at once, whichever node is primary.
	primary := startWith(t, "--repl-diskless-sync-delay", "0")
	set := &SentinelSet{MasterName: "verifyd", Nodes: []*Server{primary}, t: t}
	for range 2 {
		set.Nodes = append(set.Nodes, startWith(t, "--repl-diskless-sync-delay", "0", "--replicaof", "127.0.0.1", port(primary.Addr)))
	}
	bin, _ := exec.LookPath("redis-server") // Start found it
	for i := range 3 {
		dir := t.TempDir()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		conf := fmt.Sprintf("port %s\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %s 2\n"+
			"sentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 5000\n"+
			"sentinel parallel-syncs %[3]s 1\n", port(addr), dir, set.MasterName, port(primary.Addr))
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Server{Addr: addr, dir: dir, t: t, cmd: exec.Command(bin, file, "--sentinel")}
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("start sentinel %d: %v", i, err)
		}
		t.Cleanup(s.Stop)
		s.waitReady()
		set.Sentinels = append(set.Sentinels, addr)
	}
	// Ready when the replicas are in sync and every Sentinel knows both
	// replicas and the two other Sentinels.
	set.waitFor("the set to form", func(ctx context.Context) bool {
		for _, n := range set.Nodes[1:] {
			c := redis.NewClient(&redis.Options{Addr: n.Addr})
			info, err := c.Info(ctx, "replication").Result()
			c.Close()
			if err != nil || !strings.Contains(info, "master_link_status:up") {
				return false
			}
		}
		for _, a := range set.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: a})
			info, err := c.Master(ctx, set.MasterName).Result()
			c.Close()
			if err != nil || info["num-slaves"] != "2" || info["num-other-sentinels"] != "2" {
				return false
			}
		}
		return true
	})
	return set
}

// startWith starts one more redis-server with extra arguments.
func startWith(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, _ := exec.LookPath("redis-server")
	s := &Server{dir: t.TempDir(), t: t}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	s.URL = "redis://" + s.Addr + "/0"
	args := append([]string{"--port", port(s.Addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "no"}, extra...)
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	s.waitReady()
	return s
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// Primary answers the address the Sentinels name as primary now.
func (set *SentinelSet) Primary(ctx context.Context) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: set.Sentinels[0]})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(ctx, set.MasterName).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// KillPrimary kills the current primary with SIGKILL, as a crash does, and
// answers its address.
func (set *SentinelSet) KillPrimary() string {
	set.t.Helper()
	addr, err := set.Primary(context.Background())
	if err != nil {
		set.t.Fatalf("the primary: %v", err)
	}
	for _, n := range set.Nodes {
		if n.Addr == addr {
			n.cmd.Process.Signal(syscall.SIGKILL)
			n.cmd.Wait()
			n.cmd = nil
			return addr
		}
	}
	set.t.Fatalf("the primary %s is none of the set's nodes", addr)
	return ""
}

// waitFor polls cond for up to 20 seconds.
func (set *SentinelSet) waitFor(what string, cond func(ctx context.Context) bool) {
	set.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok := cond(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			set.t.Fatalf("redistest: waited 20s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs is REDIS_SENTINEL_ADDRS for the set.
func (set *SentinelSet) Addrs() string { return strings.Join(set.Sentinels, ",") }
