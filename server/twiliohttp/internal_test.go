package twiliohttp

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"99999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"next tuesday", 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	ctx := t.Context()
	for attempt := range 4 {
		nominal := backoffBase << attempt
		for range 100 {
			d, ok := backoff(ctx, attempt, 0)
			if !ok || d < nominal/2 || d > nominal {
				t.Fatalf("backoff(attempt %d) = %v, %v, want %v to %v", attempt, d, ok, nominal/2, nominal)
			}
		}
	}
	if d, ok := backoff(ctx, 0, 1500*time.Millisecond); !ok || d != 1500*time.Millisecond {
		t.Errorf("backoff(Retry-After 1.5s) = %v, %v, want 1.5s, true", d, ok)
	}
	if _, ok := backoff(ctx, 0, maxRetryAfter+time.Second); ok {
		t.Errorf("backoff(Retry-After past the cap) retries, want not")
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, ok := backoff(short, 3, 0); ok {
		t.Errorf("backoff(800ms wait, 10ms left) retries, want not")
	}
}
