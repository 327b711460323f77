package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// certReloader serves the certificate in certFile/keyFile and picks up a
// replaced pair (a renewal by cert-manager or certbot) without a restart: on
// a handshake it looks at the files' modification times, at most once every
// reloadEvery, and loads them again when they changed. A pair that fails to
// load is logged and the old certificate kept.
type certReloader struct {
	certFile, keyFile string
	logger            *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // both files' modification times and sizes
	checkedAt time.Time
}

// reloadEvery bounds how often handshakes stat the files.
const reloadEvery = time.Second

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, logger: logger}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := r.load(stamp); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += st.ModTime().String() + "/" + strconv.FormatInt(st.Size(), 10) + ";"
	}
	return stamp, nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// get is tls.Config.GetCertificate.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checkedAt) >= reloadEvery {
		r.checkedAt = now
		stamp, err := r.fileStamp()
		if err == nil && stamp != r.stamp {
			if err = r.load(stamp); err == nil {
				r.logger.Info("tls certificate reloaded", "cert_file", r.certFile)
			}
		}
		if err != nil {
			r.logger.Warn("tls certificate not reloaded; keeping the current one", "err", err)
		}
	}
	return r.cert, nil
}

// checkHealth asks the verifyd on this machine for /healthz: the container
// image has no shell or curl, so the binary checks itself.
func checkHealth(ctx context.Context, cfg config) error {
	host := cfg.Host
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	scheme := "http"
	client := &http.Client{Timeout: 3 * time.Second}
	if cfg.TLSCertFile != "" {
		scheme = "https"
		// Our own process over loopback: the certificate names the public
		// host, not 127.0.0.1, so it is not verified here.
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Port)) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
