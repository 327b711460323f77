// Package twilioapitest is a local stand-in of Twilio's 2010 API as the
// messaging backend uses it: creating a message (Messages.json), placing a
// call (Calls.json) and fetching the account, with Twilio's basic auth, its
// form parameters, its JSON answers and errors, as the official description
// (testdata, extracted from twilio_api_v2010.json) gives them; the tests
// check it against that description. It records what was sent, so tests
// can read the codes, and can be told to fail.
package twilioapitest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sent is one message or call the stand-in accepted.
type Sent struct {
	Kind                string // "message" or "call"
	SID                 string
	To, From            string
	MessagingServiceSID string
	Body, Twiml         string
	StatusCallback      string // as the create asked, "" for none
}

// Outcome is what becomes of a message or call to a number: its final
// status (delivered; undelivered or failed with Twilio's error code; for
// a call completed, no-answer, busy or failed), posted as a signed status
// callback when the create asked for one.
type Outcome struct {
	Status    string
	ErrorCode int
}

// Failure is how a request to a number fails instead.
type Failure struct {
	Status  int // default 400
	Code    int
	Message string
	Hang    bool // block until the client gives up
}

// Server is the running stand-in.
type Server struct {
	ts                    *httptest.Server
	accountSID, authToken string
	requests              atomic.Int64

	mu        sync.Mutex
	sent      []Sent
	failures  map[string]*Failure // by To (E.164), "*" for every request
	outcomes  map[string]Outcome  // by To (E.164); delivered (completed) otherwise
	exchanges []Exchange
	callbacks sync.WaitGroup
	posted    []Callback
	onSent    func(Sent)
}

// WalkthroughUndelivered is the number whose texts the walkthrough's
// stand-in reports undelivered with 30006 (a landline): README's
// messaging walkthrough and its test use it.
const WalkthroughUndelivered = "+14155550199"

// UseWalkthroughOutcomes sets the outcomes README's walkthrough shows:
// every text delivered, but those to WalkthroughUndelivered, undelivered
// as a landline's.
func (s *Server) UseWalkthroughOutcomes() {
	s.SetOutcome(WalkthroughUndelivered, Outcome{Status: "undelivered", ErrorCode: 30006})
}

