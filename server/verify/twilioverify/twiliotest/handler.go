package twiliotest

import (
	"context"
	"crypto/subtle"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AnyRequest is the SetFailure key that applies to every request, including
// those about no phone number at all (fetching the service).
const AnyRequest = "*"

// maxForm bounds a request body; Twilio's own limit is far larger, but no
// request of ours comes near this.
const maxForm = 64 << 10

// Failure is an answer injected in place of the stand-in's own, to play
// Twilio or the network in trouble.
type Failure struct {
	// Status is the HTTP status; 0 means 500.
	Status int
	// Code and Message fill Twilio's JSON error body; an empty Message
	// becomes the status text.
	Code    int
	Message string
	// RawBody, when set, is sent instead of the JSON error body, as a load
	// balancer's HTML page would be; ContentType is its type (default
	// "text/html; charset=utf-8").
	RawBody     string
	ContentType string
	// NoBody answers with an empty body (and no Content-Type).
	NoBody bool
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Hang blocks the request until the client gives up (its context ends)
	// or the stand-in closes, without answering.
	Hang bool
	// Times answers that many requests with the failure, then clears it;
	// 0 means until SetFailure clears it.
	Times int
}

// Handler is the stand-in itself: Twilio Verify's HTTP surface and the state
// of its verifications. It is safe for concurrent use.
type Handler struct {
	accountSID, authToken, serviceSID string
	fixedCode                         string
	now                               func() time.Time
	ttl                               time.Duration
	created                           time.Time // the service's date_created

	latency     atomic.Int64 // nanoseconds
	requests    atomic.Int64
	connections atomic.Int64
	canceled    atomic.Int64

	done      chan struct{} // closed by Close, releases waiting requests
	closeOnce sync.Once

	mu       sync.Mutex
	store    store
	failures map[string]*Failure
	sent     map[string]int // messages sent (starts that answered 201), by number
}

// NewHandler builds a stand-in without serving it; Options.TLS is ignored.
// To have Connections count, hook ConnState into the http.Server.
func NewHandler(opts Options) *Handler {
	h := &Handler{
		accountSID: opts.AccountSID,
		authToken:  opts.AuthToken,
		serviceSID: opts.ServiceSID,
		fixedCode:  opts.FixedCode,
		now:        opts.Now,
		ttl:        opts.CodeTTL,
		done:       make(chan struct{}),
		failures:   make(map[string]*Failure),
		sent:       make(map[string]int),
	}
	if h.accountSID == "" {
		h.accountSID = "AC" + randomHex()
	}
	if h.authToken == "" {
		h.authToken = randomHex()
	}
	if h.serviceSID == "" {
		h.serviceSID = "VA" + randomHex()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.ttl <= 0 {
		h.ttl = 10 * time.Minute
	}
	h.created = h.now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	h.store.init()
	h.latency.Store(int64(opts.Latency))
	return h
}

// AccountSID is the account requests must authenticate as.
func (h *Handler) AccountSID() string { return h.accountSID }

// AuthToken is the account's token.
func (h *Handler) AuthToken() string { return h.authToken }

// ServiceSID is the one Verify service that exists.
func (h *Handler) ServiceSID() string { return h.serviceSID }

// Code answers the code of the pending verification to `to`, if there is one.
func (h *Handler) Code(to string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.store.byTo(to, h.now())
	if v == nil {
		return "", false
	}
	return v.code, true
}

// SetFailure makes every request about `to` (a start to it, a check by To or
// by the SID of its verification, a fetch or cancel of that verification)
// answer f instead; AnyRequest applies to all requests. A nil f clears it.
func (h *Handler) SetFailure(to string, f *Failure) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f == nil {
		delete(h.failures, to)
		return
	}
	c := *f
	h.failures[to] = &c
}

// SetLatency changes the delay before each answer.
func (h *Handler) SetLatency(d time.Duration) { h.latency.Store(int64(d)) }

// Sent answers how many messages the stand-in sent (starts it answered
// 201, resends included) to each number: what a pumping attack is paid
// for.
func (h *Handler) Sent() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.sent)
}

// Requests counts the requests received, whatever their answer.
func (h *Handler) Requests() int64 { return h.requests.Load() }

// Connections counts the TCP connections accepted; it stays 0 unless
// ConnState is hooked into the serving http.Server (NewServer does).
func (h *Handler) Connections() int64 { return h.connections.Load() }

// Canceled counts the requests whose client went away (its context ended)
// while the stand-in was still waiting to answer them.
func (h *Handler) Canceled() int64 { return h.canceled.Load() }

// ConnState is an http.Server.ConnState hook that counts new connections.
func (h *Handler) ConnState(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		h.connections.Add(1)
	}
}

// Close releases the requests waiting on latency or a hanging failure, so a
// server can shut down without waiting for its clients to give up.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.done) })
}

// wait blocks for d, and reports false when the client went away first
// (counted as canceled) or the stand-in closed.
func (h *Handler) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		h.canceled.Add(1)
		return false
	case <-h.done:
		return false
	}
}

// hang blocks until the client goes away or the stand-in closes.
func (h *Handler) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
		h.canceled.Add(1)
	case <-h.done:
	}
}

