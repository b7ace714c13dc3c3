package relay

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// closeWriter is what TCP, UNIX and TLS connections offer for half-close.
type closeWriter interface{ CloseWrite() error }

// Result is what one connection moved.
type Result struct {
	Up, Down int64 // client→target, target→client
	Err      error // nil when both sides ended as connections do (EOF, closed, cut by a timer)
}

// Limits bound a fusion in time.
type Limits struct {
	// CloseTimeout is how long the target has to finish its answer after
	// the client's EOF.
	CloseTimeout time.Duration
	// Lifetime bounds the whole connection; zero: unbounded.
	Lifetime time.Duration
}

// Fuse prepares the copying both ways between client and target until
// both directions end, then done is called with what moved, on the
// goroutine that finished last. Start starts it and returns at once (in
// between, the caller makes the fusion reachable for shutdown before it can
// end). Each direction runs on a goroutine of its own, started by Start,
// so that the goroutines a connection keeps are fresh ones with small
// stacks, not the one that grew a deep stack for the handshake. A direction
// that has had no input for parkAfter gives up its goroutine and waits in
// the engine's parker (park_linux.go), so an idle connection keeps no
// goroutine at all.
//
// When one direction reaches EOF it half-closes the other side's write
// half, so protocols that signal the end of a request with a FIN keep
// working; after the client's EOF the target gets Limits.CloseTimeout to
// finish its answer. Close on the fusion cuts both sides, parked or not.
func (e *Engine) Fuse(client, target net.Conn, done func(Result)) *Fusion {
	f := &Fusion{e: e, client: client, target: target, done: done}
	f.up = direction{e: e, f: f, dst: target, src: client, up: true, rc: rawConnOf(client)}
	f.down = direction{e: e, f: f, dst: client, src: target, rc: rawConnOf(target)}
	f.left.Store(2)
	return f
}

// Start starts copying under l.
func (f *Fusion) Start(l Limits) {
	f.closeTimeout = l.CloseTimeout
	if l.Lifetime > 0 {
		f.stop = time.AfterFunc(l.Lifetime, f.cut)
	}
	go f.down.run()
	go f.up.run()
}

// Fusion is one fused connection.
type Fusion struct {
	e               *Engine
	client, target  net.Conn
	closeTimeout    time.Duration
	done            func(Result)
	up, down        direction
	upErr, downErr  error
	stop, closeWait *time.Timer
	left            atomic.Int32 // directions still running

	mu     sync.Mutex // closed, and each direction's parked state
	closed bool
}

// direction is one way of a fusion: src to dst.
type direction struct {
	e        *Engine
	f        *Fusion
	dst, src net.Conn
	up       bool
	rc       rawConn // src's socket, for parking; nil: never parks
	n        int64   // bytes moved so far
	large    bool    // pipeTLS: the last round filled its buffer

	// Parking state, under f.mu.
	parked  bool
	noPark  bool // registering failed once: block instead
	parkReg      // the parker's, per system
}

// Close cuts the connection: the caller's shutdown reaches fused
// connections through it, never through their sockets, so that parked
// directions learn of the close.
func (f *Fusion) Close() error {
	f.cut()
	return nil
}

// cut closes both sides and restarts any parked direction, which then
// finds its source closed and ends.
func (f *Fusion) cut() {
	f.mu.Lock()
	f.closed = true
	kickUp, kickDown := f.up.parked, f.down.parked
	f.up.parked, f.down.parked = false, false
	f.mu.Unlock()
	f.client.Close()
	f.target.Close()
	if kickUp {
		f.e.parker.remove(&f.up)
		go f.up.run()
	}
	if kickDown {
		f.e.parker.remove(&f.down)
		go f.down.run()
	}
}

// run copies until the direction ends or idles; an idle direction parks
// (its goroutine returns) and runs again, on a new goroutine, when its
// source has input.
func (d *direction) run() {
	for {
		n, err := pipe(d)
		d.n += n
		if err == errIdle {
			if d.park() {
				return
			}
			// Not parked: wait here, on this goroutine. pipeRaw sets a
			// read deadline only while parking is possible, so the past
			// one must go, or the next read would fail at once, forever.
			d.src.SetReadDeadline(time.Time{})
			continue
		}
		d.finish(err)
		return
	}
}

// idleDeadline is the read deadline of a blocking wait: the moment the
// direction parks instead (zero: it never does).
func (d *direction) idleDeadline() time.Time {
	if parkAfter == 0 || d.rc == nil || d.noPark {
		return time.Time{}
	}
	return time.Now().Add(parkAfter)
}

func (d *direction) park() bool {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if err := d.e.parker.add(d); err != nil {
		d.noPark = true
		return false
	}
	d.parked = true
	return true
}

func (d *direction) finish(err error) {
	f := d.f
	if err == nil {
		if cw, ok := d.dst.(closeWriter); ok {
			cw.CloseWrite()
		}
	}
	if d.up {
		f.upErr = err
		if err != nil {
			// The client side broke (a reset, an alert): no answer can
			// reach it, so waiting closeTimeout would only hold the
			// target.
			f.cut()
		} else {
			// The client finished sending: give the target closeTimeout
			// to finish its answer, then cut.
			f.closeWait = time.AfterFunc(f.closeTimeout, f.cut)
		}
	} else {
		f.downErr = err
		if err != nil {
			// The target side broke (an alert, a reset) and nothing was
			// half-closed: nothing more can reach the client, and the
			// other direction may be waiting for it. Cut both.
			f.cut()
		}
	}
	f.end()
}

// end runs as each direction ends; the second one finishes the connection.
// The atomic counter orders each direction's writes to f before the last
// one reads them.
func (f *Fusion) end() {
	if f.left.Add(-1) != 0 {
		return
	}
	if f.stop != nil {
		f.stop.Stop()
	}
	if f.closeWait != nil {
		f.closeWait.Stop()
	}
	f.cut()
	f.done(Result{Up: f.up.n, Down: f.down.n, Err: errors.Join(quiet(f.upErr), quiet(f.downErr))})
}

// quiet drops the errors every proxied connection ends with when the other
// side closed first or a timer cut it: they are outcomes, not faults.
func quiet(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	var ne *net.OpError
	if errors.As(err, &ne) && (errors.Is(ne.Err, net.ErrClosed)) {
		return nil
	}
	return err
}