// SetOnSent tells fn of every message and call accepted (the stand-in
// process logs them).
func (s *Server) SetOnSent(fn func(Sent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onSent = fn
}

// outboxPage lists what the stand-in was asked to send, newest first.
var outboxPage = template.Must(template.New("outbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Twilio stand-in: outbox</title>
<meta http-equiv="refresh" content="5"></head>
<body><h1>What verifyd asked Twilio to send</h1>
{{if not .}}<p>Nothing yet.</p>{{end}}<table>
<tr><th>kind</th><th>to</th><th>from</th><th>what it says</th></tr>
{{range .}}<tr><td>{{.Kind}}</td><td>{{.To}}</td><td>{{.From}}{{.MessagingServiceSID}}</td><td>{{if .Body}}{{.Body}}{{else}}{{.Twiml}}{{end}}</td></tr>
{{end}}</table></body></html>
`))

// Outbox is a page of what the stand-in was asked to send (each text's
// body, each call's words, by number), newest first: where a person trying
// verifyd with the stand-in reads the code.
func (s *Server) Outbox() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent := s.Sent()
		slices.Reverse(sent)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		outboxPage.Execute(w, sent)
	})
}

// Callback is one status callback the stand-in posted, and the answer it got.
type Callback struct {
	URL    string
	Params map[string]string
	Status int // the answer's status, 0 when the post failed
}

// Exchange is one request and its answer, for checking both against the
// official description.
type Exchange struct {
	Method, Path string
	Form         map[string][]string
	Status       int
	Body         []byte
}

// NewServer starts a stand-in on a loopback port, plain HTTP.
func NewServer() *Server {
	s := &Server{accountSID: "AC" + randomHex(), authToken: randomHex(), failures: map[string]*Failure{},
		outcomes: map[string]Outcome{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{account}/Messages.json", s.create("message", "SM"))
	mux.HandleFunc("POST /2010-04-01/Accounts/{account}/Calls.json", s.create("call", "CA"))
	mux.HandleFunc("GET /2010-04-01/Accounts/{sid}", s.fetchAccount)
	s.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		s.mu.Lock()
		s.exchanges = append(s.exchanges, Exchange{Method: r.Method, Path: r.URL.Path, Form: r.PostForm,
			Status: rec.Code, Body: rec.Body.Bytes()})
		s.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	return s
}

// Exchanges answers every request so far with its answer.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exchange(nil), s.exchanges...)
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// URL is the base URL to configure (TWILIO_API_BASE_URL).
func (s *Server) URL() string { return s.ts.URL }

// AccountSID and AuthToken are the credentials it accepts.
func (s *Server) AccountSID() string { return s.accountSID }

// AuthToken is the account's token.
func (s *Server) AuthToken() string { return s.authToken }

// Close stops it, once the callbacks it is posting are done.
func (s *Server) Close() {
	s.callbacks.Wait()
	s.ts.Close()
}

// SetOutcome makes messages and calls to to end as o; the zero Outcome
// clears it.
func (s *Server) SetOutcome(to string, o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o == (Outcome{}) {
		delete(s.outcomes, to)
		return
	}
	s.outcomes[to] = o
}

// Callbacks answers the status callbacks posted so far.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Callback(nil), s.posted...)
}

// Sign is the X-Twilio-Signature of a post of params to url with token,
// as Twilio computes it: base64 of HMAC-SHA1 over the URL and every
// parameter's name and value, sorted by name. (twilio-go checks signatures
// but does not make them; verifyd checks them with twilio-go.)
func Sign(token, url string, params map[string]string) string {
	keys := slices.Sorted(maps.Keys(params))
	var b strings.Builder
	b.WriteString(url)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(params[k])
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// postStatus posts sent's callbacks as Twilio does: sent, then its final
// status for a message; the final status alone for a call.
func (s *Server) postStatus(sent Sent) {
	defer s.callbacks.Done()
	s.mu.Lock()
	o, ok := s.outcomes[strings.TrimPrefix(sent.To, "whatsapp:")]
	s.mu.Unlock()
	if !ok {
		o = Outcome{Status: map[string]string{"message": "delivered", "call": "completed"}[sent.Kind]}
	}
	base := map[string]string{"AccountSid": s.accountSID, "From": sent.From, "To": sent.To, "ApiVersion": "2010-04-01"}
	var steps []map[string]string
	if sent.Kind == "message" {
		for _, st := range []string{"sent", o.Status} {
			p := maps.Clone(base)
			p["MessageSid"], p["SmsSid"], p["MessageStatus"], p["SmsStatus"] = sent.SID, sent.SID, st, st
			if st == o.Status && o.ErrorCode != 0 {
				p["ErrorCode"] = strconv.Itoa(o.ErrorCode)
			}
			steps = append(steps, p)
		}
	} else {
		p := maps.Clone(base)
		p["CallSid"], p["CallStatus"], p["Direction"] = sent.SID, o.Status, "outbound-api"
		steps = append(steps, p)
	}
	// Loopback only: a test's PUBLIC_URL may name a host that is not this
	// machine, and the stand-in posts nowhere else.
	if u, err := url.Parse(sent.StatusCallback); err != nil || !loopback(u.Hostname()) {
		return
	}
	for _, p := range steps {
		form := url.Values{}
		for k, v := range p {
			form.Set(k, v)
		}
		cb := Callback{URL: sent.StatusCallback, Params: p}
		req, err := http.NewRequest(http.MethodPost, sent.StatusCallback, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", Sign(s.authToken, sent.StatusCallback, p))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cb.Status = resp.StatusCode
			}
		}
		s.mu.Lock()
		s.posted = append(s.posted, cb)
		s.mu.Unlock()
	}
}

// Requests counts the requests it received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Sent answers what it accepted, in order.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// SetFailure makes requests to to (or "*": all) fail with f; nil clears.
func (s *Server) SetFailure(to string, f *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.failures, to)
		return
	}
	s.failures[to] = f
}

// twilioError writes Twilio's JSON error body.
func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg,
		"more_info": "https://www.twilio.com/docs/errors/" + itoa(code), "status": status})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request, account string) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user != s.accountSID || pass != s.authToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	if account != s.accountSID {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return false
	}
	return true
}

func (s *Server) create(kind, prefix string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if !s.authorized(w, r, r.PathValue("account")) {
			return
		}
		if err := r.ParseForm(); err != nil {
			twilioError(w, http.StatusBadRequest, 21100, "Invalid parameters")
			return
		}
		f := r.PostForm
		sent := Sent{Kind: kind, SID: prefix + randomHex(), To: f.Get("To"), From: f.Get("From"),
			MessagingServiceSID: f.Get("MessagingServiceSid"), Body: f.Get("Body"), Twiml: f.Get("Twiml"),
			StatusCallback: f.Get("StatusCallback")}
		number := strings.TrimPrefix(sent.To, "whatsapp:")
		s.mu.Lock()
		fail := s.failures[number]
		if fail == nil {
			fail = s.failures["*"]
		}
		s.mu.Unlock()
		if fail != nil {
			if fail.Hang {
				<-r.Context().Done()
				return
			}
			status := fail.Status
			if status == 0 {
				status = http.StatusBadRequest
			}
			twilioError(w, status, fail.Code, fail.Message)
			return
		}
		// What Twilio itself refuses on create.
		switch {
		case sent.To == "":
			twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
			return
		case kind == "message" && sent.Body == "":
			twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
			return
		case kind == "message" && sent.From == "" && sent.MessagingServiceSID == "":
			twilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
			return
		case kind == "message" && len([]rune(sent.Body)) > 1600:
			twilioError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
			return
		case kind == "call" && sent.Twiml == "":
			twilioError(w, http.StatusBadRequest, 21205, "Url parameter is required.")
			return
		case kind == "call" && len(sent.Twiml) > 4000:
			twilioError(w, http.StatusBadRequest, 21205, "Twiml is longer than 4000 characters.")
			return
		}
		s.mu.Lock()
		s.sent = append(s.sent, sent)
		onSent := s.onSent
		s.mu.Unlock()
		if onSent != nil {
			onSent(sent)
		}
		if sent.StatusCallback != "" {
			s.callbacks.Add(1)
			go s.postStatus(sent)
		}
		now := time.Now().UTC().Format(time.RFC1123Z)
		answer := map[string]any{"sid": sent.SID, "account_sid": s.accountSID, "to": sent.To, "from": nullable(sent.From),
			"status": "queued", "date_created": now, "date_updated": now, "api_version": "2010-04-01",
			"uri": "/2010-04-01/Accounts/" + s.accountSID + "/" + map[string]string{"message": "Messages", "call": "Calls"}[kind] + "/" + sent.SID + ".json"}
		if kind == "message" {
			answer["body"] = sent.Body
			answer["direction"] = "outbound-api"
			answer["num_segments"] = "1"
			answer["num_media"] = "0"
			answer["messaging_service_sid"] = nullable(sent.MessagingServiceSID)
			if sent.MessagingServiceSID != "" {
				answer["status"] = "accepted"
			}
		} else {
			answer["direction"] = "outbound-api"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(answer)
	}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) fetchAccount(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	sid := strings.TrimSuffix(r.PathValue("sid"), ".json")
	if !s.authorized(w, r, sid) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"sid": s.accountSID, "friendly_name": "verifyd test account",
		"status": "active", "type": "Full"})
}
