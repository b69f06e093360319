package turn

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certStore holds the TURNS certificate (RFC 8656 §3.1 uses TLS as the
// client-to-server transport for "turns:" URIs) and swaps it on reload.
// New handshakes pick up the current certificate through GetCertificate;
// established TLS connections, and the allocations on them, are untouched.
type certStore struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serialises loads and guards stamp
	stamp fileStamp  // the files as of the last load attempt
}

// fileStamp identifies a version of the certificate and key files without
// reading them.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func statFiles(certFile, keyFile string) (fileStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func newCertStore(certFile, keyFile string) (*certStore, error) {
	cs := &certStore{certFile: certFile, keyFile: keyFile}
	if err := cs.load(); err != nil {
		return nil, err
	}
	return cs, nil
}

// load reads and parses both files and makes them current. On error the
// previous certificate stays in use.
func (cs *certStore) load() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	stamp, err := statFiles(cs.certFile, cs.keyFile)
	if err != nil {
		return fmt.Errorf("turn: load certificate: %w", err)
	}
	cs.stamp = stamp
	cert, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return fmt.Errorf("turn: load certificate %s: %w", cs.certFile, err)
	}
	cs.cert.Store(&cert)
	return nil
}

// changed reports whether the files differ from the last load attempt, so
// a broken file is reported once rather than at every poll.
func (cs *certStore) changed() bool {
	stamp, err := statFiles(cs.certFile, cs.keyFile)
	if err != nil {
		return false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return stamp != cs.stamp
}

func (cs *certStore) notAfter() time.Time {
	if c := cs.cert.Load(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

func (cs *certStore) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cs.cert.Load(), nil
		},
	}
}

// Reload re-reads the TLS certificate and key (cmd calls it on SIGHUP).
// Existing connections and allocations are kept; new handshakes use the
// new certificate. On error the old certificate stays in use. It is a
// no-op without TLS.
func (s *Server) Reload() error {
	if s.certs == nil {
		return nil
	}
	if err := s.certs.load(); err != nil {
		s.log.Error("turn certificate reload failed", "cert_file", s.cfg.CertFile, "err", err)
		return err
	}
	s.log.Info("turn certificate loaded", "cert_file", s.cfg.CertFile, "not_after", s.certs.notAfter())
	return nil
}

// pollCerts reloads the certificate when its files change, until Close.
func (s *Server) pollCerts() {
	defer s.track.done()
	t := time.NewTicker(s.cfg.CertPollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			if s.certs.changed() {
				_ = s.Reload() // logged by Reload
			}
		}
	}
}
