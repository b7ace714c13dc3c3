package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Enrollment errors. Like the certificate ones they are checked with
// errors.Is; ErrAlreadyDecided also comes as an *AlreadyDecidedError that
// says who decided, for errors.As.
var (
	// ErrAlreadyDecided: the request left the pending state before this
	// decision could apply; the first decision stands.
	ErrAlreadyDecided = errors.New("request already decided")
	// ErrTokenUsed: the bootstrap token was consumed already (single use).
	ErrTokenUsed = errors.New("bootstrap token already used")
	// ErrTokenExpired: the bootstrap token is past its expiry.
	ErrTokenExpired = errors.New("bootstrap token expired")
	// ErrTokenRevoked: an admin revoked the bootstrap token.
	ErrTokenRevoked = errors.New("bootstrap token revoked")
)

// AlreadyDecidedError reports the decision that won, so the one that lost
// can tell its caller who was first.
type AlreadyDecidedError struct {
	Request RequestID
	State   RequestState
	By      string
	At      time.Time
}

func (e *AlreadyDecidedError) Error() string {
	return fmt.Sprintf("request %s already %s by %s at %s", e.Request, e.State, e.By, e.At.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrAlreadyDecided) hold.
func (e *AlreadyDecidedError) Is(target error) bool { return target == ErrAlreadyDecided }

// Typed IDs keep a request ID from being passed where a device ID is meant.
// The store assigns them (random, prefixed for the operator's eye).
type (
	DeviceID  string
	RequestID string
	TokenID   string
)

// DeviceState is the lifecycle of a device record.
type DeviceState string

const (
	DevicePending DeviceState = "pending"
	DeviceActive  DeviceState = "active"
	DeviceRevoked DeviceState = "revoked"
)

// RequestState is the lifecycle of an enrollment request: pending, then
// exactly one decision (approved or denied), then issued for approved ones.
type RequestState string

const (
	RequestPending  RequestState = "pending"
	RequestApproved RequestState = "approved"
	RequestDenied   RequestState = "denied"
	RequestIssued   RequestState = "issued"
)

// Facts are what a device says about itself when it asks for a
// certificate. They are claims, not proofs: policy may match on them, and
// attestation (later) is what makes them evidence.
type Facts struct {
	Hostname       string `json:"hostname,omitempty"`
	OS             string `json:"os,omitempty"`
	OSVersion      string `json:"os_version,omitempty"`
	HardwareSerial string `json:"hardware_serial,omitempty"`
	AgentVersion   string `json:"agent_version,omitempty"`
	OwnerEmail     string `json:"owner_email,omitempty"`
}

// Device is one machine of the fleet; certificates hang off it.
type Device struct {
	ID             DeviceID
	Name           string
	HardwareSerial string
	OS             string
	OSVersion      string
	OwnerEmail     string
	AgentVersion   string
	State          DeviceState
	FirstSeen      time.Time
	LastSeen       time.Time
	Version        int64
}

// Request is one enrollment request: a CSR, the facts sent with it, and
// the decision taken on it.
type Request struct {
	ID     RequestID
	Device DeviceID
	CSR    []byte // DER
	// CSRHash is the SHA-256 of CSR; it is unique, so a re-submitted CSR
	// finds its first request instead of making a second one.
	CSRHash    []byte
	Facts      Facts
	State      RequestState
	DecidedBy  string
	DecidedAt  time.Time
	Comment    string // the approver's comment or the reason of a denial
	Evidence   json.RawMessage
	CertSerial string // set when State is RequestIssued
	SourceAddr string
	CreatedAt  time.Time
	Version    int64
}

// Decision approves or denies a pending request.
type Decision struct {
	Request RequestID
	State   RequestState // RequestApproved or RequestDenied
	By      string       // the actor: an admin's identity or a policy's name
	At      time.Time
	Comment string
	// Evidence is JSON saying why (which token, which allow-list rule).
	Evidence json.RawMessage
	// Version, when not zero, must be the request's current version: the
	// decider saw that record and no other (ErrConflict otherwise).
	Version int64
}

// Token is a bootstrap token. The store never sees the secret, only its
// SHA-256: a leaked database does not enroll devices.
type Token struct {
	ID         TokenID
	Hash       []byte
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	BoundName  string // when set, only a device of that name may use it
	BoundOwner string // when set, only a device of that owner may use it
	UsedAt     time.Time
	UsedBy     RequestID
	RevokedAt  time.Time
}

// Enrollments persists what the registration authority decides: devices,
// enrollment requests and bootstrap tokens. It is an interface apart from
// Store, not embedded in it, so that the CA (which needs certificates only)
// and the RA (which needs these only) each depend on the half they use; one
// implementation may serve both, as sqlite.Store does. Every method is safe
// for concurrent use by goroutines and processes.
type Enrollments interface {
	// CreateRequest records r and a new pending device for it, with the
	// CSRHash-unique rule applied atomically: if a request with the same
	// CSRHash exists, nothing is written, r is overwritten with the existing
	// request and created is false. r.ID, r.Device, r.State (pending),
	// r.Version (1) and, if zero, r.CreatedAt are set by the store; d
	// receives the new device (its ID, state and version).
	CreateRequest(ctx context.Context, r *Request, d *Device) (created bool, err error)
	// Request returns the request with that ID.
	Request(ctx context.Context, id RequestID) (*Request, error)
	// Device returns the device with that ID.
	Device(ctx context.Context, id DeviceID) (*Device, error)
	// Decide applies d to a pending request, at most once: if the request
	// is no longer pending it fails with an *AlreadyDecidedError naming the
	// first decider; if d.Version is set and differs, with ErrConflict.
	Decide(ctx context.Context, d Decision) (*Request, error)
	// CreateToken records t (Hash, CreatedBy, ExpiresAt, bindings); it
	// sets t.ID and, if zero, t.CreatedAt.
	CreateToken(ctx context.Context, t *Token) error
	// TokenByHash returns the token whose Hash is hash.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// RedeemToken consumes the token with that hash for d.Request and
	// applies d, in one transaction: the token is marked used only if it
	// is unused, unrevoked and unexpired at d.At (ErrTokenUsed,
	// ErrTokenRevoked, ErrTokenExpired, ErrNotFound otherwise), so of any
	// number of concurrent redeemers exactly one wins; and the decision
	// follows Decide's rules, a failure of which leaves the token unused.
	RedeemToken(ctx context.Context, hash []byte, d Decision) (*Request, error)
	// MarkIssued records that the CA issued the certificate with that
	// serial for an approved request: the request becomes issued and its
	// device, if pending, active (last seen at at). It fails with
	// ErrConflict unless the request is approved, so it applies once.
	MarkIssued(ctx context.Context, id RequestID, serial string, at time.Time) (*Request, error)
	// RevokeToken marks a token revoked at at. A used or already revoked
	// token stays as it is (revoking it again is not an error).
	RevokeToken(ctx context.Context, id TokenID, at time.Time) error

	// ListRequests returns up to f.Limit requests matching f, ordered by
	// CreatedAt then ID, starting after the request f.After (keyset paging:
	// the queue stays as fast on its 1,000th page as on its first).
	ListRequests(ctx context.Context, f RequestFilter) ([]*Request, error)
	// ListDevices returns up to f.Limit devices matching f, ordered by
	// FirstSeen then ID, starting after the device f.After.
	ListDevices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// ListTokens returns every token, oldest first. Tokens are few (an
	// admin makes them by hand) and short-lived, so there is no paging.
	ListTokens(ctx context.Context) ([]*Token, error)
	// TouchDevice records a check-in: LastSeen becomes at if that is later
	// (a late writer never moves it back), and AgentVersion is updated when
	// not empty. ErrNotFound if there is no such device.
	TouchDevice(ctx context.Context, id DeviceID, at time.Time, agentVersion string) (*Device, error)
	// RevokeDevice sets the device's state to revoked; a revoked device
	// stays revoked (doing it again is not an error). Its certificates are
	// the CA's to revoke, and the audit log has when.
	RevokeDevice(ctx context.Context, id DeviceID) (*Device, error)
	// CountDevices and CountRequests count records by state, for the
	// statistics and the gauges; a state with none is absent.
	CountDevices(ctx context.Context) (map[DeviceState]int, error)
	CountRequests(ctx context.Context) (map[RequestState]int, error)
	// EnrollmentsPerDay counts requests created per UTC day from since on,
	// days without any omitted, oldest first.
	EnrollmentsPerDay(ctx context.Context, since time.Time) ([]DayCount, error)

	// AddDeviceLog stores a log a device uploaded and, in the same
	// transaction, drops that device's oldest logs beyond keep (keep ≤ 0
	// keeps all). It sets l.ID (increasing with every upload).
	AddDeviceLog(ctx context.Context, l *DeviceLog, keep int) error
	// DeviceLogs lists a device's logs, newest first, without their data.
	DeviceLogs(ctx context.Context, id DeviceID) ([]*DeviceLog, error)
	// DeviceLog returns one log with its data; ErrNotFound unless it
	// belongs to that device.
	DeviceLog(ctx context.Context, id DeviceID, logID int64) (*DeviceLog, error)
}

// DayCount is a number of events on one UTC day.
type DayCount struct {
	Day   time.Time // midnight UTC
	Count int
}

// DeviceLog is a file a device uploaded (agent logs, diagnostics).
type DeviceLog struct {
	ID         int64
	Device     DeviceID
	Name       string
	ReceivedAt time.Time
	Size       int
	Data       []byte // empty in listings
}

// DefaultListLimit and MaxListLimit bound one page of ListRequests and
// ListDevices: a zero Limit means DefaultListLimit, a larger one is cut to
// MaxListLimit.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// PageLimit returns the page size a store applies for limit.
func PageLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultListLimit
	case limit > MaxListLimit:
		return MaxListLimit
	}
	return limit
}

// RequestFilter selects requests in ListRequests; zero fields select all.
type RequestFilter struct {
	State  RequestState
	Device DeviceID
	After  RequestID // the last ID of the previous page
	Limit  int
}

// DeviceFilter selects devices in ListDevices; zero fields select all.
type DeviceFilter struct {
	State DeviceState
	// OS, Owner and Name match exactly, case-blind (owners' e-mails and
	// OS names come in every case).
	OS    string
	Owner string
	Name  string
	// LastSeenBefore keeps devices not seen since then (stale laptops).
	LastSeenBefore time.Time
	After          DeviceID // the last ID of the previous page
	Limit          int
}
