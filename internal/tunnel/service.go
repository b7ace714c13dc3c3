package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/revocation"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// service is one configured service, ready to serve: its identity, its
// verification, its targets. A reload builds new services; connections keep
// the one they started with.
type service struct {
	cfg     compiledService
	log     *slog.Logger
	audit   *slog.Logger
	m       *metrics
	id      *tlsconf.Store
	tlsConf *tls.Config
	rules   *policy.Policy
	rev     *revocation.Checker
	up      *upstream
	open    atomic.Int64
	// slots bounds concurrent connections (nil: unbounded).
	slots chan struct{}
	// cancel stops the service's background work (watch, CRL refresh).
	cancel context.CancelFunc
}

// deps are what every service gets from the proxy.
type deps struct {
	log    *slog.Logger
	audit  *slog.Logger
	m      *metrics
	reg    prometheus.Registerer
	client *http.Client
	// reload is how often to re-read certificates (--timed-reload); the
	// file watch runs regardless.
	reload time.Duration
	// tickets keys session tickets of server-mode services.
	tickets *ticketKeys
}

func newService(ctx context.Context, cfg compiledService, d deps) (*service, error) {
	s := &service{cfg: cfg, log: d.log.With(slog.String("service", cfg.Name)), audit: d.audit, m: d.m, rules: cfg.Rules}
	src, err := identitySource(cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", cfg.Name, err)
	}
	// A client that presents no certificate needs only the CA bundle.
	src.Anonymous = cfg.Anonymous
	if s.id, err = tlsconf.Load(src, s.log); err != nil {
		return nil, fmt.Errorf("service %q: %w", cfg.Name, err)
	}
	if cfg.Revocation != nil {
		// Each service registers its revocation metrics under its own
		// label, so one registry holds them all. A reload builds a new
		// checker for the same service: it takes the series over.
		reg := replacing{prometheus.WrapRegistererWith(prometheus.Labels{"service": cfg.Name}, d.reg)}
		if s.rev, err = revocation.New(*cfg.Revocation, s.log, reg, d.client); err != nil {
			return nil, fmt.Errorf("service %q: revocation: %w", cfg.Name, err)
		}
	}
	s.up = newUpstream(cfg.Targets, cfg.RoundRobin)
	if cfg.MaxConns > 0 {
		s.slots = make(chan struct{}, cfg.MaxConns)
	}
	if cfg.Mode == ModeServer {
		s.tlsConf = tlsconf.ServerConfig(s.id, s.verify)
		d.tickets.set(s.tlsConf, cfg.Name, time.Now())
	} else {
		s.tlsConf = tlsconf.ClientConfig(s.id, cfg.ServerName, s.verify)
		if cfg.DisableAuthentication {
			s.tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &tls.Certificate{}, nil
			}
		}
	}
	if len(cfg.Curves) > 0 {
		s.tlsConf.CurvePreferences = cfg.Curves
	}
	s.setNotAfter()
	var bg context.Context
	bg, s.cancel = context.WithCancel(ctx)
	go func() {
		err := s.id.Watch(bg, d.reload, func(err error) {
			if err != nil {
				s.log.Error("certificate reload failed; keeping the previous one", slog.Any("error", err))
				return
			}
			s.setNotAfter()
			s.log.Info("certificate reloaded", slog.Time("not_after", s.id.NotAfter()))
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("certificate watch stopped", slog.Any("error", err))
		}
	}()
	if s.rev != nil {
		go s.rev.Run(bg)
	}
	if cfg.Mode == ModeServer {
		go d.tickets.rotate(bg, s.tlsConf, cfg.Name)
	}
	return s, nil
}

// replacing registers a collector in place of an equal one already
// registered, so that a reloaded service's revocation checker replaces the
// metrics of the checker it succeeds instead of failing the reload with
// prometheus.AlreadyRegisteredError.
type replacing struct{ prometheus.Registerer }

func (r replacing) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		r.Unregister(are.ExistingCollector)
		err = r.Registerer.Register(c)
	}
	return err
}

// identitySource turns the config's identity into a tlsconf.Source,
// reading the storepass file (secrets come by file, never on the command
// line).
func identitySource(id Identity) (tlsconf.Source, error) {
	src := tlsconf.Source{CertFile: id.Cert, KeyFile: id.Key, Keystore: id.Keystore, CAFile: id.CACert, Storepass: id.Storepass}
	if id.StorepassFile != "" {
		data, err := os.ReadFile(id.StorepassFile)
		if err != nil {
			return src, fmt.Errorf("reading storepass file: %w", err)
		}
		src.Storepass = strings.TrimRight(strings.SplitN(string(data), "\n", 2)[0], "\r")
	}
	return src, nil
}

// verify runs after the chain is verified, on every handshake including
// resumed ones: access rules, then revocation.
func (s *service) verify(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return errors.New("no verified chain")
	}
	leaf := chains[0][0]
	if s.rules != nil {
		if _, err := s.rules.Authorize(leaf); err != nil {
			s.deny(cs, leaf, "policy", err)
			return err
		}
	}
	if s.rev != nil {
		var issuer *x509.Certificate
		if len(chains[0]) > 1 {
			issuer = chains[0][1]
		}
		if err := s.rev.Check(context.Background(), leaf, issuer); err != nil {
			s.deny(cs, leaf, "revocation", err)
			return err
		}
	}
	return nil
}

func (s *service) deny(cs tls.ConnectionState, leaf *x509.Certificate, stage string, err error) {
	s.audit.LogAttrs(context.Background(), slog.LevelInfo, "connection.denied",
		slog.String("service", s.cfg.Name), slog.String("stage", stage),
		slog.String("subject", leaf.Subject.String()), slog.String("serial", leaf.SerialNumber.Text(16)),
		slog.String("sni", cs.ServerName), slog.Bool("resumed", cs.DidResume), slog.String("reason", err.Error()))
}

func (s *service) stop() {
	if s.cancel != nil {
		s.cancel()
	}
}

// acquire takes a connection slot, or reports the limit is reached.
func (s *service) acquire() bool {
	if s.slots == nil {
		return true
	}
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *service) release() {
	if s.slots != nil {
		<-s.slots
	}
}

// dialer for targets of a server-mode service (plaintext).
var plainDialer = &net.Dialer{KeepAlive: 30 * time.Second}

func (s *service) enter() {
	s.open.Add(1)
	s.m.open.WithLabelValues(s.cfg.Name).Inc()
}

func (s *service) leave() {
	s.open.Add(-1)
	s.m.open.WithLabelValues(s.cfg.Name).Dec()
}

// setNotAfter exports the own certificate's expiry (none when anonymous).
func (s *service) setNotAfter() {
	if na := s.id.NotAfter(); !na.IsZero() {
		s.m.notAfter.WithLabelValues(s.cfg.Name).Set(float64(na.Unix()))
	}
}
