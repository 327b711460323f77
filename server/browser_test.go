package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"verifyd/server"
	"verifyd/server/abuse"
	"verifyd/server/challenge"
	"verifyd/server/delivery"
	"verifyd/server/flow"
	"verifyd/server/receipt"
	"verifyd/server/receipt/receipttest"
	"verifyd/server/verify"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/verifytest"
	"verifyd/static"
	"verifyd/web"
)

// inbox is the development engine's delivery in these tests: it keeps the
// codes sent to each number.
type inbox struct {
	mu       sync.Mutex
	codes    map[string][]string
	sids     map[string]string           // the last verification sent to each number
	channels map[string][]verify.Channel // how each code went
	// flow is the site's, for tests that play Twilio's status callbacks.
	flow *flow.Flow
}

func (in *inbox) Send(_ context.Context, m engine.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.codes[m.To] = append(in.codes[m.To], m.Code)
	if in.sids == nil {
		in.sids, in.channels = map[string]string{}, map[string][]verify.Channel{}
	}
	in.sids[m.To] = m.SID
	in.channels[m.To] = append(in.channels[m.To], m.Channel)
	return nil
}

func (in *inbox) last(t *testing.T, to string) string {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.codes[to]
	if len(c) == 0 {
		t.Fatalf("no code was sent to %s", to)
	}
	return c[len(c)-1]
}

func (in *inbox) count(to string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.codes[to])
}

// startSite serves the real handler with the development engine behind the
// abuse guard, on a free loopback port.
func startSite(t *testing.T, cooldown time.Duration) (string, *inbox) {
	t.Helper()
	return startSiteWith(t, cooldown, nil, nil)
}

// startSiteWith is startSite with receipts and the origins the form may
// hand them back to.
func startSiteWith(t *testing.T, cooldown time.Duration, receipts *receipt.Issuer, returns []string) (string, *inbox) {
	t.Helper()
	return startSiteGuarded(t, cooldown, receipts, returns, nil)
}

// startSiteGuarded is startSiteWith with more of the guard (and of the
// flow: its observer) configured.
func startSiteGuarded(t *testing.T, cooldown time.Duration, receipts *receipt.Issuer, returns []string, more func(*abuse.Config, *flow.Config)) (string, *inbox) {
	t.Helper()
	box := &inbox{codes: map[string][]string{}}
	eng, err := engine.New(engine.Config{Sender: box})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := abuse.Config{Limits: abuse.Limits{PhoneCooldown: cooldown}}
	fcfg := flow.Config{Backend: eng, Channels: verify.Channels{verify.ChannelSMS}, Locales: verify.NewLocales(), Receipts: receipts}
	if more != nil {
		more(&gcfg, &fcfg)
	}
	guard, err := abuse.NewGuard(gcfg)
	if err != nil {
		t.Fatal(err)
	}
	fcfg.Policy, fcfg.StepUp, fcfg.Limits = guard, guard, guard
	fl, err := flow.New(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	box.flow = fl
	h, err := server.NewHandler(server.Config{Logger: slog.New(slog.DiscardHandler), Flow: fl,
		Web: web.FS, Static: static.FS, ResendCooldown: cooldown, ReturnOrigins: returns, CodeLength: 6})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, box
}

// chrome is the one headless Chromium the browser tests share: starting
// one costs more than most tests, so each test opens a tab of its own in a
// fresh browser context (its own cookies and storage) instead.
var chrome struct {
	once    sync.Once
	ctx     context.Context // the browser's; nil when it did not start
	err     error
	profile string
	stop    func()
}

// TestMain closes the shared Chromium when the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if chrome.stop != nil {
		chrome.stop()
	}
	os.Exit(code)
}

// startChrome starts Debian's chromium headless with a fresh profile.
func startChrome() {
	path, err := exec.LookPath("chromium")
	if err != nil {
		chrome.err = fmt.Errorf("chromium is not installed: %w", err)
		return
	}
	// Removed after the browser exits: it may still be writing its profile
	// when the last test ends.
	profile, err := os.MkdirTemp("", "verifyd-chromium-")
	if err != nil {
		chrome.err = err
		return
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 800))
	ctx, cancelCtx := chromedp.NewContext(alloc)
	chrome.stop = func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(stopCtx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(profile)
	}
	if err := chromedp.Run(ctx); err != nil {
		chrome.err = fmt.Errorf("start chromium: %w", err)
		return
	}
	chrome.ctx = ctx
}

