package tunnel_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

func TestTargetDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	down := refusedAddr(t)
	h := startProxy(t, config(e.serverService("web", "127.0.0.1:0", down)))

	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	// A clean close: close_notify, not a reset or an alert.
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Errorf("Read() = %d, %v; want 0, EOF", n, err)
	}
	l := h.logs.conn(t)
	if l.str("outcome") != "target_unreachable" || !strings.Contains(l.str("error"), "refused") {
		t.Errorf("log = %v, want outcome target_unreachable, a refused error", l.attrs)
	}
	if got := h.metric(t, connectionsTotal, "service", "web", "outcome", "target_unreachable"); got != 1 {
		t.Errorf("%s{outcome=target_unreachable} = %v, want 1", connectionsTotal, got)
	}
	ts := h.p.Status().Services[0].Targets[0]
	if ts.Healthy || ts.Failures != 1 || ts.DownUntil.IsZero() || ts.LastError == "" {
		t.Errorf("target status = %+v, want unhealthy after 1 failure", ts)
	}
}

// TestTargetReset: a target that resets the connection (a crash, not a
// FIN) ends the client's connection too, though the client only waits to
// read.
func TestTargetReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	backend := startBackend(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		c.Read(make([]byte, 7))
		c.(*net.TCPConn).SetLinger(0) // Close sends a RST
	}).Addr().String()
	h := startProxy(t, config(e.serverService("web", "127.0.0.1:0", backend)))
	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	io.WriteString(c, "request")
	if n, err := c.Read(make([]byte, 1)); !isClosed(err) {
		t.Errorf("Read() = %d, %v; want the connection closed", n, err)
	}
	if l := h.logs.conn(t); !strings.Contains(l.str("error"), "reset") {
		t.Errorf("log = %v, want the reset as error", l.attrs)
	}
}

// TestFailover: the first target refuses, the second serves; the next
// connection skips the first while it is in backoff (passive health).
func TestFailover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	down, up := refusedAddr(t), echoBackend(t)
	h := startProxy(t, config(e.serverService("web", "127.0.0.1:0", down, up)))
	addr := h.addr(t, "127.0.0.1:0")

	for i := range 2 {
		c := dialTLS(t, addr, e.tlsClient(e.client))
		roundTrip(t, c, "hello")
		c.Close()
		if l := h.logs.conn(t); l.str("outcome") != "ok" || l.str("target") != up {
			t.Errorf("connection %d: log = %v, want outcome ok to %s", i, l.attrs, up)
		}
		st := h.p.Status().Services[0].Targets
		if st[0].Healthy || st[0].Failures != 1 {
			t.Errorf("connection %d: first target = %+v, want in backoff after exactly 1 failure (tried once)", i, st[0])
		}
		if !st[1].Healthy || st[1].Failures != 0 {
			t.Errorf("connection %d: second target = %+v, want healthy", i, st[1])
		}
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := startBackend(t, "tcp", "127.0.0.1:0", tagged("a")).Addr().String()
	b := startBackend(t, "tcp", "127.0.0.1:0", tagged("b")).Addr().String()
	svc := e.serverService("web", "127.0.0.1:0", a, b)
	svc.Failover = tunnel.FailoverRoundRobin
	h := startProxy(t, config(svc))

	var got []string
	for range 4 {
		c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
		got = append(got, readLine(t, c))
		c.Close()
	}
	if want := "a b a b"; strings.Join(got, " ") != want {
		t.Errorf("backends = %q, want %q", strings.Join(got, " "), want)
	}
}

