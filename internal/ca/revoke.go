package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// reasons are the RFC 5280 §5.3.1 CRLReason codes, by the names openssl
// and easy-rsa use. 7 is unassigned; removeFromCRL (8) only appears in
// delta CRLs, which this CA does not make.
var reasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"cACompromise":         2,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"certificateHold":      6,
	"privilegeWithdrawn":   9,
	"aACompromise":         10,
}

// ParseReason accepts a reason name, case-insensitively.
func ParseReason(s string) (int, error) {
	for name, code := range reasons {
		if strings.EqualFold(name, s) {
			if code == 2 || code == 10 {
				return 0, fmt.Errorf("reason %s is for CA certificates; leaves use keyCompromise, superseded, …", name)
			}
			return code, nil
		}
	}
	names := make([]string, 0, len(reasons))
	for n := range reasons {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("unknown reason %q (want one of %s)", s, strings.Join(names, ", "))
}

// ReasonName is the inverse of ParseReason.
func ReasonName(code int) string {
	for n, c := range reasons {
		if c == code {
			return n
		}
	}
	return fmt.Sprintf("reason(%d)", code)
}

// ErrCRLNotPublished: a revocation is recorded but the CRL that publishes
// it could not be signed or written; relying parties still accept the
// certificate until a CRL is.
var ErrCRLNotPublished = errors.New("revoked, but publishing the CRL failed")

// Revoke marks the certificate ref points to revoked and publishes a fresh
// CRL, so no one has to remember a second command. With Options.CRLOnDemand
// it records the revocation only: the caller's CRLCache signs once for a
// batch (a device's certificates) instead of once per certificate.
func (a *Authority) Revoke(ctx context.Context, ref string, reason int) (*store.Cert, error) {
	c, err := a.Find(ctx, ref)
	if err != nil {
		return nil, err
	}
	if c.Issuer != a.issuerSKI {
		return nil, fmt.Errorf("%s (serial %s) is not issued by this CA's issuing certificate; revoking CA certificates is not supported", c.Name, c.Serial)
	}
	// Unlock first: a revocation without the CRL that publishes it would
	// look done while relying parties still accept the certificate.
	if err := a.Unlock(); err != nil {
		return nil, err
	}
	rec, err := a.store.Revoke(ctx, c.Serial, a.opts.Now(), reason)
	if err != nil {
		return nil, err
	}
	a.audit(ctx, "cert.revoked", slog.String("serial", rec.Serial), slog.String("name", rec.Name),
		slog.String("reason", ReasonName(reason)))
	if a.opts.CRLOnDemand {
		return rec, nil
	}
	if _, err := a.CRL(ctx); err != nil {
		return rec, fmt.Errorf("%w: %w", ErrCRLNotPublished, err)
	}
	return rec, nil
}

// CRL signs a new CRL over every unexpired revoked certificate of the
// issuer, with the next CRL number, writes it to crl.pem atomically, and
// returns what it signed (Raw holds the DER).
func (a *Authority) CRL(ctx context.Context) (*x509.RevocationList, error) {
	key, _, err := a.issuerKey()
	if err != nil {
		return nil, err
	}
	now := a.opts.Now()
	revoked, err := a.store.Revoked(ctx, a.issuerSKI, now)
	if err != nil {
		return nil, fmt.Errorf("listing revocations: %w", err)
	}
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("stored serial %q is not hex", r.Serial)
		}
		entries[i] = x509.RevocationListEntry{SerialNumber: n, RevocationTime: r.RevokedAt.UTC(), ReasonCode: r.Reason}
	}
	number, err := a.store.NextCRLNumber(ctx, a.issuerSKI)
	if err != nil {
		return nil, fmt.Errorf("allocating CRL number: %w", err)
	}
	tmpl := &x509.RevocationList{
		SignatureAlgorithm:        a.sigAlg,
		Number:                    big.NewInt(number),
		ThisUpdate:                now.UTC().Truncate(time.Second),
		NextUpdate:                now.UTC().Add(time.Duration(a.cfg.Lifetimes.CRL)).Truncate(time.Second),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(a.opts.Rand, tmpl, a.issuer, key)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	if err := writePublic(a.layout.CRL(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})); err != nil {
		return nil, err
	}
	a.audit(ctx, "crl.generated", slog.Int64("crl_number", number), slog.Int("entries", len(entries)),
		slog.Time("next_update", tmpl.NextUpdate))
	// The template with its encoding is what was signed; parsing 100,000
	// entries back would cost a fifth of the time again.
	tmpl.Raw = der
	return tmpl, nil
}