// newChrome opens a tab of the shared Chromium, in a browser context of its
// own, at width × height. Without chromium the test is skipped, except
// under CI=true, where it fails.
func newChrome(t *testing.T, width, height int64) context.Context {
	t.Helper()
	chrome.once.Do(startChrome)
	if chrome.err != nil {
		if os.Getenv("CI") == "true" || !strings.Contains(chrome.err.Error(), "not installed") {
			t.Fatalf("%v (CI installs it with apt-get install chromium)", chrome.err)
		}
		t.Skip(chrome.err)
	}
	// The browser context by hand: chromedp's WithNewBrowserContext opens
	// its tab without a window, which this Chromium refuses ("no browser
	// is open").
	browser := cdp.WithExecutor(chrome.ctx, chromedp.FromContext(chrome.ctx).Browser)
	bctx, err := target.CreateBrowserContext().Do(browser)
	if err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	id, err := target.CreateTarget("about:blank").WithBrowserContextID(bctx).WithNewWindow(true).Do(browser)
	if err != nil {
		t.Fatalf("new tab: %v", err)
	}
	tab, cancelTab := chromedp.NewContext(chrome.ctx, chromedp.WithTargetID(id))
	ctx, cancelTimeout := context.WithTimeout(tab, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab() // closes the tab
		_ = target.DisposeBrowserContext(bctx).Do(browser)
	})
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// shot writes a screenshot of the page to test-artifacts/ at the
// repository's root.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	// Quality 100 gives PNG; anything lower gives JPEG.
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func poll(expr string) chromedp.Action {
	return chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(15*time.Second))
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	var s string
	run(t, ctx, expr, chromedp.Evaluate(expr, &s))
	return s
}

// TestBrowserWithScript walks the whole flow with JavaScript on, at desktop
// and phone widths: no page load between the steps, focus on the code, a
// wrong code then the right one.
func TestBrowserWithScript(t *testing.T) {
	t.Parallel()
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1280, 800}, {"phone", 360, 740}} {
		t.Run(size.name, func(t *testing.T) {
			t.Parallel()
			site, box := startSite(t, 30*time.Second)
			ctx := newChrome(t, size.width, size.height)
			run(t, ctx, "open the page", chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery),
				chromedp.Evaluate(`window.noReload = true`, nil))
			shot(t, ctx, "js-"+size.name+"-1-number")

			run(t, ctx, "a bad number", chromedp.SendKeys("#phone", "12345", chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery),
				poll(`document.getElementById('phone-error').textContent.includes('valid phone number')`))
			shot(t, ctx, "js-"+size.name+"-1-error")

			run(t, ctx, "send a code", chromedp.Evaluate(`document.getElementById('phone').value = ''`, nil),
				chromedp.SendKeys("#phone", "+1 415 555 2671", chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery),
				chromedp.WaitVisible("#code", chromedp.ByQuery))
			if got := evalString(t, ctx, `document.activeElement.id`); got != "code" {
				t.Errorf("focus is on %q after sending, want the code field", got)
			}
			if sent := evalString(t, ctx, `document.getElementById('sent-to').textContent`); !strings.Contains(sent, "+1 415-555-2671") {
				t.Errorf("step 2 says %q, want the masked number", sent)
			}
			shot(t, ctx, "js-"+size.name+"-2-code")

			code := box.last(t, testNumber)
			// With the script, typing the last digit checks the code.
			run(t, ctx, "a wrong code", chromedp.SendKeys("#code", verifytest.WrongCode(code), chromedp.ByQuery),
				poll(`document.getElementById('code-error').textContent.includes('not right')`))
			if got := evalString(t, ctx, `document.getElementById('step-code').hidden ? 'hidden' : 'shown'`); got != "shown" {
				t.Error("a wrong code left step 2")
			}
			shot(t, ctx, "js-"+size.name+"-2-wrong")

			run(t, ctx, "the right code", chromedp.Evaluate(`document.getElementById('code').value = ''`, nil),
				chromedp.SendKeys("#code", code, chromedp.ByQuery),
				chromedp.WaitVisible("#step-done", chromedp.ByQuery))
			if got := evalString(t, ctx, `document.getElementById('done-number').textContent`); got != "+1 415-555-2671 is verified." {
				t.Errorf("the outcome says %q", got)
			}
			var kept bool
			run(t, ctx, "check for reloads", chromedp.Evaluate(`window.noReload === true`, &kept))
			if !kept {
				t.Error("the page reloaded between the steps")
			}
			shot(t, ctx, "js-"+size.name+"-3-done")
		})
	}
}

