package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

var _ store.Enrollments = (*Store)(nil)

// newID returns prefix_ and 128 random bits in hex: unguessable, so an ID
// seen in a log or URL gives nothing away, and unique without coordination
// between processes.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return prefix + "_" + hex.EncodeToString(b[:])
}

// decodeNullTime reads a NULL time, which the schema uses for "not yet", as
// the zero time.
func decodeNullTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return decodeTime(n.Int64)
}

// CreateRequest records r with a new pending device made from d, unless a
// request with r.CSRHash exists, which it returns in r instead. The lookup
// and the insert share one write transaction (BEGIN IMMEDIATE), and the
// unique index on csr_sha256 backs it against any writer that skips the
// lookup.
func (s *Store) CreateRequest(ctx context.Context, r *store.Request, d *store.Device) (bool, error) {
	if len(r.CSRHash) != 32 {
		return false, fmt.Errorf("recording enrollment request: CSR hash of %d bytes, want 32", len(r.CSRHash))
	}
	createdAt := r.CreatedAt
	if createdAt.IsZero() {
		createdAt = time.Now()
	}
	facts, err := json.Marshal(r.Facts)
	if err != nil {
		return false, fmt.Errorf("recording enrollment request: %w", err)
	}
	created, err := encodeTime("created_at", createdAt)
	if err != nil {
		return false, fmt.Errorf("recording enrollment request: %w", err)
	}
	var existing *store.Request
	nd, nr := *d, *r
	err = s.write(ctx, func(tx *sql.Tx) error {
		existing, err = scanRequest(tx.QueryRowContext(ctx, selectRequest+" WHERE csr_sha256 = ?", r.CSRHash))
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return err
		}
		existing = nil
		nd.ID, nd.State, nd.Version = store.DeviceID(newID("dev")), store.DevicePending, 1
		nd.FirstSeen, nd.LastSeen = decodeTime(created), decodeTime(created)
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, name, hardware_serial, os, os_version,
			owner_email, agent_version, state, first_seen, last_seen, version) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			nd.ID, nd.Name, nd.HardwareSerial, nd.OS, nd.OSVersion, nd.OwnerEmail, nd.AgentVersion,
			nd.State, created, created, nd.Version); err != nil {
			return cleanError(err)
		}
		nr.ID, nr.Device, nr.State, nr.Version = store.RequestID(newID("req")), nd.ID, store.RequestPending, 1
		nr.CreatedAt = decodeTime(created)
		_, err := tx.ExecContext(ctx, `INSERT INTO enrollment_requests (id, device_id, csr_der, csr_sha256,
			facts, state, source_addr, created_at, version) VALUES (?,?,?,?,?,?,?,?,?)`,
			nr.ID, nr.Device, nr.CSR, nr.CSRHash, string(facts), nr.State, nr.SourceAddr, created, nr.Version)
		return cleanError(err)
	})
	if err != nil {
		return false, fmt.Errorf("recording enrollment request: %w", err)
	}
	if existing != nil {
		*r = *existing
		return false, nil
	}
	*r, *d = nr, nd
	return true, nil
}

const selectRequest = `SELECT id, device_id, csr_der, csr_sha256, facts, state, decided_by, decided_at,
	comment, evidence, cert_serial, source_addr, created_at, version FROM enrollment_requests`

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(row rowScanner) (*store.Request, error) {
	var (
		r         store.Request
		facts     string
		evidence  sql.NullString
		decidedAt sql.NullInt64
		created   int64
	)
	err := row.Scan(&r.ID, &r.Device, &r.CSR, &r.CSRHash, &facts, &r.State, &r.DecidedBy, &decidedAt,
		&r.Comment, &evidence, &r.CertSerial, &r.SourceAddr, &created, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, cleanError(err)
	}
	// The store wrote these facts itself; a decoding failure means a
	// damaged file, not hostile input.
	if err := json.Unmarshal([]byte(facts), &r.Facts); err != nil {
		return nil, fmt.Errorf("request %s: facts: %w", r.ID, err)
	}
	if evidence.Valid {
		r.Evidence = json.RawMessage(evidence.String)
	}
	r.DecidedAt, r.CreatedAt = decodeNullTime(decidedAt), decodeTime(created)
	return &r, nil
}