// TestSlowTarget: in client mode connecting to a target includes its TLS
// handshake, bounded by connect_timeout; a target that does not answer in
// time is skipped for the next.
func TestSlowTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := tlsBackend(t, e, tls.RequireAndVerifyClientCert)
	silent := startBackend(t, "tcp", "127.0.0.1:0", func(c net.Conn) { io.Copy(io.Discard, c) }).Addr().String()
	// A listener that never accepts: the kernel completes the TCP
	// handshake, nobody answers the TLS one.
	stuck, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Close() })
	// A target that answers once the test saw the proxy connect: slow, but
	// within the connect timeout.
	accepted, release := make(chan struct{}, 1), make(chan struct{})
	gated := startBackend(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		accepted <- struct{}{}
		<-release
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{e.server.tls}})
		echo(tc)
	}).Addr().String()

	tests := []struct {
		name    string
		targets []string
		timeout time.Duration
		gate    bool
		want    string // the target used; "" when none is
	}{
		{"accepts but never answers, then a good one", []string{silent, good}, shortTimeout, false, good},
		{"never accepts, then a good one", []string{stuck.Addr().String(), good}, shortTimeout, false, good},
		{"only a silent target", []string{silent}, shortTimeout, false, ""},
		{"answers within the timeout", []string{gated}, ioTimeout, true, gated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := e.clientService("cli", "127.0.0.1:0", tt.targets...)
			svc.ConnectTimeout = tunnel.Duration(tt.timeout)
			h := startProxy(t, config(svc))
			start := time.Now()
			c := dial(t, h.addr(t, "127.0.0.1:0"))
			if tt.gate {
				<-accepted
				close(release)
			}
			switch tt.want {
			case "":
				if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
					t.Errorf("Read() = %v, want the connection closed", err)
				}
				if d := time.Since(start); d < tt.timeout {
					t.Errorf("closed after %v, before the connect timeout %v", d, tt.timeout)
				}
			case good:
				readLine(t, c)
				fallthrough
			default:
				roundTrip(t, c, "hello")
				c.Close()
			}
			l := h.logs.conn(t)
			wantOutcome := "ok"
			if tt.want == "" {
				wantOutcome = "target_unreachable"
			}
			if l.str("outcome") != wantOutcome || l.str("target") != tt.want {
				t.Errorf("log = %v, want outcome %s, target %q", l.attrs, wantOutcome, tt.want)
			}
			if tt.want != tt.targets[0] {
				if ts := h.p.Status().Services[0].Targets[0]; ts.Healthy || !strings.Contains(ts.LastError, "deadline") {
					t.Errorf("slow target status = %+v, want in backoff after a deadline", ts)
				}
			}
		})
	}
}

// TestHalfClose: a FIN in either direction reaches the other end, which
// can still send the other way.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	// replyAfterEOF reads the whole request, then answers: it only works
	// if the client's half-close reaches it.
	replyAfterEOF := func(c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		io.WriteString(c, "got:"+string(req))
	}
	// closeFirst greets, half-closes, then reports what the client still
	// sent.
	late := make(chan string, 2)
	closeFirst := func(c net.Conn) {
		io.WriteString(c, "hello")
		closeWrite(c)
		b, _ := io.ReadAll(c)
		late <- string(b)
	}
	tests := []struct {
		name        string
		mode        string
		targetFirst bool
	}{
		{"server mode, client closes first", tunnel.ModeServer, false},
		{"server mode, target closes first", tunnel.ModeServer, true},
		{"client mode, client closes first", tunnel.ModeClient, false},
		{"client mode, target closes first", tunnel.ModeClient, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			handle := replyAfterEOF
			if tt.targetFirst {
				handle = closeFirst
			}
			backend := startBackend(t, "tcp", "127.0.0.1:0", handle).Addr().String()
			srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", backend)))
			var c net.Conn
			if tt.mode == tunnel.ModeServer {
				c = dialTLS(t, srv.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
			} else {
				cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
				c = dial(t, cli.addr(t, "127.0.0.1:0"))
			}
			if !tt.targetFirst {
				io.WriteString(c, "request")
				if err := closeWrite(c); err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(c); err != nil || string(got) != "got:request" {
					t.Errorf("reply after half-close = %q, %v; want %q", got, err, "got:request")
				}
				return
			}
			if got, err := io.ReadAll(c); err != nil || string(got) != "hello" {
				t.Fatalf("read until the target's FIN = %q, %v; want %q", got, err, "hello")
			}
			io.WriteString(c, "late")
			if err := closeWrite(c); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-late:
				if got != "late" {
					t.Errorf("target received %q after its half-close, want %q", got, "late")
				}
			case <-time.After(ioTimeout):
				t.Fatal("target received nothing after its half-close")
			}
		})
	}
}