// TestBrowserResendCountdown: "send a new code" stays disabled with a
// visible countdown until the cooldown has passed, then sends the same code
// again (Twilio's rule within a code's lifetime).
func TestBrowserResendCountdown(t *testing.T) {
	t.Parallel()
	site, box := startSite(t, 3*time.Second)
	ctx := newChrome(t, 1280, 800)
	run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
		chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
	var disabled bool
	run(t, ctx, "read the resend button", chromedp.Evaluate(`document.getElementById('resend').disabled`, &disabled))
	wait := evalString(t, ctx, `document.getElementById('resend-wait').textContent`)
	if !disabled || !strings.Contains(wait, "You can ask for the code again in") {
		t.Errorf("right after sending: resend disabled=%v, text %q; want disabled with a countdown", disabled, wait)
	}
	shot(t, ctx, "js-desktop-2-countdown")
	run(t, ctx, "the countdown ends", chromedp.WaitEnabled("#resend", chromedp.ByQuery))
	if wait := evalString(t, ctx, `document.getElementById('resend-wait').textContent`); wait != "" {
		t.Errorf("after the countdown the text is %q", wait)
	}
	run(t, ctx, "resend", chromedp.Click("#resend", chromedp.ByQuery),
		poll(`document.getElementById('sent-to').textContent.startsWith('We sent your code again')`))
	if n := box.count(testNumber); n != 2 {
		t.Errorf("%d codes sent, want 2", n)
	}
	run(t, ctx, "countdown restarts", poll(`document.getElementById('resend').disabled`))
}

// TestBrowserCallMeInstead: after Twilio says the text could not be
// delivered, step 2 says so and offers "Call me instead" (at once: the
// failed text gave its resend back), with script (polled) and without (on
// reload); the offer places a call.
func TestBrowserCallMeInstead(t *testing.T) {
	t.Parallel()
	for _, script := range []bool{true, false} {
		name := map[bool]string{true: "js", false: "nojs"}[script]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			site, box := startSiteGuarded(t, time.Minute, nil, nil, func(_ *abuse.Config, f *flow.Config) {
				f.Channels = verify.Channels{verify.ChannelSMS, verify.ChannelCall}
				f.Deliveries = delivery.NewMemoryStore(time.Now)
				f.ResendAfter = time.Minute
			})
			ctx := newChrome(t, 1280, 800)
			if !script {
				run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
			}
			run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
			if visible := evalString(t, ctx, `String(!document.getElementById('form-call').hidden)`); visible != "false" {
				t.Errorf("Call me instead is offered before the resend wait, with the text on its way")
			}
			box.mu.Lock()
			sid := box.sids[testNumber]
			box.mu.Unlock()
			if err := box.flow.StatusCallback(context.Background(), sid, delivery.State{Channel: verify.ChannelSMS,
				Status: delivery.Undelivered, ErrorCode: 30003, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if !script {
				run(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible("#code", chromedp.ByQuery))
			}
			run(t, ctx, "the offer", chromedp.WaitVisible("#call-instead", chromedp.ByQuery),
				poll(`document.getElementById('delivery').textContent.includes('could not be delivered')`))
			shot(t, ctx, name+"-desktop-2-call-instead")
			run(t, ctx, "call me", chromedp.Click("#call-instead", chromedp.ByQuery))
			// Without script the click posts and the page loads again: a
			// poll that meets the navigation starts over on the new page.
			called := `document.getElementById('sent-to').textContent.includes('called you')`
			var err error
			for range 3 {
				if err = chromedp.Run(ctx, poll(called)); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("no call placed (%v): the page says %q", err, evalString(t, ctx, `document.getElementById('sent-to').textContent`))
			}
			box.mu.Lock()
			chs := slices.Clone(box.channels[testNumber])
			box.mu.Unlock()
			if !slices.Equal(chs, []verify.Channel{verify.ChannelSMS, verify.ChannelCall}) {
				t.Errorf("the codes went by %v, want a text, then a call", chs)
			}
		})
	}
}

