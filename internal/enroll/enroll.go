// Package enroll is the registration authority: it decides which device
// gets a certificate. It owns enrollment requests and their approval rules
// (manual by default; bootstrap tokens; an allow-list of device facts), the
// evidence of every decision and its audit event, and bootstrap tokens. It
// signs nothing (internal/ca does) and stores nothing itself
// (internal/store does); front ends (HTTP, SCEP, CLI) translate into its
// calls. See ADR-20 in docs/architecture.md.
package enroll

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// Store is the part of store.Enrollments the RA uses (boulder's
// sa/proto/subsets.go pattern): cmd wires a *sqlite.Store into it.
type Store interface {
	CreateRequest(ctx context.Context, r *store.Request, d *store.Device) (bool, error)
	Request(ctx context.Context, id store.RequestID) (*store.Request, error)
	Decide(ctx context.Context, d store.Decision) (*store.Request, error)
	CreateToken(ctx context.Context, t *store.Token) error
	TokenByHash(ctx context.Context, hash []byte) (*store.Token, error)
	RedeemToken(ctx context.Context, hash []byte, d store.Decision) (*store.Request, error)
	RevokeToken(ctx context.Context, id store.TokenID, at time.Time) error
	MarkIssued(ctx context.Context, id store.RequestID, serial string, at time.Time) (*store.Request, error)
	Device(ctx context.Context, id store.DeviceID) (*store.Device, error)
	TouchDevice(ctx context.Context, id store.DeviceID, at time.Time, agentVersion string) (*store.Device, error)
	RevokeDevice(ctx context.Context, id store.DeviceID) (*store.Device, error)
	ListRequests(ctx context.Context, f store.RequestFilter) ([]*store.Request, error)
	ListDevices(ctx context.Context, f store.DeviceFilter) ([]*store.Device, error)
	ListTokens(ctx context.Context) ([]*store.Token, error)
	CountDevices(ctx context.Context) (map[store.DeviceState]int, error)
	CountRequests(ctx context.Context) (map[store.RequestState]int, error)
	EnrollmentsPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error)
	AddDeviceLog(ctx context.Context, l *store.DeviceLog, keep int) error
	DeviceLogs(ctx context.Context, id store.DeviceID) ([]*store.DeviceLog, error)
	DeviceLog(ctx context.Context, id store.DeviceID, logID int64) (*store.DeviceLog, error)
}

// Errors of the RA's own rules; store errors (store.ErrNotFound,
// store.ErrAlreadyDecided…) pass through wrapped.
var (
	// ErrRequestExpired: the request waited longer than Config.RequestTTL.
	ErrRequestExpired = errors.New("enrollment request expired")
	// ErrTokenBinding: the token is bound to another device name or owner.
	ErrTokenBinding = errors.New("bootstrap token bound to another device")
	// ErrNoActor: a decision must say who takes it.
	ErrNoActor = errors.New("no actor")
	// ErrInvalid marks an error in what the caller sent (CSR, facts, token
	// format, token options), found before anything was stored: front
	// ends answer it as the caller's fault (HTTP 400), the rest as theirs.
	ErrInvalid = errors.New("invalid input")
)

// invalidError is a caller's error that is also ErrInvalid, with the
// message of the original only.
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

func invalid(err error) error { return invalidError{err} }

// Options are what the caller injects.
type Options struct {
	Logger *slog.Logger
	// Audit receives one event per decision, as for internal/ca (in the
	// server, obs.AuditLog's logger, so both write one audit.log).
	Audit *slog.Logger
	// Signer issues approved requests; without it Issue fails.
	Signer Signer
	// Now and Rand are the clock and the randomness; tests replace them.
	Now  func() time.Time
	Rand io.Reader
}

// Service is the RA. It is safe for concurrent use: every rule that must
// hold once (a decision, a token's use) is enforced by the store's atomic
// updates, not by state kept here, so replicas may share one store.
type Service struct {
	cfg    Config
	store  Store
	signer Signer
	log    *slog.Logger
	audit  *slog.Logger
	now    func() time.Time
	rand   io.Reader
}

// New returns a Service applying cfg (after its defaults) over st.
func New(cfg Config, st Store, o Options) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("enrollment config: %w", err)
	}
	s := &Service{cfg: cfg, store: st, signer: o.Signer, log: o.Logger, audit: o.Audit, now: o.Now, rand: o.Rand}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	return s, nil
}

// auditEvent writes one audit line; the audit sink is durable (synced), so
// its errors surface in the sink itself, not here.
func (s *Service) auditEvent(ctx context.Context, event string, attrs ...slog.Attr) {
	s.audit.LogAttrs(ctx, slog.LevelInfo, event, attrs...)
}

// Status returns the request with that ID, whatever its state.
func (s *Service) Status(ctx context.Context, id store.RequestID) (*store.Request, error) {
	return s.store.Request(ctx, id)
}
