package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
//
// The pools are the package's, not an Engine's: they hold only free
// buffers, which the collector empties anyway, and engines in one process
// are better off lending each other free buffers than keeping a set each.
// What an engine has out of them is its own count (Engine.Buffers).
var (
	flowPool = sync.Pool{New: func() any { b := make([]byte, flowBufSize); return &b }}
	heldPool = sync.Pool{New: func() any { b := make([]byte, recordSize); return &b }}
)

func (e *Engine) getBuf() *[]byte {
	e.bufs.Add(1)
	return flowPool.Get().(*[]byte)
}

// getSmallBuf lends a record-sized buffer.
func (e *Engine) getSmallBuf() *[]byte {
	e.bufs.Add(1)
	return heldPool.Get().(*[]byte)
}

func (e *Engine) putBuf(bp *[]byte) {
	if len(*bp) == recordSize {
		heldPool.Put(bp)
	} else {
		flowPool.Put(bp)
	}
	e.bufs.Add(-1)
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
	return d.e.pipeBuffered(d.dst, d.src)
}

// pipeBuffered is the portable copy loop: it holds its buffer for as long
// as the direction lasts, idle or not.
func (e *Engine) pipeBuffered(dst, src net.Conn) (int64, error) {
	bp := e.getSmallBuf()
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
	e.putBuf(bp)
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
	dst, e := d.dst, d.e
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
			bp = e.getBuf()
		} else {
			bp = e.getSmallBuf()
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
		e.putBuf(bp)
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
	Release(tc)
	return n, err
}

func isDeadline(err error) bool { return err != nil && errors.Is(err, os.ErrDeadlineExceeded) }

// rawConn is the socket under a connection, for waiting on it without a
// buffer.
type rawConn = syscall.RawConn

// aLongTimeAgo is a read deadline that has passed: a read under it fails
// at once unless the connection already holds the data.
var aLongTimeAgo = time.Unix(1, 0)