// TestBrowserWithoutScript walks the flow with JavaScript off: plain form
// posts and server-rendered steps.
func TestBrowserWithoutScript(t *testing.T) {
	t.Parallel()
	site, box := startSite(t, 30*time.Second)
	ctx := newChrome(t, 1280, 800)
	run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
	run(t, ctx, "open the page", chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery))
	shot(t, ctx, "nojs-desktop-1-number")

	run(t, ctx, "send a code", chromedp.SendKeys("#phone", "+1 415 555 2671", chromedp.ByQuery),
		chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
	var loc, sent string
	run(t, ctx, "read step 2", chromedp.Location(&loc), chromedp.Text("#sent-to", &sent, chromedp.ByQuery))
	if !strings.HasSuffix(loc, "/") || !strings.Contains(sent, "+1 415-555-2671") {
		t.Errorf("after posting: at %s saying %q; want step 2 at / (post, redirect, get)", loc, sent)
	}
	shot(t, ctx, "nojs-desktop-2-code")

	code := box.last(t, testNumber)
	run(t, ctx, "a wrong code", chromedp.SendKeys("#code", verifytest.WrongCode(code), chromedp.ByQuery),
		// Only the server's answer marks the field invalid: this waits for
		// the post to come back.
		chromedp.Click("#form-code button", chromedp.ByQuery), chromedp.WaitVisible(`#code[aria-invalid="true"]`, chromedp.ByQuery))
	var msg string
	run(t, ctx, "read the error", chromedp.Text("#code-error", &msg, chromedp.ByQuery))
	if !strings.Contains(msg, "not right") {
		t.Errorf("a wrong code says %q", msg)
	}
	shot(t, ctx, "nojs-desktop-2-wrong")

	run(t, ctx, "the right code", chromedp.SendKeys("#code", code, chromedp.ByQuery),
		chromedp.Click("#form-code button", chromedp.ByQuery), chromedp.WaitVisible("#step-done", chromedp.ByQuery))
	var done string
	run(t, ctx, "read the outcome", chromedp.Text("#done-number", &done, chromedp.ByQuery))
	if done != "+1 415-555-2671 is verified." {
		t.Errorf("the outcome says %q", done)
	}
	shot(t, ctx, "nojs-desktop-3-done")
}

// app is the application a person returns to: it records what the
// Continue hand-off posted, and how.
type app struct {
	mu   sync.Mutex
	seen appSaw
}

type appSaw struct {
	url, referer, receipt, method string
	posts                         int
}

