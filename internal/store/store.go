// Package store defines how Portcullis persists what the CA issues: the
// certificate records, their revocation state and the CRL counters. It holds
// the interface and the record types only; sqlite/ (embedded, the default)
// and, later, postgres/ implement it, and storetest/ is the suite both pass.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors every implementation returns (wrapped or not) so callers can
// test them with errors.Is.
var (
	// ErrNotFound: no record matches.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateSerial: a record with that serial already exists. With
	// 128-bit random serials this means a broken RNG or a replayed write.
	ErrDuplicateSerial = errors.New("serial already recorded")
	// ErrNameTaken: another unexpired, unrevoked certificate is active under
	// that name (renew or revoke it first).
	ErrNameTaken = errors.New("name already has an active certificate")
	// ErrAlreadyRevoked: the certificate is revoked already.
	ErrAlreadyRevoked = errors.New("certificate already revoked")
	// ErrConflict: the record changed since it was read (optimistic locking).
	ErrConflict = errors.New("record changed concurrently")
)

// Status is the lifecycle state of a certificate record. Expiry is not a
// status: it is derived from NotAfter at read time.
type Status string

const (
	// StatusActive: the current certificate for its name.
	StatusActive Status = "active"
	// StatusSuperseded: replaced by a renewal (or by a reissue after expiry);
	// still cryptographically valid until it expires or is revoked.
	StatusSuperseded Status = "superseded"
	// StatusRevoked: listed on the CRL.
	StatusRevoked Status = "revoked"
)

// Cert is one issued certificate.
type Cert struct {
	// Serial is the certificate serial number as lowercase hex without
	// leading zeros (big.Int.Text(16)); it is the primary key.
	Serial string
	// Name is the operator-facing name (the NAME in `ca issue server NAME`),
	// also the file stem under issued/ and private/.
	Name    string
	Profile string // root, intermediate, server, client, device
	// Issuer is the hex Subject Key Identifier of the issuing CA, so CRLs can
	// be built per issuer.
	Issuer    string
	Subject   string
	NotBefore time.Time
	NotAfter  time.Time
	DER       []byte
	Status    Status
	// RevokedAt and Reason are set when Status is StatusRevoked; Reason is the
	// RFC 5280 CRLReason code.
	RevokedAt time.Time
	Reason    int
	CreatedAt time.Time
	// Version increases by one at every update of the record.
	Version int64
}

// Expired reports whether the certificate is past its NotAfter at now.
func (c *Cert) Expired(now time.Time) bool { return !now.Before(c.NotAfter) }

// Filter selects certificates in List. Zero fields select everything.
type Filter struct {
	Name    string
	Profile string
	Issuer  string
	Status  Status
	// NotAfterBefore keeps only certificates whose NotAfter is before it
	// (expired, or expiring within a window).
	NotAfterBefore time.Time
	// NotAfterAfter keeps only certificates whose NotAfter is after it.
	NotAfterAfter time.Time
}

// Revocation is one CRL entry.
type Revocation struct {
	Serial    string
	RevokedAt time.Time
	Reason    int
}

// Store persists certificate records. Every method is safe for concurrent use
// by goroutines and, for the file-backed implementations, by processes.
type Store interface {
	// CreateCert records a new certificate. If c.Status is active and
	// another active certificate holds c.Name, it fails with ErrNameTaken,
	// unless that one has expired, in which case it becomes superseded.
	CreateCert(ctx context.Context, c *Cert) error
	// Replace records c as the new active certificate for old's name and
	// marks old superseded, atomically: a renewal. It fails with ErrConflict
	// if old changed since it was read.
	Replace(ctx context.Context, old *Cert, c *Cert) error
	// Cert returns the record with that serial.
	Cert(ctx context.Context, serial string) (*Cert, error)
	// ActiveCert returns the active certificate for a name.
	ActiveCert(ctx context.Context, name string) (*Cert, error)
	// List returns the matching records, oldest first.
	List(ctx context.Context, f Filter) ([]*Cert, error)
	// Revoke marks a certificate revoked and returns the updated record.
	Revoke(ctx context.Context, serial string, at time.Time, reason int) (*Cert, error)
	// Revoked returns every revoked certificate of an issuer that has not
	// expired before notAfterFloor (expired entries may drop off a CRL,
	// RFC 5280 §3.3); a zero floor returns them all.
	Revoked(ctx context.Context, issuer string, notAfterFloor time.Time) ([]Revocation, error)
	// NextCRLNumber atomically increments and returns the CRL number of an
	// issuer; it never returns the same number twice, nor a smaller one.
	NextCRLNumber(ctx context.Context, issuer string) (int64, error)
	// SetCRLNumber raises the CRL number of an issuer to at least n (import
	// of an existing PKI); it never lowers it.
	SetCRLNumber(ctx context.Context, issuer string, n int64) error
	Close() error
}
