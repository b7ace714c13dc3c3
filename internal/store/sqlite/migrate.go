package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFS holds the schema, one file per version: NNNN_what.sql, numbered
// from 0001 without gaps. A released file is never edited; a change is a new
// file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// applicationID marks a SQLite file as a portcullis store (PRAGMA
// application_id, https://www.sqlite.org/fileformat.html#application_id), so
// Open refuses to add tables to some other program's database. "PCUS".
const applicationID = 0x50435553

// errSchemaTooNew is returned by Open for a store written by a newer binary,
// whose schema this one does not understand.
var errSchemaTooNew = errors.New("store schema is newer than this binary supports")

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order, checking that
// versions run 1, 2, 3… without gaps or duplicates.
func migrations() ([]migration, error) {
	files, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	// fs.Glob returns names sorted, so zero-padded versions come in order.
	var ms []migration
	for i, f := range files {
		name := path.Base(f)
		prefix, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want version %04d", name, i+1)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	return ms, nil
}

// header is what Open learns about a database before touching it.
type header struct {
	appID   int // PRAGMA application_id
	version int // PRAGMA user_version: the last migration applied
	objects int // rows in sqlite_schema: tables, indexes, …
}

// readHeader reads the header in one statement, hence from one snapshot:
// separate PRAGMAs could straddle another process's migration commit and see
// its tables without its application_id.
func readHeader(ctx context.Context, db *sql.DB) (header, error) {
	var h header
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT application_id FROM pragma_application_id),
		(SELECT user_version FROM pragma_user_version),
		(SELECT count(*) FROM sqlite_schema)`).Scan(&h.appID, &h.version, &h.objects)
	if err != nil {
		// Unwrapped: this first read of the file is where SQLite reports
		// "file is not a database", which needs no context.
		return h, cleanError(err)
	}
	return h, nil
}

// checkOwner refuses a SQLite database that some other program created: one
// with a foreign application_id, or with tables but no portcullis schema.
func checkOwner(h header) error {
	switch {
	case h.appID == applicationID:
		return nil
	case h.appID != 0:
		return fmt.Errorf("not a portcullis store (application_id %#x)", h.appID)
	case h.version != 0 || h.objects != 0:
		return errors.New("not a portcullis store (a SQLite database of another program)")
	}
	return nil
}

// migrate brings the schema up to the newest embedded version. The version
// lives in PRAGMA user_version, which is part of the database header and so
// changes atomically with the migration's transaction.
func migrate(ctx context.Context, db *sql.DB, h header) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	switch {
	case h.version == len(ms):
		return nil // The common case: no write lock taken.
	case h.version > len(ms):
		return tooNew(h.version, len(ms))
	}
	return applyMigrations(ctx, db, ms)
}

func tooNew(version, known int) error {
	return fmt.Errorf("%w: version %d, this binary knows up to %d; use a newer portcullis", errSchemaTooNew, version, known)
}

// applyMigrations runs the pending migrations in one write transaction. The
// version is read again under the write lock: another process opening the
// same new file may have migrated it since.
func applyMigrations(ctx context.Context, db *sql.DB, ms []migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning migration: %w", cleanError(err))
	}
	// Rollback after a successful Commit is a no-op; after a failure the
	// migration error is the one to report.
	defer func() { _ = tx.Rollback() }()

	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return cleanError(err)
	}
	if v > len(ms) {
		return tooNew(v, len(ms))
	}
	if v == 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", applicationID)); err != nil {
			return cleanError(err)
		}
	}
	for _, m := range ms[v:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("applying migration %s: %w", m.name, cleanError(err))
		}
		// PRAGMA takes no bound parameters; m.version is an int.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
			return fmt.Errorf("applying migration %s: %w", m.name, cleanError(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing migrations: %w", cleanError(err))
	}
	return nil
}
