package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

const certColumns = `serial, name, profile, issuer, subject, not_before, not_after,
	der, status, revoked_at, reason, created_at, version`

type scanner interface{ Scan(dest ...any) error }

func scanCert(row scanner) (*store.Cert, error) {
	var (
		c                              store.Cert
		status                         string
		notBefore, notAfter, createdAt int64
		revokedAt                      sql.NullInt64
	)
	err := row.Scan(&c.Serial, &c.Name, &c.Profile, &c.Issuer, &c.Subject, &notBefore, &notAfter,
		&c.DER, &status, &revokedAt, &c.Reason, &createdAt, &c.Version)
	if err != nil {
		return nil, err
	}
	c.Status = store.Status(status)
	c.NotBefore, c.NotAfter, c.CreatedAt = decodeTime(notBefore), decodeTime(notAfter), decodeTime(createdAt)
	if revokedAt.Valid {
		c.RevokedAt = decodeTime(revokedAt.Int64)
	}
	return &c, nil
}

// Replace records c as the active certificate of old's name and supersedes
// old, in one transaction. It fails with store.ErrConflict if old's version
// or status changed since it was read, and with store.ErrNotFound if old is
// not recorded. c.Status is ignored (c becomes active) and c.Name may be
// empty (it takes old's name) but not different; on success c is updated as
// by CreateCert.
func (s *Store) Replace(ctx context.Context, old *store.Cert, c *store.Cert) error {
	rec := *c
	rec.Status = store.StatusActive
	if err := prepareNew(&rec, time.Now()); err != nil {
		return fmt.Errorf("replacing certificate %s with %s: %w", old.Serial, c.Serial, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		name, err := supersede(ctx, tx, old)
		if err != nil {
			return err
		}
		if rec.Name == "" {
			rec.Name = name
		}
		if rec.Name != name {
			return fmt.Errorf("new certificate is named %q, old one %q", rec.Name, name)
		}
		cr, err := newCreator(ctx, tx)
		if err != nil {
			return err
		}
		// With old superseded no active certificate holds the name, so
		// only the serial can clash.
		return cr.insertCert(ctx, &rec)
	})
	if err != nil {
		return fmt.Errorf("replacing certificate %s with %s: %w", old.Serial, c.Serial, err)
	}
	c.Name, c.Status, c.CreatedAt, c.Version = rec.Name, rec.Status, rec.CreatedAt, rec.Version
	return nil
}

// supersede marks old superseded if it is still the active record at
// old.Version, and returns its name.
func supersede(ctx context.Context, tx *sql.Tx, old *store.Cert) (string, error) {
	cur, err := certTx(ctx, tx, old.Serial)
	if err != nil {
		return "", err
	}
	if cur.Version != old.Version {
		return "", fmt.Errorf("old record is at version %d, not %d: %w", cur.Version, old.Version, store.ErrConflict)
	}
	if cur.Status != store.StatusActive {
		return "", fmt.Errorf("old record is %s, not active: %w", cur.Status, store.ErrConflict)
	}
	_, err = tx.ExecContext(ctx, `UPDATE certs SET status = 'superseded', version = version + 1
		WHERE serial = ?`, old.Serial)
	if err != nil {
		return "", fmt.Errorf("superseding old record: %w", cleanError(err))
	}
	return cur.Name, nil
}

// Cert returns the record with that serial, or store.ErrNotFound.
func (s *Store) Cert(ctx context.Context, serial string) (*store.Cert, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certs WHERE serial = ?`, serial)
	c, err := oneCert(row)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", serial, err)
	}
	return c, nil
}

// ActiveCert returns the active record of name, or store.ErrNotFound. An
// expired certificate stays active until it is replaced, so it may be
// returned; callers check Expired.
func (s *Store) ActiveCert(ctx context.Context, name string) (*store.Cert, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certs
		WHERE name = ? AND status = 'active'`, name)
	c, err := oneCert(row)
	if err != nil {
		return nil, fmt.Errorf("active certificate of %q: %w", name, err)
	}
	return c, nil
}

// certTx reads a record inside a write transaction.
func certTx(ctx context.Context, tx *sql.Tx, serial string) (*store.Cert, error) {
	return oneCert(tx.QueryRowContext(ctx, `SELECT `+certColumns+` FROM certs WHERE serial = ?`, serial))
}

// oneCert scans a single-row result; no row is store.ErrNotFound.
func oneCert(row *sql.Row) (*store.Cert, error) {
	c, err := scanCert(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, cleanError(err)
	}
	return c, nil
}

// List returns the records matching f, oldest (CreatedAt) first; records
// created at the same instant come in insertion order.
func (s *Store) List(ctx context.Context, f store.Filter) ([]*store.Cert, error) {
	where, args := filterSQL(f)
	rows, err := s.db.QueryContext(ctx, `SELECT `+certColumns+` FROM certs`+where+
		` ORDER BY created_at, rowid`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing certificates: %w", cleanError(err))
	}
	defer rows.Close()
	var certs []*store.Cert
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, fmt.Errorf("listing certificates: %w", cleanError(err))
		}
		certs = append(certs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing certificates: %w", cleanError(err))
	}
	return certs, nil
}

