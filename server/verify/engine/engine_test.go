package engine_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/verifytest"
)

func TestStartThenCheck(t *testing.T) {
	r := newRig(t)
	t0 := r.clock.Now()
	v, code := r.mustStart(t, alice)

	m := r.sender.last(t)
	if m.To != alice || m.SID != v.SID || m.Channel != verify.ChannelSMS {
		t.Errorf("sent %+v, want to %s, sid %s, channel sms", m, alice, v.SID)
	}
	want := verify.Verification{SID: v.SID, To: alice, Channel: verify.ChannelSMS,
		Status: verify.StatusPending, SendAttempts: 1, CreatedAt: t0}
	if v != want {
		t.Errorf("Start(%q) = %+v, want %+v", alice, v, want)
	}

	// Each step runs on the state the previous ones left.
	steps := []struct {
		name    string
		code    string
		want    verify.Status
		wantErr error
	}{
		{"wrong code is not an error", wrong(code), verify.StatusPending, nil},
		{"right code approves", code, verify.StatusApproved, nil},
		{"approved is gone", code, "", verify.ErrNotFound},
		{"and stays gone", wrong(code), "", verify.ErrNotFound},
	}
	for _, s := range steps {
		got, err := r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: s.code})
		if !sameErr(err, s.wantErr) || got.Status != s.want {
			t.Fatalf("%s: Check(%q) = %q, %v, want %q, %v", s.name, s.code, got.Status, err, s.want, s.wantErr)
		}
		if err == nil && got.SID != v.SID {
			t.Errorf("%s: Check(%q) answered SID %s, want %s", s.name, s.code, got.SID, v.SID)
		}
	}
}

func TestResendReusesVerificationAndCode(t *testing.T) {
	r := newRig(t)
	t0 := r.clock.Now()
	first, code := r.mustStart(t, alice)

	r.clock.Advance(3 * time.Minute)
	second, err := r.eng.Start(context.Background(), verify.StartRequest{To: verifytest.Number(alice), Channel: verify.ChannelCall, Locale: "fr"})
	if err != nil {
		t.Fatalf("Start(%q) again = %v, want no error", alice, err)
	}
	m := r.sender.last(t)
	if m.Code != code || m.SID != first.SID || m.Channel != verify.ChannelCall || m.Locale != "fr" {
		t.Errorf("resend sent %s code %s, want the same code %s and SID %s by call in fr", m, m.Code, code, first.SID)
	}
	if second.SID != first.SID || second.SendAttempts != 2 || !second.CreatedAt.Equal(t0) {
		t.Errorf("Start(%q) again = %+v, want SID %s, 2 sends, created %v", alice, second, first.SID, t0)
	}

	// The lifetime runs from creation, not from the resend.
	r.clock.Advance(7 * time.Minute)
	if _, err := r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: code}); !errors.Is(err, verify.ErrNotFound) {
		t.Errorf("Check(%q) 10 minutes after creation = %v, want %v", code, err, verify.ErrNotFound)
	}
}

func TestSendLimit(t *testing.T) {
	r := newRig(t)
	// Offsets from the first send; the window is 10 minutes.
	steps := []struct {
		at        time.Duration
		wantErr   error
		wantRetry time.Duration
		wantSends int // SendAttempts of the answer
	}{
		{0, nil, 0, 1},
		{1 * time.Minute, nil, 0, 2},
		{2 * time.Minute, nil, 0, 3},
		{3 * time.Minute, nil, 0, 4},
		{4 * time.Minute, nil, 0, 5},
		{5 * time.Minute, verify.ErrTooManySends, 5 * time.Minute, 0},
		{10*time.Minute - time.Second, verify.ErrTooManySends, time.Second, 0},
		// The first send has left the window; so has its verification.
		{10 * time.Minute, nil, 0, 1},
		{10 * time.Minute, verify.ErrTooManySends, time.Minute, 0},
		{11 * time.Minute, nil, 0, 2},
	}
	t0 := r.clock.Now()
	sent := 0
	for _, s := range steps {
		r.clock.Advance(t0.Add(s.at).Sub(r.clock.Now()))
		v, err := r.eng.Start(context.Background(), start(alice))
		if !sameErr(err, s.wantErr) {
			t.Fatalf("at %v: Start(%q) = %v, want %v", s.at, alice, err, s.wantErr)
		}
		if err != nil {
			if got := retryAfter(err); got != s.wantRetry {
				t.Errorf("at %v: Start(%q) RetryAfter = %v, want %v", s.at, alice, got, s.wantRetry)
			}
			continue
		}
		sent++
		if v.SendAttempts != s.wantSends {
			t.Errorf("at %v: Start(%q).SendAttempts = %d, want %d", s.at, alice, v.SendAttempts, s.wantSends)
		}
	}
	if got := r.sender.count(); got != sent {
		t.Errorf("sender saw %d messages, want %d (a refused start sends nothing)", got, sent)
	}
}

