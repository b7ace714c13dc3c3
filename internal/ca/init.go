package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// InitOptions shape a new CA.
type InitOptions struct {
	KeyType  pki.KeyType
	RootOnly bool
	// RootName and IntermediateName are the CNs of the CA certificates.
	RootName, IntermediateName string
	Organization, Country      string
	RootLifetime               time.Duration
	IntermediateLifetime       time.Duration
	TrustDomain                string
	URLs                       URLs
	// Passphrase encrypts the CA keys; empty leaves them in clear (the CLI
	// warns loudly before it allows that).
	Passphrase []byte
	// ExportRoot, if set, is where the root key is written instead of
	// private/ca.key, so it can be carried offline at once.
	ExportRoot string
}

// DefaultInitOptions returns the defaults of `ca init`.
func DefaultInitOptions() InitOptions {
	return InitOptions{
		KeyType:              pki.DefaultKeyType,
		RootName:             "Portcullis Root CA",
		IntermediateName:     "Portcullis Intermediate CA",
		Organization:         "Portcullis",
		Country:              "US",
		RootLifetime:         10 * 365 * day,
		IntermediateLifetime: 5 * 365 * day,
		TrustDomain:          DefaultConfig().TrustDomain,
	}
}

// Exists reports whether dir already holds a CA.
func Exists(dir string) bool {
	l := Layout{Dir: dir}
	for _, p := range []string{l.Config(), l.RootCert()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// MinPassphraseLen is the shortest passphrase the CA encrypts its keys
// with: the KDF slows guessing, it cannot save a short one.
const MinPassphraseLen = 8

// ErrShortPassphrase: a new CA passphrase under MinPassphraseLen.
var ErrShortPassphrase = fmt.Errorf("the CA passphrase must be at least %d characters", MinPassphraseLen)

// checkPassphrase accepts a new passphrase; none at all means keys in
// clear, which the caller chose (and warned about).
func checkPassphrase(p []byte) error {
	if len(p) > 0 && len(p) < MinPassphraseLen {
		return ErrShortPassphrase
	}
	return nil
}

// ErrRootOnlyExport: InitOptions asks for a root-only CA whose root key
// goes elsewhere (ExportRoot); the root key signs every certificate then,
// so it cannot be offline.
var ErrRootOnlyExport = errors.New("a root-only CA signs every certificate with its root key, which therefore cannot be exported offline")

func (o InitOptions) validate() error {
	var errs []error
	if o.RootName == "" || (!o.RootOnly && o.IntermediateName == "") {
		errs = append(errs, errors.New("CA names must not be empty"))
	}
	if o.Organization == "" {
		errs = append(errs, errors.New("organization must not be empty"))
	}
	if len(o.Country) != 2 {
		errs = append(errs, fmt.Errorf("country %q: want a two-letter ISO 3166 code", o.Country))
	}
	if o.RootLifetime <= 0 || (!o.RootOnly && o.IntermediateLifetime <= 0) {
		errs = append(errs, errors.New("lifetimes must be positive"))
	}
	if o.RootOnly && o.ExportRoot != "" {
		errs = append(errs, ErrRootOnlyExport)
	}
	if err := checkPassphrase(o.Passphrase); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Init creates a CA in dir: root, intermediate (unless RootOnly), settings,
// the bundle and an empty CRL. It refuses a directory that already holds a
// CA. st must be the store for dir.
func Init(ctx context.Context, dir string, st store.Store, io InitOptions, opts Options) (*Authority, error) {
	opts.defaults()
	if Exists(dir) {
		return nil, fmt.Errorf("%s: %w", dir, ErrExists)
	}
	cfg := DefaultConfig()
	cfg.KeyType, cfg.Organization, cfg.Country, cfg.URLs = io.KeyType, io.Organization, io.Country, io.URLs
	if io.TrustDomain != "" {
		cfg.TrustDomain = io.TrustDomain
	}
	if err := errors.Join(io.validate(), cfg.Validate()); err != nil {
		return nil, err
	}
	l := Layout{Dir: dir}
	if err := l.Create(); err != nil {
		return nil, err
	}
	now := opts.Now()
	subject := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{io.Organization}, Country: []string{io.Country}}
	}
	rootKey, err := pki.GenerateKey(io.KeyType, opts.Rand)
	if err != nil {
		return nil, err
	}
	root, err := selfSign(opts, rootKey, pki.Request{
		Profile: pki.ProfileRoot, Subject: subject(io.RootName), PublicKey: rootKey.Public(),
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(io.RootLifetime),
	})
	if err != nil {
		return nil, fmt.Errorf("creating root: %w", err)
	}
	certs := []*x509.Certificate{root}
	var interKey crypto.Signer
	if !io.RootOnly {
		if interKey, err = pki.GenerateKey(io.KeyType, opts.Rand); err != nil {
			return nil, err
		}
		notAfter := now.Add(io.IntermediateLifetime)
		if notAfter.After(root.NotAfter) {
			notAfter = root.NotAfter
		}
		inter, err := sign(opts, root, rootKey, pki.Request{
			Profile: pki.ProfileIntermediate, Subject: subject(io.IntermediateName), PublicKey: interKey.Public(),
			NotBefore: now.Add(-time.Minute), NotAfter: notAfter, MaxPathLen: 0,
			CRLURLs: io.URLs.CRL, OCSPURLs: io.URLs.OCSP, IssuerURLs: io.URLs.Issuer,
		})
		if err != nil {
			return nil, fmt.Errorf("creating intermediate: %w", err)
		}
		certs = append(certs, inter)
	}
	for i, c := range certs {
		name, profile := "ca", pki.ProfileRoot
		if i == 1 {
			name, profile = "intermediate", pki.ProfileIntermediate
		}
		if err := st.CreateCert(ctx, record(c, name, profile, now)); err != nil {
			return nil, fmt.Errorf("recording %s certificate: %w", profile, err)
		}
	}
	if err := writeInitFiles(l, cfg, io, rootKey, interKey, certs); err != nil {
		return nil, err
	}
	a, err := Open(ctx, dir, st, opts)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		a.audit(ctx, "ca.created", slog.String("serial", pki.SerialString(c.SerialNumber)),
			slog.String("subject", c.Subject.String()), slog.Time("not_after", c.NotAfter))
	}
	issuerKey := interKey
	if io.RootOnly {
		issuerKey = rootKey
	}
	if err := a.adoptKey(issuerKey); err != nil {
		return nil, err
	}
	if _, err := a.CRL(ctx); err != nil {
		return nil, fmt.Errorf("writing the first CRL: %w", err)
	}
	return a, nil
}

