package redisclient_test

import (
	"strings"
	"testing"
	"time"

	"verifyd/server/redisclient"
)

func TestOptions(t *testing.T) {
	opts, err := redisclient.Options("redis://:hunter2hunter2@127.0.0.1:6390/2")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Addr != "127.0.0.1:6390" || opts.DB != 2 || opts.DialTimeout != time.Second ||
		opts.ReadTimeout != redisclient.IOTimeout || opts.MaxRetries != 1 {
		t.Errorf("Options = %+v, want the address, db 2 and verifyd's timeouts", opts)
	}
	if opts, err := redisclient.Options("rediss://127.0.0.1:6390?read_timeout=2s"); err != nil || opts.TLSConfig == nil ||
		opts.ReadTimeout != 2*time.Second {
		t.Errorf("rediss with read_timeout = %+v, %v; want TLS and the URL's timeout", opts, err)
	}
	for _, bad := range []string{"http://nope", "redis://:hunter2hunter2@[::1", ""} {
		_, err := redisclient.Options(bad)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Options(%q) = %v, want an error that does not quote the URL", bad, err)
		}
	}
}
