// Package obs owns observability: slog setup for operator logs, the audit
// sink (one JSON line per decision, durable), and later the Prometheus
// registry and health handlers.
package obs

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// NewLogger builds the operator log: format "text" or "json", level
// "debug", "info", "warn" or "error".
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// AuditLog is an append-only file of JSON lines, one per decision. Each
// line is written with a single write(2) on an O_APPEND file, so lines from
// concurrent processes never interleave, and synced before the call
// returns, so an event the CA reported survives a crash.
type AuditLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenAuditLog opens (creating, 0600) the audit file at path.
func OpenAuditLog(path string) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return &AuditLog{f: f}, nil
}

// Write appends one record and syncs it.
func (a *AuditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.f.Write(p)
	if err != nil {
		return n, err
	}
	return n, a.f.Sync()
}

// Close closes the file.
func (a *AuditLog) Close() error { return a.f.Close() }

// Logger returns a slog.Logger whose records are audit events: JSON, with
// the event name under "event" and a "type":"audit" marker so the lines are
// easy to route when mixed with other logs.
func (a *AuditLog) Logger() *slog.Logger {
	return NewAuditLogger(a)
}

// NewAuditLogger returns an audit logger writing JSON lines to w.
func NewAuditLogger(w io.Writer) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.MessageKey {
				a.Key = "event"
			}
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(h).With(slog.String("type", "audit"))
}