// TestSlowloris: a client that never completes its handshake is cut at
// handshake_timeout.
func TestSlowloris(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.HandshakeTimeout = tunnel.Duration(shortTimeout)
	h := startProxy(t, config(svc))
	tests := []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		// A TLS 1.0 record header announcing a 512-byte ClientHello, and
		// its first bytes.
		{"partial client hello", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c := dial(t, h.addr(t, "127.0.0.1:0"))
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
				t.Errorf("Read() = %v, want the connection closed", err)
			}
			if d := time.Since(start); d < shortTimeout {
				t.Errorf("closed after %v, before the handshake timeout %v", d, shortTimeout)
			}
			if l := h.logs.conn(t); l.str("outcome") != "handshake_error" {
				t.Errorf("log = %v, want outcome handshake_error", l.attrs)
			}
		})
	}
	if got := h.metric(t, "portcullis_tunnel_handshake_errors_total", "service", "web", "reason", "timeout"); got != 2 {
		t.Errorf("handshake_errors_total{reason=timeout} = %v, want 2", got)
	}
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{tunnel.ModeServer, tunnel.ModeClient} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			svc := e.serverService("svc", "127.0.0.1:0", echoBackend(t))
			open := func(h *harness) net.Conn {
				return dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
			}
			if mode == tunnel.ModeClient {
				srv := startProxy(t, config(svc))
				svc = e.clientService("svc", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())
				open = func(h *harness) net.Conn { return dial(t, h.addr(t, "127.0.0.1:0")) }
			}
			svc.MaxConns = 1
			h := startProxy(t, config(svc))

			first := open(h)
			roundTrip(t, first, "first") // proxied, so it holds the slot
			if mode == tunnel.ModeServer {
				// A single-service listener refuses before the handshake,
				// so the second client never completes one.
				if c, err := tryTLS(h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client)); err == nil {
					if n, err := c.Read(make([]byte, 1)); n != 0 || !isClosed(err) {
						t.Errorf("second connection: Read() = %d, %v; want it closed", n, err)
					}
				}
			} else {
				second := open(h)
				if n, err := second.Read(make([]byte, 1)); n != 0 || !isClosed(err) {
					t.Errorf("second connection: Read() = %d, %v; want it closed", n, err)
				}
			}
			if l := h.logs.conn(t); l.str("outcome") != "limit" {
				t.Errorf("second connection: log = %v, want outcome limit", l.attrs)
			}
			roundTrip(t, first, "still there")
			first.Close()
			if l := h.logs.conn(t); l.str("outcome") != "ok" {
				t.Errorf("first connection: log = %v, want outcome ok", l.attrs)
			}
			if got := h.metric(t, connectionsTotal, "service", "svc", "outcome", "limit"); got != 1 {
				t.Errorf("%s{outcome=limit} = %v, want 1", connectionsTotal, got)
			}
		})
	}
}

func TestMaxConnLifetime(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.MaxConnLifetime = tunnel.Duration(shortTimeout)
	h := startProxy(t, config(svc))
	start := time.Now()
	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	roundTrip(t, c, "hello")
	if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
		t.Errorf("Read() = %v, want the connection cut", err)
	}
	if d := time.Since(start); d < shortTimeout {
		t.Errorf("cut after %v, before max_conn_lifetime %v", d, shortTimeout)
	}
	if l := h.logs.conn(t); l.str("outcome") != "ok" {
		t.Errorf("log = %v, want outcome ok", l.attrs)
	}
}

