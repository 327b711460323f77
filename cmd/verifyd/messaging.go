package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"verifyd/server"
	"verifyd/server/delivery"
	"verifyd/server/redisclient"
	"verifyd/server/verify/engine"
	"verifyd/server/verify/messaging"
)

// replicaWait bounds how long a code's write waits for a replica's
// acknowledgement: a replica on the same network answers in a millisecond
// or two; past this the send goes on, and the metric counts it.
const replicaWait = 100 * time.Millisecond

// redisStartTimeout bounds the first PING: an unreachable REDIS_URL stops
// the messaging backend at start rather than failing every request.
const redisStartTimeout = 3 * time.Second

// newMessagingBackend builds the engine over a Redis store and a Twilio
// Messages sender: codes of our own, shared by every instance.
func newMessagingBackend(cfg config, logger *slog.Logger, metrics *server.Metrics, client redis.UniversalClient, now func() time.Time) (backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		return backend{}, fmt.Errorf("REDIS_URL: the code store does not answer: %v", err)
	}
	secret := cfg.codeSecret()
	if secret == nil {
		secret = []byte(rand.Text() + rand.Text())
		logger.Warn("CODE_SECRET is not set: codes are keyed with a secret made for this process; " +
			"pending codes stop working when it restarts, and other instances cannot check them")
	}
	store, err := engine.NewRedisStore(client, secret, now)
	if err != nil {
		return backend{}, err
	}
	if shape := cfg.redis.Shape(); shape == redisclient.Sentinel || shape == redisclient.Cluster {
		// Replicas exist: a code the person is told of waits for one.
		store.AwaitReplica(replicaWait, metrics.UnacknowledgedWrite)
	}
	user, pass := cfg.TwilioAccountSID, string(cfg.TwilioAuthToken)
	if cfg.TwilioAPIKey != "" {
		user, pass = cfg.TwilioAPIKey, string(cfg.TwilioAPISecret)
	}
	host := ""
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil {
			host = u.Hostname()
		}
	}
	sender, err := messaging.New(messaging.Config{
		AccountSID: cfg.TwilioAccountSID, Username: user, Password: pass, BaseURL: cfg.TwilioAPIBaseURL,
		MessagingServiceSID: cfg.TwilioMessagingServiceSID, From: cfg.TwilioFromNumber, WhatsAppFrom: cfg.TwilioWhatsAppFrom,
		AppName: cfg.AppName, Host: host, AndroidAppHash: cfg.AndroidAppHash,
		ConnectTimeout: cfg.TwilioConnectTimeout, RequestTimeout: cfg.TwilioRequestTimeout, MaxConns: cfg.TwilioMaxConns,
		Observe: metrics.ObserveUpstream, StatusCallback: cfg.statusCallbackURL(),
	})
	if err != nil {
		return backend{}, fmt.Errorf("messaging backend: %w", err)
	}
	// What became of each send, as Twilio's callbacks tell it, kept beside
	// the codes, keyed by a hash of the SID under the code secret.
	var deliveries delivery.Store
	if cfg.statusCallbackURL() != "" {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte("verifyd delivery key"))
		deliveries = delivery.NewRedisStore(client, mac.Sum(nil))
	} else {
		logger.Warn("PUBLIC_URL is not set: Twilio is asked for no status callbacks, so verifyd never learns " +
			"whether a text arrived (GET /api/delivery answers unknown)")
	}
	e, err := engine.New(engine.Config{Now: now, Store: &outageLogged{Store: store, logger: logger}, Sender: sender,
		Secret: secret, CodeLength: cfg.CodeLength})
	if err != nil {
		sender.Close()
		return backend{}, fmt.Errorf("messaging backend: %w", err)
	}
	return backend{
		verifier: e,
		// The code store's Redis is the one client every part shares; run
		// checks it once, as "redis".
		checks:     []server.Check{{Name: "twilio", Probe: sender.Ping}},
		close:      sender.Close,
		deliveries: deliveries,
	}, nil
}

// outageLogged logs the code store's outage once when it starts and once
// when it ends, however many requests fail meanwhile.
type outageLogged struct {
	engine.Store
	logger *slog.Logger
	down   atomic.Bool
}

func (o *outageLogged) note(err error) {
	if err != nil && o.down.CompareAndSwap(false, true) {
		o.logger.Error("code store unreachable: sends and checks answer 503 store_unavailable until it is back",
			"err", err) // go-redis's errors name the address, never the URL's password
	}
	if err == nil && o.down.CompareAndSwap(true, false) {
		o.logger.Info("code store reachable again")
	}
}

func (o *outageLogged) Update(ctx context.Context, number string, fn func(*engine.Record) (*engine.Record, error)) error {
	var fnErr error
	err := o.Store.Update(ctx, number, func(r *engine.Record) (*engine.Record, error) {
		next, err := fn(r)
		fnErr = err
		return next, err
	})
	if fnErr == nil && ctx.Err() == nil {
		o.note(err)
	}
	return err
}

func (o *outageLogged) NumberOf(ctx context.Context, sid string) (string, bool, error) {
	n, ok, err := o.Store.NumberOf(ctx, sid)
	if ctx.Err() == nil {
		o.note(err)
	}
	return n, ok, err
}
