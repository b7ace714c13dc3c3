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
	RenewCSR(ctx context.Context, ref string, csr *x509.CertificateRequest) (*ca.Issued, error)
	Revoke(ctx context.Context, ref string, reason int) (*store.Cert, error)
	Find(ctx context.Context, ref string) (*store.Cert, error)
	List(ctx context.Context, f store.Filter) ([]*store.Cert, error)
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
	if d, err := s.store.Device(ctx, r.Device); err != nil {
		return nil, fmt.Errorf("issuing request %s: %w", id, err)
	} else if d.State == store.DeviceRevoked {
		return nil, fmt.Errorf("issuing request %s: %w", id, ErrDeviceRevoked)
	}
	csr, err := x509.ParseCertificateRequest(r.CSR)
	if err != nil {
		return nil, fmt.Errorf("issuing request %s: stored CSR: %w", id, err)
	}
	var (
		cert   *x509.Certificate
		serial string
	)
	out, err := s.signer.Issue(ctx, ca.IssueRequest{Profile: pki.ProfileDevice, Name: string(r.Device), CSR: csr})
	switch {
	case err == nil:
		cert, serial = out.Cert, pki.SerialString(out.Cert.SerialNumber)
	case errors.Is(err, store.ErrNameTaken):
		// The device ID names one request's device only, so an active
		// certificate under it is this request's: signed by a concurrent
		// Issue, or by one that died before MarkIssued. Record that one.
		held, ferr := s.signer.Find(ctx, string(r.Device))
		if ferr != nil {
			return nil, fmt.Errorf("issuing request %s: %w (and finding the certificate held: %v)", id, err, ferr)
		}
		if cert, err = x509.ParseCertificate(held.DER); err != nil {
			return nil, fmt.Errorf("issuing request %s: stored certificate %s: %w", id, held.Serial, err)
		}
		serial = held.Serial
	default:
		return nil, fmt.Errorf("issuing request %s: %w", id, err)
	}
	// The certificate is recorded by the CA already; if this fails the
	// request stays approved and the serial is in the CA's store and
	// audit log (ADR-20 lists reconciling it as open).
	if r, err = s.store.MarkIssued(ctx, id, serial, s.now()); err != nil {
		return nil, fmt.Errorf("issuing request %s: certificate %s signed but not recorded on the request: %w", id, serial, err)
	}
	s.auditEvent(ctx, "enroll.issued", slog.String("request", string(r.ID)), slog.String("device", string(r.Device)),
		slog.String("serial", serial), slog.String("hostname", r.Facts.Hostname))
	return &Issuance{Request: r, Cert: cert}, nil
}

// Settle brings a request to where its decision leads: an approved one is
// issued (Issue), whatever stopped that before (a crash, a failed CA
// call); any other state is returned as it is. Front ends call it after
// a decision and when a device polls, so a device never waits on an
// approval that was given.
func (s *Service) Settle(ctx context.Context, id store.RequestID) (*store.Request, error) {
	r, err := s.store.Request(ctx, id)
	if err != nil || r.State != store.RequestApproved || s.signer == nil {
		return r, err
	}
	out, err := s.Issue(ctx, id)
	if errors.Is(err, store.ErrConflict) {
		// Another caller settled it meanwhile.
		return s.store.Request(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	return out.Request, nil
}
