package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRevokedQueryPlan checks that Revoked reads only its covering index,
// neither scanning nor visiting the certs table.
func TestRevokedQueryPlan(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+revokedQuery, "a1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "USING COVERING INDEX certs_revoked") {
		t.Errorf("Revoked query plan = %q, want it to use covering index certs_revoked", got)
	}
}

// fillRevoked inserts n revoked certificates of issuer, and n unrevoked ones
// of another issuer, in one transaction: going through CreateCert and Revoke
// would cost two fsyncs per row.
func fillRevoked(ctx context.Context, s *Store, issuer string, n int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO certs (`+certColumns+`)
		VALUES (?, ?, 'device', ?, 'CN=x', ?, ?, ?, ?, ?, 1, ?, 1)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	der := make([]byte, 600)
	now := time.Now().UnixMicro()
	year := (365 * 24 * time.Hour).Microseconds()
	for i := range 2 * n {
		iss, status, revokedAt := issuer, "revoked", any(now)
		if i%2 == 1 {
			iss, status, revokedAt = "other", "superseded", nil
		}
		serial := fmt.Sprintf("%032x", i+1)
		_, err := stmt.ExecContext(ctx, serial, "n"+serial, iss, now, now+year, der, status, revokedAt, now)
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

func TestRevokedLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 2,000-entry store")
	}
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 2_000
	if err := fillRevoked(t.Context(), s, "a1", n); err != nil {
		t.Fatal(err)
	}
	revs, err := s.Revoked(t.Context(), "a1", time.Now())
	if err != nil || len(revs) != n {
		t.Fatalf("Revoked() = %d entries, %v; want %d", len(revs), err, n)
	}
}

// BenchmarkRevoked reads the entries of a 100,000-entry CRL.
func BenchmarkRevoked(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "ca.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	if err := fillRevoked(b.Context(), s, "a1", n); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		revs, err := s.Revoked(b.Context(), "a1", time.Now())
		if err != nil || len(revs) != n {
			b.Fatalf("Revoked() = %d entries, %v; want %d", len(revs), err, n)
		}
	}
}
