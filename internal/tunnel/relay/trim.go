package relay

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// After a burst of new connections the Go heap holds the garbage of their
// handshakes (tens of KiB each) until the next collection, and the runtime
// keeps the freed pages mapped for as long as the heap goal allows, which
// with the default GOGC is about twice the live heap: a proxy that took
// 5,000 connections in a burst keeps ≈40 KiB of RSS per connection while
// they idle, though ≈17 KiB per connection is live. Directions that park
// (park_linux.go) free their goroutine stacks, which also stay mapped.
// trimLoop notices the end of a burst (no new connection and no parking
// for trimQuiet after at least trimMinConns of them) and hands the free
// memory back with debug.FreeOSMemory: one
// collection of the live heap (≈0.1 s of CPU for 5,000 connections), at
// most once per trimMinInterval, and never while connections keep coming.
const (
	trimQuiet       = 250 * time.Millisecond
	trimMinConns    = 256
	trimMinInterval = 10 * time.Second
)

func (e *Engine) trimLoop(ctx context.Context, events func() int64) {
	t := time.NewTicker(trimQuiet)
	defer t.Stop()
	var last, since int64
	var lastTrim time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := events()
		if n != last {
			since += n - last
			last = n
			continue
		}
		if since < trimMinConns || time.Since(lastTrim) < trimMinInterval {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		lastTrim = time.Now()
		e.log.Debug("returned free memory to the system after a burst of connections",
			slog.Int64("connections", since), slog.Duration("took", lastTrim.Sub(start)))
		since = 0
	}
}
