// Package api is the control server's wire format: the JSON bodies of
// /api/v1, one definition that the server encodes and the clients
// (apiclient, the agent, the gateway) decode. It has types only, no
// behaviour; docs/openapi.yaml describes the same shapes and a test of
// internal/server checks the two agree.
package api

import (
	"encoding/json"
	"time"
)

// Error is every error answer: one line.
type Error struct {
	Error string `json:"error"`
}

// Facts are what a device says about itself.
type Facts struct {
	Hostname       string `json:"hostname,omitempty"`
	OS             string `json:"os,omitempty"`
	OSVersion      string `json:"os_version,omitempty"`
	HardwareSerial string `json:"hardware_serial,omitempty"`
	AgentVersion   string `json:"agent_version,omitempty"`
	OwnerEmail     string `json:"owner_email,omitempty"`
}

// EnrollRequest is the body of POST /api/v1/enroll.
type EnrollRequest struct {
	CSR string `json:"csr"` // PEM
	Facts
	Token string `json:"token,omitempty"`
}

// Request is an enrollment request.
type Request struct {
	ID         string          `json:"id"`
	Device     string          `json:"device"`
	State      string          `json:"state"`
	Facts      Facts           `json:"facts"`
	DecidedBy  string          `json:"decided_by,omitempty"`
	DecidedAt  *time.Time      `json:"decided_at,omitempty"`
	Comment    string          `json:"comment,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
	CertSerial string          `json:"cert_serial,omitempty"`
	SourceAddr string          `json:"source_addr,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	// Certificate is the PEM chain, when issued.
	Certificate   string `json:"certificate,omitempty"`
	Error         string `json:"error,omitempty"`
	TokenRejected string `json:"token_rejected,omitempty"`
}

// RequestList is a page of requests; Next is the cursor of the next page.
type RequestList struct {
	Requests []Request `json:"requests"`
	Next     string    `json:"next,omitempty"`
}

// DecideRequest is the body of approve and deny.
type DecideRequest struct {
	Comment string `json:"comment,omitempty"`
}

// BulkDecideRequest decides several requests in one call.
type BulkDecideRequest struct {
	IDs      []string `json:"ids"`
	Decision string   `json:"decision"` // approve or deny
	Comment  string   `json:"comment,omitempty"`
}

// BulkResult is the outcome for one ID of a bulk decision.
type BulkResult struct {
	ID    string `json:"id"`
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"`
}

// BulkDecideResponse lists the outcomes in the order of the IDs.
type BulkDecideResponse struct {
	Results []BulkResult `json:"results"`
}

// RenewRequest is the optional body of POST /api/v1/renew.
type RenewRequest struct {
	CSR          string `json:"csr,omitempty"` // PEM; absent: the same key
	AgentVersion string `json:"agent_version,omitempty"`
}

// Cert is a certificate record.
type Cert struct {
	Serial      string    `json:"serial"`
	Name        string    `json:"name"`
	Profile     string    `json:"profile"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Status      string    `json:"status"`
	RevokedAt   time.Time `json:"revoked_at,omitzero"`
	Reason      string    `json:"reason,omitempty"`
	Replaces    string    `json:"replaces,omitempty"`
	Certificate string    `json:"certificate,omitempty"` // PEM chain, in a renewal's answer
}

// CertList is a list of certificates.
type CertList struct {
	Certificates []Cert `json:"certificates"`
}

// Device is a device record.
type Device struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	HardwareSerial string    `json:"hardware_serial,omitempty"`
	OS             string    `json:"os,omitempty"`
	OSVersion      string    `json:"os_version,omitempty"`
	Owner          string    `json:"owner_email,omitempty"`
	AgentVersion   string    `json:"agent_version,omitempty"`
	State          string    `json:"state"`
	FirstSeen      time.Time `json:"first_seen"`
	LastSeen       time.Time `json:"last_seen"`
	Certificates   []Cert    `json:"certificates,omitempty"`
}

// DeviceList is a page of devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next,omitempty"`
}

// RevokeRequest is the optional body of a revocation.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"` // RFC 5280 name, e.g. keyCompromise
}

// DeviceRevoked answers a device's revocation.
type DeviceRevoked struct {
	Device  Device   `json:"device"`
	Revoked []string `json:"revoked_serials"`
}

// TokenRequest is the body of a token's creation.
type TokenRequest struct {
	TTL        string `json:"ttl,omitempty"` // Go duration
	BoundName  string `json:"bound_name,omitempty"`
	BoundOwner string `json:"bound_owner,omitempty"`
}

// Token is a bootstrap token; Secret only in the creation answer.
type Token struct {
	ID         string    `json:"id"`
	Secret     string    `json:"token,omitempty"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	BoundName  string    `json:"bound_name,omitempty"`
	BoundOwner string    `json:"bound_owner,omitempty"`
	UsedAt     time.Time `json:"used_at,omitzero"`
	UsedBy     string    `json:"used_by_request,omitempty"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// TokenList lists tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// TokenRevoked answers a token's revocation.
type TokenRevoked struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// Stats are the fleet's numbers.
type Stats struct {
	Devices           map[string]int `json:"devices"`
	Requests          map[string]int `json:"requests"`
	ExpiringWithin7d  int            `json:"expiring_within_7d"`
	ExpiringWithin30d int            `json:"expiring_within_30d"`
	// EnrollmentsPerDay covers the last 30 days, oldest first.
	EnrollmentsPerDay []DayCount `json:"enrollments_per_day"`
}

// DayCount is a count on one UTC day.
type DayCount struct {
	Day   string `json:"day"` // YYYY-MM-DD
	Count int    `json:"count"`
}

// Log is an uploaded device log's record.
type Log struct {
	ID         int64     `json:"id"`
	Device     string    `json:"device"`
	Name       string    `json:"name"`
	ReceivedAt time.Time `json:"received_at"`
	Size       int       `json:"size"`
}

// LogList lists a device's logs.
type LogList struct {
	Logs []Log `json:"logs"`
}
