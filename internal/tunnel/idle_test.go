package tunnel_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// waitNoBufs waits until none of the proxies has a copy buffer out of the
// pools.
func waitNoBufs(t *testing.T, what string, hs ...*harness) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		var out int64
		for _, h := range hs {
			out += h.p.Buffers()
		}
		if out == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d copy buffers still out of the pools, want 0", what, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTunnelIdleHoldsNoBuffers: idle connections through a client-mode and
// a server-mode proxy (plaintext → TLS → plaintext, both ways) hold no copy
// buffer, and data still flows both ways afterwards, then half-close works.
func TestTunnelIdleHoldsNoBuffers(t *testing.T) {
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
	// A direct mTLS client too: the server proxy reading TLS from a client.
	const n = 20
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c := dial(t, cli.addr(t, "127.0.0.1:0"))
		roundTrip(t, c, fmt.Sprintf("hello %d", i))
		conns = append(conns, c)
		tc := dialTLS(t, srv.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
		roundTrip(t, tc, fmt.Sprintf("hi %d", i))
		conns = append(conns, tc)
	}
	waitNoBufs(t, fmt.Sprintf("%d idle connections", len(conns)), srv, cli)
	for i, c := range conns {
		roundTrip(t, c, strings.Repeat(fmt.Sprint(i%10), 40000)) // several records
	}
	waitNoBufs(t, "idle again", srv, cli)
	for i, c := range conns {
		if err := closeWrite(c); err != nil {
			t.Fatalf("conn %d: CloseWrite() = %v", i, err)
		}
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Fatalf("conn %d after half-close: ReadAll() = %q, %v; want EOF", i, b, err)
		}
	}
}

// batchConn holds writes while batching and sends them in one Write.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      bytes.Buffer
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		return b.buf.Write(p)
	}
	return b.Conn.Write(p)
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	// tls.Conn.CloseWrite leaves a write deadline in the past.
	b.Conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := b.Conn.Write(b.buf.Bytes())
	b.buf.Reset()
	return err
}

// TestTunnelTLSRecordsBackToBack: many small TLS records arriving in one
// segment (crypto/tls buffers all but the first) are all delivered, with
// or without a close_notify in the same segment; the connection then idles
// with no buffer, and half-close carries through.
func TestTunnelTLSRecordsBackToBack(t *testing.T) {
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	for _, withClose := range []bool{false, true} {
		t.Run(fmt.Sprintf("close_notify=%v", withClose), func(t *testing.T) {
			raw := dial(t, srv.addr(t, "127.0.0.1:0"))
			bc := &batchConn{Conn: raw}
			tc := tls.Client(bc, e.tlsClient(e.client))
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			roundTrip(t, tc, "warm-up") // past the session tickets
			var want strings.Builder
			for round := 0; round < 3; round++ {
				bc.mu.Lock()
				bc.batching = true
				bc.mu.Unlock()
				for i := 0; i < 200; i++ {
					msg := fmt.Sprintf("<%d.%d>", round, i)
					want.WriteString(msg)
					if _, err := tc.Write([]byte(msg)); err != nil {
						t.Fatal(err)
					}
				}
				last := withClose && round == 2
				if last {
					if err := tc.CloseWrite(); err != nil {
						t.Fatal(err)
					}
				}
				if err := bc.flush(); err != nil {
					t.Fatal(err)
				}
				if last {
					break
				}
				got := make([]byte, want.Len())
				if _, err := io.ReadFull(tc, got); err != nil {
					t.Fatalf("round %d: reading the echo: %v", round, err)
				}
				if string(got) != want.String() {
					t.Fatalf("round %d: echo = %q, want %q", round, got, want.String())
				}
				want.Reset()
				waitNoBufs(t, fmt.Sprintf("after round %d", round), srv)
			}
			if withClose {
				got, err := io.ReadAll(tc)
				if err != nil {
					t.Fatalf("reading the echo up to EOF: %v", err)
				}
				if string(got) != want.String() {
					t.Fatalf("echo before EOF = %q, want %q", got, want.String())
				}
			}
			tc.Close()
		})
	}
}

// TestTunnelLargeStreams: megabytes in uneven writes, both ways at once,
// through a client-mode → server-mode chain and straight into server mode
// come back intact: read-ahead under crypto/tls, records gathered across
// buffer boundaries and batched writes lose, duplicate or reorder nothing.
func TestTunnelLargeStreams(t *testing.T) {
	e := newEnv(t)
	// The echo of what is still in flight when the client half-closes
	// may take longer than the default close timeout (1 s) on a loaded
	// machine under -race; the proxy would then cut it, correctly.
	srvSvc := e.serverService("srv", "127.0.0.1:0", echoBackend(t))
	srvSvc.CloseTimeout = tunnel.Duration(ioTimeout)
	srv := startProxy(t, config(srvSvc))
	cliSvc := e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())
	cliSvc.CloseTimeout = tunnel.Duration(ioTimeout)
	cli := startProxy(t, config(cliSvc))
	for _, tc := range []struct {
		name string
		dial func() net.Conn
	}{
		{"chain", func() net.Conn { return dial(t, cli.addr(t, "127.0.0.1:0")) }},
		{"server", func() net.Conn { return dialTLS(t, srv.addr(t, "127.0.0.1:0"), e.tlsClient(e.client)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.dial()
			defer c.Close()
			c.SetDeadline(time.Now().Add(4 * ioTimeout))
			const size = 6 << 20
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i*7 + i>>13)
			}
			werr := make(chan error, 1)
			go func() {
				// Uneven writes: some smaller than a record, some spanning several.
				for off, i := 0, 0; off < size; i++ {
					n := min([]int{1, 700, 16 << 10, 16<<10 + 1, 50000, 200 << 10}[i%6], size-off)
					if _, err := c.Write(want[off : off+n]); err != nil {
						werr <- err
						return
					}
					off += n
				}
				werr <- closeWrite(c)
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("reading the echo: %v (after %d bytes)", err, len(got))
			}
			if err := <-werr; err != nil {
				t.Fatalf("writing: %v", err)
			}
			if !bytes.Equal(got, want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("echo differs from what was sent: %d bytes back of %d, first difference at byte %d", len(got), len(want), i)
			}
		})
	}
	waitNoBufs(t, "after the streams", srv, cli)
}
