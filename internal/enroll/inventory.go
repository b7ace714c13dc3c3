package enroll

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// The inventory reads go through the RA rather than around it, so front
// ends (the API now, the admin pages next) depend on one package and the
// RA can add rules to reads (roles, redaction) in one place.

// Requests lists enrollment requests, one page at a time.
func (s *Service) Requests(ctx context.Context, f store.RequestFilter) ([]*store.Request, error) {
	return s.store.ListRequests(ctx, f)
}

// Devices lists devices, one page at a time.
func (s *Service) Devices(ctx context.Context, f store.DeviceFilter) ([]*store.Device, error) {
	return s.store.ListDevices(ctx, f)
}

// Device returns one device and its certificates, oldest first.
func (s *Service) Device(ctx context.Context, id store.DeviceID) (*store.Device, []*store.Cert, error) {
	d, err := s.store.Device(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if s.signer == nil {
		return d, nil, nil
	}
	certs, err := s.signer.List(ctx, store.Filter{Name: string(id)})
	if err != nil {
		return nil, nil, fmt.Errorf("certificates of device %s: %w", id, err)
	}
	return d, certs, nil
}

// Tokens lists the bootstrap tokens (hashes only; secrets are never kept).
func (s *Service) Tokens(ctx context.Context) ([]*store.Token, error) {
	return s.store.ListTokens(ctx)
}

// Certs lists certificate records.
func (s *Service) Certs(ctx context.Context, f store.Filter) ([]*store.Cert, error) {
	if s.signer == nil {
		return nil, ErrNoSigner
	}
	return s.signer.List(ctx, f)
}

// Stats are the fleet's numbers.
type Stats struct {
	Devices  map[store.DeviceState]int
	Requests map[store.RequestState]int
	// ExpiringWithin7d and 30d count active device certificates whose
	// NotAfter falls within 7 and 30 days from now (expired ones excluded).
	ExpiringWithin7d  int
	ExpiringWithin30d int
	// EnrollmentsPerDay covers the last 30 days, oldest first.
	EnrollmentsPerDay []store.DayCount
}

// Stats counts devices and requests by state and the device
// certificates about to expire.
func (s *Service) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	var err error
	if st.Devices, err = s.store.CountDevices(ctx); err != nil {
		return nil, err
	}
	if st.Requests, err = s.store.CountRequests(ctx); err != nil {
		return nil, err
	}
	days, err := s.EnrollmentsPerDay(ctx, 30)
	if err != nil {
		return nil, err
	}
	st.EnrollmentsPerDay = days
	if s.signer == nil {
		return &st, nil
	}
	now := s.now()
	certs, err := s.signer.List(ctx, store.Filter{Profile: "device", Status: store.StatusActive,
		NotAfterAfter: now, NotAfterBefore: now.Add(30 * 24 * time.Hour)})
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		st.ExpiringWithin30d++
		if c.NotAfter.Before(now.Add(7 * 24 * time.Hour)) {
			st.ExpiringWithin7d++
		}
	}
	return &st, nil
}

// Certificate returns the record of one certificate by serial.
func (s *Service) Certificate(ctx context.Context, serial string) (*store.Cert, error) {
	if s.signer == nil {
		return nil, ErrNoSigner
	}
	return s.signer.Find(ctx, serial)
}