func TestSendLimitOutlivesVerification(t *testing.T) {
	r := newRig(t)
	_, code := r.mustStart(t, alice)
	if v, err := r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: code}); err != nil || v.Status != verify.StatusApproved {
		t.Fatalf("Check(%q) = %q, %v, want approved", code, v.Status, err)
	}
	var sids []string
	for range 4 {
		v, _ := r.mustStart(t, alice)
		sids = append(sids, v.SID)
	}
	if _, err := r.eng.Start(context.Background(), start(alice)); !errors.Is(err, verify.ErrTooManySends) {
		t.Errorf("6th Start(%q) after an approval = %v, want %v", alice, err, verify.ErrTooManySends)
	}
	// After an approval a start makes a new verification, which the later
	// starts reuse.
	for _, sid := range sids[1:] {
		if sid != sids[0] {
			t.Errorf("starts after approval answered SIDs %v, want one verification", sids)
			break
		}
	}
	// Other numbers have their own limit.
	r.mustStart(t, bob)
}

func TestTooManyWrongCodes(t *testing.T) {
	r := newRig(t)
	v, code := r.mustStart(t, alice)
	bad := wrong(code)
	for i := 1; i <= engine.DefaultMaxChecks; i++ {
		got, err := r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: bad})
		if err != nil || got.Status != verify.StatusPending {
			t.Fatalf("wrong check %d: Check(%q) = %q, %v, want pending", i, bad, got.Status, err)
		}
	}
	steps := []struct {
		name string
		req  verify.CheckRequest
		want error
	}{
		{"6th check refused even with the right code", verify.CheckRequest{To: verifytest.Number(alice), Code: code}, verify.ErrTooManyAttempts},
		{"then gone by number", verify.CheckRequest{To: verifytest.Number(alice), Code: code}, verify.ErrNotFound},
		{"and by SID", verify.CheckRequest{SID: v.SID, Code: code}, verify.ErrNotFound},
	}
	for _, s := range steps {
		if _, err := r.eng.Check(context.Background(), s.req); !errors.Is(err, s.want) {
			t.Errorf("%s: Check(%+v) = %v, want %v", s.name, s.req, err, s.want)
		}
	}
	if again, _ := r.mustStart(t, alice); again.SID == v.SID || again.SendAttempts != 1 {
		t.Errorf("Start(%q) after max attempts = %+v, want a new verification", alice, again)
	}
}

func TestStartAfterMaxAttemptsMakesNewVerification(t *testing.T) {
	r := newRig(t)
	v, code := r.mustStart(t, alice)
	for range engine.DefaultMaxChecks {
		r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: wrong(code)})
	}
	// Maxed out but not yet told so: a resend must not revive it.
	again, _ := r.mustStart(t, alice)
	if again.SID == v.SID {
		t.Fatalf("Start(%q) after 5 wrong codes reused %s, want a new verification", alice, v.SID)
	}
	newCode := r.sender.last(t).Code
	if got, err := r.eng.Check(context.Background(), verify.CheckRequest{To: verifytest.Number(alice), Code: newCode}); err != nil || got.Status != verify.StatusApproved {
		t.Errorf("Check(%q) of the new verification = %q, %v, want approved", newCode, got.Status, err)
	}
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration
		want  verify.Status
		err   error
	}{
		{"just inside the lifetime", 10*time.Minute - time.Nanosecond, verify.StatusApproved, nil},
		{"at 10 minutes", 10 * time.Minute, "", verify.ErrNotFound},
		{"long after", 3 * time.Hour, "", verify.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			v, code := r.mustStart(t, alice)
			r.clock.Advance(tt.after)
			for _, req := range []verify.CheckRequest{{SID: v.SID, Code: code}, {To: verifytest.Number(alice), Code: code}} {
				got, err := r.eng.Check(context.Background(), req)
				if got.Status != tt.want || !sameErr(err, tt.err) {
					t.Errorf("Check(%+v) = %q, %v, want %q, %v", req, got.Status, err, tt.want, tt.err)
				}
				if err == nil {
					break // approved: the second request would find nothing
				}
			}
			if tt.err != nil {
				if again, _ := r.mustStart(t, alice); again.SID == v.SID {
					t.Errorf("Start(%q) after expiry reused %s, want a new verification", alice, v.SID)
				}
			}
		})
	}
}

