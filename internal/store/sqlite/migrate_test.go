package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/store"
)

func TestMigrationsNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations() = %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("migrations() = none")
	}
}

// rawExec runs statements on the file at path without going through Open.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.db")
	for i := range 2 { // Create, then reopen: the second Open has nothing to do.
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open #%d = %v", i+1, err)
		}
		h, err := readHeader(t.Context(), s.db)
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := migrations()
		if h.appID != applicationID || h.version != len(ms) {
			t.Errorf("Open #%d: application_id %#x, user_version %d; want %#x, %d", i+1, h.appID, h.version, applicationID, len(ms))
		}
		var mode string
		if err := s.db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v; want wal", mode, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConnectionPragmas checks that every pooled connection, not just the
// first, has the per-connection settings.
func TestConnectionPragmas(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		if conns[i], err = s.db.Conn(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	want := map[string]int64{"busy_timeout": busyTimeout.Milliseconds(), "synchronous": 2, "foreign_keys": 1}
	for i, c := range conns {
		for pragma, v := range want {
			var got int64
			if err := c.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != v {
				t.Errorf("connection %d: PRAGMA %s = %d, %v; want %d", i, pragma, got, err, v)
			}
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   []string // run on a fresh portcullis store, or an empty file if fresh is false
		fresh   bool
		wantErr string
		wantIs  error
	}{
		{
			name:    "newer schema",
			fresh:   true,
			setup:   []string{"PRAGMA user_version = 99"},
			wantErr: "version 99, this binary knows up to",
			wantIs:  errSchemaTooNew,
		},
		{
			name:    "other program's database",
			setup:   []string{"CREATE TABLE accounts (id INTEGER PRIMARY KEY)"},
			wantErr: "not a portcullis store",
		},
		{
			name:    "other application_id",
			setup:   []string{"PRAGMA application_id = 1234"},
			wantErr: "not a portcullis store (application_id 0x4d2)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ca.db")
			if tt.fresh {
				s, err := Open(t.Context(), path)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
			}
			rawExec(t, path, tt.setup...)
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) = nil error, want %q", tt.name, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "opening store ") {
				t.Errorf("Open(%s) = %q, want it to contain %q", tt.name, err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Open(%s) = %v, want errors.Is %v", tt.name, err, tt.wantIs)
			}
		})
	}
}

// TestApplyMigrations upgrades a current store with made-up migrations: a
// good one lands with its version, a failing one leaves no trace.
func TestApplyMigrations(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	next := len(ms) + 1
	good := append(ms, migration{version: next, name: "good.sql", sql: `
		CREATE TABLE extra (x INTEGER) STRICT;
		CREATE INDEX extra_x ON extra (x);`})
	bad := append(good, migration{version: next + 1, name: "bad.sql", sql: `
		CREATE TABLE half (x INTEGER);
		CREATE TABLE extra (x INTEGER);`}) // extra exists: fails halfway.

	if err := applyMigrations(t.Context(), s.db, good); err != nil {
		t.Fatalf("applyMigrations(good) = %v", err)
	}
	err = applyMigrations(t.Context(), s.db, bad)
	if err == nil || !strings.Contains(err.Error(), "applying migration bad.sql") {
		t.Errorf("applyMigrations(bad) = %v, want an error naming bad.sql", err)
	}

	h, err := readHeader(t.Context(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	if h.version != next {
		t.Errorf("user_version = %d, want %d", h.version, next)
	}
	for table, want := range map[string]int{"extra": 1, "half": 0} {
		var n int
		q := "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?"
		if err := s.db.QueryRowContext(t.Context(), q, table).Scan(&n); err != nil || n != want {
			t.Errorf("table %s: count %d, %v; want %d", table, n, err, want)
		}
	}
}

// TestUpgradeFrom1 opens a store written before the enrollment tables
// (migration 0001 only, with a certificate in it): Open adds them and the
// certificate is still there.
func TestUpgradeFrom1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.db")
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := applyMigrations(t.Context(), db, ms[:1]); err != nil {
		t.Fatalf("applyMigrations(0001) = %v", err)
	}
	if _, err := db.ExecContext(t.Context(), `INSERT INTO certs (serial, name, profile, issuer, subject,
		not_before, not_after, der, status, created_at, version) VALUES ('ab', 'old', 'server', 'a1', 'CN=old',
		0, 1, x'00', 'active', 0, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(version 1 store) = %v", err)
	}
	defer s.Close()
	if h, err := readHeader(t.Context(), s.db); err != nil || h.version != len(ms) {
		t.Errorf("user_version = %d, %v; want %d", h.version, err, len(ms))
	}
	if c, err := s.Cert(t.Context(), "ab"); err != nil || c.Name != "old" {
		t.Errorf("Cert(ab) after upgrade = %+v, %v", c, err)
	}
	if _, err := s.Request(t.Context(), "req_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Request() after upgrade = %v, want ErrNotFound (tables present)", err)
	}
}
