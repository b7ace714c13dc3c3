// Package server is the control server's HTTP front end and nothing more:
// routing, decoding, the caller's identity (mTLS), limits and encoding. It
// decides nothing: every action is a call on the registration authority
// (internal/enroll), which applies the rules, and the CA, which signs.
// Two listeners: the API over HTTPS (enrollment open to any client, the
// rest authenticated by a client certificate), and plain HTTP for what
// relying parties fetch without trusting anything first (CRL, OCSP, RFC
// 5280 §4.2.1.13 and RFC 6960 expect http URLs) and for health checks.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/enroll"
)

// Role is what an admin may do; each includes the ones before it.
type Role int

const (
	RoleNone Role = iota
	// RoleViewer reads the inventory, requests, tokens, audit and stats.
	RoleViewer
	// RoleApprover also approves and denies requests.
	RoleApprover
	// RoleAdmin also revokes and manages tokens.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleApprover:
		return "approver"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{RoleViewer, RoleApprover, RoleAdmin} {
		if r.String() == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("role %q: want viewer, approver or admin", s)
}

// CRLSource serves the issuing CA's current CRL, signed on change.
type CRLSource interface {
	// CurrentCRL returns the DER CRL, a strong validator for it, and its
	// nextUpdate.
	CurrentCRL(ctx context.Context) (der []byte, etag string, nextUpdate time.Time, err error)
}

// OCSPResponder answers DER OCSP requests.
type OCSPResponder interface {
	// RespondOCSP returns a DER OCSP response; for a request it cannot
	// parse it returns the DER of an error response and a non-nil error.
	RespondOCSP(ctx context.Context, req []byte) (resp []byte, err error)
}

// Config is the server's HTTP settings.
type Config struct {
	// Certificate is the API listener's server certificate.
	Certificate tls.Certificate
	// Roots verify client certificates (devices and admins); Intermediates
	// help build their chains when a client sends only its leaf.
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// Chain follows an issued certificate in responses (the intermediate).
	Chain []*x509.Certificate
	// IssuerID is the issuing CA's subject key ID in hex; its CRL is also
	// served as /crl/<IssuerID>.crl.
	IssuerID string
	// Roles maps an admin certificate's subject CN to its role.
	Roles map[string]Role
	// PollInterval is the Retry-After sent to a device whose request waits.
	PollInterval time.Duration
	// MaxBody caps a request body (JSON or OCSP).
	MaxBody int64
	// RatePerSecond and Burst limit the unauthenticated endpoints per
	// source address (enrollment, polling, OCSP).
	RatePerSecond float64
	Burst         int
	// Timeouts of both listeners.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultPollInterval = 10 * time.Second
	DefaultMaxBody      = 64 << 10
)

func (c *Config) defaults() {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.RatePerSecond <= 0 {
		c.RatePerSecond = 20
	}
	if c.Burst <= 0 {
		c.Burst = 40
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
}

// Deps are what the server calls.
type Deps struct {
	RA   *enroll.Service
	CRL  CRLSource
	OCSP OCSPResponder
	// Ready reports whether the server can serve (store reachable, CA key
	// loaded); /readyz calls it.
	Ready func(ctx context.Context) error
	// OnRevoke is told the serials an admin revoked, to drop cached OCSP
	// answers and re-sign the CRL at once.
	OnRevoke func(ctx context.Context, serials ...string)
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
}

// Server is the control server's HTTP side.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	limiter *limiter
	// logLimiter limits log uploads per device certificate, tokenLimiter
	// enrollments per bootstrap token.
	logLimiter, tokenLimiter *limiter
	metrics                  *metrics
	api                      http.Handler
	public                   http.Handler
	// patterns are the API listener's routes, for the OpenAPI check.
	patterns []string
}

// Routes lists the API listener's route patterns ("POST /api/v1/enroll").
func (s *Server) Routes() []string { return append([]string(nil), s.patterns...) }

// New builds the handlers.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.defaults()
	if deps.RA == nil {
		return nil, errors.New("server: no registration authority")
	}
	if cfg.Roots == nil {
		return nil, errors.New("server: no client certificate roots")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Logger}
	s.limiter = newLimiter(cfg.RatePerSecond, cfg.Burst, deps.Now)
	s.logLimiter = newLimiter(1.0/60, 10, deps.Now)  // 10 at once, then one a minute
	s.tokenLimiter = newLimiter(1.0/60, 5, deps.Now) // 5 at once, then one a minute
	var err error
	if s.metrics, err = newMetrics(deps.Registry, deps.RA); err != nil {
		return nil, err
	}
	s.api, s.public = s.routes()
	return s, nil
}

// TLSConfig is the API listener's: TLS 1.2+, and a client certificate
// requested but not required, because a device without one must be able
// to enroll; each route then says whether it needs one. Verification is
// done per route too (see caller), since renewal accepts an expired
// device certificate within the grace period, which crypto/tls would not.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.cfg.Certificate},
		ClientAuth:   tls.RequestClientCert,
	}
}

// APIHandler and PublicHandler are the two listeners' handlers (tests
// drive them with httptest).
func (s *Server) APIHandler() http.Handler    { return s.api }
func (s *Server) PublicHandler() http.Handler { return s.public }

// Serve runs the API on apiLn (TLS is added here) and the public endpoints
// on publicLn until ctx ends, then shuts both down gracefully, waiting up
// to grace for requests in flight.
func (s *Server) Serve(ctx context.Context, apiLn, publicLn net.Listener, grace time.Duration) error {
	mk := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, ReadTimeout: s.cfg.ReadTimeout,
			WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout,
			MaxHeaderBytes: 32 << 10,
			ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	api, public := mk(s.api), mk(s.public)
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(tls.NewListener(apiLn, s.TLSConfig())) }()
	go func() { errc <- public.Serve(publicLn) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, api.Shutdown(sctx), public.Shutdown(sctx))
}
