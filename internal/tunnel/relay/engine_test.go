package relay

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

const ioTimeout = 10 * time.Second

// fused is a connection through an engine: the client's end, the
// backend's end, and the fusion's result once it ended.
type fused struct {
	client, backend *net.TCPConn
	done            chan Result
}

func fuse(t *testing.T, e *Engine) fused {
	t.Helper()
	client, in := tcpPair(t)
	out, backend := tcpPair(t)
	f := fused{client: client, backend: backend, done: make(chan Result, 1)}
	e.Fuse(in, out, func(r Result) { f.done <- r }).Start(Limits{CloseTimeout: ioTimeout})
	client.SetDeadline(time.Now().Add(ioTimeout))
	backend.SetDeadline(time.Now().Add(ioTimeout))
	return f
}

// exchange sends msg from the client to the backend and back.
func (f fused) exchange(t *testing.T, msg string) {
	t.Helper()
	for _, p := range [][2]net.Conn{{f.client, f.backend}, {f.backend, f.client}} {
		if _, err := io.WriteString(p[0], msg); err != nil {
			t.Fatalf("Write(%q) = %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(p[1], got); err != nil || string(got) != msg {
			t.Fatalf("ReadFull() = %q, %v; want %q", got, err, msg)
		}
	}
}

// waitFor polls cond until it holds, failing after ioTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v", what, ioTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEnginesApart: two engines side by side count only their own
// parkings and buffers, and closing one hands its parked directions their
// goroutines back (they keep carrying data, and park no more) while the
// other's stay parked and working.
func TestEnginesApart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("directions park on Linux only")
	}
	a, b := New(Options{}), New(Options{})
	t.Cleanup(func() { a.Close(); b.Close() })
	fa := fuse(t, a)
	fb := []fused{fuse(t, b), fuse(t, b)}
	fa.exchange(t, "a")
	for _, f := range fb {
		f.exchange(t, "b")
	}
	waitFor(t, "every direction parked", func() bool { return a.Parked() == 2 && b.Parked() == 4 })
	if a.Parks() != 2 || b.Parks() != 4 {
		t.Errorf("Parks() = %d and %d, want 2 and 4: each engine counts its own", a.Parks(), b.Parks())
	}

	a.Close()
	waitFor(t, "a's directions running again", func() bool { return a.Parked() == 0 })
	if b.Parked() != 4 {
		t.Errorf("b.Parked() = %d after a closed, want 4", b.Parked())
	}
	fa.exchange(t, "a after close")
	for _, f := range fb {
		f.exchange(t, "b after a closed")
	}
	// b's directions idle again and park; a's, idle as long, do not.
	waitFor(t, "b's directions parked again", func() bool { return b.Parks() >= 8 && b.Parked() == 4 })
	if a.Parked() != 0 || a.Parks() != 2 {
		t.Errorf("closed engine: Parked() = %d, Parks() = %d; want 0 and still 2", a.Parked(), a.Parks())
	}
	fa.exchange(t, "a still")

	for _, f := range append(fb, fa) {
		f.client.CloseWrite()
		f.backend.CloseWrite()
		select {
		case r := <-f.done:
			if r.Err != nil {
				t.Errorf("fusion ended with %v", r.Err)
			}
		case <-time.After(ioTimeout):
			t.Fatal("a fusion did not end after both sides half-closed")
		}
	}
	if a.Buffers() != 0 || b.Buffers() != 0 {
		t.Errorf("Buffers() = %d and %d after every fusion ended, want 0", a.Buffers(), b.Buffers())
	}
	if b.Parked() != 0 {
		t.Errorf("b.Parked() = %d after every fusion ended, want 0", b.Parked())
	}
}
