package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// Signer is the part of the CA the RA uses; *ca.Authority implements it.
// The CA runs its own checks again (CSR, name policy, lifetime, lint): the
// RA decides who gets a certificate, the CA what a certificate may say.
type Signer interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*ca.Issued, error)
}

// ErrNoSigner: the Service was built without a Signer.
var ErrNoSigner = errors.New("no signer configured")

// Issuance is an issued request and its certificate.
type Issuance struct {
	Request *store.Request
	Cert    *x509.Certificate
}

// Issue has the CA sign an approved request's CSR with the device profile
// and records the serial on the request, which becomes issued (its device
// active). The certificate's name is the device ID, not the hostname the
// device claims: IDs are unique and unguessable, hostnames are neither, and
// the CA's one-active-certificate-per-name rule then makes a second,
// concurrent Issue of the same request fail with store.ErrNameTaken instead
// of signing twice.
func (s *Service) Issue(ctx context.Context, id store.RequestID) (*Issuance, error) {
	if s.signer == nil {
		return nil, fmt.Errorf("issuing request %s: %w", id, ErrNoSigner)
	}
	r, err := s.store.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("issuing request %s: %w", id, err)
	}
	if r.State != store.RequestApproved {
		return nil, fmt.Errorf("issuing request %s: %w: request is %s, not approved", id, store.ErrConflict, r.State)
	}
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("issuing request %s: stored CSR: %w", id, err)
	}
	out, err := s.signer.Issue(ctx, ca.IssueRequest{Profile: pki.ProfileDevice, Name: string(r.Device), CSR: csr})
	if err != nil {
		return nil, fmt.Errorf("issuing request %s: %w", id, err)
	}
	serial := pki.SerialString(out.Cert.SerialNumber)
	// The certificate is recorded by the CA already; if this fails the
	// request stays approved and the serial is in the CA's store and
	// audit log (ADR-20 lists reconciling it as open).
	if r, err = s.store.MarkIssued(ctx, id, serial, s.now()); err != nil {
		return nil, fmt.Errorf("issuing request %s: certificate %s signed but not recorded on the request: %w", id, serial, err)
	}
	s.auditEvent(ctx, "enroll.issued", slog.String("request", string(r.ID)), slog.String("device", string(r.Device)),
		slog.String("serial", serial), slog.String("hostname", r.Facts.Hostname))
	return &Issuance{Request: r, Cert: out.Cert}, nil
}
