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

// bufSize is one TLS record of plaintext: a read from a tls.Conn returns at
// most that much, so a larger buffer would only cost memory.
const bufSize = 16 << 10

// bufPool lends copy buffers. A buffer is taken from it only while bytes
// flow: where the source can be waited on without a buffer (TCP, UNIX, and
// TLS over those; see copy_unix.go), a direction gives its buffer back
// before it waits for more input, so an idle connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// bufsInUse counts the buffers taken from bufPool and not yet returned.
var bufsInUse atomic.Int64

func getBuf() *[]byte {
	bufsInUse.Add(1)
	return bufPool.Get().(*[]byte)
}

func putBuf(bp *[]byte) {
	bufPool.Put(bp)
	bufsInUse.Add(-1)
}

// closeWriter is what TCP, UNIX and TLS connections offer for half-close.
type closeWriter interface{ CloseWrite() error }

// result is what one connection moved.
type result struct {
	up, down int64 // client→target, target→client
	err      error
}

// fuse copies both ways between client and target until both directions
// end. When one direction reaches EOF it half-closes the other side's write
// half, so protocols that signal the end of a request with a FIN keep
// working; after that the other direction gets closeTimeout to finish.
// lifetime (if positive) bounds the whole connection.
func fuse(client, target net.Conn, closeTimeout, lifetime time.Duration) result {
	var res result
	done := make(chan error, 1)
	go func() {
		n, err := pipe(client, target)
		res.down = n
		if err != nil {
			// The target side broke (an alert, a reset) and pipe did not
			// half-close: nothing more can reach the client, and the
			// other direction may be blocked reading it. Cut both.
			client.Close()
			target.Close()
		}
		done <- err
	}()
	var stop *time.Timer
	if lifetime > 0 {
		stop = time.AfterFunc(lifetime, func() {
			client.Close()
			target.Close()
		})
	}
	up, upErr := pipe(target, client)
	res.up = up
	if upErr != nil {
		// The client side broke (a reset, an alert): no answer can reach
		// it, so waiting closeTimeout would only hold the target.
		client.Close()
		target.Close()
	}
	// The client finished sending: give the target closeTimeout to finish
	// its answer, then cut.
	timer := time.NewTimer(closeTimeout)
	var downErr error
	select {
	case downErr = <-done:
	case <-timer.C:
		client.Close()
		target.Close()
		downErr = <-done
	}
	timer.Stop()
	if stop != nil {
		stop.Stop()
	}
	client.Close()
	target.Close()
	res.err = errors.Join(quiet(upErr), quiet(downErr))
	return res
}

// pipe copies src to dst, then half-closes dst. It is the hot path: one
// pooled buffer, held only while bytes flow, and no other allocation per
// read.
func pipe(dst, src net.Conn) (int64, error) {
	var n int64
	var err error
	if tc, ok := src.(*tls.Conn); ok {
		if rc := rawConnOf(tc.NetConn()); rc != nil {
			n, err = pipeTLS(dst, tc, rc)
		} else {
			n, err = pipeBuffered(dst, src)
		}
	} else if rc := rawConnOf(src); rc != nil {
		n, err = pipeRaw(dst, src, rc)
	} else {
		n, err = pipeBuffered(dst, src)
	}
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
	}
	return n, err
}

// pipeBuffered is the portable copy loop: it holds its buffer for as long
// as the direction lasts, idle or not.
func pipeBuffered(dst, src net.Conn) (int64, error) {
	bp := getBuf()
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

// pipeTLS copies from a TLS connection whose socket can be waited on.
// crypto/tls keeps bytes it has received but not returned (whole records
// after the one being read, a partial record) in its own buffers, so the
// socket being quiet does not mean nothing is left. After a Read, if the
// socket has nothing, pipeTLS drains what the tls.Conn already holds with
// reads under a read deadline in the past: such a read does no I/O (the
// poller fails it before the read system call), returns whatever whole
// records are buffered, and ends with a deadline error, which crypto/tls
// treats as temporary (readRecordOrCCS does not record it, a partial record
// stays in rawInput), so the connection stays usable. What remains is at
// most a partial record, which only the socket can complete: pipeTLS then
// clears the deadline, gives back its buffer and waits for the socket.
//
// It owns the read deadline of tc while it runs.
func pipeTLS(dst net.Conn, tc *tls.Conn, rc rawConn) (int64, error) {
	w := newWaiter(rc)
	var n int64
	var err error
	// The handshake may have read records past its end: drain first.
	draining := tc.SetReadDeadline(aLongTimeAgo) == nil
	for {
		if w.bp == nil {
			w.bp = getBuf()
		}
		nr, rerr := tc.Read(*w.bp)
		drained := draining && rerr != nil && errors.Is(rerr, os.ErrDeadlineExceeded)
		if drained {
			rerr = nil
		}
		if nr > 0 {
			nw, werr := dst.Write((*w.bp)[:nr])
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
		if drained {
			// Nothing whole left in tc: wait for the socket without
			// a buffer. An error (closed) is left to the next Read.
			tc.SetReadDeadline(time.Time{})
			draining = false
			w.wait()
			continue
		}
		if draining || w.readable() {
			// Still draining, or more on the wire: read on, keeping
			// the buffer.
			continue
		}
		draining = tc.SetReadDeadline(aLongTimeAgo) == nil
	}
	if draining {
		tc.SetReadDeadline(time.Time{})
	}
	if w.bp != nil {
		putBuf(w.bp)
		w.bp = nil
	}
	return n, err
}

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
