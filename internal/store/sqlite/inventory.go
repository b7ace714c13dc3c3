package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// ListRequests pages through requests by (created_at, id). The cursor is
// looked up inside the query, so a page needs one statement and a cursor
// that no longer exists simply ends the listing.
func (s *Store) ListRequests(ctx context.Context, f store.RequestFilter) ([]*store.Request, error) {
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	if f.Device != "" {
		where, args = append(where, "device_id = ?"), append(args, f.Device)
	}
	if f.After != "" {
		where = append(where, "(created_at, id) > (SELECT created_at, id FROM enrollment_requests WHERE id = ?)")
		args = append(args, f.After)
	}
	q := selectRequest + whereClause(where) + " ORDER BY created_at, id LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, append(args, store.PageLimit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("listing requests: %w", cleanError(err))
	}
	defer rows.Close()
	var out []*store.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("listing requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing requests: %w", cleanError(err))
	}
	return out, nil
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

const selectDevice = `SELECT id, name, hardware_serial, os, os_version, owner_email,
	agent_version, state, first_seen, last_seen, version FROM devices`

func scanDevice(row rowScanner) (*store.Device, error) {
	var (
		d           store.Device
		first, last int64
	)
	err := row.Scan(&d.ID, &d.Name, &d.HardwareSerial, &d.OS, &d.OSVersion, &d.OwnerEmail, &d.AgentVersion,
		&d.State, &first, &last, &d.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, cleanError(err)
	}
	d.FirstSeen, d.LastSeen = decodeTime(first), decodeTime(last)
	return &d, nil
}

// ListDevices pages through devices by (first_seen, id).
func (s *Store) ListDevices(ctx context.Context, f store.DeviceFilter) ([]*store.Device, error) {
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	for col, v := range map[string]string{"os": f.OS, "owner_email": f.Owner, "name": f.Name} {
		if v != "" {
			where, args = append(where, col+" = ? COLLATE NOCASE"), append(args, v)
		}
	}
	if !f.LastSeenBefore.IsZero() {
		n, err := encodeTime("last_seen_before", f.LastSeenBefore)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		where, args = append(where, "last_seen < ?"), append(args, n)
	}
	if f.After != "" {
		where = append(where, "(first_seen, id) > (SELECT first_seen, id FROM devices WHERE id = ?)")
		args = append(args, f.After)
	}
	q := selectDevice + whereClause(where) + " ORDER BY first_seen, id LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, append(args, store.PageLimit(f.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("listing devices: %w", cleanError(err))
	}
	defer rows.Close()
	var out []*store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("listing devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing devices: %w", cleanError(err))
	}
	return out, nil
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]*store.Token, error) {
	rows, err := s.db.QueryContext(ctx, selectToken+" ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", cleanError(err))
	}
	defer rows.Close()
	var out []*store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens: %w", cleanError(err))
	}
	return out, nil
}

// TouchDevice moves last_seen forward only: MAX in the UPDATE, not a read
// before it, so concurrent check-ins cannot move it back.
func (s *Store) TouchDevice(ctx context.Context, id store.DeviceID, at time.Time, agentVersion string) (*store.Device, error) {
	n, err := encodeTime("last_seen", at)
	if err != nil {
		return nil, fmt.Errorf("recording check-in of %s: %w", id, err)
	}
	var d *store.Device
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen = MAX(last_seen, ?),
			agent_version = CASE WHEN ? = '' THEN agent_version ELSE ? END, version = version + 1
			WHERE id = ?`, n, agentVersion, agentVersion, id); err != nil {
			return cleanError(err)
		}
		d, err = scanDevice(tx.QueryRowContext(ctx, selectDevice+" WHERE id = ?", id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording check-in of %s: %w", id, err)
	}
	return d, nil
}

// RevokeDevice marks the device revoked, once.
func (s *Store) RevokeDevice(ctx context.Context, id store.DeviceID) (*store.Device, error) {
	var d *store.Device
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET state = 'revoked', version = version + 1
			WHERE id = ? AND state <> 'revoked'`, id); err != nil {
			return cleanError(err)
		}
		d, err = scanDevice(tx.QueryRowContext(ctx, selectDevice+" WHERE id = ?", id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoking device %s: %w", id, err)
	}
	return d, nil
}

// CountDevices counts devices by state.
func (s *Store) CountDevices(ctx context.Context) (map[store.DeviceState]int, error) {
	out := map[store.DeviceState]int{}
	if err := s.countBy(ctx, "SELECT state, count(*) FROM devices GROUP BY state", func(k string, n int) {
		out[store.DeviceState(k)] = n
	}); err != nil {
		return nil, fmt.Errorf("counting devices: %w", err)
	}
	return out, nil
}

// CountRequests counts requests by state.
func (s *Store) CountRequests(ctx context.Context) (map[store.RequestState]int, error) {
	out := map[store.RequestState]int{}
	if err := s.countBy(ctx, "SELECT state, count(*) FROM enrollment_requests GROUP BY state", func(k string, n int) {
		out[store.RequestState(k)] = n
	}); err != nil {
		return nil, fmt.Errorf("counting requests: %w", err)
	}
	return out, nil
}

func (s *Store) countBy(ctx context.Context, q string, add func(string, int)) error {
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return cleanError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k string
			n int
		)
		if err := rows.Scan(&k, &n); err != nil {
			return cleanError(err)
		}
		add(k, n)
	}
	return cleanError(rows.Err())
}