// TestReloadWithOpenConnections: a reload leaves open connections with the
// service they started with; new connections get the new certificate, new
// listeners open and removed ones close.
func TestReloadWithOpenConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	backend := echoBackend(t)
	svc := e.serverService("web", "127.0.0.1:0", backend)
	h := startProxy(t, config(svc))
	oldAddr := h.addr(t, "127.0.0.1:0")

	open := dialTLS(t, oldAddr, e.tlsClient(e.client))
	roundTrip(t, open, "before")

	renewed := e.ca.issue(t, e.dir, "server-renewed", leafSpec{cn: "server", server: true})
	svc.Identity.Cert, svc.Identity.Key = renewed.certFile, renewed.keyFile
	moved := svc
	moved.Name, moved.Listen = "moved", "localhost:0"
	if err := h.p.Reload(config(svc, moved)); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	roundTrip(t, open, "after")

	for _, a := range []net.Addr{oldAddr, h.addr(t, "localhost:0")} {
		c := dialTLS(t, a, e.tlsClient(e.client))
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(renewed.cert.SerialNumber) != 0 {
			t.Errorf("%s: serial after reload = %x, want the new %x", a, got, renewed.cert.SerialNumber)
		}
		roundTrip(t, c, "new")
		c.Close()
		h.logs.conn(t)
	}
	if st := h.p.Status(); st.ReloadErr != "" || len(st.Services) != 2 {
		t.Errorf("Status() = %+v, want two services, no reload error", st)
	}
	if got := h.metric(t, "portcullis_tunnel_last_reload_successful"); got != 1 {
		t.Errorf("last_reload_successful = %v, want 1", got)
	}

	// Dropping the moved service closes its listener.
	if err := h.p.Reload(config(svc)); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	if _, ok := h.p.Addrs()["localhost:0"]; ok {
		t.Errorf("Addrs() = %v, still has the removed localhost:0", h.p.Addrs())
	}
	roundTrip(t, open, "still")
}

func TestFailedReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	h := startProxy(t, config(svc))
	addr := h.addr(t, "127.0.0.1:0")
	open := dialTLS(t, addr, e.tlsClient(e.client))
	busy := startBackend(t, "tcp", "127.0.0.1:0", echo).Addr().String()
	// Were a failed reload applied in part, new connections would get
	// this certificate.
	renewed := e.ca.issue(t, e.dir, "server-renewed", leafSpec{cn: "server", server: true})

	tests := []struct {
		name   string
		mutate func(s *tunnel.Service) []tunnel.Service
		want   string
	}{
		{"missing certificate", func(s *tunnel.Service) []tunnel.Service {
			s.Identity.Cert = filepath.Join(e.dir, "missing.pem")
			return []tunnel.Service{*s}
		}, "missing.pem"},
		{"invalid config", func(s *tunnel.Service) []tunnel.Service {
			s.Failover = "random"
			return []tunnel.Service{*s}
		}, `failover "random"`},
		{"new listen address in use", func(s *tunnel.Service) []tunnel.Service {
			other := *s
			other.Name, other.Listen = "other", busy
			return []tunnel.Service{*s, other}
		}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := svc
			bad.Identity.Cert, bad.Identity.Key = renewed.certFile, renewed.keyFile
			err := h.p.Reload(config(tt.mutate(&bad)...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reload() = %v, want an error containing %q", err, tt.want)
			}
			st := h.p.Status()
			if !strings.Contains(st.ReloadErr, tt.want) || st.LastReload.IsZero() {
				t.Errorf("Status() reload = %v %q, want the error", st.LastReload, st.ReloadErr)
			}
			if len(st.Services) != 1 || st.Services[0].Name != "web" {
				t.Errorf("Status().Services = %+v, want the running web service", st.Services)
			}
			if got := h.metric(t, "portcullis_tunnel_last_reload_successful"); got != 0 {
				t.Errorf("last_reload_successful = %v, want 0", got)
			}
			roundTrip(t, open, "open connection")
			c := dialTLS(t, addr, e.tlsClient(e.client))
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(e.server.cert.SerialNumber) != 0 {
				t.Errorf("serial after a failed reload = %x, want the old %x", got, e.server.cert.SerialNumber)
			}
			roundTrip(t, c, "new connection")
			c.Close()
			h.logs.conn(t)
			if _, ok := h.p.Addrs()[busy]; ok {
				t.Errorf("Addrs() = %v: a failed reload kept a listener", h.p.Addrs())
			}
		})
	}
	if err := h.p.Reload(config(svc)); err != nil {
		t.Fatalf("Reload(good) = %v", err)
	}
	if st := h.p.Status(); st.ReloadErr != "" {
		t.Errorf("after a good reload, ReloadErr = %q", st.ReloadErr)
	}
	if got := h.metric(t, "portcullis_tunnel_last_reload_successful"); got != 1 {
		t.Errorf("after a good reload, last_reload_successful = %v, want 1", got)
	}
}

