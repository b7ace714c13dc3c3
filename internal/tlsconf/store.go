package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Log keys.
const (
	logError     = "error"
	logFiles     = "files"
	logNotAfter  = "not_after"
	logNotBefore = "not_before"
	logRoots     = "roots"
	logSerial    = "serial"
	logSubject   = "subject"
)

// snapshot is one consistent load: a handshake sees the certificate and
// the roots of the same reload, never the new certificate with old roots.
type snapshot struct {
	cert      *tls.Certificate // Leaf set
	roots     *x509.CertPool
	rootCerts []*x509.Certificate // nil for system roots
	digest    [32]byte
	gen       uint64 // counts loads; verification caches key on it
}

type reloadStatus struct {
	ok  time.Time // last successful load
	err error     // of the last attempt
}

// Store holds the current identity and trust roots, replaced as a whole by
// a successful Reload. Its methods are safe for concurrent use; what they
// return is shared and must not be modified.
type Store struct {
	src    Source
	log    *slog.Logger
	mu     sync.Mutex // serializes reloads
	cur    atomic.Pointer[snapshot]
	status atomic.Pointer[reloadStatus]

	watchReady func()           // tests: called once Watch's watches are in place
	clock      func() time.Time // tests: the time of verifications; nil is time.Now
}

// Load validates src and reads it. log may be nil. A Store is only usable
// as returned by Load.
func Load(src Source, log *slog.Logger) (*Store, error) {
	if err := src.Validate(); err != nil {
		return nil, fmt.Errorf("TLS identity: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{src: src, log: log}
	s.status.Store(&reloadStatus{})
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads every file. On any error (unreadable or unparsable file,
// key not matching the certificate, wrong passphrase, CA bundle without
// certificates) it keeps the previous state entirely and says why. An
// expired or not yet valid certificate is loaded, with a warning: refusing
// it would not bring a valid one back, and a renewal may be on its way.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.status.Load()
	if err := s.reload(); err != nil {
		err = fmt.Errorf("loading TLS identity: %w", err)
		s.status.Store(&reloadStatus{ok: prev.ok, err: err})
		return err
	}
	s.status.Store(&reloadStatus{ok: time.Now()})
	return nil
}

func (s *Store) reload() error {
	c, err := s.src.read()
	if err != nil {
		return err
	}
	old := s.cur.Load()
	digest := s.src.digest(c)
	if old != nil && old.digest == digest {
		s.log.Debug("TLS files unchanged", logFiles, s.src.files())
		s.warnValidity(old.cert.Leaf)
		return nil
	}
	cert, err := s.src.identity(c)
	if err != nil {
		return err
	}
	pool, roots, err := s.src.roots(c)
	if err != nil {
		return err
	}
	var gen uint64
	if old != nil {
		gen = old.gen + 1
	}
	s.cur.Store(&snapshot{cert: cert, roots: pool, rootCerts: roots, digest: digest, gen: gen})
	leaf := cert.Leaf
	if leaf == nil {
		s.log.Info("TLS trust loaded (no own identity)", logRoots, len(roots))
		return nil
	}
	s.log.Info("TLS identity loaded", logSubject, leaf.Subject.String(), logSerial, fmt.Sprintf("%x", leaf.SerialNumber),
		logNotAfter, leaf.NotAfter, logRoots, len(roots))
	s.warnValidity(leaf)
	return nil
}

func (s *Store) warnValidity(leaf *x509.Certificate) {
	if leaf == nil {
		return
	}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		s.log.Warn("TLS certificate has expired; peers will refuse it", logSubject, leaf.Subject.String(), logNotAfter, leaf.NotAfter)
	case now.Before(leaf.NotBefore):
		s.log.Warn("TLS certificate is not yet valid; peers will refuse it", logSubject, leaf.Subject.String(), logNotBefore, leaf.NotBefore)
	}
}

func (s *Store) now() time.Time {
	if s.clock != nil {
		return s.clock()
	}
	return time.Now()
}

// Certificate returns the current certificate, with Leaf set.
func (s *Store) Certificate() *tls.Certificate { return s.cur.Load().cert }

// Roots returns the current trust roots.
func (s *Store) Roots() *x509.CertPool { return s.cur.Load().roots }

// NotAfter returns when the current certificate expires (zero for an
// anonymous source).
func (s *Store) NotAfter() time.Time {
	if leaf := s.cur.Load().cert.Leaf; leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

// LastReload returns when the last successful load happened and the error
// of the last attempt (nil if it succeeded): the inputs of a
// last-reload-success gauge and of a status page.
func (s *Store) LastReload() (time.Time, error) {
	st := s.status.Load()
	return st.ok, st.err
}

// GetCertificate is a tls.Config.GetCertificate returning the current
// certificate: each new handshake picks up a reload.
func (s *Store) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate returning the
// current certificate whatever CAs the server names: our servers name
// none (they verify against reloadable roots instead).
func (s *Store) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// RootCertificates returns the parsed CA bundle (nil when the system roots
// are in use), for status pages and CA expiry metrics.
func (s *Store) RootCertificates() []*x509.Certificate { return s.cur.Load().rootCerts }
