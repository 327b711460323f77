// Package redisclient builds the one Redis client that every part of
// verifyd needing Redis shares (the abuse limits and budgets, the messaging
// backend's codes and deliveries, challenge solutions): one configuration,
// one pool, one set of timeouts, in one of three shapes: a single server
// (REDIS_URL), a Sentinel set that follows its primary through a failover,
// or a Cluster. It is not a store; the stores take the client.
package redisclient

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
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

// Config is where Redis is: exactly one of URL, SentinelAddrs (with
// SentinelMaster) and ClusterAddrs; Username and Password for any.
type Config struct {
	URL              string   // REDIS_URL: redis:// or rediss:// (TLS)
	SentinelAddrs    []string // REDIS_SENTINEL_ADDRS: host:port of each Sentinel
	SentinelMaster   string   // REDIS_SENTINEL_MASTER: the name the Sentinels know the primary by
	SentinelPassword string   // REDIS_SENTINEL_PASSWORD: the Sentinels' own, if any
	ClusterAddrs     []string // REDIS_CLUSTER_ADDRS: seed nodes, host:port
	Username         string   // REDIS_USERNAME (ACL)
	Password         string   // REDIS_PASSWORD
}

// Shapes of a Config.
const (
	None     = ""
	Single   = "single"
	Sentinel = "sentinel"
	Cluster  = "cluster"
)

// Shape names the Config's shape, None when it names no Redis at all.
func (c Config) Shape() string {
	switch {
	case c.URL != "":
		return Single
	case len(c.SentinelAddrs) > 0:
		return Sentinel
	case len(c.ClusterAddrs) > 0:
		return Cluster
	}
	return None
}

// Problem is a configuration error, with the settings it names.
type Problem struct {
	Setting, Why string
}

// Check answers what is wrong with c, each problem naming its setting.
// Exactly one shape may be set; a master name goes with Sentinel addresses.
func (c Config) Check() []Problem {
	var out []Problem
	var shapes []string
	if c.URL != "" {
		shapes = append(shapes, "REDIS_URL")
	}
	if len(c.SentinelAddrs) > 0 {
		shapes = append(shapes, "REDIS_SENTINEL_ADDRS")
	}
	if len(c.ClusterAddrs) > 0 {
		shapes = append(shapes, "REDIS_CLUSTER_ADDRS")
	}
	if len(shapes) > 1 {
		out = append(out, Problem{shapes[0], "set one of REDIS_URL, REDIS_SENTINEL_ADDRS and REDIS_CLUSTER_ADDRS, not " +
			strings.Join(shapes, " and ")})
	}
	switch {
	case c.SentinelMaster != "" && len(c.SentinelAddrs) == 0:
		out = append(out, Problem{"REDIS_SENTINEL_MASTER", "goes with REDIS_SENTINEL_ADDRS, which is not set"})
	case len(c.SentinelAddrs) > 0 && c.SentinelMaster == "":
		out = append(out, Problem{"REDIS_SENTINEL_MASTER", "required with REDIS_SENTINEL_ADDRS: the name the Sentinels know the primary by"})
	}
	if c.SentinelPassword != "" && len(c.SentinelAddrs) == 0 {
		out = append(out, Problem{"REDIS_SENTINEL_PASSWORD", "goes with REDIS_SENTINEL_ADDRS, which is not set"})
	}
	for _, a := range append(append([]string(nil), c.SentinelAddrs...), c.ClusterAddrs...) {
		if h, p, ok := strings.Cut(a, ":"); !ok || h == "" || p == "" {
			setting := "REDIS_SENTINEL_ADDRS"
			if len(c.ClusterAddrs) > 0 {
				setting = "REDIS_CLUSTER_ADDRS"
			}
			out = append(out, Problem{setting, fmt.Sprintf("%q is not host:port", a)})
		}
	}
	if c.URL != "" {
		if _, err := Options(c.URL); err != nil {
			out = append(out, Problem{"REDIS_URL", err.Error()})
		}
	}
	return out
}

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
	return NewFrom(Config{URL: url})
}

// NewFrom builds the client c describes, in its shape; it connects
// lazily. A Sentinel client follows the primary through a failover; a
// Cluster client follows its slots.
func NewFrom(c Config) (redis.UniversalClient, error) {
	if ps := c.Check(); len(ps) > 0 {
		return nil, fmt.Errorf("%s: %s", ps[0].Setting, ps[0].Why)
	}
	switch c.Shape() {
	case Single:
		opts, _ := Options(c.URL) // checked
		opts.Username = cmp.Or(c.Username, opts.Username)
		opts.Password = cmp.Or(c.Password, opts.Password)
		return redis.NewClient(opts), nil
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.SentinelMaster, SentinelAddrs: c.SentinelAddrs, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password,
			DialTimeout: DialTimeout, ReadTimeout: IOTimeout, WriteTimeout: IOTimeout, MaxRetries: 1,
		}), nil
	case Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.ClusterAddrs, Username: c.Username, Password: c.Password,
			DialTimeout: DialTimeout, ReadTimeout: IOTimeout, WriteTimeout: IOTimeout,
			// A moved slot is followed at once; a master that died is
			// followed once its replica has taken over.
			MaxRedirects: 8, MaxRetries: 2,
		}), nil
	}
	return nil, errors.New("redis: no REDIS_URL, REDIS_SENTINEL_ADDRS or REDIS_CLUSTER_ADDRS")
}
