//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package relay

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// rawConnOf returns the socket of a stream connection with no user-space
// buffering (TCP, UNIX stream; and under a tls.Conn, for parking), or nil.
func rawConnOf(c net.Conn) rawConn {
	switch c := c.(type) {
	case *tls.Conn:
		if f, ok := c.NetConn().(*flowConn); ok {
			return f.rc
		}
		return nil
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		if err != nil {
			return nil
		}
		return rc
	case *net.UnixConn:
		if a := c.LocalAddr(); a == nil || a.Network() != "unix" {
			return nil // unixgram, unixpacket: keep message semantics as they were
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return nil
		}
		return rc
	}
	return nil
}

// rawReader reads a socket from inside RawConn.Read: it takes a buffer just
// before the read system call and gives it back if the call would block, so
// the wait for input holds none, at no extra system call.
type rawReader struct {
	e      *Engine
	bp     *[]byte
	n      int
	errno  error
	readFn func(uintptr) bool
}

func (r *rawReader) read(fd uintptr) bool {
	if r.bp == nil {
		r.bp = r.e.getBuf()
	}
	for {
		n, err := unix.Read(int(fd), *r.bp)
		switch err {
		case nil:
			r.n, r.errno = n, nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			r.e.putBuf(r.bp)
			r.bp = nil
			return false
		default:
			r.n, r.errno = 0, err
			return true
		}
	}
}

// pipeRaw copies from a TCP or UNIX stream socket, holding a buffer only
// from the read system call that returns data to the end of its write.
func pipeRaw(d *direction) (int64, error) {
	dst, src, rc := d.dst, d.src, d.rc
	r := &rawReader{e: d.e}
	r.readFn = r.read
	fc := flowUnder(dst)
	var n int64
	var err error
	for {
		if dl := d.idleDeadline(); !dl.IsZero() {
			src.SetReadDeadline(dl)
		}
		if rerr := rc.Read(r.readFn); rerr != nil {
			if isDeadline(rerr) {
				err = errIdle
				break
			}
			// Closed, or past a read deadline: report it as a Read would.
			if oe, ok := rerr.(*net.OpError); ok {
				oe.Op = "read"
			}
			err = rerr
			break
		}
		if r.errno != nil {
			err = &net.OpError{Op: "read", Net: src.LocalAddr().Network(), Source: src.LocalAddr(), Addr: src.RemoteAddr(), Err: os.NewSyscallError("read", r.errno)}
			break
		}
		if r.n == 0 {
			break // EOF
		}
		if fc != nil {
			fc.batch()
		}
		nw, werr := dst.Write((*r.bp)[:r.n])
		if fc != nil {
			if ferr := fc.flush(); werr == nil {
				werr = ferr
			}
		}
		n += int64(nw)
		if werr != nil {
			err = werr
			break
		}
	}
	if r.bp != nil {
		d.e.putBuf(r.bp)
		r.bp = nil
	}
	return n, err
}

// flowConn is the socket under a tls.Conn. crypto/tls asks its connection
// for what the next record needs, so it reads about one record per read
// system call; flowConn reads up to flowBufSize per call instead, into a
// pooled buffer it holds only while that buffer has bytes crypto/tls has
// not taken yet. A burst of records then costs one read system call, and
// pipeTLS finds them all buffered and writes them on in one call. An idle
// connection holds no buffer: the wait happens in rawReader, with none.
//
// Only the goroutine that reads the tls.Conn (the handshake, then pipeTLS)
// calls Read and release; crypto/tls serializes those under its input lock.
//
// Reading ahead costs a copy, and a buffer for connections that move a few
// bytes at a time (the handshake, requests and answers) would be wasted:
// flowConn reads straight into crypto/tls's buffer until a read fills that
// buffer (a stream is coming), and goes back to it after a read of less
// than a record.
type flowConn struct {
	net.Conn
	rc      rawConn
	r       rawReader
	pending []byte
	ahead   bool // reading ahead

	// Writes: crypto/tls writes each record with a write of its own;
	// between batch and flush, flowConn gathers them (a 128 KiB plaintext
	// read becomes one write system call, not eight, and the small records
	// of crypto/tls's dynamic record sizing one, not dozens). wmu orders
	// those writes with flush: crypto/tls serializes its own writes, but
	// flush comes from outside it.
	wmu      sync.Mutex
	batching bool
	wbuf     *[]byte
}

