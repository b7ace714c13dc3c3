package tunnel_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// waitParks waits until at least want directions have parked in all, in
// the proxies of hs.
func waitParks(t *testing.T, want int64, hs ...*harness) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for parks(hs...) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d directions parked, want at least %d", parks(hs...), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parks counts the directions parked so far by the proxies of hs.
func parks(hs ...*harness) int64 {
	var n int64
	for _, h := range hs {
		n += h.p.Parks()
	}
	return n
}

// TestParkedConnections: connections that idle long enough to park (their
// copy goroutines return) carry data again in both directions, half-close,
// reset and shutdown reach them, and none is lost or left behind.
func TestParkedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("directions park on Linux only")
	}
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
	const n = 8
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c := dial(t, cli.addr(t, "127.0.0.1:0"))
		roundTrip(t, c, fmt.Sprintf("chain %d", i))
		tc := dialTLS(t, srv.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
		roundTrip(t, tc, fmt.Sprintf("direct %d", i))
		conns = append(conns, c, tc)
	}
	// Every connection through the chain parks four directions (two per
	// proxy), a direct one two.
	const perRound = n*4 + n*2
	waitParks(t, perRound, srv, cli)
	// The server's share on its /metrics: two directions of each
	// connection.
	if got := srv.metric(t, "portcullis_tunnel_parks_total"); got < 2*n*2 {
		t.Errorf("portcullis_tunnel_parks_total = %v, want at least %d", got, 2*n*2)
	}
	if got := srv.metric(t, "portcullis_tunnel_parked_directions"); got < 1 {
		t.Errorf("portcullis_tunnel_parked_directions = %v with idle connections, want some", got)
	}
	for round := 0; round < 2; round++ {
		parked := parks(srv, cli)
		for i, c := range conns {
			roundTrip(t, c, fmt.Sprintf("after parking, round %d, conn %d", round, i))
		}
		waitParks(t, parked+perRound, srv, cli)
	}

	// Half-close of a parked connection reaches the backend, whose EOF
	// comes back.
	if err := closeWrite(conns[0]); err != nil {
		t.Fatal(err)
	}
	conns[0].SetReadDeadline(time.Now().Add(ioTimeout))
	if b, err := io.ReadAll(conns[0]); err != nil || len(b) != 0 {
		t.Fatalf("after half-closing a parked connection: ReadAll() = %q, %v; want EOF", b, err)
	}
	if l := cli.logs.conn(t); l.str("outcome") != "ok" {
		t.Errorf("log = %v, want outcome ok", l.attrs)
	}

	// A reset of a parked connection ends it at once (not at a timeout).
	conns[2].(*net.TCPConn).SetLinger(0)
	conns[2].Close()
	start := time.Now()
	cli.logs.conn(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a reset parked connection ended after %v", d)
	}

	// The clients close the rest while they are parked: every connection
	// ends, so shutdown has nothing to wait for.
	conns[1].Close()
	for _, c := range conns[3:] {
		c.Close()
	}
	srv.stop(t)
	cli.stop(t)
	waitNoBufs(t, "after shutdown", srv, cli)
}

// TestParkedShutdownTimeout: the shutdown timeout closes connections whose
// directions are parked, so Run returns.
func TestParkedShutdownTimeout(t *testing.T) {
	e := newEnv(t)
	cfg := config(e.serverService("srv", "127.0.0.1:0", echoBackend(t)))
	cfg.ShutdownTimeout = tunnel.Duration(shortTimeout)
	h := startProxy(t, cfg)
	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	roundTrip(t, c, "hello")
	if runtime.GOOS == "linux" {
		waitParks(t, 2, h)
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(ioTimeout):
		t.Fatal("Run did not return after the shutdown timeout with a parked connection")
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
		t.Errorf("Read() = %v, want the connection closed", err)
	}
}

