package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// IssueRequest asks for a leaf certificate. With CSR set, the public key and
// the names come from the CSR (after CheckCSR and the name policy);
// otherwise the CA generates a key of KeyType and uses Names.
type IssueRequest struct {
	Profile pki.Profile
	Name    string
	Names   pki.Names
	CSR     *x509.CertificateRequest
	KeyType pki.KeyType
	// Lifetime overrides the profile's configured lifetime when positive.
	Lifetime time.Duration
}

// MinLifetime is the shortest certificate lifetime the CA issues.
const MinLifetime = 5 * time.Minute

// MaxServerLifetime is the longest server certificate lifetime the CA
// issues, in ca.yaml or on request: Apple and Chrome refuse server
// certificates valid longer. The CA/B Forum's shorter limits (SC-081) are
// for the web PKI and are not enforced here (see pki's lint exemptions).
const MaxServerLifetime = 398 * day

// Issued is the outcome of an issuance or renewal.
type Issued struct {
	Record *store.Cert
	Cert   *x509.Certificate
	// Key is the generated private key, nil when the requester holds it.
	Key crypto.Signer
	// Files lists what was written.
	Files []string
}

// Issue checks req, builds the certificate from the CA's own template,
// lints it, signs it, records it, and only then writes it out.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	names := req.Names
	var pub crypto.PublicKey
	if req.CSR != nil {
		var err error
		if names, err = pki.CheckCSR(req.CSR, req.Profile == pki.ProfileServer); err != nil {
			return nil, err
		}
		pub = req.CSR.PublicKey
	}
	names = a.withDefaultNames(req.Profile, req.Name, names)
	lifetime := req.Lifetime
	if lifetime <= 0 {
		lifetime = a.cfg.lifetime(req.Profile)
	}
	if err := a.checkLeaf(req.Profile, req.Name, names, lifetime); err != nil {
		return nil, err
	}
	// Fail on a taken name before generating or signing anything; the
	// store checks again atomically when recording.
	if cur, err := a.store.ActiveCert(ctx, req.Name); err == nil && !cur.Expired(a.opts.Now()) {
		return nil, fmt.Errorf("%q: %w (serial %s; renew or revoke it)", req.Name, store.ErrNameTaken, cur.Serial)
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	key, linter, err := a.issuerKey()
	if err != nil {
		return nil, err
	}
	var leafKey crypto.Signer
	if pub == nil {
		kt := req.KeyType
		if kt == "" {
			kt = a.cfg.KeyType
		}
		if leafKey, err = pki.GenerateKey(kt, a.opts.Rand); err != nil {
			return nil, err
		}
		pub = leafKey.Public()
	}
	cert, err := a.signLeaf(key, linter, req.Profile, req.Name, names, pub, lifetime)
	if err != nil {
		return nil, err
	}
	rec := record(cert, req.Name, req.Profile, a.opts.Now())
	out, err := a.publish(ctx, cert, leafKey, rec, func() error { return a.store.CreateCert(ctx, rec) })
	if err != nil {
		return out, err
	}
	a.audit(ctx, "cert.issued", certAttrs(rec, cert)...)
	return out, nil
}

// checkLeaf applies the rules of ca.yaml in force now to a leaf about to be
// signed. Issue and Renew both call it, so that renewal, which an unattended
// server may run for thousands of devices, never certifies a name or a
// lifetime that a new issuance would refuse.
func (a *Authority) checkLeaf(p pki.Profile, name string, names pki.Names, lifetime time.Duration) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if !isLeaf(p) {
		return fmt.Errorf("profile %q: want server, client or device", p)
	}
	if err := a.cfg.NamePolicy.Check(names); err != nil {
		return err
	}
	if lifetime < MinLifetime {
		return fmt.Errorf("lifetime %s: shorter than %s, the certificate would expire before it is deployed", lifetime, MinLifetime)
	}
	if p == pki.ProfileServer && lifetime > MaxServerLifetime {
		return fmt.Errorf("lifetime %s: over %d days; TLS clients (Apple, Chrome) refuse such server certificates", Duration(lifetime), MaxServerLifetime/day)
	}
	return nil
}

func isLeaf(p pki.Profile) bool {
	return slices.Contains(pki.LeafProfiles(), p)
}

// withDefaultNames gives a device without a URI its fleet identity,
// spiffe://<trust_domain>/device/<name>, which tunnel rules match on.
func (a *Authority) withDefaultNames(p pki.Profile, name string, n pki.Names) pki.Names {
	if p == pki.ProfileDevice && len(n.URIs) == 0 {
		n.URIs = []*url.URL{{Scheme: "spiffe", Host: a.cfg.TrustDomain, Path: "/device/" + name}}
	}
	return n
}

