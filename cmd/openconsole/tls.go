package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a pair of PEM files and loads them again when either
// file changes (its modification time or size), so that a certificate is rotated by replacing the
// files, without a restart. The files are looked at during a handshake, at most once per interval;
// a pair that does not load (a key written before its certificate, say) keeps the previous
// certificate in service and is tried again at the next look.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu       sync.Mutex
	cert     *tls.Certificate
	stamp    [2]fileStamp // of the files the certificate was loaded from
	checked  time.Time
	lastFail string
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// certCheckInterval is how often a handshake looks at the files (tests set 0: every handshake).
var certCheckInterval = time.Second

// newCertReloader loads the pair once; an error here stops the server from starting.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, interval: certCheckInterval, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) load() error {
	s0, err := stampOf(c.certFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s1, err := stampOf(c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, [2]fileStamp{s0, s1}
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.interval {
		c.checked = now
		s0, err0 := stampOf(c.certFile)
		s1, err1 := stampOf(c.keyFile)
		if err0 == nil && err1 == nil && [2]fileStamp{s0, s1} != c.stamp {
			if err := c.load(); err != nil {
				if msg := err.Error(); msg != c.lastFail {
					c.log.Warn("TLS certificate files changed but do not load; still serving the previous certificate", "err", err)
					c.lastFail = msg
				}
			} else {
				c.lastFail = ""
				c.log.Info("TLS certificate reloaded", "cert", c.certFile, "expires", c.cert.Leaf.NotAfter)
			}
		}
	}
	return c.cert, nil
}

// tlsConfig is the server's TLS configuration: TLS 1.2 at least (Go's default cipher suites and
// curves, which are the modern ones), HTTP/2 and HTTP/1.1 offered, the certificate from c.
func tlsConfig(c *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
