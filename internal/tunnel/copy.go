package tunnel

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// recordSize is the most plaintext one TLS record carries, and so the
// most one tls.Conn.Read returns.
const recordSize = 16 << 10

// flowBufSize is the buffer of a direction while a stream flows: several
// records, so that a run of records already received goes to the target in
// one write system call instead of one per record (see pipeTLS), and a
// plaintext source is read in as few calls. Eight: 64 KiB measured 5–10 %
// more CPU per GB, 256 KiB little less than this for twice the memory per
// busy connection.
const flowBufSize = 8 * recordSize

// flowPool lends the buffers of directions that hold one only while bytes
// flow: where the source can be waited on without a buffer (TCP, UNIX, and
// TLS over those; see copy_unix.go), a direction gives its buffer back
// before it waits for more input, so an idle connection holds none.
// heldPool lends record-sized buffers: to directions that keep theirs for
// their whole life (pipeBuffered), and to pipeTLS for rounds that are not
// part of a stream.
var (
	flowPool = sync.Pool{New: func() any { b := make([]byte, flowBufSize); return &b }}
	heldPool = sync.Pool{New: func() any { b := make([]byte, recordSize); return &b }}
)

// bufsInUse counts the buffers taken from the pools and not yet returned.
var bufsInUse atomic.Int64

func getBuf() *[]byte {
	bufsInUse.Add(1)
	return flowPool.Get().(*[]byte)
}

// getSmallBuf lends a record-sized buffer.
func getSmallBuf() *[]byte {
	bufsInUse.Add(1)
	return heldPool.Get().(*[]byte)
}

func putBuf(bp *[]byte) {
	if len(*bp) == recordSize {
		heldPool.Put(bp)
	} else {
		flowPool.Put(bp)
	}
	bufsInUse.Add(-1)
}

// closeWriter is what TCP, UNIX and TLS connections offer for half-close.
type closeWriter interface{ CloseWrite() error }

// result is what one connection moved.
type result struct {
	up, down int64 // client→target, target→client
	err      error
}

// newFusion prepares the copying both ways between client and target
// until both directions end, then done is called with what moved, on the
// goroutine that finished last. start starts it and returns at once (in
// between, the caller makes the fusion reachable for shutdown before it can
// end). Each direction runs on a goroutine of its own, started by start,
// so that the goroutines a connection keeps are fresh ones with small
// stacks, not the one that grew a deep stack for the handshake. A direction
// that has had no input for parkAfter gives up its goroutine and waits in
// the parker (park_linux.go), so an idle connection keeps no goroutine at
// all.
//
// When one direction reaches EOF it half-closes the other side's write
// half, so protocols that signal the end of a request with a FIN keep
// working; after the client's EOF the target gets closeTimeout to finish
// its answer. lifetime (if positive, given to start) bounds the whole
// connection. Close on the fusion cuts both sides, parked or not.
func newFusion(client, target net.Conn, closeTimeout time.Duration, done func(result)) *fusion {
	f := &fusion{client: client, target: target, closeTimeout: closeTimeout, done: done}
	f.up = direction{f: f, dst: target, src: client, up: true, rc: rawConnOf(client)}
	f.down = direction{f: f, dst: client, src: target, rc: rawConnOf(target)}
	f.left.Store(2)
	return f
}

func (f *fusion) start(lifetime time.Duration) {
	if lifetime > 0 {
		f.stop = time.AfterFunc(lifetime, f.cut)
	}
	go f.down.run()
	go f.up.run()
}

// fusion is one fused connection.
type fusion struct {
	client, target  net.Conn
	closeTimeout    time.Duration
	done            func(result)
	up, down        direction
	upErr, downErr  error
	stop, closeWait *time.Timer
	left            atomic.Int32 // directions still running

	mu     sync.Mutex // closed, and each direction's parked state
	closed bool
}