func (a *Authority) signLeaf(key crypto.Signer, linter *pki.Linter, p pki.Profile, name string, names pki.Names, pub crypto.PublicKey, lifetime time.Duration) (*x509.Certificate, error) {
	now := a.opts.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(a.issuer.NotAfter) {
		notAfter = a.issuer.NotAfter
	}
	subj := pkix.Name{CommonName: name}
	if a.cfg.Organization != "" {
		subj.Organization = []string{a.cfg.Organization}
	}
	if p == pki.ProfileDevice {
		// Device-oriented subject: the OU says what the holder is, so
		// ghostunnel-style --allow-ou rules can admit all devices at once.
		subj.OrganizationalUnit = []string{"devices"}
	}
	if a.cfg.Country != "" {
		subj.Country = []string{a.cfg.Country}
	}
	serial, err := pki.NewSerial(a.opts.Rand)
	if err != nil {
		return nil, err
	}
	tmpl, err := pki.Template(pki.Request{
		Profile: p, Subject: subj, Names: names, PublicKey: pub,
		NotBefore: now.Add(-time.Minute), NotAfter: notAfter,
		CRLURLs: a.cfg.URLs.CRL, OCSPURLs: a.cfg.URLs.OCSP, IssuerURLs: a.cfg.URLs.Issuer,
	}, serial)
	if err != nil {
		return nil, err
	}
	tmpl.SignatureAlgorithm = a.sigAlg
	return signWith(a.opts, a.issuer, key, linter, tmpl, pub)
}

// stageLeaf writes the key (if generated), the certificate and its chain
// under temporary names. Nothing is visible until the batch commits, which
// happens only after the store has the record: a failure to write leaves
// no record, and a failure to record leaves no file.
func (a *Authority) stageLeaf(name string, cert *x509.Certificate, key crypto.Signer) (*atomicfile.Batch, []string, error) {
	chain := append([]*x509.Certificate{cert}, a.chain...)
	files := []atomicfile.File{
		{Path: a.layout.Cert(name), Data: pki.EncodeCertificates(cert), Perm: publicFileMode},
		{Path: a.layout.Chain(name), Data: pki.EncodeCertificates(chain...), Perm: publicFileMode},
	}
	if key != nil {
		data, err := keystore.Marshal(key, nil)
		if err != nil {
			return nil, nil, err
		}
		// The key first: Commit renames in order, and a certificate file
		// should never be visible before its key.
		files = append([]atomicfile.File{{Path: a.layout.Key(name), Data: data, Perm: keyFileMode}}, files...)
	}
	var b atomicfile.Batch
	if err := b.AddAll(files...); err != nil {
		return nil, nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	return &b, paths, nil
}

// publish records the certificate (through record) and then makes its staged
// files visible.
func (a *Authority) publish(ctx context.Context, cert *x509.Certificate, key crypto.Signer, rec *store.Cert, record func() error) (*Issued, error) {
	if a.opts.RecordOnly && key == nil {
		if err := record(); err != nil {
			return nil, err
		}
		return &Issued{Record: rec, Cert: cert}, nil
	}
	batch, files, err := a.stageLeaf(rec.Name, cert, key)
	if err != nil {
		return nil, err
	}
	if err := record(); err != nil {
		batch.Abort()
		return nil, err
	}
	out := &Issued{Record: rec, Cert: cert, Key: key, Files: files}
	if err := batch.Commit(); err != nil {
		return out, fmt.Errorf("certificate %s is recorded, but %w", rec.Serial, err)
	}
	return out, nil
}

func certAttrs(rec *store.Cert, c *x509.Certificate) []slog.Attr {
	return []slog.Attr{
		slog.String("serial", rec.Serial), slog.String("name", rec.Name),
		slog.String("profile", rec.Profile), slog.String("subject", rec.Subject),
		slog.Any("dns", c.DNSNames), slog.Int("uris", len(c.URIs)),
		slog.Time("not_after", rec.NotAfter),
	}
}

// Find resolves a reference to a certificate record: a serial (hex, with
// or without colons), or a name: its active certificate or, when it has
// none, the last one it held (revoked, say), so that "not found" never
// hides a certificate that exists.
func (a *Authority) Find(ctx context.Context, ref string) (*store.Cert, error) {
	if CheckName(ref) == nil {
		c, err := a.store.ActiveCert(ctx, ref)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return c, err
		}
		held, err := a.store.List(ctx, store.Filter{Name: ref})
		if err != nil {
			return nil, err
		}
		if len(held) > 0 {
			return held[len(held)-1], nil
		}
	}
	if n, err := pki.ParseSerial(ref); err == nil {
		c, err := a.store.Cert(ctx, pki.SerialString(n))
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return c, err
		}
	}
	return nil, fmt.Errorf("%q: no certificate of that name or serial: %w", ref, store.ErrNotFound)
}

