package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// NextCRLNumber increments the CRL number of issuer and returns it; the first
// call for an issuer returns 1 (or SetCRLNumber's n + 1). The increment is a
// single upsert inside a write transaction, so concurrent callers in any
// number of processes each get a distinct, larger number.
func (s *Store) NextCRLNumber(ctx context.Context, issuer string) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO crl_numbers (issuer, number) VALUES (?, 1)
			ON CONFLICT (issuer) DO UPDATE SET number = number + 1
			RETURNING number`, issuer).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("incrementing CRL number of issuer %s: %w", issuer, cleanError(err))
	}
	return n, nil
}

// SetCRLNumber raises the CRL number of issuer to n if it is lower, so the
// next NextCRLNumber returns at least n + 1.
func (s *Store) SetCRLNumber(ctx context.Context, issuer string, n int64) error {
	if n < 0 {
		// RFC 5280 §5.2.3: the CRL number is a non-negative integer.
		return fmt.Errorf("setting CRL number of issuer %s: negative number %d", issuer, n)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO crl_numbers (issuer, number) VALUES (?, ?)
			ON CONFLICT (issuer) DO UPDATE SET number = max(number, excluded.number)`, issuer, n)
		return err
	})
	if err != nil {
		return fmt.Errorf("setting CRL number of issuer %s: %w", issuer, cleanError(err))
	}
	return nil
}
