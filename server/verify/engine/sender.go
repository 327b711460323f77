package engine

import (
	"context"
	"errors"
	"log/slog"

	"verifyd/server/verify"
)

// Message is one code to deliver.
type Message struct {
	SID     string
	To      string // E.164
	Channel verify.Channel
	Locale  string // a Twilio Verify locale, or "" for the default
	Code    string
}

// String leaves out the code and masks the number, so that a Message printed
// by accident gives nothing away.
func (m Message) String() string {
	return "message " + m.SID + " to " + verify.Mask(m.To) + " by " + string(m.Channel)
}

// LogValue leaves out the code and masks the number, for the same reason.
func (m Message) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sid", m.SID),
		slog.String("to", verify.Mask(m.To)),
		slog.String("channel", string(m.Channel)),
		slog.String("locale", m.Locale),
	)
}

// Sender delivers codes. Send returns once the message is accepted for
// delivery; an error means it was not, and the engine takes the send back.
// Implementations are safe for concurrent use and honour ctx.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender is the development backend's delivery channel: it writes the
// code to the log instead of sending it. It is the one place in verifyd where
// a code is logged, so the line is a WARN that says so; the number is
// masked even here.
type LogSender struct {
	Logger *slog.Logger // required: a nil Logger fails every Send rather than fall back to the global default
}

var errNoLogger = errors.New("LogSender has no Logger")

// Send implements Sender.
func (s LogSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Logger == nil {
		return errNoLogger
	}
	s.Logger.LogAttrs(ctx, slog.LevelWarn,
		"DEVELOPMENT BACKEND: your code is "+m.Code+" (not sent; dev backend)",
		slog.String("sid", m.SID),
		slog.String("to", verify.Mask(m.To)),
		slog.String("channel", string(m.Channel)),
		slog.String("code", m.Code),
	)
	return nil
}