func startApp(t *testing.T) (*httptest.Server, *app) {
	t.Helper()
	a := &app{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		a.seen.url, a.seen.referer, a.seen.method = r.URL.String(), r.Referer(), r.Method
		if r.Method == http.MethodPost {
			a.seen.posts++
			a.seen.receipt = r.PostFormValue("receipt")
		}
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>App</title><p id="got">received</p>`)
	}))
	t.Cleanup(srv.Close)
	return srv, a
}

// TestBrowserContinueHandsBackTheReceipt: an app sends a person to the
// form with return_to and a nonce; after the right code, Continue POSTs the
// receipt to the app, with script and without, and the receipt is never in
// a URL, the history or a Referer.
func TestBrowserContinueHandsBackTheReceipt(t *testing.T) {
	t.Parallel()
	for _, script := range []bool{true, false} {
		name := map[bool]string{true: "js", false: "nojs"}[script]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			appSrv, a := startApp(t)
			iss := newTestIssuer(t)
			site, box := startSiteWith(t, 30*time.Second, iss, []string{appSrv.URL})
			ctx := newChrome(t, 1280, 800)
			if !script {
				run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
			}
			back := appSrv.URL + "/phone-verified"
			run(t, ctx, "open the app's link",
				chromedp.Navigate(site+"/?return_to="+url.QueryEscape(back)+"&nonce=app-session-1"),
				chromedp.WaitVisible("#phone", chromedp.ByQuery))
			run(t, ctx, "send a code", chromedp.SendKeys("#phone", "+1 415 555 2671", chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
			enter := []chromedp.Action{chromedp.SendKeys("#code", box.last(t, testNumber), chromedp.ByQuery)}
			if !script { // with script, the last digit checks the code
				enter = append(enter, chromedp.Click("#form-code button", chromedp.ByQuery))
			}
			run(t, ctx, "the right code", append(enter, chromedp.WaitVisible("#continue", chromedp.ByQuery))...)
			shot(t, ctx, name+"-desktop-3-continue")
			run(t, ctx, "continue to the app", chromedp.Click("#continue", chromedp.ByQuery),
				chromedp.WaitVisible("#got", chromedp.ByQuery))

			a.mu.Lock()
			got := a.seen
			a.mu.Unlock()
			if got.method != http.MethodPost || got.posts != 1 || got.url != "/phone-verified" {
				t.Errorf("the app saw %s %s (%d posts), want one POST /phone-verified", got.method, got.url, got.posts)
			}
			c, _, err := receipttest.Verify(got.receipt, iss.JWKS(), testIssuer, testAudience, time.Now())
			if err != nil {
				t.Fatalf("the receipt the app got does not verify: %v", err)
			}
			if c.PhoneNumber != testNumber || c.Nonce != "app-session-1" {
				t.Errorf("claims %+v, want %s and the app's nonce", c, testNumber)
			}
			if strings.Contains(got.referer, got.receipt) || strings.Contains(got.url, got.receipt) {
				t.Errorf("the receipt travelled in a URL or Referer: %q %q", got.url, got.referer)
			}
			var history []string
			run(t, ctx, "read the history", chromedp.ActionFunc(func(ctx context.Context) error {
				_, entries, err := page.GetNavigationHistory().Do(ctx)
				for _, e := range entries {
					history = append(history, e.URL)
				}
				return err
			}))
			for _, u := range history {
				if strings.Contains(u, got.receipt[:20]) || strings.Contains(u, "receipt=") {
					t.Errorf("the history holds the receipt: %s", u)
				}
			}
		})
	}
}

// TestBrowserPassesTheStepUp: when every send needs a proof of work, the
// form's script solves it in a Web Worker and the person sees only the
// next step; without script the page says the step needs JavaScript.
func TestBrowserPassesTheStepUp(t *testing.T) {
	t.Parallel()
	// Each subtest has its own site, and its own record of what the guard
	// decided, in order: they run side by side.
	var mu sync.Mutex
	var actions []string // the js subtest's
	always := func(c *abuse.Config, f *flow.Config) {
		store := abuse.NewMemoryStore()
		iss, err := challenge.New(challenge.Config{Key: []byte(strings.Repeat("c", 32)), MaxNumber: 5000,
			TTL: time.Minute, Spent: abuse.SpendOnce(store, time.Now)})
		if err != nil {
			t.Fatal(err)
		}
		c.Store, c.Challenge, c.Challenges = store, abuse.ChallengeAlways, iss
	}
	recorded := func(c *abuse.Config, f *flow.Config) {
		always(c, f)
		f.Observer = observerFunc(func(e flow.Event) {
			if d, ok := e.(flow.Decided); ok {
				mu.Lock()
				actions = append(actions, d.Decision.Action)
				mu.Unlock()
			}
		})
	}
	t.Run("js", func(t *testing.T) {
		t.Parallel()
		site, box := startSiteGuarded(t, 30*time.Second, nil, nil, recorded)
		ctx := newChrome(t, 1280, 800)
		run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
			chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
		mu.Lock()
		got := slices.Clone(actions)
		mu.Unlock()
		if box.count(testNumber) != 1 || !slices.Equal(got, []string{"challenged", "challenge_passed"}) {
			t.Errorf("%d codes sent after the guard decided %v; want 1, after challenged then challenge_passed", box.count(testNumber), got)
		}
		shot(t, ctx, "js-desktop-2-after-stepup")
	})
	t.Run("nojs", func(t *testing.T) {
		t.Parallel()
		site, box := startSiteGuarded(t, 30*time.Second, nil, nil, always)
		ctx := newChrome(t, 1280, 800)
		run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
		run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
			chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible(`#phone[aria-invalid="true"]`, chromedp.ByQuery))
		var msg string
		run(t, ctx, "read the message", chromedp.Text("#phone-error", &msg, chromedp.ByQuery))
		if !strings.Contains(msg, "needs JavaScript") || box.count(testNumber) != 0 {
			t.Errorf("without script the step-up says %q with %d codes sent; want it to say it needs JavaScript, and none", msg, box.count(testNumber))
		}
		shot(t, ctx, "nojs-desktop-1-stepup")
	})
}

