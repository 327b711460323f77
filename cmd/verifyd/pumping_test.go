package main

import (
	"encoding/json"
	"strings"
	"testing"

	"verifyd/server/challenge"
	"verifyd/server/verify/twilioverify/twiliotest"
)

// TestStepUpThroughRun: with SEND_CHALLENGE=always a send is answered
// challenge_required with a challenge; its solution lets the send through
// once; GET /api/challenge issues one a client can solve ahead, which is
// not bound to a send: it is answered with one that is.
func TestStepUpThroughRun(t *testing.T) {
	standin := twiliotest.NewServer(twiliotest.Options{})
	defer standin.Close()
	in := startRun(t, standinEnv(standin, "SEND_CHALLENGE=always", "CHALLENGE_DIFFICULTY=2000", "LIMIT_PHONE_COOLDOWN=0s"))

	status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"`+e2eNumber+`"}`)
	if status != 403 || got["code"] != "challenge_required" || got["challenge"] == nil {
		t.Fatalf("a send = %d %v, want 403 challenge_required with a challenge", status, got)
	}
	if standin.Requests() != 0 {
		t.Fatal("a challenged send reached Twilio")
	}
	solution := solveFrom(t, got["challenge"])
	body := `{"phoneNumber":"` + e2eNumber + `","altcha":"` + solution + `"}`
	if status, got := in.post(t, "/api/request-otp", body); status != 200 {
		t.Fatalf("with the solution = %d %v, want 200", status, got)
	}
	if status, got := in.post(t, "/api/request-otp", body); status != 403 || got["code"] != "challenge_failed" || got["challenge"] == nil {
		t.Errorf("the same solution again = %d %v, want 403 challenge_failed with a fresh challenge", status, got)
	}

	status, page := in.get(t, "/api/challenge")
	var c challenge.Challenge
	if err := json.Unmarshal([]byte(page), &c); status != 200 || err != nil || c.MaxNumber != 2000 {
		t.Fatalf("GET /api/challenge = %d %s", status, page)
	}
	ahead, err := challenge.Solve(c)
	if err != nil {
		t.Fatal(err)
	}
	status, got = in.post(t, "/api/request-otp", `{"phoneNumber":"+14155552672","altcha":"`+ahead+`"}`)
	if status != 403 || got["code"] != "challenge_failed" || got["challenge"] == nil {
		t.Fatalf("with a solution fetched ahead = %d %v, want 403 challenge_failed with a bound challenge", status, got)
	}
	bound := solveFrom(t, got["challenge"])
	if status, got := in.post(t, "/api/request-otp", `{"phoneNumber":"+14155552672","altcha":"`+bound+`"}`); status != 200 {
		t.Errorf("with the bound challenge solved = %d %v, want 200", status, got)
	}
	if n := standin.Requests(); n != 2 {
		t.Errorf("Twilio saw %d sends, want 2", n)
	}
	if _, metrics := in.get(t, "/metrics"); !strings.Contains(metrics, `verifyd_fraud_decisions_total{action="challenged",backend="twilio",country="US",rule="always"} 1`) ||
		!strings.Contains(metrics, `verifyd_fraud_decisions_total{action="challenge_passed",backend="twilio",country="US",rule="always"} 2`) {
		t.Errorf("/metrics does not count the decisions:\n%s", grepLines(metrics, "fraud"))
	}
	var explained bool
	for _, l := range in.logs.logLines(t) {
		explained = explained || (l["msg"] == "fraud budget" && l["action"] == "challenged")
	}
	if !explained {
		t.Errorf("no log line explains the step-up:\n%s", in.logs)
	}
}

func solveFrom(t *testing.T, v any) string {
	t.Helper()
	data, _ := json.Marshal(v)
	var c challenge.Challenge
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	s, err := challenge.Solve(c)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