// Request returns the request with that ID.
func (s *Store) Request(ctx context.Context, id store.RequestID) (*store.Request, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, selectRequest+" WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("reading request %s: %w", id, err)
	}
	return r, nil
}

// Device returns the device with that ID.
func (s *Store) Device(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, selectDevice+" WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("reading device %s: %w", id, err)
	}
	return d, nil
}

// Decide applies d to the request if it is still pending.
func (s *Store) Decide(ctx context.Context, d store.Decision) (*store.Request, error) {
	var r *store.Request
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = decide(ctx, tx, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("deciding request %s: %w", d.Request, err)
	}
	return r, nil
}

// decide is one conditional UPDATE: the WHERE clause, not a prior read, is
// what lets only the first decision through, so it holds for a PostgreSQL
// store under READ COMMITTED as well. The read after a miss only explains it.
func decide(ctx context.Context, tx *sql.Tx, d store.Decision) (*store.Request, error) {
	if d.State != store.RequestApproved && d.State != store.RequestDenied {
		return nil, fmt.Errorf("decision %q: want approved or denied", d.State)
	}
	at, err := encodeTime("decided_at", d.At)
	if err != nil {
		return nil, err
	}
	var evidence sql.NullString
	if len(d.Evidence) > 0 {
		evidence = sql.NullString{String: string(d.Evidence), Valid: true}
	}
	res, err := tx.ExecContext(ctx, `UPDATE enrollment_requests
		SET state = ?, decided_by = ?, decided_at = ?, comment = ?, evidence = ?, version = version + 1
		WHERE id = ? AND state = 'pending' AND (? = 0 OR version = ?)`,
		d.State, d.By, at, d.Comment, evidence, d.Request, d.Version, d.Version)
	if err != nil {
		return nil, cleanError(err)
	}
	r, err := scanRequest(tx.QueryRowContext(ctx, selectRequest+" WHERE id = ?", d.Request))
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, cleanError(err)
	} else if n == 1 {
		return r, nil
	}
	if r.State != store.RequestPending {
		return nil, &store.AlreadyDecidedError{Request: r.ID, State: r.State, By: r.DecidedBy, At: r.DecidedAt}
	}
	return nil, fmt.Errorf("%w: version %d, want %d", store.ErrConflict, r.Version, d.Version)
}

