package twiliotest

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"time"
)

// Twilio's per-verification limits.
const (
	maxSends  = 5 // a 6th start within the lifetime answers 60203
	maxChecks = 5 // a 6th check after 5 wrong ones answers 60202
)

var (
	e164RE  = regexp.MustCompile(`^\+[1-9]\d{1,14}$`)
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	veSIDRE = regexp.MustCompile(`^VE[0-9a-fA-F]{32}$`)
)

// channels Twilio accepts on start; "auto" lets it choose (it picks sms here).
var channels = map[string]bool{"sms": true, "call": true, "whatsapp": true, "email": true, "sna": true, "auto": true}

// verification is one pending verification. Finished ones (approved,
// canceled, maxed out, expired) are dropped at once: Twilio answers 20404 for
// all of them alike.
type verification struct {
	sid, to, channel, code string
	sends                  []sendAttempt
	wrongChecks            int
	created, updated       time.Time
	expires                time.Time
}

type sendAttempt struct {
	Time       string `json:"time"`
	Channel    string `json:"channel"`
	AttemptSID string `json:"attempt_sid"`
}

// store holds the pending verifications, by number and by SID. Its methods
// run under Handler.mu.
type store struct {
	to     map[string]*verification
	sid    map[string]*verification
	starts int
}

func (s *store) init() {
	s.to = make(map[string]*verification)
	s.sid = make(map[string]*verification)
}

func (s *store) drop(v *verification) {
	delete(s.to, v.to)
	delete(s.sid, v.sid)
}

// live answers v if it is still pending at now, dropping it if it expired.
func (s *store) live(v *verification, now time.Time) *verification {
	if v == nil {
		return nil
	}
	if !now.Before(v.expires) {
		s.drop(v)
		return nil
	}
	return v
}

func (s *store) byTo(to string, now time.Time) *verification {
	return s.live(s.to[to], now)
}

func (s *store) bySID(sid string, now time.Time) *verification {
	return s.live(s.sid[sid], now)
}

// toOf answers the number of the verification sid, or "" when unknown.
func (s *store) toOf(sid string) string {
	if v := s.sid[sid]; v != nil {
		return v.to
	}
	return ""
}

// sweep drops every expired verification, so a long benchmark over many
// numbers does not grow without bound.
func (s *store) sweep(now time.Time) {
	for _, v := range s.sid {
		s.live(v, now)
	}
}

// answer is an operation's status and body, written once the lock is
// released.
type answer struct {
	status int
	body   any
}

func errorAnswer(status, code int, msg string) answer {
	return answer{status, newErrorBody(status, code, msg)}
}

// invalid answers Twilio's 60200 naming the parameter; the value is never
// echoed, so a client logging the message logs no phone number.
func invalid(param, why string) answer {
	return errorAnswer(http.StatusBadRequest, 60200, "Invalid parameter `"+param+"`: "+why)
}

func notFound(path string) answer {
	return errorAnswer(http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
}

// validTo reports whether to suits channel: an e-mail address for email,
// E.164 for the rest.
func validTo(to, channel string) bool {
	if channel == "email" {
		return emailRE.MatchString(to)
	}
	return e164RE.MatchString(to)
}

func (h *Handler) start(base string, get func(string) string) answer {
	to, channel := get("To"), get("Channel")
	switch {
	case channel == "":
		return invalid("Channel", "required")
	case !channels[channel]:
		return invalid("Channel", "must be one of sms, call, whatsapp, email, sna, auto")
	case to == "":
		return invalid("To", "required")
	case !validTo(to, channel):
		return invalid("To", "not a valid phone number in E.164 format or e-mail address")
	}
	custom := get("CustomCode")
	if custom != "" && (len(custom) < 4 || len(custom) > 10) {
		return invalid("CustomCode", "must be 4 to 10 characters")
	}
	if channel == "auto" {
		channel = "sms"
	}

	now := h.now().UTC().Truncate(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.store.starts++; h.store.starts%1024 == 0 {
		h.store.sweep(now)
	}
	v := h.store.byTo(to, now)
	if v == nil {
		v = &verification{
			sid: "VE" + randomHex(), to: to, code: h.newCode(custom),
			created: now, expires: now.Add(h.ttl),
		}
		h.store.to[to] = v
		h.store.sid[v.sid] = v
	} else if len(v.sends) >= maxSends {
		return errorAnswer(http.StatusTooManyRequests, 60203, "Max send attempts reached")
	}
	// A new start within the lifetime resends the same code, possibly over
	// another channel.
	v.channel = channel
	v.updated = now
	h.sent[to]++
	v.sends = append(v.sends, sendAttempt{
		Time: now.Format(time.RFC3339), Channel: attemptChannel(channel), AttemptSID: "VL" + randomHex(),
	})
	return answer{http.StatusCreated, h.verificationBody(base, v, "pending")}
}

func (h *Handler) check(get func(string) string) answer {
	code, to, sid := get("Code"), get("To"), get("VerificationSid")
	switch {
	case len(code) < 4 || len(code) > 10:
		return invalid("Code", "must be 4 to 10 characters")
	case (to == "") == (sid == ""):
		return invalid("To", "exactly one of To and VerificationSid is required")
	case sid != "" && !veSIDRE.MatchString(sid):
		return invalid("VerificationSid", "not a valid verification SID")
	case to != "" && !e164RE.MatchString(to) && !emailRE.MatchString(to):
		return invalid("To", "not a valid phone number in E.164 format or e-mail address")
	}

	now := h.now().UTC().Truncate(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	var v *verification
	if sid != "" {
		v = h.store.bySID(sid, now)
	} else {
		v = h.store.byTo(to, now)
	}
	if v == nil {
		return notFound("/Services/" + h.serviceSID + "/VerificationCheck")
	}
	if v.wrongChecks >= maxChecks {
		h.store.drop(v)
		return errorAnswer(http.StatusTooManyRequests, 60202, "Max check attempts reached")
	}
	v.updated = now
	status := "pending"
	if code == v.code {
		status = "approved"
		h.store.drop(v)
	} else {
		v.wrongChecks++
	}
	return answer{http.StatusOK, h.checkBody(v, status)}
}

func (h *Handler) fetch(base, sid string) answer {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.store.bySID(sid, h.now())
	if v == nil {
		return notFound("/Services/" + h.serviceSID + "/Verifications/" + sid)
	}
	return answer{http.StatusOK, h.verificationBody(base, v, "pending")}
}

// update cancels (or, as the push-notification flow does, approves) a
// pending verification, which is then gone.
func (h *Handler) update(base, sid, status string) answer {
	if status != "canceled" && status != "approved" {
		return invalid("Status", "must be canceled or approved")
	}
	now := h.now().UTC().Truncate(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.store.bySID(sid, now)
	if v == nil {
		return notFound("/Services/" + h.serviceSID + "/Verifications/" + sid)
	}
	v.updated = now
	h.store.drop(v)
	return answer{http.StatusOK, h.verificationBody(base, v, status)}
}

// newCode answers the code of a new verification.
func (h *Handler) newCode(custom string) string {
	switch {
	case custom != "":
		return custom
	case h.fixedCode != "":
		return h.fixedCode
	}
	return fmt.Sprintf("%06d", rand.IntN(1_000_000))
}

// attemptChannel spells a channel as Twilio's send_code_attempts do.
func attemptChannel(c string) string {
	switch c {
	case "sms":
		return "SMS"
	case "call":
		return "CALL"
	case "email":
		return "EMAIL"
	}
	return c
}

// randomHex answers 32 random hex digits, the body of a Twilio SID. SIDs need
// only be unique here, not secret.
func randomHex() string {
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
}