func TestCheckBySID(t *testing.T) {
	r := newRig(t)
	va, codeA := r.mustStart(t, alice)
	vb, codeB := r.mustStart(t, bob)

	steps := []struct {
		name    string
		req     verify.CheckRequest
		want    verify.Status
		wantErr error
	}{
		{"wrong code", verify.CheckRequest{SID: vb.SID, Code: wrong(codeB)}, verify.StatusPending, nil},
		{"right code", verify.CheckRequest{SID: va.SID, Code: codeA}, verify.StatusApproved, nil},
		{"approved SID is gone", verify.CheckRequest{SID: va.SID, Code: codeA}, "", verify.ErrNotFound},
		{"unknown SID", verify.CheckRequest{SID: "VE" + strings.Repeat("0", 32), Code: codeB}, "", verify.ErrNotFound},
		{"other number's verification untouched", verify.CheckRequest{To: verifytest.Number(bob), Code: codeB}, verify.StatusApproved, nil},
	}
	for _, s := range steps {
		got, err := r.eng.Check(context.Background(), s.req)
		if got.Status != s.want || !sameErr(err, s.wantErr) {
			t.Fatalf("%s: Check(%+v) = %q, %v, want %q, %v", s.name, s.req, got.Status, err, s.want, s.wantErr)
		}
	}
}

func TestStaleSIDIsNotFound(t *testing.T) {
	r := newRig(t)
	old, code := r.mustStart(t, alice)
	r.clock.Advance(10 * time.Minute)
	r.mustStart(t, alice) // a new verification for the same number
	if _, err := r.eng.Check(context.Background(), verify.CheckRequest{SID: old.SID, Code: code}); !errors.Is(err, verify.ErrNotFound) {
		t.Errorf("Check(%q) by expired SID = %v, want %v", old.SID, err, verify.ErrNotFound)
	}
}

var (
	codeRE = regexp.MustCompile(`^[0-9]{6}$`)
	sidRE  = regexp.MustCompile(`^VE[0-9a-f]{32}$`)
)

func TestCodesAndSIDs(t *testing.T) {
	r := newRig(t)
	const n = 200
	codes, sids := map[string]bool{}, map[string]bool{}
	for i := range n {
		to := fmt.Sprintf("+1415555%04d", i)
		v, code := r.mustStart(t, to)
		if !codeRE.MatchString(code) {
			t.Errorf("Start(%q) sent code %q, want 6 digits", to, code)
		}
		if !sidRE.MatchString(v.SID) || !verify.ValidSID(v.SID) {
			t.Errorf("Start(%q).SID = %q, want VE and 32 lower-case hex digits", to, v.SID)
		}
		codes[code], sids[v.SID] = true, true
	}
	// 200 draws from 10^6 collide with probability about 2%: ask for
	// plenty of variety, not for none.
	if len(codes) < n-10 {
		t.Errorf("%d starts sent %d distinct codes, want about %d", n, len(codes), n)
	}
	if len(sids) != n {
		t.Errorf("%d starts made %d distinct SIDs, want %d", n, len(sids), n)
	}
}