// filterSQL returns the WHERE clause (with a leading space, or empty) and
// its arguments for f. Values are always bound, never spliced.
func filterSQL(f store.Filter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if f.Name != "" {
		add("name = ?", f.Name)
	}
	if f.Profile != "" {
		add("profile = ?", f.Profile)
	}
	if f.Issuer != "" {
		add("issuer = ?", f.Issuer)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.NotAfterBefore.IsZero() {
		add("not_after < ?", clampTime(f.NotAfterBefore))
	}
	if !f.NotAfterAfter.IsZero() {
		add("not_after > ?", clampTime(f.NotAfterAfter))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Revoke marks the certificate revoked at the given time with an RFC 5280
// reason code and returns the updated record. Revoking the active
// certificate of a name frees the name.
func (s *Store) Revoke(ctx context.Context, serial string, at time.Time, reason int) (*store.Cert, error) {
	var c *store.Cert
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = revoke(ctx, tx, serial, at, reason)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoking certificate %s: %w", serial, err)
	}
	return c, nil
}

func revoke(ctx context.Context, tx *sql.Tx, serial string, at time.Time, reason int) (*store.Cert, error) {
	if at.IsZero() {
		return nil, errors.New("zero revocation time")
	}
	n, err := encodeTime("revoked_at", at)
	if err != nil {
		return nil, err
	}
	c, err := certTx(ctx, tx, serial)
	if err != nil {
		return nil, err
	}
	if c.Status == store.StatusRevoked {
		return nil, store.ErrAlreadyRevoked
	}
	_, err = tx.ExecContext(ctx, `UPDATE certs SET status = 'revoked', revoked_at = ?, reason = ?,
		version = version + 1 WHERE serial = ?`, n, reason, serial)
	if err != nil {
		return nil, cleanError(err)
	}
	c.Status, c.RevokedAt, c.Reason, c.Version = store.StatusRevoked, decodeTime(n), reason, c.Version+1
	return c, nil
}

// revokedQuery selects the CRL entries of an issuer (?1) whose not_after is
// at or after a floor (?2). It must stay answerable from the covering index
// certs_revoked alone; TestRevokedQueryPlan checks that.
const revokedQuery = `SELECT serial, revoked_at, reason FROM certs
	WHERE issuer = ? AND status = 'revoked' AND not_after >= ?`

// Revoked returns the CRL entries of issuer whose certificate's NotAfter is
// at or after notAfterFloor (all of them for a zero floor), in no particular
// order. It is one query over a covering index, read as a stream, so a
// 100,000-entry CRL costs one range scan and no per-entry lookups.
func (s *Store) Revoked(ctx context.Context, issuer string, notAfterFloor time.Time) ([]store.Revocation, error) {
	// A zero floor means no floor; taken as year 1 it would drop a (bogus)
	// NotAfter in year 0, which microseconds can hold.
	floor := int64(math.MinInt64)
	if !notAfterFloor.IsZero() {
		floor = clampTime(notAfterFloor)
	}
	rows, err := s.db.QueryContext(ctx, revokedQuery, issuer, floor)
	if err != nil {
		return nil, fmt.Errorf("listing revocations of issuer %s: %w", issuer, cleanError(err))
	}
	defer rows.Close()
	var revs []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var at sql.NullInt64
		if err := rows.Scan(&r.Serial, &at, &r.Reason); err != nil {
			return nil, fmt.Errorf("listing revocations of issuer %s: %w", issuer, cleanError(err))
		}
		if at.Valid {
			r.RevokedAt = decodeTime(at.Int64)
		}
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing revocations of issuer %s: %w", issuer, cleanError(err))
	}
	return revs, nil
}

// RevokedSince lists the issuer's revocations recorded at or after since.
func (s *Store) RevokedSince(ctx context.Context, issuer string, since time.Time) ([]store.Revocation, error) {
	from := clampTime(since)
	rows, err := s.db.QueryContext(ctx, `SELECT serial, revoked_at, reason FROM certs
		WHERE issuer = ? AND status = 'revoked' AND revoked_at >= ?`, issuer, from)
	if err != nil {
		return nil, fmt.Errorf("listing recent revocations of issuer %s: %w", issuer, cleanError(err))
	}
	defer rows.Close()
	var revs []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var at int64
		if err := rows.Scan(&r.Serial, &at, &r.Reason); err != nil {
			return nil, fmt.Errorf("listing recent revocations of issuer %s: %w", issuer, cleanError(err))
		}
		r.RevokedAt = decodeTime(at)
		revs = append(revs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing recent revocations of issuer %s: %w", issuer, cleanError(err))
	}
	return revs, nil
}
