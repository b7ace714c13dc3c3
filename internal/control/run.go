package control

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/server"
	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

// Options are what the command line injects.
type Options struct {
	Stdout, Stderr io.Writer
	// Binary is how the printed next steps call portcullis.
	Binary string
	// Ready, if set, is called with the bound addresses once both
	// listeners accept (tests bind port 0).
	Ready func(api, public net.Addr)
}

// backend is the store the server runs on: certificates and enrollments.
type backend interface {
	store.Store
	store.Enrollments
}

func openStore(ctx context.Context, c *Config, l ca.Layout) (backend, error) {
	if c.Store == "sqlite" {
		return sqlite.Open(ctx, l.DB())
	}
	return nil, errors.New("store: PostgreSQL is not wired into this build yet")
}

// Run starts the control server and serves until ctx ends.
func Run(ctx context.Context, c Config, o Options) error {
	log, err := obs.NewLogger(o.Stderr, c.Log.Format, c.Log.Level)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return err
	}
	fresh := !ca.Exists(c.Data)
	pass, passPath, err := c.passphrase(fresh)
	if err != nil {
		return err
	}
	pass = keyPassphraseOnce(pass)
	l := ca.Layout{Dir: c.Data}
	if fresh {
		if err := l.Create(); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, &c, l)
	if err != nil {
		return err
	}
	defer st.Close()
	audit, err := obs.OpenAuditLog(l.Audit())
	if err != nil {
		return err
	}
	defer audit.Close()
	opts := ca.Options{Passphrase: pass, Logger: log, Audit: audit.Logger(), Actor: "server", RecordOnly: true, CRLOnDemand: true}
	var a *ca.Authority
	if fresh {
		a, err = firstRun(ctx, &c, st, opts, pass)
	} else {
		a, err = ca.Open(ctx, c.Data, st, opts)
	}
	if err != nil {
		return err
	}
	// Unlock now: a wrong passphrase should stop the start, not the first
	// enrollment an hour later.
	if err := a.Unlock(); err != nil {
		return fmt.Errorf("unlocking the CA key (passphrase from %s): %w", passPath, err)
	}
	cert, err := serverCertificate(ctx, &c, a)
	if err != nil {
		return err
	}
	ra, err := enroll.New(c.EnrollConfig(), st, enroll.Options{Logger: log, Audit: audit.Logger(), Signer: a})
	if err != nil {
		return err
	}
	roles, err := c.Roles()
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.Root())
	var chain []*x509.Certificate
	if a.Issuer() != a.Root() {
		chain = []*x509.Certificate{a.Issuer()}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	crl := a.CRLCache(ca.CRLCacheOptions{})
	ocsp, err := a.Responder(ctx, ca.ResponderOptions{})
	if err != nil {
		return fmt.Errorf("OCSP responder: %w", err)
	}
	if _, err := crl.Refresh(ctx); err != nil {
		return fmt.Errorf("signing the CRL: %w", err)
	}
	w := &revocationWatch{st: st, issuer: fmt.Sprintf("%x", a.Issuer().SubjectKeyId), crl: crl, ocsp: ocsp, log: log,
		seen: map[string]time.Time{}}
	srv, err := server.New(server.Config{
		Certificate: cert, Roots: roots, Chain: chain, IssuerID: fmt.Sprintf("%x", a.Issuer().SubjectKeyId),
		Roles: roles, PollInterval: time.Duration(c.Enroll.PollInterval), MaxBody: c.Limits.MaxBody,
		RatePerSecond: c.Limits.RatePerSecond, Burst: c.Limits.Burst,
	}, server.Deps{
		RA: ra, CRL: crl, OCSP: ocsp, Logger: log, Registry: reg,
		OnRevoke: w.revoked,
		Ready: func(ctx context.Context) error {
			if err := a.Unlock(); err != nil {
				return fmt.Errorf("CA key: %w", err)
			}
			// A read that touches the certificate table; no write, so
			// probes cost nothing durable.
			if _, err := st.RevokedSince(ctx, w.issuer, time.Now()); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	apiLn, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	publicLn, err := net.Listen("tcp", c.PublicListen)
	if err != nil {
		apiLn.Close()
		return err
	}
	printBanner(o, &c, a, fresh, passPath)
	log.Info("control server listening", "api", apiLn.Addr().String(), "public", publicLn.Addr().String(), "store", storeName(&c))
	if o.Ready != nil {
		o.Ready(apiLn.Addr(), publicLn.Addr())
	}
	go w.run(ctx, revocationPoll)
	err = srv.Serve(ctx, apiLn, publicLn, time.Duration(c.ShutdownTimeout))
	log.Info("control server stopped")
	return err
}

func storeName(c *Config) string {
	if c.Store == "sqlite" {
		return "sqlite"
	}
	return "postgres"
}

// keyPassphraseOnce reads the passphrase at most once per process.
func keyPassphraseOnce(p func() ([]byte, error)) func() ([]byte, error) {
	var (
		once sync.Once
		b    []byte
		err  error
	)
	return func() ([]byte, error) {
		once.Do(func() { b, err = p() })
		return b, err
	}
}

// revocationPoll is how often a server looks for revocations made by
// another replica on the same database.
const revocationPoll = 2 * time.Second

// revocationOverlap is how far back each poll looks again: revocation
// times come from the revoking replica's clock, so replicas whose clocks
// differ by less than this miss nothing (keep them on NTP).
const revocationOverlap = 10 * time.Minute

// revocationWatch keeps the OCSP answers and the CRL true to the store:
// at once for this replica's revocations (revoked), and within
// revocationPoll for other replicas' (run).
type revocationWatch struct {
	st     store.Store
	issuer string
	crl    *ca.CRLCache
	ocsp   *ca.Responder
	log    *slog.Logger

	mu   sync.Mutex
	seen map[string]time.Time // serial → revocation time, within the overlap
}

// revoked is the server's OnRevoke: drop the serials' cached answers and
// sign the CRL now, so the admin's call returns with the CRL published.
func (w *revocationWatch) revoked(ctx context.Context, serials ...string) {
	now := time.Now()
	w.mu.Lock()
	for _, s := range serials {
		w.ocsp.Invalidate(s)
		if _, ok := w.seen[s]; !ok {
			w.seen[s] = now // the poll need not act on it again
		}
	}
	w.mu.Unlock()
	w.crl.Invalidate()
	if _, err := w.crl.Refresh(ctx); err != nil {
		w.log.ErrorContext(ctx, "signing the CRL after a revocation failed; the next fetch retries", "err", err)
	}
}

func (w *revocationWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	since := time.Now().Add(-revocationOverlap)
	// What is revoked already is in the CRL just signed and in no cached
	// answer: remember it without acting on it.
	if revs, err := w.st.RevokedSince(ctx, w.issuer, since); err == nil {
		w.mu.Lock()
		for _, r := range revs {
			w.seen[r.Serial] = r.RevokedAt
		}
		w.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		revs, err := w.st.RevokedSince(ctx, w.issuer, since)
		if err != nil {
			w.log.WarnContext(ctx, "polling revocations failed", "err", err)
			continue
		}
		var fresh []string
		w.mu.Lock()
		for _, r := range revs {
			if _, ok := w.seen[r.Serial]; !ok {
				w.seen[r.Serial] = r.RevokedAt
				fresh = append(fresh, r.Serial)
			}
		}
		since = now.Add(-revocationOverlap)
		for s, at := range w.seen {
			if at.Before(since) {
				delete(w.seen, s)
			}
		}
		w.mu.Unlock()
		if len(fresh) > 0 {
			w.revoked(ctx, fresh...)
		}
	}
}
