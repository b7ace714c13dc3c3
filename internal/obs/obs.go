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

// AuditLog is an append-only file of JSON lines, one per decision. Every
// line is synced to disk before Write returns, so an event the caller
// reported survives a crash. Concurrent writers share the fsync (group
// commit): the lines waiting while one sync runs go out together in the
// next write(2) and sync. A write(2) on an O_APPEND file lands whole, so
// lines from concurrent processes never interleave.
type AuditLog struct {
	mu       sync.Mutex
	cond     *sync.Cond
	f        *os.File
	open     *auditBatch // lines waiting for the next sync
	flushing bool
}

// auditBatch is lines written and synced together.
type auditBatch struct {
	buf  []byte
	done bool
	err  error
}

// OpenAuditLog opens (creating, 0600) the audit file at path.
func OpenAuditLog(path string) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	a := &AuditLog{f: f}
	a.cond = sync.NewCond(&a.mu)
	return a, nil
}

// Write appends one record and returns once it is synced.
func (a *AuditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open == nil {
		a.open = &auditBatch{}
	}
	b := a.open
	b.buf = append(b.buf, p...)
	for !b.done {
		if a.flushing {
			a.cond.Wait()
			continue
		}
		// Flush what is open now (b among it) while others queue up.
		fb := a.open
		a.open, a.flushing = nil, true
		a.mu.Unlock()
		_, err := a.f.Write(fb.buf)
		if err == nil {
			err = a.f.Sync()
		}
		a.mu.Lock()
		fb.done, fb.err, a.flushing = true, err, false
		a.cond.Broadcast()
	}
	if b.err != nil {
		return 0, b.err
	}
	return len(p), nil
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
