//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package tunnel

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// rawConnOf returns the socket of a stream connection with no user-space
// buffering (TCP, UNIX stream), or nil.
func rawConnOf(c net.Conn) rawConn {
	switch c := c.(type) {
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

// waiter waits for a socket to be readable while holding no buffer: the
// poller (edge-triggered) is armed before each check, so a check that finds
// nothing and the wait that follows cannot miss data arriving in between.
// A readiness check is poll(2) with a zero timeout: unlike a MSG_PEEK
// recv, it does not consume a pending socket error (a reset), which the
// next Read must report.
type waiter struct {
	rc     rawConn
	bp     *[]byte // the buffer, given back while waiting
	pfd    [1]unix.PollFd
	ready  bool
	waitFn func(uintptr) bool // method values made once: no allocation per wait
	ctlFn  func(uintptr)
}

func newWaiter(rc rawConn) *waiter {
	w := &waiter{rc: rc}
	w.waitFn = w.waitCheck
	w.ctlFn = w.ctlCheck
	return w
}

// check reports whether fd has data, an EOF or an error pending.
func (w *waiter) check(fd uintptr) bool {
	w.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	for {
		n, err := unix.Poll(w.pfd[:], 0)
		if err == unix.EINTR {
			continue
		}
		// An error from poll itself: let the Read find out.
		return err != nil || n > 0
	}
}

func (w *waiter) waitCheck(fd uintptr) bool {
	if w.check(fd) {
		return true
	}
	if w.bp != nil {
		putBuf(w.bp)
		w.bp = nil
	}
	return false
}

func (w *waiter) ctlCheck(fd uintptr) { w.ready = w.check(fd) }

// wait returns when the socket is readable (or closed, or past its read
// deadline), having given back the buffer if it had to wait.
func (w *waiter) wait() error { return w.rc.Read(w.waitFn) }

// readable reports, without waiting, whether the socket has input.
func (w *waiter) readable() bool {
	w.ready = false
	if w.rc.Control(w.ctlFn) != nil {
		return true // closed: the Read will say
	}
	return w.ready
}

// rawReader reads a socket from inside RawConn.Read: it takes a buffer just
// before the read system call and gives it back if the call would block, so
// the wait for input holds none, at no extra system call.
type rawReader struct {
	bp     *[]byte
	n      int
	errno  error
	readFn func(uintptr) bool
}

func (r *rawReader) read(fd uintptr) bool {
	if r.bp == nil {
		r.bp = getBuf()
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
			putBuf(r.bp)
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
func pipeRaw(dst, src net.Conn, rc rawConn) (int64, error) {
	r := &rawReader{}
	r.readFn = r.read
	var n int64
	var err error
	for {
		if rerr := rc.Read(r.readFn); rerr != nil {
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
		nw, werr := dst.Write((*r.bp)[:r.n])
		n += int64(nw)
		if werr != nil {
			err = werr
			break
		}
	}
	if r.bp != nil {
		putBuf(r.bp)
		r.bp = nil
	}
	return n, err
}