func TestStoreNeverHoldsCode(t *testing.T) {
	c := newClock()
	spy := &spyStore{Store: engine.NewMemoryStore(c.Now)}
	sender := &recordingSender{}
	e := mustNew(t, engine.Config{Store: spy, Sender: sender, Secret: testSecret, Now: c.Now})

	ctx := context.Background()
	for _, to := range []string{alice, bob} {
		e.Start(ctx, start(to))
		c.Advance(time.Minute)
		e.Start(ctx, start(to)) // a resend
		e.Check(ctx, verify.CheckRequest{To: verifytest.Number(to), Code: "000000"})
	}
	codes := map[string]string{} // SID → code
	for _, m := range sender.all() {
		codes[m.SID] = m.Code
	}
	if len(spy.written) == 0 || len(codes) != 2 {
		t.Fatalf("store saw %d writes and %d verifications, want some and 2", len(spy.written), len(codes))
	}
	for _, rec := range spy.written {
		p := rec.Current
		if p == nil {
			continue
		}
		code := codes[p.SID]
		dump := fmt.Sprintf("%+v %+v", *rec, *p)
		for _, field := range [][]byte{[]byte(dump), p.CodeHash, p.SealedCode} {
			if bytes.Contains(field, []byte(code)) {
				t.Errorf("stored record %s holds its code %s in the clear", dump, code)
			}
		}
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(p.SID + ":" + code))
		if !hmac.Equal(p.CodeHash, mac.Sum(nil)) {
			t.Errorf("stored CodeHash of %s = %x, want HMAC-SHA256(secret, sid:code)", p.SID, p.CodeHash)
		}
	}
}

func TestSecretChangeInvalidatesCodes(t *testing.T) {
	c := newClock()
	store := engine.NewMemoryStore(c.Now)
	oldSender, newSender := &recordingSender{}, &recordingSender{}
	oldEng := mustNew(t, engine.Config{Store: store, Sender: oldSender, Secret: testSecret, Now: c.Now})
	newEng := mustNew(t, engine.Config{Store: store, Sender: newSender, Secret: bytes.Repeat([]byte{7}, 32), Now: c.Now})
	ctx := context.Background()

	v, err := oldEng.Start(ctx, start(alice))
	if err != nil {
		t.Fatalf("Start(%q) = %v", alice, err)
	}
	code := oldSender.last(t).Code
	got, err := newEng.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code})
	if err != nil || got.Status != verify.StatusPending {
		t.Errorf("Check(%q) under a new secret = %q, %v, want pending (wrong code)", code, got.Status, err)
	}
	// A resend under the new secret cannot open the old code: it starts over.
	again, err := newEng.Start(ctx, start(alice))
	if err != nil || again.SID == v.SID || again.SendAttempts != 1 {
		t.Errorf("Start(%q) under a new secret = %+v, %v, want a new verification", alice, again, err)
	}
	newCode := newSender.last(t).Code
	if got, err := newEng.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: newCode}); err != nil || got.Status != verify.StatusApproved {
		t.Errorf("Check(%q) of the new code = %q, %v, want approved", newCode, got.Status, err)
	}
}

func TestSenderFailureLeavesNothingBehind(t *testing.T) {
	c := newClock()
	store := engine.NewMemoryStore(c.Now)
	sender := &failingSender{}
	e := mustNew(t, engine.Config{Store: store, Sender: sender, Secret: testSecret, Now: c.Now})
	ctx := context.Background()

	for i := range engine.DefaultMaxSends + 2 {
		v, err := e.Start(ctx, start(alice))
		if !errors.Is(err, verify.ErrUnavailable) || !errors.Is(err, errBoom) || v != (verify.Verification{}) {
			t.Fatalf("failed send %d: Start(%q) = %+v, %v, want %v caused by %v", i+1, alice, v, err, verify.ErrUnavailable, errBoom)
		}
	}
	if n := store.Len(); n != 0 {
		t.Errorf("after failed sends the store holds %d records, want 0", n)
	}
	m := sender.last(t)
	for _, req := range []verify.CheckRequest{{To: verifytest.Number(alice), Code: m.Code}, {SID: m.SID, Code: m.Code}} {
		if _, err := e.Check(ctx, req); !errors.Is(err, verify.ErrNotFound) {
			t.Errorf("Check(%+v) after a failed send = %v, want %v", req, err, verify.ErrNotFound)
		}
	}
	// The failures did not count against the limit.
	ok := mustNew(t, engine.Config{Store: store, Sender: &recordingSender{}, Secret: testSecret, Now: c.Now})
	for i := range engine.DefaultMaxSends {
		if _, err := ok.Start(ctx, start(alice)); err != nil {
			t.Fatalf("send %d after failures: Start(%q) = %v, want no error", i+1, alice, err)
		}
	}
}