// TestBrowserDarkTheme: under prefers-color-scheme: dark the card is dark
// and its text light.
func TestBrowserDarkTheme(t *testing.T) {
	t.Parallel()
	site, _ := startSite(t, 30*time.Second)
	ctx := newChrome(t, 1280, 800)
	run(t, ctx, "ask for dark", emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
		chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery))
	bg := evalString(t, ctx, `getComputedStyle(document.querySelector('.card')).backgroundColor`)
	fg := evalString(t, ctx, `getComputedStyle(document.querySelector('h1')).color`)
	if bg != "rgb(22, 27, 34)" || fg != "rgb(230, 237, 243)" {
		t.Errorf("dark theme: card %s, heading %s; want a dark card and light text", bg, fg)
	}
	shot(t, ctx, "js-desktop-1-number-dark")
}

// TestBrowserNationalNumbers: a person in Britain (Accept-Language en-GB)
// types "07400 123456" with script; a person in the US picks the US by
// hand and types "(415) 555-2671" without; each sees the whole number on
// step 2 and gets verified.
func TestBrowserNationalNumbers(t *testing.T) {
	t.Parallel()
	t.Run("GB with script", func(t *testing.T) {
		t.Parallel()
		site, box := startSite(t, 30*time.Second)
		ctx := newChrome(t, 360, 740)
		run(t, ctx, "speak British English", network.Enable(),
			network.SetExtraHTTPHeaders(network.Headers{"Accept-Language": "en-GB,en;q=0.9"}))
		run(t, ctx, "open the page", chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery))
		if got := evalString(t, ctx, `document.getElementById('country').value`); got != "GB" {
			t.Errorf("the country starts on %q, want GB", got)
		}
		run(t, ctx, "send a code", chromedp.SendKeys("#phone", "07400 123456", chromedp.ByQuery),
			chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
		if sent := evalString(t, ctx, `document.getElementById('sent-to').textContent`); !strings.Contains(sent, "+44 7400 123456") {
			t.Errorf("step 2 says %q, want the whole number", sent)
		}
		shot(t, ctx, "js-phone-2-code-gb")
		run(t, ctx, "the code", chromedp.SendKeys("#code", box.last(t, "+447400123456"), chromedp.ByQuery),
			chromedp.WaitVisible("#step-done", chromedp.ByQuery))
	})
	t.Run("US without script", func(t *testing.T) {
		t.Parallel()
		site, box := startSite(t, 30*time.Second)
		ctx := newChrome(t, 1280, 800)
		run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
		run(t, ctx, "open the page", chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery),
			chromedp.SetValue("#country", "US", chromedp.ByQuery))
		run(t, ctx, "send a code", chromedp.SendKeys("#phone", "(415) 555-2671", chromedp.ByQuery),
			chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
		var sent string
		run(t, ctx, "read step 2", chromedp.Text("#sent-to", &sent, chromedp.ByQuery))
		if !strings.Contains(sent, "+1 415-555-2671") {
			t.Errorf("step 2 says %q, want the whole number", sent)
		}
		shot(t, ctx, "nojs-desktop-2-code-us")
		run(t, ctx, "the code", chromedp.SendKeys("#code", box.last(t, testNumber), chromedp.ByQuery),
			chromedp.Click("#form-code button", chromedp.ByQuery), chromedp.WaitVisible("#step-done", chromedp.ByQuery))
	})
}

// TestBrowserTypingTheCodeIsEnough: with the code's length known, the code
// is checked as soon as its digits are in, full-width ones too; the
// countdown's live region speaks when it starts, not every second.
func TestBrowserTypingTheCodeIsEnough(t *testing.T) {
	t.Parallel()
	site, box := startSite(t, 30*time.Second)
	ctx := newChrome(t, 1280, 800)
	run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
		chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
	if got := evalString(t, ctx, `document.getElementById('announce').textContent`); got != "You can ask for the code again in 30 seconds." {
		t.Errorf("the live region says %q", got)
	}
	if got := evalString(t, ctx, `String(document.getElementById('resend-wait').getAttribute('aria-live'))`); got != "null" {
		t.Errorf("the ticking countdown is a live region (%s): it would speak every second", got)
	}
	if got := evalString(t, ctx, `document.getElementById('code-hint').textContent`); got != "Enter the 6-digit code." {
		t.Errorf("the code hint says %q", got)
	}
	full := strings.Map(func(r rune) rune { return r - '0' + '０' }, box.last(t, testNumber))
	run(t, ctx, "type the code in full-width digits, no click", chromedp.SendKeys("#code", full, chromedp.ByQuery),
		chromedp.WaitVisible("#step-done", chromedp.ByQuery))
	if title := evalString(t, ctx, `document.title + " / " + document.getElementById('title').textContent`); title != "Phone number verified / Phone number verified" {
		t.Errorf("after success the title and heading are %q", title)
	}
}

