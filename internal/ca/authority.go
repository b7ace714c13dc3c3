// Package ca is the certificate authority: it initializes a root and an
// intermediate, issues server, client and device certificates from its own
// templates (never copying a CSR), renews, revokes, signs CRLs, exports, and
// adopts an existing easy-rsa PKI. Every certificate is recorded in the store
// before it leaves the CA, and every decision is an audit event.
package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// Errors a front end maps to its own messages: the CLI adds the flags that
// help.
var (
	ErrNotInitialized = errors.New("no CA here")
	ErrExists         = errors.New("a CA already exists here")
	ErrRootOffline    = errors.New("the root key is offline")
)

// Options are what a caller injects into an Authority.
type Options struct {
	// Passphrase unlocks the CA keys; asked only when a key is needed.
	Passphrase keystore.Passphrase
	Logger     *slog.Logger
	// Audit receives one event per decision (JSON lines in the CLI).
	Audit *slog.Logger
	// Actor names who acts, for the audit trail (the OS user in the CLI).
	Actor string
	// RecordOnly keeps certificates whose key the holder made (from a CSR)
	// in the store only, with no files under issued/: the control server
	// issues thousands, and a file per certificate would be a second copy
	// to keep consistent. Certificates with a CA-made key are still written,
	// since the key has nowhere else to go.
	RecordOnly bool
	// CRLOnDemand: Revoke does not sign a CRL; the caller signs through a
	// CRLCache after its revocations (the server, which may revoke a
	// device's several certificates at once and serves the CRL itself).
	CRLOnDemand bool
	// Now and Rand are the clock and randomness; tests replace them.
	Now  func() time.Time
	Rand io.Reader
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Audit == nil {
		o.Audit = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Actor == "" {
		o.Actor = "unknown"
	}
}

// Authority is an opened CA directory.
type Authority struct {
	layout Layout
	cfg    Config
	store  store.Store
	opts   Options

	root   *x509.Certificate
	issuer *x509.Certificate // the intermediate, or the root when root-only
	// chain is what follows a leaf in a chain file: the intermediate, or
	// nothing when the root issues directly.
	chain     []*x509.Certificate
	issuerSKI string

	keyOnce sync.Once
	key     crypto.Signer
	sigAlg  x509.SignatureAlgorithm // of key
	linter  *pki.Linter
	keyErr  error
}

// Open loads the CA in dir. It reads certificates and settings only; the
// issuing key is decrypted on first use.
func Open(ctx context.Context, dir string, st store.Store, opts Options) (*Authority, error) {
	opts.defaults()
	l := Layout{Dir: dir}
	data, err := os.ReadFile(l.Config())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("reading CA settings: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("CA settings %s: %w", l.Config(), err)
	}
	a := &Authority{layout: l, cfg: cfg, store: st, opts: opts}
	if a.root, err = readCert(l.RootCert()); err != nil {
		return nil, err
	}
	a.issuer = a.root
	if _, err := os.Stat(l.IntermediateCert()); err == nil {
		if a.issuer, err = readCert(l.IntermediateCert()); err != nil {
			return nil, err
		}
		if err := a.issuer.CheckSignatureFrom(a.root); err != nil {
			return nil, fmt.Errorf("%s is not signed by %s: %w", l.IntermediateCert(), l.RootCert(), err)
		}
		a.chain = []*x509.Certificate{a.issuer}
	}
	a.issuerSKI = fmt.Sprintf("%x", a.issuer.SubjectKeyId)
	if !pki.LintAvailable {
		opts.Logger.Warn("this build cannot lint certificates before signing them (zlint does not build for this OS); run the CA on Linux or macOS")
	}
	return a, nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs[0], nil
}

// Config returns the CA settings.
func (a *Authority) Config() Config { return a.cfg }

// Layout returns the file layout of the CA directory.
func (a *Authority) Layout() Layout { return a.layout }

// Root returns the root certificate.
func (a *Authority) Root() *x509.Certificate { return a.root }

// Issuer returns the certificate that signs leaves and CRLs.
func (a *Authority) Issuer() *x509.Certificate { return a.issuer }

// issuerKey decrypts the issuing key once, checks that it matches the
// issuer certificate, and prepares the pre-issuance linter.
func (a *Authority) issuerKey() (crypto.Signer, *pki.Linter, error) {
	a.keyOnce.Do(func() {
		path := a.layout.IntermediateKey()
		if len(a.chain) == 0 {
			path = a.layout.RootKey()
		}
		k, err := keystore.LoadFile(path, a.opts.Passphrase)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && len(a.chain) == 0 {
				err = fmt.Errorf("%w: %s is missing and this CA has no intermediate", ErrRootOffline, path)
			}
			a.keyErr = fmt.Errorf("unlocking the issuing key: %w", err)
			return
		}
		if !publicKeysEqual(k.Public(), a.issuer.PublicKey) {
			a.keyErr = fmt.Errorf("%s does not match the issuer certificate", path)
			return
		}
		a.keyErr = a.install(k)
	})
	return a.key, a.linter, a.keyErr
}

// install makes k the issuing key, with the signature algorithm of its
// type and a linter for it.
func (a *Authority) install(k crypto.Signer) error {
	kt, err := pki.KeyTypeOf(k.Public())
	if err != nil {
		return fmt.Errorf("issuing key: %w", err)
	}
	if a.linter, err = pki.NewLinter(a.issuer, kt, a.cfg.lintOptions()); err != nil {
		return err
	}
	a.key, a.sigAlg = k, pki.SignatureAlgorithm(kt)
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// adoptKey installs an issuing key already in memory (at init), so the
// passphrase just chosen is not asked for again.
func (a *Authority) adoptKey(k crypto.Signer) error {
	a.keyOnce.Do(func() { a.keyErr = a.install(k) })
	return a.keyErr
}

// Unlock decrypts the issuing key now, so a wrong passphrase fails before
// any other work.
func (a *Authority) Unlock() error {
	_, _, err := a.issuerKey()
	return err
}

func (a *Authority) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("actor", a.opts.Actor)}, attrs...)
	a.opts.Audit.LogAttrs(ctx, slog.LevelInfo, event, attrs...)
}

// writePublic writes a certificate or CRL file, world-readable.
func writePublic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, publicFileMode)
}