func TestFailedResendKeepsVerification(t *testing.T) {
	c := newClock()
	sender := &flakySender{fail: map[int]bool{2: true}}
	e := mustNew(t, engine.Config{Sender: sender, Secret: testSecret, Now: c.Now})
	ctx := context.Background()

	v, err := e.Start(ctx, start(alice))
	if err != nil {
		t.Fatalf("Start(%q) = %v", alice, err)
	}
	code := sender.last(t).Code
	if _, err := e.Start(ctx, start(alice)); !errors.Is(err, verify.ErrUnavailable) {
		t.Fatalf("failing resend: Start(%q) = %v, want %v", alice, err, verify.ErrUnavailable)
	}
	// The delivered code still works, and the failed resend did not count.
	again, err := e.Start(ctx, start(alice))
	if err != nil || again.SID != v.SID || again.SendAttempts != 2 {
		t.Errorf("Start(%q) after a failed resend = %+v, %v, want SID %s with 2 sends", alice, again, err, v.SID)
	}
	if got, err := e.Check(ctx, verify.CheckRequest{SID: v.SID, Code: code}); err != nil || got.Status != verify.StatusApproved {
		t.Errorf("Check(%q) = %q, %v, want approved", code, got.Status, err)
	}
}

func TestContext(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()

	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, verify.ErrClientGone},
		{"deadline exceeded", expired, verify.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			if _, err := r.eng.Start(tt.ctx, start(alice)); !errors.Is(err, tt.want) {
				t.Errorf("Start(%q) = %v, want %v", alice, err, tt.want)
			}
			if n := r.sender.count(); n != 0 {
				t.Errorf("sender saw %d messages, want 0", n)
			}
			if _, err := r.eng.Check(tt.ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: "123456"}); !errors.Is(err, tt.want) {
				t.Errorf("Check(%q) = %v, want %v", alice, err, tt.want)
			}
		})
	}
}

