package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// EnrollmentsPerDay groups requests by UTC day; the times are unix
// microseconds, so a day is an integer division.
func (s *Store) EnrollmentsPerDay(ctx context.Context, since time.Time) ([]store.DayCount, error) {
	from, err := encodeTime("since", since)
	if err != nil {
		return nil, fmt.Errorf("counting enrollments: %w", err)
	}
	const dayMicros = 86_400_000_000
	rows, err := s.db.QueryContext(ctx, `SELECT created_at / ? AS day, count(*) FROM enrollment_requests
		WHERE created_at >= ? GROUP BY day ORDER BY day`, dayMicros, from)
	if err != nil {
		return nil, fmt.Errorf("counting enrollments: %w", cleanError(err))
	}
	defer rows.Close()
	var out []store.DayCount
	for rows.Next() {
		var day int64
		var n int
		if err := rows.Scan(&day, &n); err != nil {
			return nil, fmt.Errorf("counting enrollments: %w", cleanError(err))
		}
		out = append(out, store.DayCount{Day: decodeTime(day * dayMicros), Count: n})
	}
	return out, cleanError(rows.Err())
}

// AddDeviceLog inserts the log and trims the device's oldest beyond keep.
func (s *Store) AddDeviceLog(ctx context.Context, l *store.DeviceLog, keep int) error {
	at, err := encodeTime("received_at", l.ReceivedAt)
	if err != nil {
		return fmt.Errorf("storing device log: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO device_logs (device_id, name, received_at, size, data)
			VALUES (?,?,?,?,?)`, l.Device, l.Name, at, len(l.Data), l.Data)
		if err != nil {
			return cleanError(err)
		}
		if l.ID, err = res.LastInsertId(); err != nil {
			return cleanError(err)
		}
		if keep > 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM device_logs WHERE device_id = ? AND id NOT IN
				(SELECT id FROM device_logs WHERE device_id = ? ORDER BY id DESC LIMIT ?)`, l.Device, l.Device, keep)
		}
		return cleanError(err)
	})
	if err != nil {
		return fmt.Errorf("storing device log: %w", err)
	}
	l.Size, l.ReceivedAt = len(l.Data), decodeTime(at)
	return nil
}

// DeviceLogs lists a device's logs, newest first, without data.
func (s *Store) DeviceLogs(ctx context.Context, id store.DeviceID) ([]*store.DeviceLog, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, device_id, name, received_at, size FROM device_logs
		WHERE device_id = ? ORDER BY id DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("listing device logs: %w", cleanError(err))
	}
	defer rows.Close()
	var out []*store.DeviceLog
	for rows.Next() {
		var l store.DeviceLog
		var at int64
		if err := rows.Scan(&l.ID, &l.Device, &l.Name, &at, &l.Size); err != nil {
			return nil, fmt.Errorf("listing device logs: %w", cleanError(err))
		}
		l.ReceivedAt = decodeTime(at)
		out = append(out, &l)
	}
	return out, cleanError(rows.Err())
}

// DeviceLog returns one log with its data.
func (s *Store) DeviceLog(ctx context.Context, id store.DeviceID, logID int64) (*store.DeviceLog, error) {
	var l store.DeviceLog
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT id, device_id, name, received_at, size, data FROM device_logs
		WHERE device_id = ? AND id = ?`, id, logID).Scan(&l.ID, &l.Device, &l.Name, &at, &l.Size, &l.Data)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading device log %d: %w", logID, cleanError(err))
	}
	l.ReceivedAt = decodeTime(at)
	return &l, nil
}
