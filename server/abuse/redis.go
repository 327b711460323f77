package abuse

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// allowScript is one atomic decision over sliding-window logs kept in sorted
// sets (score: the event's time in ms). KEYS are the rules' keys; ARGV[1] is
// now in ms, ARGV[2] a unique member for this event, then limit and window
// (ms) for each key. It answers {0, 0} when it recorded the event, or
// {i, wait_ms} naming the rule (1-based) that frees up last.
//
// The time comes from the caller, not from Redis TIME, so tests can inject a
// clock; instances behind one Redis must keep their clocks in sync (NTP).
const allowScript = `
local now = tonumber(ARGV[1])
local refused, worst = 0, -1
for i = 1, #KEYS do
  local limit = tonumber(ARGV[1 + 2*i])
  local window = tonumber(ARGV[2 + 2*i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local at = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local wait = tonumber(at[2]) + window - now
    if wait > worst then refused, worst = i, wait end
  end
end
if refused > 0 then return {refused, worst} end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 + 2*i]))
end
return {0, 0}
`

// undoScript takes the event ARGV[1] back from every key in KEYS.
const undoScript = `
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 0
`

// RedisStore keeps counters in Redis, shared by every instance that uses the
// same server, and kept across restarts.
type RedisStore struct {
	client redis.UniversalClient
	script *redis.Script
	undo   *redis.Script
}

// NewRedisStore keeps its counters through client (see redisclient), which
// the caller owns and closes.
func NewRedisStore(client redis.UniversalClient) *RedisStore {
	return &RedisStore{client: client, script: redis.NewScript(allowScript), undo: redis.NewScript(undoScript)}
}

// Allow implements Store with one Lua script, so the decision is atomic
// across every instance.
func (s *RedisStore) Allow(ctx context.Context, now time.Time, rules []Rule) (Decision, error) {
	keys := make([]string, len(rules))
	args := make([]any, 0, 2+2*len(rules))
	event := now.Format("20060102T150405.000000000") + "-" + rand.Text()
	args = append(args, now.UnixMilli(), event)
	for i, r := range rules {
		keys[i] = r.Key
		args = append(args, r.Limit, r.Window.Milliseconds())
	}
	res, err := s.script.Run(ctx, s.client, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("redis limit script: %w", err)
	}
	if len(res) != 2 {
		return Decision{}, fmt.Errorf("redis limit script answered %v", res)
	}
	if res[0] == 0 {
		return Decision{Allowed: true, Event: event}, nil
	}
	return Decision{Rule: int(res[0]) - 1, RetryAfter: time.Duration(res[1]) * time.Millisecond}, nil
}

// Undo implements Store, in one script like Allow.
func (s *RedisStore) Undo(ctx context.Context, keys []string, event string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.undo.Run(ctx, s.client, keys, event).Err(); err != nil {
		return fmt.Errorf("redis undo script: %w", err)
	}
	return nil
}

// Forget implements Store.
func (s *RedisStore) Forget(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.client.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("redis forget: %w", err)
	}
	return nil
}

// Count implements Store.
func (s *RedisStore) Count(ctx context.Context, now time.Time, r Rule) (int, error) {
	n, err := s.client.ZCount(ctx, r.Key, "("+strconv.FormatInt(now.Add(-r.Window).UnixMilli(), 10), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("redis count: %w", err)
	}
	return int(n), nil
}

// Ping checks that Redis answers, for readiness.
func (s *RedisStore) Ping(ctx context.Context) error {
	return s.client.Ping(ctx).Err()
}
