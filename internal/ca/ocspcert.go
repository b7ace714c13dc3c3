package ca

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// responderName is the store name of the delegated OCSP responder
// certificate (reserved: no leaf can take it).
const responderName = "ocsp-responder"

// errReissue: the CA directory holds no usable responder certificate
// (none yet, a damaged one, or one of a previous issuer), and a new one is
// issued. A key that cannot be decrypted is not such a case: a wrong
// passphrase must stop the responder, not replace its key.
var errReissue = errors.New("no usable OCSP responder certificate")

// renewRetry spaces failed renewals of the responder certificate: each
// costs a lint and a signature, and the old certificate still serves.
const renewRetry = time.Minute

// loadResponder reads the responder certificate and key, and checks that
// the issuing CA signed the one for the other with OCSP signing as its
// purpose.
func (a *Authority) loadResponder() (*responderKey, error) {
	data, err := os.ReadFile(a.layout.OCSPCert())
	if errors.Is(err, os.ErrNotExist) {
		return nil, errReissue
	}
	if err != nil {
		return nil, fmt.Errorf("reading OCSP responder certificate: %w", err)
	}
	certs, err := pki.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errReissue, a.layout.OCSPCert(), err)
	}
	cert := certs[0]
	if err := cert.CheckSignatureFrom(a.issuer); err != nil {
		return nil, fmt.Errorf("%w: %s is not signed by the issuing CA: %w", errReissue, a.layout.OCSPCert(), err)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return nil, fmt.Errorf("%w: %s is not an OCSP signing certificate", errReissue, a.layout.OCSPCert())
	}
	key, err := keystore.LoadFile(a.layout.OCSPKey(), a.opts.Passphrase)
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, keystore.ErrMalformedKey):
		return nil, fmt.Errorf("%w: %w", errReissue, err)
	case err != nil:
		return nil, fmt.Errorf("OCSP responder key: %w", err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("%w: %s does not match %s", errReissue, a.layout.OCSPKey(), a.layout.OCSPCert())
	}
	return &responderKey{cert: cert, key: key}, nil
}

// responderDue reports whether c has less than a third of its life left.
func (a *Authority) responderDue(c *x509.Certificate) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Sub(a.opts.Now()) < life/3
}

// issueResponder issues a delegated responder certificate (RFC 6960
// §4.2.2.2: EKU OCSPSigning, id-pkix-ocsp-nocheck) for a fresh P-256 key,
// lints and signs it like any certificate, records it under
// responderName (replacing the previous one), and only then writes key
// and certificate. The key is encrypted with the CA passphrase when the
// issuing key is.
func (a *Authority) issueResponder(ctx context.Context, lifetime time.Duration) (*responderKey, error) {
	issuerKey, linter, err := a.issuerKey()
	if err != nil {
		return nil, err
	}
	key, err := pki.GenerateKey(pki.KeyP256, a.opts.Rand)
	if err != nil {
		return nil, err
	}
	now := a.opts.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(a.issuer.NotAfter) {
		notAfter = a.issuer.NotAfter
	}
	subj := pkix.Name{CommonName: a.issuer.Subject.CommonName + " OCSP Responder"}
	if a.cfg.Organization != "" {
		subj.Organization = []string{a.cfg.Organization}
	}
	if a.cfg.Country != "" {
		subj.Country = []string{a.cfg.Country}
	}
	serial, err := pki.NewSerial(a.opts.Rand)
	if err != nil {
		return nil, err
	}
	tmpl, err := pki.Template(pki.Request{
		Profile: pki.ProfileOCSP, Subject: subj, PublicKey: key.Public(),
		NotBefore: now.Add(-time.Minute), NotAfter: notAfter,
	}, serial)
	if err != nil {
		return nil, err
	}
	tmpl.SignatureAlgorithm = a.sigAlg
	cert, err := signWith(a.opts, a.issuer, issuerKey, linter, tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("issuing the OCSP responder certificate: %w", err)
	}
	pass, err := a.keyPassphrase()
	if err != nil {
		return nil, err
	}
	keyPEM, err := keystore.Marshal(key, pass)
	if err != nil {
		return nil, err
	}
	var b atomicfile.Batch
	// The key first: Commit renames in order, and a certificate should
	// never be visible before its key.
	if err := b.AddAll(
		atomicfile.File{Path: a.layout.OCSPKey(), Data: keyPEM, Perm: keyFileMode},
		atomicfile.File{Path: a.layout.OCSPCert(), Data: pki.EncodeCertificates(cert), Perm: publicFileMode},
	); err != nil {
		return nil, err
	}
	rec := record(cert, responderName, pki.ProfileOCSP, now)
	if err := a.recordResponder(ctx, rec); err != nil {
		b.Abort()
		return nil, err
	}
	if err := b.Commit(); err != nil {
		return nil, fmt.Errorf("OCSP responder certificate %s is recorded, but %w", rec.Serial, err)
	}
	a.audit(ctx, "ocsp.responder_issued", certAttrs(rec, cert)...)
	return &responderKey{cert: cert, key: key}, nil
}

// recordResponder records rec as the active responder certificate,
// superseding the previous one.
func (a *Authority) recordResponder(ctx context.Context, rec *store.Cert) error {
	old, err := a.store.ActiveCert(ctx, responderName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return a.store.CreateCert(ctx, rec)
	case err != nil:
		return err
	}
	return a.store.Replace(ctx, old, rec)
}

// keyPassphrase returns the CA passphrase when the issuing key is
// encrypted at rest, and nil when the operator chose keys in clear.
func (a *Authority) keyPassphrase() ([]byte, error) {
	path := a.layout.IntermediateKey()
	if len(a.chain) == 0 {
		path = a.layout.RootKey()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the issuing key: %w", err)
	}
	if !keystore.Encrypted(data) {
		return nil, nil
	}
	if a.opts.Passphrase == nil {
		return nil, keystore.ErrNoPassphrase
	}
	return a.opts.Passphrase()
}

// signer returns the responder key to sign with at now, renewing the
// certificate first when it is due: in this request if no other renewal
// is under way, while the others go on with the old certificate, which
// has a third of its life left. Only an expired certificate makes
// requests wait for the renewal.
func (r *Responder) signer(ctx context.Context, now time.Time) (*responderKey, error) {
	rk := r.cur.Load()
	if !r.a.responderDue(rk.cert) {
		return rk, nil
	}
	expired := !now.Before(rk.cert.NotAfter)
	if expired {
		r.renew.Lock()
	} else if !r.renew.TryLock() {
		return rk, nil
	}
	defer r.renew.Unlock()
	if rk = r.cur.Load(); !r.a.responderDue(rk.cert) {
		return rk, nil
	}
	if !expired && now.Sub(r.lastRenew) < renewRetry {
		return rk, nil
	}
	r.lastRenew = now
	next, err := r.a.issueResponder(ctx, r.opts.CertLifetime)
	if err != nil {
		if expired {
			return nil, fmt.Errorf("OCSP responder certificate expired at %s: %w", rk.cert.NotAfter, err)
		}
		r.a.opts.Logger.Warn("renewing the OCSP responder certificate; the current one still serves",
			slog.Time("not_after", rk.cert.NotAfter), slog.String("error", err.Error()))
		return rk, nil
	}
	r.cur.Store(next)
	// Answers signed by the old certificate stay valid, but new ones
	// should carry the new certificate.
	r.cache.purge()
	return next, nil
}
