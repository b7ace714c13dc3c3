package tunnel

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// bufSize is one TLS record of plaintext: a read from a tls.Conn returns at
// most that much, so a larger buffer would only cost memory.
const bufSize = 16 << 10

// bufPool lends copy buffers. A buffer is taken when a direction starts
// copying and returned when it ends.
var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

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
// pooled buffer, no other allocation.
func pipe(dst, src net.Conn) (int64, error) {
	bp := bufPool.Get().(*[]byte)
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
	bufPool.Put(bp)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
	}
	return n, err
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