// direction is one way of a fusion: src to dst.
type direction struct {
	f        *fusion
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

// Close cuts the connection; shutdown reaches fused connections through
// it (Proxy.active).
func (f *fusion) Close() error {
	f.cut()
	return nil
}

// cut closes both sides and restarts any parked direction, which then
// finds its source closed and ends.
func (f *fusion) cut() {
	f.mu.Lock()
	f.closed = true
	kickUp, kickDown := f.up.parked, f.down.parked
	f.up.parked, f.down.parked = false, false
	f.mu.Unlock()
	f.client.Close()
	f.target.Close()
	if kickUp {
		theParker.remove(&f.up)
		go f.up.run()
	}
	if kickDown {
		theParker.remove(&f.down)
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
	if err := theParker.add(d); err != nil {
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
func (f *fusion) end() {
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
	f.done(result{up: f.up.n, down: f.down.n, err: errors.Join(quiet(f.upErr), quiet(f.downErr))})
}

// errIdle: the source had no input for parkAfter.
var errIdle = errors.New("idle")

// pipe copies d.src to d.dst until EOF (nil), an error, or errIdle. It is
// the hot path: one pooled buffer, held only while bytes flow, and no other
// allocation per read.
func pipe(d *direction) (int64, error) {
	if tc, ok := d.src.(*tls.Conn); ok {
		return pipeTLS(d, tc)
	}
	if d.rc != nil {
		return pipeRaw(d)
	}
	return pipeBuffered(d.dst, d.src)
}

// pipeBuffered is the portable copy loop: it holds its buffer for as long
// as the direction lasts, idle or not.
func pipeBuffered(dst, src net.Conn) (int64, error) {
	bp := getSmallBuf()
	buf := *bp
	var n int64
	var err error
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				err = werr
				break
			}
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
	}
	putBuf(bp)
	return n, err
}

// pipeTLS copies from a TLS connection. It waits for input with a
// one-byte Read, which holds no pooled buffer however long the connection
// stays idle: crypto/tls reads and decrypts a whole record into its own
// buffer and returns the first byte. Only then does pipeTLS take a buffer
// and gather the rest of that record, and any further whole records
// crypto/tls already received, with reads under a read deadline in the
// past. Such a read does no I/O (the poller fails it before the read system
// call), returns what is buffered, and ends with a deadline error, which
// crypto/tls treats as temporary (readRecordOrCCS does not record it; a
// partial record stays in rawInput), so the connection stays usable. The
// gathered records go to dst in one write: a read system call often brings
// in more than one record, and without gathering each would cost a write
// system call of its own.
//
// It owns the read deadline of tc while it runs.
func pipeTLS(d *direction, tc *tls.Conn) (int64, error) {
	dst := d.dst
	var one [1]byte
	var n int64
	var err error
	// A round that filled its buffer asks for a large one next: a request
	// or an answer fits a record-sized buffer, a stream does not.
	large := d.large
	// The handshake may have read records past its end, or input came
	// while parked: gather first.
	past := tc.SetReadDeadline(aLongTimeAgo) == nil
	for {
		var rerr error
		head := 0
		if !past {
			head, rerr = tc.Read(one[:])
			if head == 0 {
				if isDeadline(rerr) {
					err = errIdle
				} else if rerr != io.EOF {
					err = rerr
				}
				break
			}
			if rerr == nil {
				past = tc.SetReadDeadline(aLongTimeAgo) == nil
			}
		}
		var bp *[]byte
		if large {
			bp = getBuf()
		} else {
			bp = getSmallBuf()
		}
		buf := *bp
		nr := copy(buf, one[:head])
		// What does not fit stays in tc for the next round.
		for past && rerr == nil && nr < len(buf) {
			var m int
			m, rerr = tc.Read(buf[nr:])
			nr += m
			if isDeadline(rerr) {
				// Nothing whole left in tc: wait for the socket.
				rerr = nil
				tc.SetReadDeadline(d.idleDeadline())
				past = false
			}
		}
		large = nr == len(buf)
		var werr error
		if nr > 0 {
			var nw int
			nw, werr = dst.Write(buf[:nr])
			n += int64(nw)
		}
		putBuf(bp)
		if werr != nil {
			err = werr
			break
		}
		if rerr != nil {
			if rerr != io.EOF {
				err = rerr
			}
			break
		}
		// Still past: the buffer filled up and tc may hold more; the next
		// round gathers it or finds nothing and waits.
	}
	d.large = large
	if past {
		tc.SetReadDeadline(time.Time{})
	}
	releaseFlow(tc)
	return n, err
}

func isDeadline(err error) bool { return err != nil && errors.Is(err, os.ErrDeadlineExceeded) }

// rawConn is the socket under a connection, for waiting on it without a
// buffer.
type rawConn = syscall.RawConn

// aLongTimeAgo is a read deadline that has passed: a read under it fails
// at once unless the connection already holds the data.
var aLongTimeAgo = time.Unix(1, 0)

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
