package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// Errors of the renewal and revocation rules.
var (
	// ErrDeviceRevoked: an admin revoked the device; it gets nothing more
	// and must enroll again (and be approved again).
	ErrDeviceRevoked = errors.New("device is revoked")
	// ErrNotADevice: the certificate presented is not a device certificate
	// of this CA (an admin's, a server's, or unknown).
	ErrNotADevice = errors.New("not a device certificate of this CA")
	// ErrExpiredBeyondGrace: the certificate expired longer ago than
	// Config.RenewalGrace allows.
	ErrExpiredBeyondGrace = errors.New("certificate expired beyond the renewal grace period")
)

// Renewal is a renewed device certificate.
type Renewal struct {
	Device *store.Device
	Cert   *x509.Certificate
	// Replaces is the serial of the certificate it supersedes.
	Replaces string
}

// Renew renews the device certificate the caller authenticated with
// (front ends verify the chain and the proof of possession: an mTLS
// handshake). The rules: the certificate is a device certificate on
// record, neither it nor its device is revoked, and it has not expired
// longer than RenewalGrace ago. With csr nil the same key is certified
// again, otherwise the CSR's. The names never change: renewal extends
// what was approved and needs no approval of its own. It is the device's
// check-in too.
func (s *Service) Renew(ctx context.Context, presented *x509.Certificate, csr *x509.CertificateRequest, agentVersion string) (*Renewal, error) {
	if s.signer == nil {
		return nil, fmt.Errorf("renewing: %w", ErrNoSigner)
	}
	serial := pki.SerialString(presented.SerialNumber)
	dev, rec, err := s.deviceOf(ctx, presented)
	if err != nil {
		return nil, fmt.Errorf("renewing %s: %w", serial, err)
	}
	now := s.now()
	if now.After(rec.NotAfter.Add(s.cfg.RenewalGrace)) {
		return nil, fmt.Errorf("renewing %s: %w (expired %s, grace %s)", serial, ErrExpiredBeyondGrace,
			rec.NotAfter.UTC().Format(time.RFC3339), s.cfg.RenewalGrace)
	}
	out, err := s.signer.RenewCSR(ctx, rec.Serial, csr)
	if err != nil {
		return nil, fmt.Errorf("renewing %s: %w", serial, err)
	}
	if d, err := s.store.TouchDevice(ctx, dev.ID, now, agentVersion); err == nil {
		dev = d
	} else {
		// The certificate is issued and recorded; a missed last-seen is
		// not worth failing the renewal over.
		s.log.LogAttrs(ctx, slog.LevelWarn, "recording check-in failed", slog.String("device", string(dev.ID)), slog.Any("err", err))
	}
	s.auditEvent(ctx, "enroll.renewed", slog.String("device", string(dev.ID)), slog.String("serial", out.Record.Serial),
		slog.String("replaces", rec.Serial), slog.Bool("rekey", csr != nil), slog.Time("not_after", out.Record.NotAfter))
	return &Renewal{Device: dev, Cert: out.Cert, Replaces: rec.Serial}, nil
}

// CheckIn authenticates a device by its certificate, as Renew does minus
// the expiry grace (a device that can check in holds a valid certificate),
// and records that it was seen.
func (s *Service) CheckIn(ctx context.Context, presented *x509.Certificate, agentVersion string) (*store.Device, error) {
	dev, _, err := s.deviceOf(ctx, presented)
	if err != nil {
		return nil, err
	}
	return s.store.TouchDevice(ctx, dev.ID, s.now(), agentVersion)
}

