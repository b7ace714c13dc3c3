package relay

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestClientResetClosesTargetAtOnce: a client that resets its connection
// must not hold the target for the close timeout.
func TestClientResetClosesTargetAtOnce(t *testing.T) {
	a, b := net.Pipe()
	c, d := net.Pipe()
	done := make(chan Result, 1)
	New(Options{}).Fuse(b, c, func(r Result) { done <- r }).Start(Limits{CloseTimeout: time.Minute})
	// The client's side fails with an error other than EOF.
	a.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(d, buf); err != nil {
		t.Fatal(err)
	}
	b.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Now())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("fuse still waiting after the client side failed; want both sides closed at once")
	}
	if _, err := d.Read(buf); err == nil {
		t.Error("target side still open after the client side failed")
	}
}

// pipeConns runs one direction from src to dst, without parking, then
// half-closes dst as a finished direction does.
func pipeConns(dst, src net.Conn) (int64, error) {
	d := &direction{e: New(Options{}), dst: dst, src: src, rc: rawConnOf(src), noPark: true}
	n, err := pipe(d)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
	}
	return n, err
}