// op is one of the operations the stand-in knows.
type op int

const (
	opStart op = iota + 1
	opCheck
	opFetch
	opUpdate
	opFetchService
)

// route matches a request against the five operations, answering the
// operation, the service SID in the path and, for fetch and update, the
// verification SID. methodOK is false for a known path with another method.
func route(method, path string) (o op, service, sid string, methodOK bool) {
	rest, ok := strings.CutPrefix(path, "/v2/Services/")
	if !ok || rest == "" {
		return 0, "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1:
		o = opFetchService
	case len(parts) == 2 && parts[1] == "Verifications":
		o = opStart
	case len(parts) == 2 && parts[1] == "VerificationCheck":
		o = opCheck
	case len(parts) == 3 && parts[1] == "Verifications" && parts[2] != "":
		sid = parts[2]
		if method == http.MethodGet {
			o = opFetch
		} else {
			o = opUpdate
		}
	default:
		return 0, "", "", false
	}
	service = parts[0]
	switch o {
	case opFetchService, opFetch:
		methodOK = method == http.MethodGet
	default:
		methodOK = method == http.MethodPost
	}
	return o, service, sid, methodOK
}

// params are the form fields each POST operation takes, exactly the
// properties of its requestBody schema in Twilio's description (a test holds
// them to it). Anything else is refused, so a client sending a misspelt or
// invented parameter fails here rather than being silently ignored.
var params = map[op][]string{
	opStart: {"To", "Channel", "CustomFriendlyName", "CustomMessage", "SendDigits",
		"Locale", "CustomCode", "Amount", "Payee", "RateLimits", "ChannelConfiguration",
		"AppHash", "TemplateSid", "TemplateCustomSubstitutions", "DeviceIp",
		"EnableSnaClientToken", "RiskCheck", "Tags"},
	opCheck:  {"Code", "To", "VerificationSid", "Amount", "Payee", "SnaClientToken"},
	opUpdate: {"Status"},
}

// ServeHTTP answers one request as Twilio Verify would.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	ctx := r.Context()

	// The body is read before waiting: net/http notices a client going away
	// (and cancels ctx) only once the request body has been consumed.
	var form map[string][]string
	var formErr error
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		formErr = r.ParseForm()
		form = r.PostForm
	}
	if !h.wait(ctx, time.Duration(h.latency.Load())) {
		return
	}

	o, service, sid, methodOK := route(r.Method, r.URL.Path)
	if o == 0 {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if !methodOK {
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if formErr != nil {
		writeError(w, http.StatusBadRequest, 60200, "Invalid parameter: the request body is not a valid form")
		return
	}
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}

	// Injected failures come first: they play the network and Twilio's
	// edge, which answer before anything looks at the request.
	if f := h.failureFor(o, get("To"), get("VerificationSid"), sid); f != nil {
		h.fail(ctx, w, f)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if service != h.serviceSID {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if name, ok := unknownParam(params[o], form); !ok {
		writeError(w, http.StatusBadRequest, 60200, "Invalid parameter: "+name+" is not a parameter of this resource")
		return
	}

	base := baseURL(r)
	var a answer
	switch o {
	case opStart:
		a = h.start(base, get)
	case opCheck:
		a = h.check(get)
	case opFetch:
		a = h.fetch(base, sid)
	case opUpdate:
		a = h.update(base, sid, get("Status"))
	case opFetchService:
		a = answer{http.StatusOK, serviceBody(base, h.serviceSID, h.accountSID, h.created)}
	}
	writeJSON(w, a.status, a.body)
}

// failureFor answers the failure that applies to a request, consuming one of
// its Times.
func (h *Handler) failureFor(o op, to, checkSID, pathSID string) *Failure {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failures) == 0 {
		return nil
	}
	key := AnyRequest
	f := h.failures[key]
	if f == nil {
		switch {
		case o == opCheck && checkSID != "":
			key = h.store.toOf(checkSID)
		case o == opFetch || o == opUpdate:
			key = h.store.toOf(pathSID)
		default:
			key = to
		}
		if key == "" {
			return nil
		}
		f = h.failures[key]
	}
	if f == nil {
		return nil
	}
	c := *f
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(h.failures, key)
		}
	}
	return &c
}

// fail answers f.
func (h *Handler) fail(ctx context.Context, w http.ResponseWriter, f *Failure) {
	if f.Hang {
		h.hang(ctx)
		return
	}
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.NoBody {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
		return
	}
	if f.RawBody != "" {
		ct := f.ContentType
		if ct == "" {
			ct = "text/html; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.RawBody))
		return
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	writeError(w, status, f.Code, msg)
}

// authorized checks HTTP Basic auth against the account's SID and token, in
// constant time as a real service must.
func (h *Handler) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(h.accountSID))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(h.authToken))
	return u&p == 1
}

// unknownParam answers the first form field not in allowed.
func unknownParam(allowed []string, form map[string][]string) (string, bool) {
next:
	for k := range form {
		for _, a := range allowed {
			if k == a {
				continue next
			}
		}
		return k, false
	}
	return "", true
}

// baseURL is the scheme and host the request came to, for the "url" fields
// of answers (Twilio answers its own https://verify.twilio.com).
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