// writeBufSize holds a flowBufSize plaintext as TLS 1.3 records: each adds
// a 5-byte header, the content type and a 16-byte tag.
const writeBufSize = flowBufSize + 64*22

var writePool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

// flowUnder returns the flowConn under a tls.Conn, or nil.
func flowUnder(c net.Conn) *flowConn {
	if tc, ok := c.(*tls.Conn); ok {
		if f, ok := tc.NetConn().(*flowConn); ok {
			return f
		}
	}
	return nil
}

func (f *flowConn) batch() {
	f.wmu.Lock()
	f.batching = true
	f.wmu.Unlock()
}

// flush writes what the batch gathered and ends the batch.
func (f *flowConn) flush() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.batching = false
	return f.flushLocked()
}

func (f *flowConn) flushLocked() error {
	if f.wbuf == nil {
		return nil
	}
	var err error
	if b := *f.wbuf; len(b) > 0 {
		_, err = f.Conn.Write(b)
	}
	// Back to the pool only once written: another connection may take it.
	*f.wbuf = (*f.wbuf)[:0]
	writePool.Put(f.wbuf)
	f.wbuf = nil
	return err
}

func (f *flowConn) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if !f.batching {
		return f.Conn.Write(p)
	}
	if f.wbuf != nil && len(*f.wbuf)+len(p) > cap(*f.wbuf) {
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > writeBufSize {
		return f.Conn.Write(p)
	}
	if f.wbuf == nil {
		f.wbuf = writePool.Get().(*[]byte)
	}
	*f.wbuf = append(*f.wbuf, p...)
	return len(p), nil
}

// Wrap returns what crypto/tls should read and write instead of c, a
// socket the caller is about to hand to tls.Server or tls.Client: a
// flowConn over a TCP or UNIX stream socket, c itself otherwise. Whoever
// gives up on the tls.Conn before a fusion takes it over calls Release.
func (e *Engine) Wrap(c net.Conn) net.Conn {
	rc := rawConnOf(c)
	if rc == nil {
		return c
	}
	f := &flowConn{Conn: c, rc: rc}
	f.r.e = e
	f.r.readFn = f.r.read
	return f
}

func (f *flowConn) Read(p []byte) (int, error) {
	if len(f.pending) == 0 {
		if !f.ahead {
			n, err := f.Conn.Read(p)
			f.ahead = n == len(p) && n >= recordSize
			return n, err
		}
		if err := f.fill(); err != nil {
			return 0, err
		}
		f.ahead = len(f.pending) >= recordSize
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	if len(f.pending) == 0 {
		f.release()
	}
	return n, nil
}

func (f *flowConn) fill() error {
	if err := f.rc.Read(f.r.readFn); err != nil {
		// Closed, or past the read deadline (crypto/tls relies on the
		// latter being a timeout error, as a Read's would be).
		if oe, ok := err.(*net.OpError); ok {
			oe.Op = "read"
		}
		f.release()
		return err
	}
	if f.r.errno != nil {
		f.release()
		return &net.OpError{Op: "read", Net: f.LocalAddr().Network(), Source: f.LocalAddr(), Addr: f.RemoteAddr(), Err: os.NewSyscallError("read", f.r.errno)}
	}
	if f.r.n == 0 {
		f.release()
		return io.EOF
	}
	f.pending = (*f.r.bp)[:f.r.n]
	return nil
}

// release gives back the buffer, dropping unread bytes: call it when
// nothing will read the connection again, or when it has none.
func (f *flowConn) release() {
	f.pending = nil
	if f.r.bp != nil {
		f.r.e.putBuf(f.r.bp)
		f.r.bp = nil
	}
}

// CloseWrite half-closes the socket, as the TCP or UNIX conn would.
func (f *flowConn) CloseWrite() error {
	if cw, ok := f.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Release gives back the read-ahead buffer under tc (from Wrap), if any:
// for a tls.Conn that no fusion took over, such as one whose handshake
// failed.
func Release(tc *tls.Conn) {
	if f, ok := tc.NetConn().(*flowConn); ok {
		f.release()
	}
}