// TestReloadBeforeRun: New loaded the configuration, so the reload state
// starts there; a reload that fails before Run starts stays reported.
func TestReloadBeforeRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := tunnel.New(ctx, config(svc), tunnel.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Status(); st.LastReload.IsZero() || st.ReloadErr != "" {
		t.Errorf("after New: Status() reload = %v %q, want the time of New, no error", st.LastReload, st.ReloadErr)
	}
	if got := testutil.ToFloat64(p.Series("portcullis_tunnel_last_reload_successful")); got != 1 {
		t.Errorf("after New: last_reload_successful = %v, want 1", got)
	}
	bad := svc
	bad.Identity.Key = filepath.Join(e.dir, "missing.pem")
	if err := p.Reload(config(bad)); err == nil {
		t.Fatal("Reload(missing key) = nil")
	}
	// Run with a context already done: it starts and shuts down at once.
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := p.Run(done); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if st := p.Status(); !strings.Contains(st.ReloadErr, "missing.pem") {
		t.Errorf("after Run: ReloadErr = %q, want the failed reload's error", st.ReloadErr)
	}
	if got := testutil.ToFloat64(p.Series("portcullis_tunnel_last_reload_successful")); got != 0 {
		t.Errorf("after Run: last_reload_successful = %v, want 0", got)
	}
}

// TestGracefulShutdown: when Run's context ends the listeners close at
// once; open connections go on until they end or the shutdown timeout
// closes them.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		forced  bool
	}{
		{"connection ends by itself", time.Minute, false},
		{"closed at the shutdown timeout", shortTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cfg := config(e.serverService("web", "127.0.0.1:0", echoBackend(t)))
			cfg.ShutdownTimeout = tunnel.Duration(tt.timeout)
			h := startProxy(t, cfg)
			addr := h.addr(t, "127.0.0.1:0")
			c := dialTLS(t, addr, e.tlsClient(e.client))
			roundTrip(t, c, "before")

			start := time.Now()
			h.cancel()
			h.logs.next(t, "shutting down: draining connections")
			if nc, err := net.DialTimeout("tcp", addr.String(), ioTimeout); err == nil {
				nc.Close()
				t.Errorf("Dial(%s) after shutdown began succeeded, want refused", addr)
			}
			roundTrip(t, c, "during shutdown")
			select {
			case <-h.done:
				t.Fatal("Run returned with a connection open")
			default:
			}
			if tt.forced {
				if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
					t.Errorf("Read() = %v, want the connection closed by the shutdown timeout", err)
				}
				if d := time.Since(start); d < tt.timeout {
					t.Errorf("closed after %v, before the shutdown timeout %v", d, tt.timeout)
				}
				h.logs.next(t, "shutdown timeout: closed connections still open")
			} else {
				c.Close()
			}
			select {
			case <-h.done:
			case <-time.After(ioTimeout):
				t.Fatal("Run did not return after the last connection ended")
			}
			if l := h.logs.conn(t); l.str("outcome") != "ok" {
				t.Errorf("log = %v, want outcome ok", l.attrs)
			}
		})
	}
}