// CreateToken records a bootstrap token (its hash, never its secret).
func (s *Store) CreateToken(ctx context.Context, t *store.Token) error {
	if len(t.Hash) != 32 {
		return fmt.Errorf("recording token: hash of %d bytes, want 32", len(t.Hash))
	}
	nt := *t
	nt.ID = store.TokenID(newID("tok"))
	if nt.CreatedAt.IsZero() {
		nt.CreatedAt = time.Now()
	}
	created, err := encodeTime("created_at", nt.CreatedAt)
	if err != nil {
		return fmt.Errorf("recording token: %w", err)
	}
	expires, err := encodeTime("expires_at", nt.ExpiresAt)
	if err != nil {
		return fmt.Errorf("recording token: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO bootstrap_tokens (id, hash, created_by, created_at,
			expires_at, bound_name, bound_owner) VALUES (?,?,?,?,?,?,?)`,
			nt.ID, nt.Hash, nt.CreatedBy, created, expires, nt.BoundName, nt.BoundOwner)
		return cleanError(err)
	})
	if err != nil {
		return fmt.Errorf("recording token: %w", err)
	}
	nt.CreatedAt, nt.ExpiresAt = decodeTime(created), decodeTime(expires)
	*t = nt
	return nil
}

const selectToken = `SELECT id, hash, created_by, created_at, expires_at, bound_name, bound_owner,
	used_at, used_by_request, revoked_at FROM bootstrap_tokens`

func scanToken(row rowScanner) (*store.Token, error) {
	var (
		t                 store.Token
		created, expires  int64
		usedAt, revokedAt sql.NullInt64
		usedBy            sql.NullString
	)
	err := row.Scan(&t.ID, &t.Hash, &t.CreatedBy, &created, &expires, &t.BoundName, &t.BoundOwner,
		&usedAt, &usedBy, &revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, cleanError(err)
	}
	t.CreatedAt, t.ExpiresAt = decodeTime(created), decodeTime(expires)
	t.UsedAt, t.RevokedAt = decodeNullTime(usedAt), decodeNullTime(revokedAt)
	t.UsedBy = store.RequestID(usedBy.String)
	return &t, nil
}

// TokenByHash returns the token with that hash. The lookup is an index
// probe on the hash of the secret, not a comparison of secrets, so it leaks
// no timing about the secret itself.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, selectToken+" WHERE hash = ?", hash))
	if err != nil {
		return nil, fmt.Errorf("reading token: %w", err)
	}
	return t, nil
}

// RedeemToken consumes the token and applies d in one transaction. The
// consumption is one conditional UPDATE carrying every rule of a usable
// token, so two redeemers, in one process or two, cannot both see it
// unused: the second UPDATE matches no row.
func (s *Store) RedeemToken(ctx context.Context, hash []byte, d store.Decision) (*store.Request, error) {
	at, err := encodeTime("used_at", d.At)
	if err != nil {
		return nil, fmt.Errorf("redeeming token: %w", err)
	}
	var r *store.Request
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE bootstrap_tokens SET used_at = ?, used_by_request = ?
			WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
			at, d.Request, hash, at)
		if err != nil {
			return cleanError(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return cleanError(err)
		} else if n != 1 {
			return whyUnusable(ctx, tx, hash)
		}
		r, err = decide(ctx, tx, d)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redeeming token for request %s: %w", d.Request, err)
	}
	return r, nil
}

// whyUnusable explains a consumption that matched no row.
func whyUnusable(ctx context.Context, tx *sql.Tx, hash []byte) error {
	t, err := scanToken(tx.QueryRowContext(ctx, selectToken+" WHERE hash = ?", hash))
	switch {
	case err != nil:
		return err
	case !t.RevokedAt.IsZero():
		return store.ErrTokenRevoked
	case !t.UsedAt.IsZero():
		return fmt.Errorf("%w (by request %s)", store.ErrTokenUsed, t.UsedBy)
	}
	return store.ErrTokenExpired
}

// RevokeToken marks an unused token revoked; a used or revoked one is left
// as it is.
func (s *Store) RevokeToken(ctx context.Context, id store.TokenID, at time.Time) error {
	n, err := encodeTime("revoked_at", at)
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE bootstrap_tokens SET revoked_at = ?
			WHERE id = ? AND revoked_at IS NULL AND used_at IS NULL`, n, id)
		if err != nil {
			return cleanError(err)
		}
		if k, err := res.RowsAffected(); err != nil || k == 1 {
			return cleanError(err)
		}
		var one int
		err = tx.QueryRowContext(ctx, "SELECT 1 FROM bootstrap_tokens WHERE id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return cleanError(err)
	})
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	return nil
}

// MarkIssued moves an approved request to issued, and its device from
// pending to active, in one transaction; the WHERE clause makes it apply
// once.
func (s *Store) MarkIssued(ctx context.Context, id store.RequestID, serial string, at time.Time) (*store.Request, error) {
	n, err := encodeTime("last_seen", at)
	if err != nil {
		return nil, fmt.Errorf("marking request %s issued: %w", id, err)
	}
	var r *store.Request
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE enrollment_requests SET state = 'issued', cert_serial = ?,
			version = version + 1 WHERE id = ? AND state = 'approved'`, serial, id)
		if err != nil {
			return cleanError(err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return cleanError(err)
		}
		if r, err = scanRequest(tx.QueryRowContext(ctx, selectRequest+" WHERE id = ?", id)); err != nil {
			return err
		}
		if k != 1 {
			return fmt.Errorf("%w: request is %s, not approved", store.ErrConflict, r.State)
		}
		_, err = tx.ExecContext(ctx, `UPDATE devices SET state = 'active', last_seen = ?, version = version + 1
			WHERE id = ? AND state = 'pending'`, n, r.Device)
		return cleanError(err)
	})
	if err != nil {
		return nil, fmt.Errorf("marking request %s issued: %w", id, err)
	}
	return r, nil
}