// TestParkingStress: connections through a chain that pause past the park
// delay at random, then talk, half-close, reset or just close, all at
// once; every byte comes back, every connection ends, and nothing stays
// parked or out of the pool.
func TestParkingStress(t *testing.T) {
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
	const conns, rounds = 24, 4
	addr := cli.addr(t, "127.0.0.1:0").String()
	errc := make(chan error, conns)
	for i := 0; i < conns; i++ {
		go func() {
			errc <- func() error {
				c, err := net.DialTimeout("tcp", addr, ioTimeout)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(4 * ioTimeout))
				for r := 0; r < rounds; r++ {
					// Pauses around the park delay: some directions park,
					// some are about to, some wake as they do.
					time.Sleep(time.Duration((i*37+r*53)%250) * time.Millisecond)
					msg := []byte(fmt.Sprintf("conn %d round %d %s", i, r, string(make([]byte, (i*r*997)%40000))))
					if _, err := c.Write(msg); err != nil {
						return fmt.Errorf("conn %d round %d: write: %w", i, r, err)
					}
					got := make([]byte, len(msg))
					if _, err := io.ReadFull(c, got); err != nil {
						return fmt.Errorf("conn %d round %d: read: %w", i, r, err)
					}
					if string(got) != string(msg) {
						return fmt.Errorf("conn %d round %d: echo differs", i, r)
					}
				}
				time.Sleep(time.Duration(i%3) * 150 * time.Millisecond)
				switch i % 3 {
				case 0: // half-close, then the echo's EOF
					if err := closeWrite(c); err != nil {
						return err
					}
					if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
						return fmt.Errorf("conn %d after half-close: %q, %v", i, b, err)
					}
				case 1: // reset
					c.(*net.TCPConn).SetLinger(0)
				}
				return nil
			}()
		}()
	}
	for i := 0; i < conns; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	// Every connection ends: both proxies log one line per connection.
	for i := 0; i < conns; i++ {
		cli.logs.conn(t)
		srv.logs.conn(t)
	}
	deadline := time.Now().Add(ioTimeout)
	for srv.p.Parked()+cli.p.Parked() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d directions still parked after every connection ended", srv.p.Parked()+cli.p.Parked())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitNoBufs(t, "after the stress", srv, cli)
}

// TestProxiesApart: two proxies in one process each count their own
// parked directions, and stopping one leaves the other's parked
// connections working.
func TestProxiesApart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("directions park on Linux only")
	}
	e := newEnv(t)
	a := startProxy(t, config(e.serverService("a", "127.0.0.1:0", echoBackend(t))))
	b := startProxy(t, config(e.serverService("b", "127.0.0.1:0", echoBackend(t))))
	ca := dialTLS(t, a.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	roundTrip(t, ca, "to a")
	var cb []net.Conn
	for i := 0; i < 3; i++ {
		c := dialTLS(t, b.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
		roundTrip(t, c, "to b")
		cb = append(cb, c)
	}
	waitParks(t, 2, a)
	waitParks(t, 6, b)
	for _, tt := range []struct {
		h                   *harness
		parks, parked, bufs float64
	}{{a, 2, 2, 0}, {b, 6, 6, 0}} {
		if got := tt.h.metric(t, "portcullis_tunnel_parks_total"); got != tt.parks {
			t.Errorf("portcullis_tunnel_parks_total = %v, want %v", got, tt.parks)
		}
		if got := tt.h.metric(t, "portcullis_tunnel_parked_directions"); got != tt.parked {
			t.Errorf("portcullis_tunnel_parked_directions = %v, want %v", got, tt.parked)
		}
	}

	ca.Close()
	a.stop(t)
	if got := b.p.Parked(); got != 6 {
		t.Errorf("b has %d directions parked after a stopped, want 6", got)
	}
	parked := b.p.Parks()
	for i, c := range cb {
		roundTrip(t, c, fmt.Sprintf("to b after a stopped, conn %d", i))
	}
	waitParks(t, parked+6, b)
	waitNoBufs(t, "b idle after a stopped", b)
}