func TestCallerLeavesDuringSend(t *testing.T) {
	c := newClock()
	store := engine.NewMemoryStore(c.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := mustNew(t, engine.Config{Store: store, Sender: hangUpSender{cancel}, Now: c.Now})

	if _, err := e.Start(ctx, start(alice)); !errors.Is(err, verify.ErrClientGone) {
		t.Errorf("Start(%q) = %v, want %v", alice, err, verify.ErrClientGone)
	}
	// The undo ran although the caller's context was done.
	if n := store.Len(); n != 0 {
		t.Errorf("store holds %d records after the caller left, want 0", n)
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := mustNew(t, engine.Config{Store: unreachableStore{}, Sender: &recordingSender{}})
	ctx := context.Background()
	// 503 store_unavailable: a code can be neither sent nor checked
	// without its store.
	if _, err := e.Start(ctx, start(alice)); !errors.Is(err, engine.ErrStoreUnavailable) || !errors.Is(err, errConnRefused) {
		t.Errorf("Start(%q) = %v, want %v caused by %v", alice, err, engine.ErrStoreUnavailable, errConnRefused)
	}
	for _, req := range []verify.CheckRequest{{To: verifytest.Number(alice), Code: "123456"}, {SID: "VE" + strings.Repeat("a", 32), Code: "123456"}} {
		if _, err := e.Check(ctx, req); !errors.Is(err, engine.ErrStoreUnavailable) {
			t.Errorf("Check(%+v) = %v, want %v", req, err, engine.ErrStoreUnavailable)
		}
	}
}

func TestInvalidRequests(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	starts := []struct {
		req  verify.StartRequest
		want error
	}{
		{verify.StartRequest{Channel: verify.ChannelSMS}, verify.ErrMissingTarget},
		{verify.StartRequest{To: verifytest.Number(alice), Channel: "pigeon"}, verify.ErrChannelNotAllowed},
		{verify.StartRequest{To: verifytest.Number(alice)}, verify.ErrChannelNotAllowed},
	}
	for _, tt := range starts {
		if _, err := r.eng.Start(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Start(%+v) = %v, want %v", tt.req, err, tt.want)
		}
	}
	checks := []struct {
		req  verify.CheckRequest
		want error
	}{
		{verify.CheckRequest{Code: "123456"}, verify.ErrMissingTarget},
		{verify.CheckRequest{To: verifytest.Number(alice), SID: "VE" + strings.Repeat("a", 32), Code: "123456"}, verify.ErrInvalidParameter},
		{verify.CheckRequest{To: verifytest.Number(alice)}, verify.ErrInvalidCode},
		{verify.CheckRequest{To: verifytest.Number(alice), Code: "123456"}, verify.ErrNotFound},
	}
	for _, tt := range checks {
		if _, err := r.eng.Check(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Check(%+v) = %v, want %v", tt.req, err, tt.want)
		}
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     engine.Config
		wantErr bool
	}{
		{"defaults", engine.Config{Sender: &recordingSender{}}, false},
		{"no sender", engine.Config{}, true},
		{"short secret", engine.Config{Sender: &recordingSender{}, Secret: []byte("hunter2")}, true},
		{"negative TTL", engine.Config{Sender: &recordingSender{}, TTL: -time.Second}, true},
		{"negative MaxSends", engine.Config{Sender: &recordingSender{}, MaxSends: -1}, true},
	}
	for _, tt := range tests {
		_, err := engine.New(tt.cfg)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: New = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestConfigLimits(t *testing.T) {
	c := newClock()
	sender := &recordingSender{}
	e := mustNew(t, engine.Config{Sender: sender, Now: c.Now, TTL: time.Minute, MaxSends: 2, MaxChecks: 1})
	ctx := context.Background()
	e.Start(ctx, start(alice))
	e.Start(ctx, start(alice))
	if _, err := e.Start(ctx, start(alice)); !errors.Is(err, verify.ErrTooManySends) || retryAfter(err) != time.Minute {
		t.Errorf("3rd Start(%q) with MaxSends 2 = %v (retry after %v), want %v after 1m", alice, err, retryAfter(err), verify.ErrTooManySends)
	}
	code := sender.last(t).Code
	e.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: wrong(code)})
	if _, err := e.Check(ctx, verify.CheckRequest{To: verifytest.Number(alice), Code: code}); !errors.Is(err, verify.ErrTooManyAttempts) {
		t.Errorf("Check(%q) after 1 wrong with MaxChecks 1 = %v, want %v", code, err, verify.ErrTooManyAttempts)
	}
}

func TestConcurrentStartsOneNumber(t *testing.T) {
	r := newRig(t)
	const n = 200
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      int
		limited int
		other   []error
		ready   = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-ready
			_, err := r.eng.Start(context.Background(), start(alice))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, verify.ErrTooManySends):
				limited++
			default:
				other = append(other, err)
			}
		})
	}
	close(ready)
	wg.Wait()

	if ok != engine.DefaultMaxSends || limited != n-engine.DefaultMaxSends || len(other) > 0 {
		t.Errorf("%d concurrent Start(%q): %d sent, %d limited, other errors %v; want %d, %d, none",
			n, alice, ok, limited, other, engine.DefaultMaxSends, n-engine.DefaultMaxSends)
	}
	msgs := r.sender.all()
	if len(msgs) != engine.DefaultMaxSends {
		t.Fatalf("sender saw %d messages, want %d", len(msgs), engine.DefaultMaxSends)
	}
	for _, m := range msgs[1:] {
		if m.SID != msgs[0].SID || m.Code != msgs[0].Code {
			t.Errorf("concurrent sends went to %s with %s and %s with %s, want one verification", msgs[0].SID, msgs[0].Code, m.SID, m.Code)
		}
	}
}

func TestConcurrentStartsAndChecks(t *testing.T) {
	r := newRig(t)
	var wg sync.WaitGroup
	for i := range 50 {
		to := fmt.Sprintf("+1415555%04d", i)
		wg.Go(func() {
			ctx := context.Background()
			v, err := r.eng.Start(ctx, start(to))
			if err != nil {
				t.Errorf("Start(%q) = %v", to, err)
				return
			}
			r.eng.Check(ctx, verify.CheckRequest{SID: v.SID, Code: "000000"})
			r.eng.Start(ctx, start(to))
			r.eng.Check(ctx, verify.CheckRequest{To: verifytest.Number(to), Code: "999999"})
		})
	}
	wg.Wait()
	if got := r.sender.count(); got != 100 {
		t.Errorf("sender saw %d messages, want 100", got)
	}
}