// ErrRevoked: the certificate is revoked, and what was asked needs a
// valid one.
var ErrRevoked = errors.New("certificate is revoked")

// revokedError names the revoked certificate and why it was revoked.
type revokedError struct{ rec *store.Cert }

func (e revokedError) Error() string {
	return fmt.Sprintf("certificate %q is revoked (%s)", e.rec.Name, ReasonName(e.rec.Reason))
}

func (e revokedError) Unwrap() error { return ErrRevoked }

// usable refuses a revoked certificate for renewal and export; showing,
// listing and revoking it again still work on the record.
func usable(rec *store.Cert) error {
	if rec.Status == store.StatusRevoked {
		return revokedError{rec}
	}
	return nil
}

// Renew issues a fresh certificate with the same profile, name and SAN
// names as the one ref points to, and marks the old one superseded (it
// stays valid until it expires or is revoked, so a rollout has time). With
// rekey a new key is generated; otherwise the old public key is reused.
func (a *Authority) Renew(ctx context.Context, ref string, rekey bool) (*Issued, error) {
	return a.renew(ctx, ref, func(old *store.Cert, oldCert *x509.Certificate) (crypto.PublicKey, crypto.Signer, error) {
		if !rekey {
			return oldCert.PublicKey, nil, nil
		}
		if _, err := os.Stat(a.layout.Key(old.Name)); err != nil {
			return nil, nil, fmt.Errorf("renewing %q with a new key: %w (%s is missing: its holder made the CSR and keeps the key)", old.Name, ErrNoKey, a.layout.Key(old.Name))
		}
		kt, err := pki.KeyTypeOf(oldCert.PublicKey)
		if err != nil {
			return nil, nil, err
		}
		leafKey, err := pki.GenerateKey(kt, a.opts.Rand)
		if err != nil {
			return nil, nil, err
		}
		return leafKey.Public(), leafKey, nil
	})
}

// RenewCSR renews as Renew does for a holder that keeps its own key: with
// csr nil the old public key is certified again; otherwise the CSR's key,
// after CheckCSR (signature, key type). The names still come from the old
// certificate, never from the CSR: renewal extends what was approved.
func (a *Authority) RenewCSR(ctx context.Context, ref string, csr *x509.CertificateRequest) (*Issued, error) {
	return a.renew(ctx, ref, func(_ *store.Cert, oldCert *x509.Certificate) (crypto.PublicKey, crypto.Signer, error) {
		if csr == nil {
			return oldCert.PublicKey, nil, nil
		}
		if _, err := pki.CheckCSR(csr, false); err != nil {
			return nil, nil, err
		}
		return csr.PublicKey, nil, nil
	})
}

// renew is Renew and RenewCSR: key says which public key to certify (and
// the private key, when the CA generated it).
func (a *Authority) renew(ctx context.Context, ref string, key func(*store.Cert, *x509.Certificate) (crypto.PublicKey, crypto.Signer, error)) (*Issued, error) {
	old, err := a.Find(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := usable(old); err != nil {
		return nil, fmt.Errorf("renewing %q: %w; issue a new certificate instead", old.Name, err)
	}
	p := pki.Profile(old.Profile)
	if !isLeaf(p) {
		return nil, fmt.Errorf("renewing a %s certificate is not supported; only server, client and device", p)
	}
	oldCert, err := x509.ParseCertificate(old.DER)
	if err != nil {
		return nil, fmt.Errorf("stored certificate %s: %w", old.Serial, err)
	}
	names, lifetime := pki.NamesOf(oldCert), a.cfg.lifetime(p)
	if err := a.checkLeaf(p, old.Name, names, lifetime); err != nil {
		return nil, fmt.Errorf("renewing %q: %w", old.Name, err)
	}
	pub, leafKey, err := key(old, oldCert)
	if err != nil {
		return nil, fmt.Errorf("renewing %q: %w", old.Name, err)
	}
	issuerKey, linter, err := a.issuerKey()
	if err != nil {
		return nil, err
	}
	cert, err := a.signLeaf(issuerKey, linter, p, old.Name, names, pub, lifetime)
	if err != nil {
		return nil, err
	}
	rec := record(cert, old.Name, p, a.opts.Now())
	out, err := a.publish(ctx, cert, leafKey, rec, func() error { return a.store.Replace(ctx, old, rec) })
	if err != nil {
		return out, err
	}
	a.audit(ctx, "cert.renewed", append(certAttrs(rec, cert), slog.String("replaces", old.Serial), slog.Bool("rekey", !publicKeysEqual(pub, oldCert.PublicKey)))...)
	return out, nil
}

// List returns the records that match f.
func (a *Authority) List(ctx context.Context, f store.Filter) ([]*store.Cert, error) {
	return a.store.List(ctx, f)
}
