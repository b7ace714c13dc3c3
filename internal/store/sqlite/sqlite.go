// Package sqlite is the embedded, default implementation of store.Store: one
// SQLite file (in WAL mode) that several portcullis processes may use at once,
// for example two `portcullis ca issue` runs. It owns the schema and its
// migrations (migrations/*.sql, embedded in the binary).
//
// Times are stored as INTEGER unix microseconds, the precision of a PostgreSQL
// timestamptz, and read back in UTC. A time's sub-microsecond part is
// truncated on write, so a time round-trips exactly if it is a whole number
// of microseconds and is otherwise read back as t.Truncate(time.Microsecond);
// query bounds (List's NotAfter filters, Revoked's floor) are truncated the
// same way. An int64 of microseconds spans some 290,000 years either side of
// 1970, which covers every time an X.509 certificate can carry, including
// RFC 5280's "no well-defined expiration date", 9999-12-31T23:59:59Z; times
// beyond that are rejected rather than wrapped.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/portcullis-dev/portcullis/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store backed by one SQLite file.
type Store struct {
	db   *sql.DB
	path string
	// writes serializes this process's write transactions. SQLite allows one
	// writer at a time anyway; queueing here instead of in SQLite's busy
	// handler (which polls with sleeps) keeps in-process contention cheap and
	// leaves busy_timeout for contention with other processes.
	writes chan struct{}
	// queue holds the writes waiting for the writer lock; whoever takes the
	// lock commits them all as one group (see write).
	mu    sync.Mutex
	queue []*writeJob
}

// writeJob is one caller's transaction body waiting to be committed.
type writeJob struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error // receives the outcome once
}

// busyTimeout is how long a write waits for another process's write
// transaction before failing with SQLITE_BUSY. Issuance transactions are a
// few milliseconds; ten seconds covers a slow disk with fsync per commit.
const busyTimeout = 10 * time.Second

// Open opens the store at path, creating the file (mode 0600) and the schema
// if needed and applying pending migrations. It refuses a file that is not a
// SQLite database, a SQLite database that is not a portcullis store, and a
// store whose schema is newer than this binary.
//
// Open does not run PRAGMA quick_check: it reads the whole file, which for a
// large CA would be paid by every CLI invocation. Check does it on demand.
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("opening store %q: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := createPrivate(abs); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, err
	}
	// Connections are cheap to keep and cost a round of PRAGMAs to open.
	db.SetMaxIdleConns(4)
	if err := setup(ctx, db); err != nil {
		// The setup error is the one worth reporting; closing a pool that
		// never held a usable connection has nothing to add.
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, path: abs, writes: make(chan struct{}, 1)}, nil
}

func setup(ctx context.Context, db *sql.DB) error {
	// The header read is the first to touch the file: a file that is not a
	// database fails here, before anything is written to it.
	h, err := readHeader(ctx, db)
	if err != nil {
		return err
	}
	if err := checkOwner(h); err != nil {
		return err
	}
	if err := ensureWAL(ctx, db); err != nil {
		return err
	}
	return migrate(ctx, db, h)
}

