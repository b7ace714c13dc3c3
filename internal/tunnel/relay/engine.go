// Package relay is the tunnel's copy engine: it moves the bytes of a
// proxied connection both ways once the tunnel has accepted, handshaken
// and dialled it. It owns the fusion of a client and a target connection
// (fuse.go), the copy loops that hold a buffer only while bytes flow
// (copy.go, ADR-9), the read-ahead and batched writes under crypto/tls
// (copy_unix.go, ADR-11), the parking of idle directions in an epoll set
// (park_linux.go) and the trimming of memory after bursts (trim.go,
// ADR-12).
//
// All of that state belongs to an Engine: the tunnel's Proxy makes one,
// runs it and closes it, and two engines in one process (tests) share
// nothing but the pools of free buffers.
package relay

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Options are what the caller injects into an Engine.
type Options struct {
	Logger *slog.Logger
	// Trim returns free memory to the system after each burst of new
	// connections or parkings (see trim.go). debug.FreeOSMemory acts on
	// the whole process: set it on the one engine of the process that
	// runs the proxy, not on engines of tests that run several.
	Trim bool
}

// Engine copies the fused connections of one proxy. Its counters and its
// parker are its own; Close stops its parking, Run its trimming.
type Engine struct {
	log  *slog.Logger
	trim bool

	bufs   atomic.Int64 // buffers taken from the pools and not yet returned
	parks  atomic.Int64 // directions parked so far
	conns  atomic.Int64 // connections the caller reported (Accepted)
	parker parker
}

// New returns an engine. It holds no system resource until a direction
// first parks.
func New(o Options) *Engine {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: o.Logger, trim: o.Trim}
	e.parker.e = e
	return e
}

// Run trims memory after bursts (Options.Trim) until ctx ends. Fusions
// work whether or not it runs.
func (e *Engine) Run(ctx context.Context) error {
	if !e.trim {
		<-ctx.Done()
		return nil
	}
	e.trimLoop(ctx, func() int64 { return e.conns.Load() + e.parks.Load() })
	return nil
}

// Close stops parking: the epoll set and its goroutine go away, parked
// directions get a goroutine back and keep it from then on. Fused
// connections keep working; call it once none is left, or when the
// caller no longer cares what idle connections cost.
func (e *Engine) Close() error {
	e.parker.close()
	return nil
}

// Accepted tells the engine of a new connection: its handshake left
// garbage, and a burst of them is what makes the engine trim.
func (e *Engine) Accepted() { e.conns.Add(1) }

// Buffers counts the copy buffers out of the pools now: none while every
// connection idles.
func (e *Engine) Buffers() int64 { return e.bufs.Load() }

// Parks counts the times a direction parked (gave up its goroutine).
func (e *Engine) Parks() int64 { return e.parks.Load() }

// Parked counts the directions parked now.
func (e *Engine) Parked() int { return e.parker.parkedNow() }
