package control

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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
	opts := ca.Options{Passphrase: pass, Logger: log, Audit: audit.Logger(), Actor: "server", RecordOnly: true}
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
	crl := &crlCache{a: a}
	srv, err := server.New(server.Config{
		Certificate: cert, Roots: roots, Chain: chain, IssuerID: fmt.Sprintf("%x", a.Issuer().SubjectKeyId),
		Roles: roles, PollInterval: time.Duration(c.Enroll.PollInterval), MaxBody: c.Limits.MaxBody,
		RatePerSecond: c.Limits.RatePerSecond, Burst: c.Limits.Burst,
	}, server.Deps{
		RA: ra, CRL: crl, Logger: log, Registry: reg,
		OnRevoke: func(context.Context, ...string) { crl.invalidate() },
		Ready: func(ctx context.Context) error {
			_, err := st.NextCRLNumber(ctx, "readyz-probe")
			return err
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

// crlCache keeps the last signed CRL and signs a new one after a
// revocation or when the cached one has used half its validity.
type crlCache struct {
	a    *ca.Authority
	mu   sync.Mutex
	der  []byte
	etag string
	this time.Time
	next time.Time
}

func (c *crlCache) CurrentCRL(ctx context.Context) ([]byte, string, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.der == nil || now.After(c.this.Add(c.next.Sub(c.this)/2)) {
		crl, err := c.a.CRL(ctx)
		if err != nil {
			return nil, "", time.Time{}, err
		}
		c.der, c.etag, c.this, c.next = crl.Raw, crl.Number.String(), crl.ThisUpdate, crl.NextUpdate
	}
	return c.der, c.etag, c.next, nil
}

func (c *crlCache) invalidate() {
	c.mu.Lock()
	c.der = nil
	c.mu.Unlock()
}