// ensureWAL puts the file in WAL mode, in which readers and the writer do not
// block each other. The mode is a property of the file, not of a connection,
// so once is enough and later connections, in any process, find it set.
//
// It is not a DSN pragma because the switch needs an exclusive lock and SQLite
// does not run the busy handler for it: processes opening a new store at the
// same time fail at once with SQLITE_BUSY (seen in TestMultiProcess; also
// https://github.com/russellromney/honker/pull/102). So retry for as long as
// busy_timeout would have waited. On a file already in WAL mode the pragma
// takes no lock.
func ensureWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	wait := time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		switch {
		case err == nil && strings.EqualFold(mode, "wal"):
			return nil
		case err == nil:
			// SQLite keeps the old mode where WAL cannot work, such as on
			// a file system without shared memory.
			return fmt.Errorf("switching to WAL mode: journal mode stays %q", mode)
		case !isBusy(err) || time.Now().After(deadline):
			return fmt.Errorf("switching to WAL mode: %w", cleanError(err))
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("switching to WAL mode: %w", ctx.Err())
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// createPrivate creates path with mode 0600 if it does not exist, so the
// database (and the -wal and -shm files SQLite creates with the same mode)
// is not world-readable. An existing file is left alone.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn builds the modernc.org/sqlite data source name. The per-connection
// pragmas go in the DSN, not in a one-off Exec, because database/sql opens
// connections at will and each one needs them (the driver runs busy_timeout
// first, so the others wait for other processes):
//   - busy_timeout: wait for another process's write transaction instead of
//     failing with SQLITE_BUSY;
//   - synchronous(FULL): fsync the WAL at every commit, since losing an
//     issued certificate's record on power loss is not acceptable;
//   - foreign_keys(1): off by default in SQLite.
//
// journal_mode is not among them: see ensureWAL.
//
// _txlock=immediate makes BEGIN take the write lock up front. With deferred
// transactions two processes that both read and then write can deadlock on
// the lock upgrade, and SQLite resolves that with SQLITE_BUSY at once,
// ignoring busy_timeout (https://www.sqlite.org/lang_transaction.html).
//
// The path is a file: URI so it is percent-encoded: a literal '?' or '#' in a
// directory name must not be read as the start of the query.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing store %q: %w", s.path, err)
	}
	return nil
}

// Check runs SQLite's PRAGMA quick_check, which reads the whole file, and
// reports the first problem it finds. It is for an explicit health check,
// not for every Open.
func (s *Store) Check(ctx context.Context) error {
	var res string
	if err := s.db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&res); err != nil {
		return fmt.Errorf("checking store %q: %w", s.path, cleanError(err))
	}
	if res != "ok" {
		return fmt.Errorf("checking store %q: %s", s.path, res)
	}
	return nil
}

// maxGroup bounds how many writes one commit carries, so a group's leader
// (whose caller waits for it) is not held long by the others'.
const maxGroup = 128

// write runs fn in a write transaction (BEGIN IMMEDIATE, see dsn) and
// commits it if fn returns nil.
//
// Writes commit in groups: each fsync of the WAL costs about a
// millisecond or more, and with one per transaction the server's renewals
// per second would be the disk's syncs per second. A caller queues its fn
// and waits for the writer lock; whoever takes the lock runs every queued
// fn in one transaction, each inside its own SAVEPOINT so that one fn's
// failure rolls back that fn alone, and commits once. Every caller still
// returns only after its own write is durable (or refused), exactly as
// with a commit of its own; only the fsync is shared.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	j := &writeJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	select {
	case err := <-j.done: // a group led by another caller carried it
		return err
	case s.writes <- struct{}{}:
	case <-ctx.Done():
		if s.dequeue(j) {
			return ctx.Err()
		}
		return <-j.done // already taken into a group: its outcome stands
	}
	defer func() { <-s.writes }()
	s.mu.Lock()
	n := min(len(s.queue), maxGroup)
	group := s.queue[:n:n]
	s.queue = append([]*writeJob(nil), s.queue[n:]...)
	s.mu.Unlock()
	if len(group) > 0 {
		s.commitGroup(group)
	}
	// j was in this group, or in an earlier one whose leader answered it
	// before releasing the lock; or it is still queued behind maxGroup
	// others, and the next leader takes it.
	return <-j.done
}

// dequeue removes j if no group has taken it yet.
func (s *Store) dequeue(j *writeJob) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.queue {
		if q == j {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return true
		}
	}
	return false
}

