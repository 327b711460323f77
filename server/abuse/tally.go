package abuse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tally is what a series of events (sends to a country, approvals in a
// number prefix) came to, over rolling windows.
type Tally struct {
	Hour   int // the last hour
	Day    int // the last 24 hours
	MaxDay int // the busiest of the 14 whole days before today (UTC)
}

// Tallies counts events per series in five-minute buckets, one bucket set
// per UTC day, kept for 15 days; and remembers marks (verified numbers) for
// a while. MemoryStore and RedisStore implement it, so instances sharing
// Redis share the budgets.
type Tallies interface {
	Add(ctx context.Context, now time.Time, series ...string) error
	Read(ctx context.Context, now time.Time, series ...string) ([]Tally, error)
	// Mark remembers key from now for ttl; Marked answers whether it is
	// remembered at now. Redis keeps time by its own clock.
	Mark(ctx context.Context, now time.Time, key string, ttl time.Duration) error
	Marked(ctx context.Context, now time.Time, key string) (bool, error)
	// Remember keeps value under key from now for ttl; Recall answers it
	// ("" when none is kept at now).
	Remember(ctx context.Context, now time.Time, key, value string, ttl time.Duration) error
	Recall(ctx context.Context, now time.Time, key string) (string, error)
}

const (
	bucket        = 5 * time.Minute
	bucketsPerDay = int(24 * time.Hour / bucket)
	bucketsPerHr  = int(time.Hour / bucket)
	keptDays      = 15
)

// position answers the UTC day number of t and its bucket in that day.
func position(t time.Time) (day, b int) {
	m := int(t.UTC().Unix() / int64(bucket/time.Second))
	return m / bucketsPerDay, m % bucketsPerDay
}

// tallyOf folds today's and yesterday's buckets and the totals of the days
// before into a Tally, for a reading at now.
func tallyOf(now time.Time, today, yesterday map[int]int, totals []int) Tally {
	_, b := position(now)
	var t Tally
	for i := 0; i < bucketsPerDay; i++ {
		// i buckets ago: today's b-i, or yesterday's.
		n := 0
		if k := b - i; k >= 0 {
			n = today[k]
		} else {
			n = yesterday[k+bucketsPerDay]
		}
		if i < bucketsPerHr {
			t.Hour += n
		}
		t.Day += n
	}
	for _, n := range totals {
		t.MaxDay = max(t.MaxDay, n)
	}
	return t
}

// memoryTallies is MemoryStore's Tallies.
type memoryTallies struct {
	mu     sync.Mutex
	series map[string]map[int]map[int]int // series → day → bucket → count; bucket -1 is the day's total
	marks  map[string]mark
	now    time.Time // of the last sweep
}

func (m *memoryTallies) init() {
	if m.series == nil {
		m.series = map[string]map[int]map[int]int{}
		m.marks = map[string]mark{}
	}
}

// Add implements Tallies.
func (s *MemoryStore) Add(_ context.Context, now time.Time, series ...string) error {
	m := &s.tallies
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	m.sweep(now)
	day, b := position(now)
	for _, name := range series {
		days := m.series[name]
		if days == nil {
			days = map[int]map[int]int{}
			m.series[name] = days
		}
		if days[day] == nil {
			days[day] = map[int]int{}
		}
		days[day][b]++
		days[day][-1]++
	}
	return nil
}

// Read implements Tallies.
func (s *MemoryStore) Read(_ context.Context, now time.Time, series ...string) ([]Tally, error) {
	m := &s.tallies
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	day, _ := position(now)
	out := make([]Tally, len(series))
	for i, name := range series {
		days := m.series[name]
		totals := make([]int, 0, keptDays-1)
		for d := day - 1; d > day-keptDays; d-- {
			totals = append(totals, days[d][-1])
		}
		out[i] = tallyOf(now, days[day], days[day-1], totals)
	}
	return out, nil
}

// mark is a remembered value and when it is forgotten.
type mark struct {
	value string
	until time.Time
}

// Mark implements Tallies.
func (s *MemoryStore) Mark(ctx context.Context, now time.Time, key string, ttl time.Duration) error {
	return s.Remember(ctx, now, key, "1", ttl)
}

// Marked implements Tallies.
func (s *MemoryStore) Marked(ctx context.Context, now time.Time, key string) (bool, error) {
	v, err := s.Recall(ctx, now, key)
	return v != "", err
}

// Remember implements Tallies.
func (s *MemoryStore) Remember(_ context.Context, now time.Time, key, value string, ttl time.Duration) error {
	m := &s.tallies
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	m.sweep(now)
	m.marks[key] = mark{value: value, until: now.Add(ttl)}
	return nil
}

// Recall implements Tallies.
func (s *MemoryStore) Recall(_ context.Context, now time.Time, key string) (string, error) {
	m := &s.tallies
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if mk, ok := m.marks[key]; ok && now.Before(mk.until) {
		return mk.value, nil
	}
	return "", nil
}

// sweep drops days past keeping and expired marks, at most once a minute,
// so memory follows the traffic of the last two weeks.
func (m *memoryTallies) sweep(now time.Time) {
	if now.Sub(m.now) < sweepEvery {
		return
	}
	m.now = now
	day, _ := position(now)
	for name, days := range m.series {
		for d := range days {
			if d <= day-keptDays {
				delete(days, d)
			}
		}
		if len(days) == 0 {
			delete(m.series, name)
		}
	}
	for k, mk := range m.marks {
		if !now.Before(mk.until) {
			delete(m.marks, k)
		}
	}
}

// tallyKey is the Redis hash of one series' day; every key shares the
// {verifyd} hash tag, so scripts and pipelines work on Redis Cluster.
func tallyKey(series string, day int) string {
	return "{verifyd}:tally:" + series + ":" + strconv.Itoa(day)
}

// Add implements Tallies: one pipeline of HINCRBY on the bucket and the
// day's total, and an expiry, per series.
func (s *RedisStore) Add(ctx context.Context, now time.Time, series ...string) error {
	day, b := position(now)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, name := range series {
			k := tallyKey(name, day)
			p.HIncrBy(ctx, k, strconv.Itoa(b), 1)
			p.HIncrBy(ctx, k, "t", 1)
			p.Expire(ctx, k, keptDays*24*time.Hour)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis tally add: %w", err)
	}
	return nil
}

// Read implements Tallies, in one pipeline.
func (s *RedisStore) Read(ctx context.Context, now time.Time, series ...string) ([]Tally, error) {
	day, _ := position(now)
	type reads struct {
		today, yesterday *redis.MapStringStringCmd
		totals           []*redis.StringCmd
	}
	rs := make([]reads, len(series))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range series {
			rs[i].today = p.HGetAll(ctx, tallyKey(name, day))
			rs[i].yesterday = p.HGetAll(ctx, tallyKey(name, day-1))
			for d := day - 1; d > day-keptDays; d-- {
				rs[i].totals = append(rs[i].totals, p.HGet(ctx, tallyKey(name, d), "t"))
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("redis tally read: %w", err)
	}
	out := make([]Tally, len(series))
	for i, r := range rs {
		totals := make([]int, len(r.totals))
		for j, c := range r.totals {
			totals[j], _ = strconv.Atoi(c.Val())
		}
		out[i] = tallyOf(now, buckets(r.today.Val()), buckets(r.yesterday.Val()), totals)
	}
	return out, nil
}

func buckets(h map[string]string) map[int]int {
	out := make(map[int]int, len(h))
	for k, v := range h {
		if b, err := strconv.Atoi(k); err == nil {
			out[b], _ = strconv.Atoi(v)
		}
	}
	return out
}

// Mark implements Tallies.
func (s *RedisStore) Mark(ctx context.Context, now time.Time, key string, ttl time.Duration) error {
	return s.Remember(ctx, now, key, "1", ttl)
}

// Remember implements Tallies.
func (s *RedisStore) Remember(ctx context.Context, _ time.Time, key, value string, ttl time.Duration) error {
	if err := s.client.Set(ctx, "{verifyd}:mark:"+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis mark: %w", err)
	}
	return nil
}

// Recall implements Tallies.
func (s *RedisStore) Recall(ctx context.Context, _ time.Time, key string) (string, error) {
	v, err := s.client.Get(ctx, "{verifyd}:mark:"+key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis recall: %w", err)
	}
	return v, nil
}

// Marked implements Tallies.
func (s *RedisStore) Marked(ctx context.Context, _ time.Time, key string) (bool, error) {
	n, err := s.client.Exists(ctx, "{verifyd}:mark:"+key).Result()
	if err != nil {
		return false, fmt.Errorf("redis marked: %w", err)
	}
	return n == 1, nil
}
