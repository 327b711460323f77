package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
)

func TestLogSender(t *testing.T) {
	var buf bytes.Buffer
	s := engine.LogSender{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	m := engine.Message{SID: "VE" + strings.Repeat("ab", 16), To: alice, Channel: verify.ChannelSMS, Code: "042917"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send(%v) = %v", m, err)
	}
	line := buf.String()
	for _, want := range []string{"level=WARN", "DEVELOPMENT BACKEND", "code=042917", "to=" + verify.Mask(alice), "sid=" + m.SID, "channel=sms"} {
		if !strings.Contains(line, want) {
			t.Errorf("LogSender wrote %q, want it to contain %q", line, want)
		}
	}
	if strings.Contains(line, alice) {
		t.Errorf("LogSender wrote %q, which holds the full number %s", line, alice)
	}
	if got := strings.Count(line, "\n"); got != 1 {
		t.Errorf("LogSender wrote %d lines, want 1", got)
	}
}

func TestLogSenderWithoutLogger(t *testing.T) {
	if err := (engine.LogSender{}).Send(context.Background(), engine.Message{Code: "123456"}); err == nil {
		t.Error("LogSender{}.Send = nil, want an error rather than a code in the default log")
	}
}

// The development backend end to end: the code in the log is the one that
// checks.
func TestEngineWithLogSender(t *testing.T) {
	var buf bytes.Buffer
	e := mustNew(t, engine.Config{Sender: engine.LogSender{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}})
	ctx := context.Background()
	v, err := e.Start(ctx, start(alice))
	if err != nil {
		t.Fatalf("Start(%q) = %v", alice, err)
	}
	match := regexp.MustCompile(`"code":"([0-9]{6})"`).FindStringSubmatch(buf.String())
	if match == nil {
		t.Fatalf("log %q holds no code", buf.String())
	}
	if got, err := e.Check(ctx, verify.CheckRequest{SID: v.SID, Code: match[1]}); err != nil || got.Status != verify.StatusApproved {
		t.Errorf("Check(%q) = %q, %v, want approved", match[1], got.Status, err)
	}
	if strings.Contains(buf.String(), alice) {
		t.Errorf("log %q holds the full number", buf.String())
	}
}

// A Message printed or logged by mistake gives away neither code nor number.
func TestMessageRedacts(t *testing.T) {
	m := engine.Message{SID: "VE" + strings.Repeat("cd", 16), To: alice, Channel: verify.ChannelCall, Code: "774411"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("sending", "msg", m)
	for _, out := range []string{fmt.Sprint(m), fmt.Sprintf("%v %+v %s", m, m, m), buf.String()} {
		if strings.Contains(out, m.Code) || strings.Contains(out, alice) {
			t.Errorf("Message printed as %q, which holds the code or the full number", out)
		}
	}
}