func writeInitFiles(l Layout, cfg Config, io InitOptions, rootKey, interKey crypto.Signer, certs []*x509.Certificate) error {
	rootKeyPath := l.RootKey()
	if io.ExportRoot != "" {
		rootKeyPath = io.ExportRoot
	}
	if err := keystore.WriteFile(rootKeyPath, rootKey, io.Passphrase); err != nil {
		return err
	}
	if err := writePublic(l.RootCert(), pki.EncodeCertificates(certs[0])); err != nil {
		return err
	}
	if interKey != nil {
		if err := keystore.WriteFile(l.IntermediateKey(), interKey, io.Passphrase); err != nil {
			return err
		}
		if err := writePublic(l.IntermediateCert(), pki.EncodeCertificates(certs[1])); err != nil {
			return err
		}
	}
	bundle := make([]*x509.Certificate, 0, 2)
	for i := len(certs) - 1; i >= 0; i-- {
		bundle = append(bundle, certs[i])
	}
	if err := writePublic(l.Bundle(), pki.EncodeCertificates(bundle...)); err != nil {
		return err
	}
	data, err := cfg.Marshal()
	if err != nil {
		return err
	}
	// The settings file goes last: its presence is what makes the
	// directory a CA, so a crash before here leaves no half CA that opens.
	return writePublic(l.Config(), data)
}

func selfSign(opts Options, key crypto.Signer, r pki.Request) (*x509.Certificate, error) {
	serial, err := pki.NewSerial(opts.Rand)
	if err != nil {
		return nil, err
	}
	tmpl, err := pki.Template(r, serial)
	if err != nil {
		return nil, err
	}
	kt, err := pki.KeyTypeOf(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.SignatureAlgorithm = pki.SignatureAlgorithm(kt)
	der, err := x509.CreateCertificate(opts.Rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	if err := pki.LintDER(der, pki.LintOptions{}); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// sign issues r under issuer with key, linting first with a throwaway key.
func sign(opts Options, issuer *x509.Certificate, key crypto.Signer, r pki.Request) (*x509.Certificate, error) {
	serial, err := pki.NewSerial(opts.Rand)
	if err != nil {
		return nil, err
	}
	tmpl, err := pki.Template(r, serial)
	if err != nil {
		return nil, err
	}
	kt, err := pki.KeyTypeOf(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl.SignatureAlgorithm = pki.SignatureAlgorithm(kt)
	linter, err := pki.NewLinter(issuer, kt, pki.LintOptions{OfflineRevocation: len(r.CRLURLs) == 0 && len(r.OCSPURLs) == 0})
	if err != nil {
		return nil, err
	}
	return signWith(opts, issuer, key, linter, tmpl, r.PublicKey)
}

func signWith(opts Options, issuer *x509.Certificate, key crypto.Signer, linter *pki.Linter, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	if err := linter.Check(tmpl, pub); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(opts.Rand, tmpl, issuer, pub, key)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return x509.ParseCertificate(der)
}

func record(c *x509.Certificate, name string, p pki.Profile, now time.Time) *store.Cert {
	return &store.Cert{
		Serial: pki.SerialString(c.SerialNumber), Name: name, Profile: string(p),
		Issuer: issuerID(c), Subject: c.Subject.String(),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, DER: c.Raw,
		Status: store.StatusActive, CreatedAt: now,
	}
}

// issuerID is how the store names a certificate's issuer: the hex key
// identifier of the CA that signed it (its own for a self-signed root).
func issuerID(c *x509.Certificate) string {
	if len(c.AuthorityKeyId) == 0 {
		return fmt.Sprintf("%x", c.SubjectKeyId)
	}
	return fmt.Sprintf("%x", c.AuthorityKeyId)
}
