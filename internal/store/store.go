// Package store defines how Portcullis persists what the CA issues (the
// certificate records, their revocation state and the CRL counters: Store)
// and what the registration authority decides (devices, enrollment requests
// and bootstrap tokens: Enrollments). It holds the interfaces and the record
// types only; sqlite/ (embedded, the default) and, later, postgres/
// implement them, and storetest/ is the suite both pass.
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
//
// Times are kept to the microsecond (a store may truncate finer parts, as a
// PostgreSQL timestamptz does) over at least years 1 to 9999, so that a
// NotAfter of 99991231235959Z, RFC 5280's "no well-defined expiration date",
// is stored as is. The location of returned times is not specified.
type Store interface {
	// CreateCert records a new certificate. An empty c.Status means active
	// and a zero c.CreatedAt means now. If c is active and another active
	// certificate holds c.Name, it fails with ErrNameTaken, unless that one
	// has expired at c.CreatedAt (the caller's clock, not the store's), in
	// which case it becomes superseded. A record that both repeats a serial
	// and claims a taken name fails with ErrDuplicateSerial. On success c
	// holds what was stored: Status (active if it was empty), CreatedAt (now
	// if it was zero) and Version (1), so it can be passed to Replace as old.
	CreateCert(ctx context.Context, c *Cert) error
	// CreateCerts records several certificates in one transaction: all or
	// none. Each record follows CreateCert's rules (including ErrNameTaken
	// against existing records and against earlier records of the same batch
	// and the superseding of expired active ones); the error names the
	// first record that failed. On success every element is updated as by
	// CreateCert; on failure none is. An empty batch does nothing.
	CreateCerts(ctx context.Context, certs []*Cert) error
	// Replace records c as the new active certificate for old's name and
	// marks old superseded, atomically: a renewal. It fails with ErrConflict
	// if old changed since it was read (its version differs) or is no longer
	// active, whatever its version, and with ErrNotFound if old was never
	// recorded. c.Status is ignored; c.Name may be empty (it takes old's).
	// On success c is updated as by CreateCert.
	Replace(ctx context.Context, old *Cert, c *Cert) error
	// Cert returns the record with that serial.
	Cert(ctx context.Context, serial string) (*Cert, error)
	// ActiveCert returns the active certificate for a name.
	ActiveCert(ctx context.Context, name string) (*Cert, error)
	// List returns the matching records ordered by CreatedAt, oldest first;
	// records with equal CreatedAt come in the order they were recorded.
	List(ctx context.Context, f Filter) ([]*Cert, error)
	// Revoke marks a certificate revoked and returns the updated record.
	Revoke(ctx context.Context, serial string, at time.Time, reason int) (*Cert, error)
	// Revoked returns every revoked certificate of an issuer that has not
	// expired before notAfterFloor (expired entries may drop off a CRL,
	// RFC 5280 §3.3), in no particular order. A certificate whose NotAfter
	// equals the floor is kept; a zero floor returns them all.
	Revoked(ctx context.Context, issuer string, notAfterFloor time.Time) ([]Revocation, error)
	// RevokedSince returns the revocations of an issuer recorded with a
	// RevokedAt at or after since, in no particular order. Replicas poll
	// it to drop cached OCSP answers and CRLs another replica made stale.
	RevokedSince(ctx context.Context, issuer string, since time.Time) ([]Revocation, error)
	// NextCRLNumber atomically increments and returns the CRL number of an
	// issuer; it never returns the same number twice, nor a smaller one.
	NextCRLNumber(ctx context.Context, issuer string) (int64, error)
	// SetCRLNumber raises the CRL number of an issuer to at least n (import
	// of an existing PKI); it never lowers it.
	SetCRLNumber(ctx context.Context, issuer string, n int64) error
	Close() error
}