// deviceOf finds the record and the device of a presented certificate and
// applies the rules every device call shares.
func (s *Service) deviceOf(ctx context.Context, presented *x509.Certificate) (*store.Device, *store.Cert, error) {
	if s.signer == nil {
		return nil, nil, ErrNoSigner
	}
	rec, err := s.signer.Find(ctx, pki.SerialString(presented.SerialNumber))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotADevice
	}
	if err != nil {
		return nil, nil, err
	}
	// The record must be this very certificate, not one that shares its
	// serial by accident or forgery.
	if rec.Profile != string(pki.ProfileDevice) || string(rec.DER) != string(presented.Raw) {
		return nil, nil, ErrNotADevice
	}
	dev, err := s.store.Device(ctx, store.DeviceID(rec.Name))
	if errors.Is(err, store.ErrNotFound) {
		// A device certificate from `ca issue device`, outside enrollment.
		return nil, nil, ErrNotADevice
	}
	if err != nil {
		return nil, nil, err
	}
	if dev.State == store.DeviceRevoked {
		return nil, nil, fmt.Errorf("%w (device %s)", ErrDeviceRevoked, dev.ID)
	}
	if rec.Status == store.StatusRevoked {
		return nil, nil, fmt.Errorf("%w (serial %s)", ca.ErrRevoked, rec.Serial)
	}
	return dev, rec, nil
}

// RevokeDevice revokes a device and every certificate it holds that is
// not revoked yet, each through the CA (so each lands on the CRL). The
// device is marked first: should a certificate's revocation fail, the
// device is refused renewal already, and running it again finishes.
func (s *Service) RevokeDevice(ctx context.Context, actor string, id store.DeviceID, reason int) (*store.Device, []string, error) {
	if actor == "" {
		return nil, nil, fmt.Errorf("revoking device %s: %w", id, ErrNoActor)
	}
	if s.signer == nil {
		return nil, nil, fmt.Errorf("revoking device %s: %w", id, ErrNoSigner)
	}
	dev, err := s.store.RevokeDevice(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("revoking device %s: %w", id, err)
	}
	certs, err := s.signer.List(ctx, store.Filter{Name: string(id)})
	if err != nil {
		return dev, nil, fmt.Errorf("revoking device %s: listing its certificates: %w", id, err)
	}
	var revoked []string
	for _, c := range certs {
		if c.Status == store.StatusRevoked {
			continue
		}
		if _, err := s.signer.Revoke(ctx, c.Serial, reason); err != nil && !errors.Is(err, store.ErrAlreadyRevoked) {
			return dev, revoked, fmt.Errorf("revoking device %s: certificate %s: %w", id, c.Serial, err)
		}
		revoked = append(revoked, c.Serial)
	}
	s.auditEvent(ctx, "device.revoked", slog.String("device", string(id)), slog.String("actor", actor),
		slog.String("reason", ca.ReasonName(reason)), slog.Any("serials", revoked))
	return dev, revoked, nil
}

// RevokeCert revokes one certificate on an admin's word.
func (s *Service) RevokeCert(ctx context.Context, actor, serial string, reason int) (*store.Cert, error) {
	if actor == "" {
		return nil, fmt.Errorf("revoking %s: %w", serial, ErrNoActor)
	}
	if s.signer == nil {
		return nil, fmt.Errorf("revoking %s: %w", serial, ErrNoSigner)
	}
	c, err := s.signer.Revoke(ctx, serial, reason)
	if err != nil {
		return nil, fmt.Errorf("revoking %s: %w", serial, err)
	}
	s.auditEvent(ctx, "cert.revoked.by_admin", slog.String("serial", c.Serial), slog.String("name", c.Name),
		slog.String("actor", actor), slog.String("reason", ca.ReasonName(reason)))
	return c, nil
}

// ErrNotAnAdmin: the certificate presented is not a client certificate
// of this CA on record.
var ErrNotAnAdmin = errors.New("not an admin client certificate of this CA")

// CheckClient accepts an admin's client certificate: on record as this
// very certificate, profile client, not revoked. (Which role it has is the
// front end's mapping; that it is valid at all is the CA's record.)
func (s *Service) CheckClient(ctx context.Context, presented *x509.Certificate) (*store.Cert, error) {
	if s.signer == nil {
		return nil, ErrNoSigner
	}
	rec, err := s.signer.Find(ctx, pki.SerialString(presented.SerialNumber))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotAnAdmin
	}
	if err != nil {
		return nil, err
	}
	if rec.Profile != string(pki.ProfileClient) || string(rec.DER) != string(presented.Raw) {
		return nil, ErrNotAnAdmin
	}
	if rec.Status == store.StatusRevoked {
		return nil, fmt.Errorf("%w (serial %s)", ca.ErrRevoked, rec.Serial)
	}
	return rec, nil
}
