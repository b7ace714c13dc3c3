package enroll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// ErrLogTooLarge: an uploaded log is over Config.LogMaxBytes.
var ErrLogTooLarge = errors.New("log too large")

// UploadLog stores a log the device authenticated by presented uploads,
// keeping its newest Config.LogsKept. It is a check-in too.
func (s *Service) UploadLog(ctx context.Context, presented *x509.Certificate, name string, data []byte) (*store.DeviceLog, error) {
	if len(data) > s.cfg.LogMaxBytes {
		return nil, fmt.Errorf("uploading log: %w", invalid(fmt.Errorf("%w: %d bytes, limit %d", ErrLogTooLarge, len(data), s.cfg.LogMaxBytes)))
	}
	if name == "" {
		name = "log"
	}
	if len(name) > 128 || !utf8.ValidString(name) || strings.ContainsAny(name, "/\\\x00\r\n") {
		return nil, fmt.Errorf("uploading log: %w", invalid(fmt.Errorf("log name %q: want up to 128 characters, no path or control characters", name)))
	}
	dev, _, err := s.deviceOf(ctx, presented)
	if err != nil {
		return nil, fmt.Errorf("uploading log: %w", err)
	}
	now := s.now()
	l := &store.DeviceLog{Device: dev.ID, Name: name, ReceivedAt: now, Data: data}
	if err := s.store.AddDeviceLog(ctx, l, s.cfg.LogsKept); err != nil {
		return nil, fmt.Errorf("uploading log: %w", err)
	}
	if _, err := s.store.TouchDevice(ctx, dev.ID, now, ""); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "recording check-in failed", slog.String("device", string(dev.ID)), slog.Any("err", err))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "device log received", slog.String("device", string(dev.ID)),
		slog.String("name", name), slog.Int("bytes", len(data)))
	return l, nil
}

// DeviceLogs lists a device's logs (without data), newest first.
func (s *Service) DeviceLogs(ctx context.Context, id store.DeviceID) ([]*store.DeviceLog, error) {
	if _, err := s.store.Device(ctx, id); err != nil {
		return nil, err
	}
	return s.store.DeviceLogs(ctx, id)
}

// DeviceLog returns one of a device's logs with its data.
func (s *Service) DeviceLog(ctx context.Context, id store.DeviceID, logID int64) (*store.DeviceLog, error) {
	return s.store.DeviceLog(ctx, id, logID)
}

// EnrollmentsPerDay counts enrollment requests per UTC day over the last
// days days, today included, with zero days filled in.
func (s *Service) EnrollmentsPerDay(ctx context.Context, days int) ([]store.DayCount, error) {
	today := s.now().UTC().Truncate(24 * time.Hour)
	since := today.AddDate(0, 0, -(days - 1))
	counts, err := s.store.EnrollmentsPerDay(ctx, since)
	if err != nil {
		return nil, err
	}
	byDay := map[time.Time]int{}
	for _, c := range counts {
		byDay[c.Day.UTC()] = c.Count
	}
	out := make([]store.DayCount, 0, days)
	for d := since; !d.After(today); d = d.AddDate(0, 0, 1) {
		out = append(out, store.DayCount{Day: d, Count: byDay[d]})
	}
	return out, nil
}
