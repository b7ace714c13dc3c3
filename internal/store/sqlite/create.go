package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// CreateCert records c. An empty c.Status means active and a zero c.CreatedAt
// means now; on success c.Status, c.CreatedAt (truncated to the microsecond,
// as stored) and c.Version (1) hold what was stored, so c can be passed to
// Replace later.
//
// Whether the active certificate c would displace has expired is judged at
// c.CreatedAt, not at the store's clock: the CA sets CreatedAt from its own
// clock, which is the one it used to decide to issue (and which tests fake).
func (s *Store) CreateCert(ctx context.Context, c *store.Cert) error {
	rec := *c
	if err := prepareNew(&rec, time.Now()); err != nil {
		return fmt.Errorf("recording certificate %s: %w", c.Serial, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		cr, err := newCreator(ctx, tx)
		if err != nil {
			return err
		}
		return cr.create(ctx, &rec)
	})
	if err != nil {
		return fmt.Errorf("recording certificate %s: %w", c.Serial, err)
	}
	c.Status, c.CreatedAt, c.Version = rec.Status, rec.CreatedAt, rec.Version
	return nil
}

// CreateCerts records certs in one write transaction, each by CreateCert's
// rules and in order, so a record may take over the name of an earlier one
// of the batch if that has expired at its CreatedAt. It is all or none: the
// first record that fails, named by position and serial in the error, rolls
// back the batch and leaves every element of certs as it was. On success
// each element is updated as by CreateCert; records with a zero CreatedAt
// all get the same now, so List returns them in batch order. An empty batch
// does nothing.
//
// The INSERT is prepared once for the batch and the commit is one fsync:
// 100,000 records take about two seconds (BenchmarkCreateCerts100k), most of
// it SQLite's b-tree and WAL writes. Other writers, in any process, wait for
// the batch meanwhile, so a batch several times that size can make another
// process's write exceed busy_timeout.
func (s *Store) CreateCerts(ctx context.Context, certs []*store.Cert) error {
	if len(certs) == 0 {
		return nil
	}
	now := time.Now()
	recs := make([]store.Cert, len(certs))
	err := s.write(ctx, func(tx *sql.Tx) error {
		cr, err := newCreator(ctx, tx)
		if err != nil {
			return err
		}
		for i, c := range certs {
			if err := cr.createCopy(ctx, &recs[i], c, now); err != nil {
				serial := "<nil>"
				if c != nil {
					serial = c.Serial
				}
				return fmt.Errorf("certificate %d (serial %s): %w", i+1, serial, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording %d certificates: %w", len(certs), err)
	}
	for i, c := range certs {
		c.Status, c.CreatedAt, c.Version = recs[i].Status, recs[i].CreatedAt, recs[i].Version
	}
	return nil
}

// prepareNew fills the defaults of a record about to be inserted: an empty
// status is active, a zero CreatedAt is now. CreatedAt is truncated to the
// microsecond as encodeTime will store it, so the caller's record, once
// written back, equals what Cert returns.
func prepareNew(c *store.Cert, now time.Time) error {
	if c.Serial == "" {
		return errors.New("empty serial")
	}
	switch c.Status {
	case "":
		c.Status = store.StatusActive
	case store.StatusActive, store.StatusSuperseded, store.StatusRevoked:
	default:
		return fmt.Errorf("unknown status %q", c.Status)
	}
	if c.Status == store.StatusRevoked && c.RevokedAt.IsZero() {
		return errors.New("revoked without a revocation time")
	}
	if c.NotBefore.IsZero() || c.NotAfter.IsZero() {
		// Year 1 fits in microseconds, but every certificate has both
		// times: a zero one is a record the caller forgot to fill.
		return errors.New("zero NotBefore or NotAfter")
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now.UTC() // In UTC, as Cert returns it.
	}
	// Truncate also drops a monotonic clock reading, which Cert's times lack.
	c.CreatedAt = c.CreatedAt.Truncate(time.Microsecond)
	c.Version = 1
	return nil
}

// insertSQL inserts a record, its values in certColumns order.
const insertSQL = `INSERT INTO certs (` + certColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// creator inserts records within one write transaction, with the INSERT
// prepared once for all of them. The statement belongs to the transaction,
// which closes it (database/sql Tx.PrepareContext).
type creator struct {
	tx     *sql.Tx
	insert *sql.Stmt
}

func newCreator(ctx context.Context, tx *sql.Tx) (*creator, error) {
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return nil, fmt.Errorf("preparing insert: %w", cleanError(err))
	}
	return &creator{tx: tx, insert: stmt}, nil
}

// createCopy copies *c into rec, fills its defaults and records it.
func (cr *creator) createCopy(ctx context.Context, rec, c *store.Cert, now time.Time) error {
	if c == nil {
		return errors.New("nil record")
	}
	*rec = *c
	if err := prepareNew(rec, now); err != nil {
		return err
	}
	return cr.create(ctx, rec)
}

// create records c, prepared by prepareNew, by CreateCert's rules: if c is
// active and the name's active certificate has expired at c.CreatedAt, that
// one becomes superseded; if it has not, c fails with store.ErrNameTaken.
//
// The insert comes first and the expiry check only if the name is taken,
// which keeps the common case to one statement: a batch of 100,000 spends
// its time in that loop.
func (cr *creator) create(ctx context.Context, c *store.Cert) error {
	err := cr.insertCert(ctx, c)
	if !errors.Is(err, errNameIndex) {
		return err
	}
	superseded, serr := supersedeExpired(ctx, cr.tx, c.Name, c.CreatedAt)
	if serr != nil {
		return serr
	}
	if superseded {
		err = cr.insertCert(ctx, c)
	}
	if errors.Is(err, errNameIndex) {
		return fmt.Errorf("name %q: %w", c.Name, store.ErrNameTaken)
	}
	return err
}

// errNameIndex is insertCert's store.ErrNameTaken: the active name index
// refused the record, which create may yet resolve.
var errNameIndex = fmt.Errorf("active name index: %w", store.ErrNameTaken)

// insertCert inserts c. A record that breaks both the primary key and the
// active name index reports the duplicate serial, the graver of the two (a
// broken RNG or a replayed write), whichever SQLite happened to check first.
func (cr *creator) insertCert(ctx context.Context, c *store.Cert) error {
	args, err := certArgs(c)
	if err != nil {
		return err
	}
	_, err = cr.insert.ExecContext(ctx, args...)
	if err == nil {
		return nil
	}
	sentinel := constraintError(err)
	switch {
	case errors.Is(sentinel, store.ErrNameTaken):
		dup, err := serialExists(ctx, cr.tx, c.Serial)
		if err != nil {
			return err
		}
		if dup {
			return store.ErrDuplicateSerial
		}
		return errNameIndex
	case sentinel != nil:
		return sentinel
	}
	return cleanError(err)
}

func serialExists(ctx context.Context, tx *sql.Tx, serial string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM certs WHERE serial = ?`, serial).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, cleanError(err)
	}
	return true, nil
}

// supersedeExpired retires the active certificate of name if it has expired
// at now (as store.Cert.Expired has it), making room for a new one, and
// reports whether it did.
func supersedeExpired(ctx context.Context, tx *sql.Tx, name string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE certs SET status = 'superseded', version = version + 1
		WHERE name = ? AND status = 'active' AND not_after <= ?`, name, clampTime(now))
	if err != nil {
		return false, fmt.Errorf("superseding expired certificate of %q: %w", name, cleanError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("superseding expired certificate of %q: %w", name, cleanError(err))
	}
	return n > 0, nil
}

// certArgs returns c's column values in certColumns order.
func certArgs(c *store.Cert) ([]any, error) {
	var times [3]int64
	for i, f := range []struct {
		name string
		t    time.Time
	}{{"not_before", c.NotBefore}, {"not_after", c.NotAfter}, {"created_at", c.CreatedAt}} {
		n, err := encodeTime(f.name, f.t)
		if err != nil {
			return nil, err
		}
		times[i] = n
	}
	var revokedAt sql.NullInt64
	if !c.RevokedAt.IsZero() {
		n, err := encodeTime("revoked_at", c.RevokedAt)
		if err != nil {
			return nil, err
		}
		revokedAt = sql.NullInt64{Int64: n, Valid: true}
	}
	der := c.DER
	if der == nil {
		der = []byte{} // The column is NOT NULL; a nil slice binds as NULL.
	}
	return []any{c.Serial, c.Name, c.Profile, c.Issuer, c.Subject, times[0], times[1],
		der, string(c.Status), revokedAt, c.Reason, times[2], c.Version}, nil
}