func TestMemoryStorePurgesExpired(t *testing.T) {
	r := newRig(t)
	for i := range 1000 {
		r.mustStart(t, fmt.Sprintf("+1415555%04d", i))
	}
	if n := r.store.Len(); n != 1000 {
		t.Fatalf("store holds %d records, want 1000", n)
	}
	r.clock.Advance(10 * time.Minute)
	r.mustStart(t, alice) // a write: the sweep runs
	if n := r.store.Len(); n != 1 {
		t.Errorf("after the lifetime and a write the store holds %d records, want 1", n)
	}
}

func TestMemoryStoreWritesNothingOnError(t *testing.T) {
	s := engine.NewMemoryStore(newClock().Now)
	ctx := context.Background()
	errVeto := errors.New("veto")
	err := s.Update(ctx, alice, func(*engine.Record) (*engine.Record, error) {
		return &engine.Record{ExpiresAt: time.Now().Add(time.Hour)}, errVeto
	})
	if !errors.Is(err, errVeto) || s.Len() != 0 {
		t.Errorf("Update with a failing fn = %v and %d records, want %v and 0", err, s.Len(), errVeto)
	}
}

// errSender fails every send with err, remembering the codes it was given.
type errSender struct {
	recordingSender
	err error
}

func (s *errSender) Send(ctx context.Context, m engine.Message) error {
	s.recordingSender.Send(ctx, m)
	return s.err
}

// TestSendRealOrNot: a send the provider refused is taken back and its
// error (of the domain's kind) reaches the caller; one of unknown fate
// counts, and its code stays for a resend.
func TestSendRealOrNot(t *testing.T) {
	c := newClock()
	refused := &errSender{err: verify.ErrLandline.With(errors.New("twilio 21614"), 0)}
	e := mustNew(t, engine.Config{Store: engine.NewMemoryStore(c.Now), Sender: refused, Now: c.Now})
	if _, err := e.Start(context.Background(), start(alice)); !errors.Is(err, verify.ErrLandline) {
		t.Errorf("a refused send = %v, want %v", err, verify.ErrLandline)
	}
	refused.err = nil
	if v, err := e.Start(context.Background(), start(alice)); err != nil || v.SendAttempts != 1 {
		t.Errorf("the next send = %+v, %v, want the first send of a new verification", v, err)
	}

	maybe := verify.ErrTimeout.With(errors.New("no answer"), 0)
	unknown := &errSender{err: maybe}
	store := engine.NewMemoryStore(c.Now)
	e = mustNew(t, engine.Config{Store: store, Sender: unknown, Now: c.Now})
	_, err := e.Start(context.Background(), start(alice))
	if !errors.Is(err, verify.ErrTimeout) || !verify.AsError(err).MaybeSent {
		t.Errorf("a send of unknown fate = %v, want %v marked maybe sent", err, verify.ErrTimeout)
	}
	unknown.err = nil
	v, err := e.Start(context.Background(), start(alice))
	msgs := unknown.all()
	if err != nil || v.SendAttempts != 2 || len(msgs) != 2 || msgs[0].Code != msgs[1].Code {
		t.Errorf("the resend after = %+v, %v, want the second send of the same code", v, err)
	}
}

func TestCodeLength(t *testing.T) {
	for _, n := range []int{4, 8, 10} {
		r := newRig(t)
		e := mustNew(t, engine.Config{Store: engine.NewMemoryStore(r.clock.Now), Sender: r.sender, Now: r.clock.Now, CodeLength: n})
		if _, err := e.Start(context.Background(), start(alice)); err != nil {
			t.Fatal(err)
		}
		if code := r.sender.all()[0].Code; len(code) != n {
			t.Errorf("CodeLength %d sent %q", n, code)
		}
	}
	if _, err := engine.New(engine.Config{Sender: &recordingSender{}, CodeLength: 3}); err == nil {
		t.Error("CodeLength 3 accepted")
	}
}
