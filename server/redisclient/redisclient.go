// Package redisclient builds the one Redis client that every part of
// verifyd needing Redis shares (the abuse limits and budgets, the messaging
// backend's codes, challenge solutions): one configuration, one pool, one
// set of timeouts. It is not a store; the stores take the client.
package redisclient

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timeouts when the URL sets none: a limiter that stalls every request for
// go-redis's multi-second defaults during an outage is worse than one that
// decides quickly that Redis is gone.
const (
	DialTimeout = time.Second
	IOTimeout   = 500 * time.Millisecond
)

// Options reads a redis:// or rediss:// (TLS) URL. Its error never quotes
// the URL, which may hold a password.
func Options(url string) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("must be a redis:// or rediss:// URL")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = IOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = IOTimeout
	}
	// One retry at most: every call is on a request's critical path.
	opts.MaxRetries = 1
	return opts, nil
}

// New builds the client for url; it connects lazily.
func New(url string) (redis.UniversalClient, error) {
	opts, err := Options(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}