// TestBrowserReloadAndBack: reloading step 2 (as a phone does coming back
// from its messages app) shows step 2 with the same number and wait, with
// script and without; after success, Back asks nothing and shows a fresh
// start.
func TestBrowserReloadAndBack(t *testing.T) {
	t.Parallel()
	for _, script := range []bool{true, false} {
		name := map[bool]string{true: "js", false: "nojs"}[script]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			site, box := startSite(t, 30*time.Second)
			ctx := newChrome(t, 360, 740)
			if !script {
				run(t, ctx, "turn scripts off", emulation.SetScriptExecutionDisabled(true))
			}
			run(t, ctx, "send a code", chromedp.Navigate(site+"/"), chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
			run(t, ctx, "reload step 2", chromedp.Reload(), chromedp.WaitVisible("#code", chromedp.ByQuery))
			var sent, wait string
			run(t, ctx, "read step 2", chromedp.Text("#sent-to", &sent, chromedp.ByQuery), chromedp.Text("#resend-wait", &wait, chromedp.ByQuery))
			if !strings.Contains(sent, "+1 415-555-2671") || !strings.Contains(wait, "You can ask for the code again") {
				t.Errorf("after a reload step 2 says %q and %q; want the number and the wait", sent, wait)
			}
			shot(t, ctx, name+"-phone-2-reloaded")
			enter := []chromedp.Action{chromedp.SendKeys("#code", box.last(t, testNumber), chromedp.ByQuery)}
			if !script {
				enter = append(enter, chromedp.Click("#form-code button", chromedp.ByQuery))
			}
			run(t, ctx, "the code", append(enter, chromedp.WaitVisible("#step-done", chromedp.ByQuery))...)
			if script {
				// With script the flow is one page: Back leaves it. A reload
				// after success starts afresh rather than showing the code.
				run(t, ctx, "reload the end", chromedp.Reload(), chromedp.WaitVisible("#phone", chromedp.ByQuery))
			} else {
				run(t, ctx, "back", chromedp.NavigateBack(), chromedp.WaitVisible("#phone", chromedp.ByQuery))
			}
			var phone string
			run(t, ctx, "read step 1", chromedp.Value("#phone", &phone, chromedp.ByQuery))
			if phone != "" {
				t.Errorf("after the end, step 1's number field holds %q", phone)
			}
		})
	}
}

// axeScript answers axe-core (installed by .ci/run with npm), or skips the
// test when it is not there, except under CI=true, where it fails.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("AXE_CORE_JS")
	if path == "" {
		path = filepath.Join("..", ".ci", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is not installed (.ci/run installs it with npm): %v", err)
		}
		t.Skipf("axe-core is not installed (npm install --prefix .ci/axe axe-core): %v", err)
	}
	return string(data)
}

