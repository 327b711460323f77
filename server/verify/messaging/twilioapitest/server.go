// Package twilioapitest is a local stand-in of Twilio's 2010 API as the
// messaging backend uses it: creating a message (Messages.json), placing a
// call (Calls.json) and fetching the account, with Twilio's basic auth, its
// form parameters, its JSON answers and errors, as the official description
// (testdata, extracted from twilio_api_v2010.json) gives them; the tests
// check it against that description. It records what was sent, so tests
// can read the codes, and can be told to fail.
package twilioapitest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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
	exchanges []Exchange
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
	s := &Server{accountSID: "AC" + randomHex(), authToken: randomHex(), failures: map[string]*Failure{}}
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

// Close stops it.
func (s *Server) Close() { s.ts.Close() }

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
			MessagingServiceSID: f.Get("MessagingServiceSid"), Body: f.Get("Body"), Twiml: f.Get("Twiml")}
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
		s.mu.Unlock()
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