// commitGroup runs the group's fns in one transaction and answers each.
// A lone write needs no savepoint: its failure rolls back the transaction.
func (s *Store) commitGroup(group []*writeJob) {
	// Not a caller's context: cancelling one caller must not abort the
	// others' commit. Each fn still uses its own context for its queries.
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, j := range group {
			j.done <- fmt.Errorf("beginning transaction: %w", cleanError(err))
		}
		return
	}
	alone := len(group) == 1
	var applied []*writeJob
	for i, j := range group {
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		if !alone {
			if _, err := tx.Exec("SAVEPOINT w"); err != nil {
				s.abortGroup(tx, applied, group[i:])
				return
			}
		}
		if err := j.fn(tx); err != nil {
			if !alone {
				if rerr := rollbackTo(tx); rerr != nil {
					j.done <- err
					s.abortGroup(tx, applied, group[i+1:])
					return
				}
			}
			j.done <- err
			continue
		}
		if !alone {
			if _, err := tx.Exec("RELEASE w"); err != nil {
				s.abortGroup(tx, applied, group[i:])
				return
			}
		}
		applied = append(applied, j)
	}
	if len(applied) == 0 {
		// Every fn failed or was cancelled: nothing to keep, and their
		// errors say what went wrong.
		_ = tx.Rollback()
		return
	}
	err = tx.Commit()
	if err != nil {
		err = fmt.Errorf("committing: %w", cleanError(err))
	}
	for _, j := range applied {
		j.done <- err
	}
}

// abortGroup handles a savepoint that SQLite refused (which leaves the
// transaction unusable): it rolls the group back and runs the writes
// that were applied or not yet run again, each alone.
func (s *Store) abortGroup(tx *sql.Tx, applied, rest []*writeJob) {
	_ = tx.Rollback() // discarded: the savepoint error is why
	for _, j := range append(applied, rest...) {
		s.commitGroup([]*writeJob{j})
	}
}

// rollbackTo undoes the current savepoint's work and drops it.
func rollbackTo(tx *sql.Tx) error {
	if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
		return err
	}
	_, err := tx.Exec("RELEASE w")
	return err
}

// The range of time.Time.UnixMicro: about 290,000 years either side of 1970.
var (
	minTime = time.UnixMicro(math.MinInt64).UTC()
	maxTime = time.UnixMicro(math.MaxInt64).UTC()
)

// encodeTime returns t as unix microseconds, truncating (toward the past)
// any sub-microsecond part. Outside the int64 range UnixMicro silently
// returns garbage, so such times are an error.
//
// Microseconds rather than nanoseconds because an int64 of nanoseconds ends
// in 2262, before the 9999-12-31 NotAfter that RFC 5280 §4.1.2.5 prescribes
// for certificates without an expiry date, which an imported PKI may hold.
func encodeTime(field string, t time.Time) (int64, error) {
	if t.Before(minTime) || t.After(maxTime) {
		return 0, fmt.Errorf("%s %s is outside the range the store can hold (%s to %s)",
			field, t.Format(time.RFC3339), minTime.Format(time.DateOnly), maxTime.Format(time.DateOnly))
	}
	return t.UnixMicro(), nil
}

// clampTime is encodeTime for query bounds, where a bound beyond the range
// still has a meaning and clamping it does not change the result.
func clampTime(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixMicro()
}

func decodeTime(n int64) time.Time { return time.UnixMicro(n).UTC() }

// constraintError maps a constraint violation on insert into certs to the
// store sentinel it stands for, or returns nil if err is not one of them.
// The extended result code tells the primary key (serial) from a unique
// index; the message names the index's column, which tells certs_active_name
// from any unique index a later migration adds.
func constraintError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return store.ErrDuplicateSerial
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		if strings.Contains(se.Error(), "certs.name") {
			return store.ErrNameTaken
		}
	}
	return nil
}

// driverSuffix matches what modernc.org/sqlite appends to SQLite's message:
// the result code, and for SQLITE_BUSY its name.
var driverSuffix = regexp.MustCompile(` \(\d+\)( \(SQLITE_[A-Z_]+\))?$`)

// cleanError strips the driver's suffix from messages such as "file is not a
// database (26)"; the code is for programs, which get it from the wrapped
// *sqlite.Error, not for an operator reading
// `opening store "ca.db": file is not a database`.
func cleanError(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	short := driverSuffix.ReplaceAllString(se.Error(), "")
	if short == se.Error() {
		return err
	}
	// err may wrap se; keep whatever it says around it.
	return &driverError{msg: strings.Replace(err.Error(), se.Error(), short, 1), err: err}
}

// driverError keeps the driver error for errors.As while printing a shorter
// message.
type driverError struct {
	msg string
	err error
}

func (e *driverError) Error() string { return e.msg }
func (e *driverError) Unwrap() error { return e.err }