// audit runs axe-core on the page as it is and fails on any violation.
func audit(t *testing.T, ctx context.Context, axe, state string) {
	t.Helper()
	var violations []struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []any }
	}
	run(t, ctx, "load axe-core", chromedp.Evaluate(axe, nil))
	run(t, ctx, "audit "+state, chromedp.Evaluate(`axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)`,
		&violations, func(p *cdpruntime.EvaluateParams) *cdpruntime.EvaluateParams { return p.WithAwaitPromise(true) }))
	for _, v := range violations {
		t.Errorf("%s: axe %s (%s): %s at %v", state, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// TestBrowserAccessibility audits every state of the form with axe-core,
// light and dark, with script and without: zero violations.
func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	axe := axeScript(t)
	for _, dark := range []bool{false, true} {
		scheme := map[bool]string{false: "light", true: "dark"}[dark]
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			site, box := startSite(t, 30*time.Second)
			ctx := newChrome(t, 1280, 800)
			if dark {
				run(t, ctx, "ask for dark", emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}))
			}
			run(t, ctx, "open", chromedp.Navigate(site+"/"), chromedp.WaitVisible("#phone", chromedp.ByQuery))
			audit(t, ctx, axe, scheme+" step 1")
			run(t, ctx, "a bad number", chromedp.SendKeys("#phone", "12345", chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery),
				poll(`document.getElementById('phone-error').textContent.includes('valid phone number')`))
			audit(t, ctx, axe, scheme+" step 1 with an error")
			run(t, ctx, "send", chromedp.Evaluate(`document.getElementById('phone').value = ''`, nil),
				chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
			audit(t, ctx, axe, scheme+" step 2")
			code := box.last(t, testNumber)
			run(t, ctx, "a wrong code", chromedp.SendKeys("#code", verifytest.WrongCode(code), chromedp.ByQuery),
				poll(`document.getElementById('code-error').textContent.includes('not right')`))
			audit(t, ctx, axe, scheme+" step 2 with an error")
			run(t, ctx, "the code", chromedp.Evaluate(`document.getElementById('code').value = ''`, nil),
				chromedp.SendKeys("#code", code, chromedp.ByQuery), chromedp.WaitVisible("#step-done", chromedp.ByQuery))
			audit(t, ctx, axe, scheme+" verified")
		})
	}
	t.Run("a link that cannot be used", func(t *testing.T) {
		t.Parallel()
		site, _ := startSite(t, 30*time.Second)
		ctx := newChrome(t, 1280, 800)
		run(t, ctx, "open", chromedp.Navigate(site+"/?return_to=https%3A%2F%2Fevil.example%2F"), chromedp.WaitVisible("#step-problem", chromedp.ByQuery))
		audit(t, ctx, axe, "problem page")
	})
}

// TestBrowserInEveryLanguage walks the form in each language with script,
// from a link that picks it, keeping a screenshot of each step in
// test-artifacts/, and fails on any error in the browser's console.
func TestBrowserInEveryLanguage(t *testing.T) {
	t.Parallel()
	for _, l := range []struct{ code, heading, verified string }{
		{"en", "Verify your phone number", "Phone number verified"},
		{"es", "Verifica tu número de teléfono", "Número de teléfono verificado"},
		{"de", "Telefonnummer bestätigen", "Telefonnummer bestätigt"},
		{"fr", "Vérifiez votre numéro de téléphone", "Numéro de téléphone vérifié"},
		{"pt-BR", "Confirme seu número de telefone", "Número de telefone confirmado"},
	} {
		t.Run(l.code, func(t *testing.T) {
			t.Parallel()
			site, box := startSite(t, 30*time.Second)
			ctx := newChrome(t, 360, 740)
			var mu sync.Mutex
			var consoleErrors []string
			chromedp.ListenTarget(ctx, func(ev any) {
				mu.Lock()
				defer mu.Unlock()
				switch e := ev.(type) {
				case *cdpruntime.EventExceptionThrown:
					consoleErrors = append(consoleErrors, e.ExceptionDetails.Text)
				case *cdpruntime.EventConsoleAPICalled:
					if e.Type == cdpruntime.APITypeError {
						consoleErrors = append(consoleErrors, fmt.Sprint(e.Args))
					}
				}
			})
			run(t, ctx, "open in "+l.code, chromedp.Navigate(site+"/?lang="+l.code), chromedp.WaitVisible("#phone", chromedp.ByQuery))
			if h := evalString(t, ctx, `document.documentElement.lang + ' / ' + document.getElementById('title').textContent`); h != l.code+" / "+l.heading {
				t.Errorf("the page is %q, want %q", h, l.code+" / "+l.heading)
			}
			shot(t, ctx, "lang-"+l.code+"-1-number")
			run(t, ctx, "send", chromedp.SendKeys("#phone", testNumber, chromedp.ByQuery),
				chromedp.Click("#form-phone button", chromedp.ByQuery), chromedp.WaitVisible("#code", chromedp.ByQuery))
			shot(t, ctx, "lang-"+l.code+"-2-code")
			run(t, ctx, "the code", chromedp.SendKeys("#code", box.last(t, testNumber), chromedp.ByQuery),
				chromedp.WaitVisible("#step-done", chromedp.ByQuery))
			if h := evalString(t, ctx, `document.title`); h != l.verified {
				t.Errorf("after success the title is %q, want %q", h, l.verified)
			}
			shot(t, ctx, "lang-"+l.code+"-3-done")
			mu.Lock()
			defer mu.Unlock()
			if len(consoleErrors) > 0 {
				t.Errorf("console errors: %v", consoleErrors)
			}
		})
	}
}
