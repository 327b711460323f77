package abuse_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"verifyd/server/abuse"
	"verifyd/server/flow"
	"verifyd/server/verify"
	"verifyd/server/verify/verifytest"
)

// pipeline runs the guard where verifyd runs it, at the steps of the flow,
// in front of a backend; it answers in the backend's terms, so that a wrong
// code reads as a pending verification.
type pipeline struct {
	*abuse.Guard
	fl      *flow.Flow
	clock   *verifytest.Clock // the guard's, when the test made one
	backend *countingVerifier // what reached the backend, when the test counts it
	// decisions are the step-up decisions the flow told its observer of.
	mu        sync.Mutex
	decisions []abuse.BudgetDecision
}

func newPipeline(t *testing.T, g *abuse.Guard, backend verify.Verifier, tests *abuse.TestNumbers) *pipeline {
	t.Helper()
	p := &pipeline{Guard: g}
	cfg := flow.Config{Backend: backend, Channels: verify.Channels{verify.ChannelSMS, verify.ChannelCall, verify.ChannelWhatsApp}, Locales: verify.NewLocales(),
		Policy: g, StepUp: g, Limits: g, Observer: p}
	if tests != nil {
		cfg.Tests = tests
	}
	fl, err := flow.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.fl = fl
	return p
}

func (p *pipeline) Observe(_ context.Context, e flow.Event) {
	if d, ok := e.(flow.Decided); ok {
		p.mu.Lock()
		p.decisions = append(p.decisions, d.Decision)
		p.mu.Unlock()
	}
}

func (p *pipeline) seen() []abuse.BudgetDecision {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]abuse.BudgetDecision(nil), p.decisions...)
}

func (p *pipeline) Start(ctx context.Context, req verify.StartRequest) (verify.Verification, error) {
	s, err := p.fl.Start(ctx, flow.Start{To: req.To, Channel: string(req.Channel), ClientIP: req.ClientIP, Proof: req.Proof})
	return verify.Verification{SID: s.SID, To: s.To.E164(), Channel: s.Channel, Status: s.Status, SendAttempts: s.SendAttempts}, err
}

func (p *pipeline) Check(ctx context.Context, req verify.CheckRequest) (verify.Verification, error) {
	v, err := p.fl.Check(ctx, flow.Check{To: req.To, SID: req.SID, Code: req.Code, ClientIP: req.ClientIP})
	if errors.Is(err, verify.ErrWrongCode) {
		return verify.Verification{Status: verify.StatusPending}, nil
	}
	return verify.Verification{SID: v.SID, To: v.To, Channel: v.Channel, Status: v.Status}, err
}

func (p *pipeline) last() abuse.BudgetDecision {
	s := p.seen()
	if len(s) == 0 {
		return abuse.BudgetDecision{}
	}
	return s[len(s)-1]
}
