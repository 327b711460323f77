package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"verifyd/server/abuse/redistest"
	"verifyd/server/verify/messaging/twilioapitest"
)

// TestSentinelFailover: two instances on a Sentinel set (a primary, two
// replicas, three Sentinels). Five codes are sent through one; the primary
// is killed with SIGKILL; sends through the other answer 200 again within
// 15 seconds, never 500, and all five codes are approved there: every code
// a person was told of waited for a replica (WAIT 1).
func TestSentinelFailover(t *testing.T) {
	set := redistest.StartSentinel(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	env := messagingEnv(api, "", "REDIS_URL=", "REDIS_SENTINEL_ADDRS="+set.Addrs(), "REDIS_SENTINEL_MASTER="+set.MasterName,
		"FRAUD_BUDGETS=off", "LIMIT_KEY_SECRET=failover-test-limit-key-0123456789abcdef")
	a, b := startRun(t, env), startRun(t, env)

	codes := map[string]string{}
	for i := range 5 {
		to := fmt.Sprintf("+1415555%04d", 7000+i)
		if status, got := a.post(t, "/api/request-otp", `{"phoneNumber":"`+to+`"}`); status != 200 {
			t.Fatalf("send %d = %d %v", i, status, got)
		}
		codes[to] = lastCode(t, api)
	}

	for _, n := range set.Nodes {
		t.Logf("%s holds %d keys", n.Addr, len(n.Dump(t)))
	}
	killed := set.KillPrimary()
	began := time.Now()
	var back time.Duration
	statuses := map[int]int{}
	for i := 0; back == 0; i++ {
		if time.Since(began) > 20*time.Second {
			t.Fatalf("sends through the other instance did not come back within 20s of the primary's death: %v", statuses)
		}
		status, got := b.post(t, "/api/request-otp", fmt.Sprintf(`{"phoneNumber":"+1415555%04d"}`, 8000+i))
		statuses[status]++
		switch {
		case status == 200:
			back = time.Since(began)
		case status == 503:
			if got["code"] == nil || got["retryAfter"] == nil {
				t.Errorf("a 503 during the failover lacks a code or a wait: %v", got)
			}
		default:
			t.Fatalf("a send during the failover = %d %v, want 503 or 200", status, got)
		}
		time.Sleep(100 * time.Millisecond) // a client retrying, not a test waiting for something
	}
	t.Logf("primary %s killed; sends back after %v; answers meanwhile %v", killed, back.Round(time.Millisecond), statuses)
	if back > 15*time.Second {
		t.Errorf("sends came back after %v, want within 15s", back)
	}
	for to, code := range codes {
		if status, got := b.post(t, "/api/verify-otp", `{"phoneNumber":"`+to+`","code":"`+code+`"}`); status != 200 {
			t.Errorf("a code sent before the failover, checked after it on the other instance = %d %v, want 200", status, got)
		}
	}
	if _, metrics := b.get(t, "/metrics"); !strings.Contains(metrics, "verifyd_redis_unacknowledged_writes_total") {
		t.Error("/metrics lacks verifyd_redis_unacknowledged_writes_total")
	}
}