// TestShutdownTimeoutStuckTarget: the shutdown timeout ends a connection
// even when the proxy is blocked writing to a target that stopped reading.
func TestShutdownTimeoutStuckTarget(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{tunnel.ModeServer, tunnel.ModeClient} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			release := make(chan struct{})
			stuck := startBackend(t, "tcp", "127.0.0.1:0", func(net.Conn) { <-release }).Addr().String()
			t.Cleanup(func() { close(release) }) // before the backend's cleanup waits for this handler
			var cfg tunnel.Config
			var c net.Conn
			if mode == tunnel.ModeServer {
				cfg = config(e.serverService("web", "127.0.0.1:0", stuck))
			} else {
				// The server-mode side stays blocked on the target too,
				// until its own shutdown timeout at the test's end.
				srvCfg := config(e.serverService("srv", "127.0.0.1:0", stuck))
				srvCfg.ShutdownTimeout = tunnel.Duration(shortTimeout)
				srv := startProxy(t, srvCfg)
				cfg = config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String()))
			}
			cfg.ShutdownTimeout = tunnel.Duration(shortTimeout)
			h := startProxy(t, cfg)
			if mode == tunnel.ModeServer {
				c = dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
			} else {
				c = dial(t, h.addr(t, "127.0.0.1:0"))
			}
			// Write until the buffers up to the target are full: a write
			// that makes no progress for a while.
			chunk := make([]byte, 64<<10)
			for {
				c.SetWriteDeadline(time.Now().Add(shortTimeout))
				if _, err := c.Write(chunk); err != nil {
					break
				}
			}
			h.cancel()
			select {
			case <-h.done:
			case <-time.After(ioTimeout):
				t.Fatalf("Run did not return within %v with a shutdown timeout of %v", ioTimeout, shortTimeout)
			}
		})
	}
}

// TestShutdownWhileAccepting: connections arriving while Run shuts down
// are either served or dropped; none is counted after Run began waiting
// for the open ones (the race detector checks the WaitGroup).
func TestShutdownWhileAccepting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	backend := echoBackend(t)
	for i := range 10 {
		cfg := config(e.serverService("web", "127.0.0.1:0", backend))
		cfg.ShutdownTimeout = 0
		h := startProxy(t, cfg)
		addr := h.addr(t, "127.0.0.1:0").String()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if c, err := net.DialTimeout("tcp", addr, ioTimeout); err == nil {
						c.Close()
					}
				}
			})
		}
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(ioTimeout):
			t.Fatalf("round %d: Run did not return", i)
		}
		close(stop)
		wg.Wait()
	}
}

// TestReloadUnderLoad: reloads while connections come and go lose none of
// them; each sees the old or the new certificate.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	h := startProxy(t, config(svc))
	addr := h.addr(t, "127.0.0.1:0")
	ids := []*ident{e.server}
	for i := range 3 {
		ids = append(ids, e.ca.issue(t, e.dir, fmt.Sprintf("server-%d", i), leafSpec{cn: "server", server: true}))
	}
	known := map[string]bool{}
	for _, id := range ids {
		known[id.cert.SerialNumber.String()] = true
	}

	const workers, rounds = 4, 10
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			conf := e.tlsClient(e.client)
			for r := range rounds {
				c, err := tryTLS(addr, conf)
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
					return
				}
				msg := fmt.Sprintf("w%d r%d", w, r)
				io.WriteString(c, msg)
				got := make([]byte, len(msg))
				_, err = io.ReadFull(c, got)
				serial := c.ConnectionState().PeerCertificates[0].SerialNumber.String()
				c.Close()
				if err != nil || string(got) != msg || !known[serial] {
					errs <- fmt.Errorf("worker %d round %d: echo %q, %v, serial %s", w, r, got, err, serial)
					return
				}
			}
		})
	}
	handler := h.p.StatusHandler()
	for _, id := range ids[1:] {
		svc.Identity.Cert, svc.Identity.Key = id.certFile, id.keyFile
		if err := h.p.Reload(config(svc)); err != nil {
			t.Errorf("Reload() = %v", err)
		}
		h.p.Status()
		get(t, handler, "/metrics")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for range workers * rounds {
		if l := h.logs.conn(t); l.str("outcome") != "ok" {
			t.Errorf("log = %v, want outcome ok", l.attrs)
		}
	}
}
