package tunnel_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

const connectionsTotal = "portcullis_tunnel_connections_total"

func TestServerModeRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := startProxy(t, config(e.serverService("web", "127.0.0.1:0", echoBackend(t))))

	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(e.server.cert.SerialNumber) != 0 {
		t.Errorf("server certificate serial = %x, want %x", got, e.server.cert.SerialNumber)
	}
	roundTrip(t, c, "hello")
	roundTrip(t, c, strings.Repeat("x", 100<<10))
	c.Close()

	l := h.logs.conn(t)
	if l.str("outcome") != "ok" || l.str("identity") != "spiffe://test/client" || l.str("service") != "web" {
		t.Errorf("connection log = %v, want outcome ok, identity spiffe://test/client, service web", l.attrs)
	}
	if got := l.attrs["bytes_up"]; got != int64(5+100<<10) {
		t.Errorf("bytes_up = %v, want %d", got, 5+100<<10)
	}
	if got := h.metric(t, connectionsTotal, "service", "web", "outcome", "ok"); got != 1 {
		t.Errorf("%s{outcome=ok} = %v, want 1", connectionsTotal, got)
	}
	if got := h.metric(t, "portcullis_tunnel_bytes_total", "service", "web", "direction", "down"); got != 5+100<<10 {
		t.Errorf("bytes_total{direction=down} = %v, want %d", got, 5+100<<10)
	}
}

func TestClientModeRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The target is a plain TLS server requiring the client certificate:
	// it greets with the CN it saw, then echoes.
	backend := tlsBackend(t, e, tls.RequireAndVerifyClientCert)
	h := startProxy(t, config(e.clientService("legacy", "127.0.0.1:0", backend)))

	c := dial(t, h.addr(t, "127.0.0.1:0"))
	if got := readLine(t, c); got != "client" {
		t.Errorf("target saw client CN %q, want client", got)
	}
	roundTrip(t, c, "hello")
	c.Close()
	if l := h.logs.conn(t); l.str("outcome") != "ok" || l.str("identity") != "CN=server" {
		t.Errorf("connection log = %v, want outcome ok, identity CN=server", l.attrs)
	}
}

// tlsBackend is a TLS server with e.server's certificate. Each connection
// gets the client certificate's CN (or "-") on a line, then an echo.
func tlsBackend(t testing.TB, e *env, auth tls.ClientAuthType) string {
	t.Helper()
	conf := &tls.Config{Certificates: []tls.Certificate{e.server.tls}, ClientAuth: auth, ClientCAs: e.pool}
	return startBackend(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		tc := tls.Server(c, conf)
		if err := tc.Handshake(); err != nil {
			return
		}
		cn := "-"
		if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
			cn = pc[0].Subject.CommonName
		}
		io.WriteString(tc, cn+"\n")
		echo(tc)
	}).Addr().String()
}

func TestClientDisableAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	backend := tlsBackend(t, e, tls.RequestClientCert)
	svc := e.clientService("anon", "127.0.0.1:0", backend)
	svc.DisableAuthentication = true
	h := startProxy(t, config(svc))
	c := dial(t, h.addr(t, "127.0.0.1:0"))
	if got := readLine(t, c); got != "-" {
		t.Errorf("target saw client certificate CN %q, want none", got)
	}
	roundTrip(t, c, "hello")
}

// disable_authentication needs no client identity: the service loads the
// CA bundle alone (tlsconf's anonymous source).
func TestClientDisableAuthenticationWithoutIdentity(t *testing.T) {
	e := newEnv(t)
	svc := e.clientService("anon", "127.0.0.1:0", echoBackend(t))
	svc.DisableAuthentication = true
	svc.Identity.Cert, svc.Identity.Key = "", ""
	startProxy(t, config(svc))
}

// TestChainResumption runs legacy client → client-mode proxy → server-mode
// proxy → backend; the second connection resumes the first's TLS session.
func TestChainResumption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))

	for i, wantResumed := range []bool{false, true, true} {
		c := dial(t, cli.addr(t, "127.0.0.1:0"))
		roundTrip(t, c, "hello")
		c.Close()
		for _, h := range []*harness{cli, srv} {
			l := h.logs.conn(t)
			if l.str("outcome") != "ok" || l.attrs["resumed"] != wantResumed {
				t.Errorf("connection %d, %s log = %v, want outcome ok, resumed %v", i, l.str("service"), l.attrs, wantResumed)
			}
		}
	}
}

// TestChainResumptionAcrossReload: a reload of the server-mode proxy
// (new tls.Configs) does not end resumption: tickets issued before it
// still resume after it.
func TestChainResumptionAcrossReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srvCfg := config(e.serverService("srv", "127.0.0.1:0", echoBackend(t)))
	srv := startProxy(t, srvCfg)
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
	connect := func(i int, wantResumed bool) {
		t.Helper()
		c := dial(t, cli.addr(t, "127.0.0.1:0"))
		roundTrip(t, c, "hello")
		c.Close()
		cli.logs.conn(t)
		if l := srv.logs.conn(t); l.str("outcome") != "ok" || l.attrs["resumed"] != wantResumed {
			t.Errorf("connection %d: server log = %v, want outcome ok, resumed %v", i, l.attrs, wantResumed)
		}
	}
	connect(0, false)
	connect(1, true)
	if err := srv.p.Reload(srvCfg); err != nil {
		t.Fatal(err)
	}
	connect(2, true)
	connect(3, true)
}

func TestAccessRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := newCA(t, e.dir, "Other CA")
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.Allow = policy.Rules{CN: []string{"client"}, URI: []string{"spiffe://test/ok/*"}}
	h := startProxy(t, config(svc))
	addr := h.addr(t, "127.0.0.1:0")

	tests := []struct {
		name    string
		id      *ident
		outcome string
		reason  string // handshake_errors_total reason, for refusals
	}{
		{"allowed by cn", e.client, "ok", ""},
		{"allowed by uri", e.ca.issue(t, e.dir, "uri", leafSpec{cn: "device-7", uris: []string{"spiffe://test/ok/device-7"}}), "ok", ""},
		{"denied cn", e.ca.issue(t, e.dir, "mallory", leafSpec{cn: "mallory"}), "denied", "denied"},
		{"denied uri", e.ca.issue(t, e.dir, "bad-uri", leafSpec{cn: "x", uris: []string{"spiffe://test/bad/x"}}), "denied", "denied"},
		{"unknown ca", other.issue(t, e.dir, "foreign", leafSpec{cn: "client"}), "denied", "unknown_ca"},
		{"expired", e.ca.issue(t, e.dir, "expired", leafSpec{cn: "client", notAfter: time.Now().Add(-time.Minute)}), "denied", "expired"},
		{"server certificate as client", e.server, "denied", "other"},
		{"no certificate", nil, "handshake_error", "no_certificate"},
	}
	for _, tt := range tests {
		// Sequential: each case reads the next connection line.
		t.Run(tt.name, func(t *testing.T) {
			conf := e.tlsClient(tt.id)
			if tt.outcome == "ok" {
				c := dialTLS(t, addr, conf)
				roundTrip(t, c, "hello")
				c.Close()
			} else {
				err := refused(t, addr, conf)
				if isClosed(err) {
					t.Errorf("refusal seen as %v, want a TLS alert", err)
				}
			}
			l := h.logs.conn(t)
			if got := l.str("outcome"); got != tt.outcome {
				t.Errorf("outcome = %q, want %q (log %v)", got, tt.outcome, l.attrs)
			}
			if tt.reason != "" {
				if got := h.metric(t, "portcullis_tunnel_handshake_errors_total", "service", "web", "reason", tt.reason); got < 1 {
					t.Errorf("handshake_errors_total{reason=%q} = %v, want ≥ 1", tt.reason, got)
				}
			}
		})
	}
}

// TestClientModeVerify: a client-mode service refuses a server whose
// certificate its verify rules do not match.
func TestClientModeVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := startProxy(t, config(e.serverService("srv", "127.0.0.1:0", echoBackend(t))))
	target := srv.addr(t, "127.0.0.1:0").String()
	tests := []struct {
		name    string
		verify  policy.Rules
		outcome string
	}{
		{"cn matches", policy.Rules{CN: []string{"server"}}, "ok"},
		{"cn differs", policy.Rules{CN: []string{"db"}}, "denied"},
		{"uri differs", policy.Rules{URI: []string{"spiffe://test/db"}}, "denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := e.clientService("cli", "127.0.0.1:0", target)
			svc.Verify = tt.verify
			h := startProxy(t, config(svc))
			c := dial(t, h.addr(t, "127.0.0.1:0"))
			if tt.outcome == "ok" {
				roundTrip(t, c, "hello")
				c.Close()
			} else if _, err := c.Read(make([]byte, 1)); !isClosed(err) {
				t.Errorf("Read() = %v, want the connection closed", err)
			}
			if l := h.logs.conn(t); l.str("outcome") != tt.outcome {
				t.Errorf("outcome = %q, want %q (log %v)", l.str("outcome"), tt.outcome, l.attrs)
			}
		})
	}
}

// TestResumedSessionReauthorized: a session that resumed before a reload
// still resumes after a reload that keeps its identity allowed (session
// ticket keys outlive reloads, tickets.go), and must not resume (or connect
// at all) once the reloaded rules exclude its identity: the refusal comes
// from the rules re-run on the resumed handshake.
func TestResumedSessionReauthorized(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sni  []string
	}{
		{"sni listener", []string{"a.test"}},
		{"single service", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			backend := echoBackend(t)
			build := func(allow policy.Rules) tunnel.Config {
				a := e.serverService("a", "127.0.0.1:0", backend)
				a.SNI, a.Allow = tt.sni, allow
				if tt.sni == nil {
					return config(a)
				}
				// A second service makes the listener SNI-routed.
				b := e.serverService("b", "127.0.0.1:0", backend)
				b.SNI = []string{"b.test"}
				return config(a, b)
			}
			h := startProxy(t, build(policy.Rules{CN: []string{"client"}}))
			addr := h.addr(t, "127.0.0.1:0")
			conf := e.tlsClient(e.client)
			conf.ServerName = "localhost"
			if tt.sni != nil {
				conf.ServerName = tt.sni[0]
				conf.RootCAs = nil
				conf.InsecureSkipVerify = true // the name a.test is not in the certificate; nothing else is checked
			}
			connect := func() bool {
				c := dialTLS(t, addr, conf)
				roundTrip(t, c, "hello") // reads the session ticket
				c.Close()
				h.logs.conn(t)
				return c.ConnectionState().DidResume
			}
			if connect() {
				t.Fatal("first connection resumed")
			}
			if !connect() {
				t.Fatal("second connection did not resume")
			}
			if err := h.p.Reload(build(policy.Rules{CN: []string{"client", "other"}})); err != nil {
				t.Fatalf("Reload(allowing) = %v", err)
			}
			if !connect() {
				t.Fatal("after a reload keeping the client allowed, the session did not resume")
			}
			if err := h.p.Reload(build(policy.Rules{CN: []string{"other"}})); err != nil {
				t.Fatalf("Reload(denying) = %v", err)
			}
			refused(t, addr, conf)
			if l := h.logs.conn(t); l.str("outcome") != "denied" {
				t.Errorf("after a reload denying the client: outcome %q, want denied (log %v)", l.str("outcome"), l.attrs)
			}
		})
	}
}

// TestResumedSessionOtherService: a ticket issued for one service of an
// SNI-routed listener, offered to another, must not get a client past the
// other's rules (each service has ticket keys of its own, and its rules
// run on resumed handshakes too).
func TestResumedSessionOtherService(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	backend := echoBackend(t)
	open := e.serverService("open", "127.0.0.1:0", backend)
	open.SNI = []string{"open.test"}
	closed := e.serverService("closed", "127.0.0.1:0", backend)
	closed.SNI, closed.Allow = []string{"closed.test"}, policy.Rules{CN: []string{"nobody"}}
	h := startProxy(t, config(open, closed))
	addr := h.addr(t, "127.0.0.1:0")

	// One cache slot for every server name: the ticket from open.test is
	// offered to closed.test.
	cache := &oneSession{}
	conf := &tls.Config{Certificates: []tls.Certificate{e.client.tls}, InsecureSkipVerify: true, ClientSessionCache: cache}
	conf.ServerName = "open.test"
	c := dialTLS(t, addr, conf)
	roundTrip(t, c, "hello")
	c.Close()
	h.logs.conn(t)
	if cache.state == nil {
		t.Fatal("no session ticket")
	}
	conf = conf.Clone()
	conf.ServerName = "closed.test"
	refused(t, addr, conf)
	if l := h.logs.conn(t); l.str("outcome") != "denied" || l.str("service") != "closed" {
		t.Errorf("log = %v, want service closed, outcome denied", l.attrs)
	}
}

// TestClientModeRefusedByServer: when the server-mode side refuses the
// client's certificate, the legacy client's connection closes, even if it
// waits for the server to speak first, and both sides log a denial. (In
// TLS 1.3 the client learns of the refusal after its handshake, on its
// first read.)
func TestClientModeRefusedByServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("srv", "127.0.0.1:0", echoBackend(t))
	svc.Allow = policy.Rules{CN: []string{"someone-else"}}
	srv := startProxy(t, config(svc))
	cli := startProxy(t, config(e.clientService("cli", "127.0.0.1:0", srv.addr(t, "127.0.0.1:0").String())))
	for _, clientFirst := range []bool{true, false} {
		c := dial(t, cli.addr(t, "127.0.0.1:0"))
		if clientFirst {
			io.WriteString(c, "hello")
		}
		if n, err := c.Read(make([]byte, 5)); !isClosed(err) {
			t.Errorf("client speaks first: %v: Read() = %d, %v; want the connection closed", clientFirst, n, err)
		}
		if l := srv.logs.conn(t); l.str("outcome") != "denied" {
			t.Errorf("client speaks first: %v: server log = %v, want outcome denied", clientFirst, l.attrs)
		}
		if l := cli.logs.conn(t); l.str("outcome") != "denied" {
			t.Errorf("client speaks first: %v: client log = %v, want outcome denied", clientFirst, l.attrs)
		}
	}
}

type oneSession struct{ state *tls.ClientSessionState }

func (o *oneSession) Get(string) (*tls.ClientSessionState, bool) { return o.state, o.state != nil }
func (o *oneSession) Put(_ string, s *tls.ClientSessionState) {
	if s != nil {
		o.state = s
	}
}

func TestSNIRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const listen = "127.0.0.1:0"
	svc := func(name string, sni ...string) tunnel.Service {
		id := e.ca.issue(t, e.dir, name, leafSpec{cn: name, server: true, dns: sni})
		s := e.serverService(name, listen, startBackend(t, "tcp", "127.0.0.1:0", tagged(name)).Addr().String())
		s.SNI, s.Identity.Cert, s.Identity.Key = sni, id.certFile, id.keyFile
		return s
	}
	a, b, def := svc("a", "a.test"), svc("b", "b.test", "B2.test"), svc("default")
	tests := []struct {
		name     string
		services []tunnel.Service
		sni      string
		want     string // backend tag and certificate CN; "" for a refusal
	}{
		{"a", []tunnel.Service{a, b, def}, "a.test", "a"},
		{"b", []tunnel.Service{a, b, def}, "b.test", "b"},
		{"second name, other case", []tunnel.Service{a, b, def}, "b2.TEST", "b"},
		{"unknown to default", []tunnel.Service{a, b, def}, "c.test", "default"},
		{"no sni to default", []tunnel.Service{a, b, def}, "", "default"},
		{"unknown without default", []tunnel.Service{a, b}, "c.test", ""},
		{"known without default", []tunnel.Service{a, b}, "a.test", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, config(tt.services...))
			conf := sniClient(e, tt.sni)
			addr := h.addr(t, listen)
			if tt.want == "" {
				if _, err := tryTLS(addr, conf); err == nil {
					t.Fatalf("handshake with SNI %q succeeded, want a refusal", tt.sni)
				}
				if l := h.logs.conn(t); l.str("outcome") != "handshake_error" {
					t.Errorf("outcome = %q, want handshake_error", l.str("outcome"))
				}
				return
			}
			c := dialTLS(t, addr, conf)
			if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tt.want {
				t.Errorf("SNI %q: certificate CN = %q, want %q", tt.sni, cn, tt.want)
			}
			if got := readLine(t, c); got != tt.want {
				t.Errorf("SNI %q: backend %q, want %q", tt.sni, got, tt.want)
			}
			roundTrip(t, c, "hello")
			c.Close()
			if l := h.logs.conn(t); l.str("service") != tt.want {
				t.Errorf("service = %q, want %q", l.str("service"), tt.want)
			}
		})
	}
}

// sniClient sends sni and verifies the chain to e's CA but not the name.
func sniClient(e *env, sni string) *tls.Config {
	return &tls.Config{
		ServerName: sni, Certificates: []tls.Certificate{e.client.tls}, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: e.pool})
			return err
		},
	}
}

func TestUnixSockets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := shortDir(t)
	sock := func(name string) string { return filepath.Join(dir, name) }
	startBackend(t, "unix", sock("backend.sock"), echo)

	srvListen := "unix:" + sock("server.sock")
	srv := startProxy(t, config(e.serverService("srv", srvListen, "unix:"+sock("backend.sock"))))
	cliListen := "unix:" + sock("client.sock")
	cli := startProxy(t, config(e.clientService("cli", cliListen, "unix:"+sock("server.sock"))))

	a := srv.addr(t, srvListen)
	if a.Network() != "unix" || a.String() != sock("server.sock") {
		t.Fatalf("Addrs()[%q] = %s %s", srvListen, a.Network(), a)
	}
	t.Run("server mode", func(t *testing.T) {
		c := dialTLS(t, a, e.tlsClient(e.client))
		roundTrip(t, c, "over unix")
		c.Close()
		srv.logs.conn(t)
	})
	t.Run("client to server mode", func(t *testing.T) {
		c := dial(t, cli.addr(t, cliListen))
		roundTrip(t, c, "over unix twice")
		if err := closeWrite(c); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("Read after half-close = %v, want EOF", err)
		}
		for _, h := range []*harness{cli, srv} {
			if l := h.logs.conn(t); l.str("outcome") != "ok" || !strings.HasPrefix(l.str("target"), "unix:") {
				t.Errorf("%s log = %v, want outcome ok to a unix: target", l.str("service"), l.attrs)
			}
		}
	})
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	revoked := e.ca.issue(t, e.dir, "revoked", leafSpec{cn: "client"})
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.Revocation = &tunnel.Revocation{CRLs: []string{e.ca.crl(t, e.dir, "ca.crl", revoked.cert)}}
	cfg := config(svc)
	h := startProxy(t, cfg)
	addr := h.addr(t, "127.0.0.1:0")

	check := func(t *testing.T) {
		c := dialTLS(t, addr, e.tlsClient(e.client))
		roundTrip(t, c, "hello")
		c.Close()
		if l := h.logs.conn(t); l.str("outcome") != "ok" {
			t.Errorf("good client: outcome %q", l.str("outcome"))
		}
		refused(t, addr, e.tlsClient(revoked))
		if l := h.logs.conn(t); l.str("outcome") != "denied" {
			t.Errorf("revoked client: outcome %q, want denied (log %v)", l.str("outcome"), l.attrs)
		}
	}
	check(t)
	// A reload builds a new checker for the service: its metrics must take
	// over from the old one's rather than collide with them.
	if err := h.p.Reload(cfg); err != nil {
		t.Fatalf("Reload(same config) = %v", err)
	}
	check(t)
	// The revocation series come from the checker, through the registry.
	const checks = `# HELP portcullis_revocation_checks_total Revocation checks by result: good, revoked, unknown_allowed (fail-open) or unknown_denied (fail-closed).
# TYPE portcullis_revocation_checks_total counter
portcullis_revocation_checks_total{result="good",service="web"} 1
portcullis_revocation_checks_total{result="revoked",service="web"} 1
portcullis_revocation_checks_total{result="unknown_allowed",service="web"} 0
portcullis_revocation_checks_total{result="unknown_denied",service="web"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(checks), "portcullis_revocation_checks_total"); err != nil {
		t.Errorf("after the reload, want the new checker's counts alone: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	busy := startBackend(t, "tcp", "127.0.0.1:0", echo).Addr().String()
	tests := []struct {
		name   string
		mutate func(*tunnel.Service)
		want   string
	}{
		{"invalid", func(s *tunnel.Service) { s.Mode = "bogus" }, `mode "bogus"`},
		{"missing cert", func(s *tunnel.Service) { s.Identity.Cert = filepath.Join(e.dir, "nope.pem") }, "nope.pem"},
		{"cert not a key match", func(s *tunnel.Service) { s.Identity.Key = e.client.keyFile }, "does not match"},
		{"address in use", func(s *tunnel.Service) { s.Listen = busy }, "address already in use"},
		{"missing crl", func(s *tunnel.Service) {
			s.Revocation = &tunnel.Revocation{CRLs: []string{filepath.Join(e.dir, "none.crl")}}
		}, "none.crl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := e.serverService("web", "127.0.0.1:0", "127.0.0.1:1")
			tt.mutate(&svc)
			p, err := tunnel.New(t.Context(), config(svc), tunnel.Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, %v; want an error containing %q", p, err, tt.want)
			}
		})
	}
}

// TestCertificateFileReplaced: replacing the certificate files in place
// (as cert-manager or an agent renewing does) reloads the service's
// identity without a Reload.
func TestCertificateFileReplaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	first := e.ca.issue(t, dir, "tls", leafSpec{cn: "server", server: true})
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.Identity.Cert, svc.Identity.Key = first.certFile, first.keyFile
	// The timer backs the file watch up, should the watch start after the
	// files change.
	h := startProxyWith(t, config(svc), tunnel.Options{TimedReload: 100 * time.Millisecond})
	addr := h.addr(t, "127.0.0.1:0")
	serial := func() string {
		c := dialTLS(t, addr, e.tlsClient(e.client))
		roundTrip(t, c, "x")
		c.Close()
		h.logs.conn(t)
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.cert.SerialNumber.String() {
		t.Fatalf("serial = %s, want %s", got, first.cert.SerialNumber)
	}
	// Issue into another directory, then rename over the watched files,
	// as atomic writers do. A reload between the two renames fails (key
	// and certificate differ) and keeps the old pair; the second rename
	// triggers the one that succeeds.
	renewed := e.ca.issue(t, t.TempDir(), "tls", leafSpec{cn: "server", server: true, notAfter: time.Now().Add(48 * time.Hour)})
	for _, f := range [][2]string{{renewed.keyFile, first.keyFile}, {renewed.certFile, first.certFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	for {
		l := h.logs.next(t, "certificate reloaded")
		if at, _ := l.attrs["not_after"].(time.Time); at.Equal(renewed.cert.NotAfter) {
			break
		}
	}
	if got := serial(); got != renewed.cert.SerialNumber.String() {
		t.Errorf("serial after the files changed = %s, want %s", got, renewed.cert.SerialNumber)
	}
	if got := h.metric(t, "portcullis_tunnel_cert_not_after_timestamp_seconds", "service", "web"); got != float64(renewed.cert.NotAfter.Unix()) {
		t.Errorf("cert_not_after = %v, want %d", got, renewed.cert.NotAfter.Unix())
	}
}

// TestUnixListenStale: a socket file left by a crashed run is replaced; a
// socket another process serves, or any other file at the path, is not.
func TestUnixListenStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := shortDir(t)
	tests := []struct {
		name    string
		prepare func(path string) error
		wantErr bool
	}{
		{"nothing there", func(string) error { return nil }, false},
		{"stale socket", func(path string) error {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				return err
			}
			ln.SetUnlinkOnClose(false)
			return ln.Close()
		}, false},
		{"regular file", func(path string) error { return os.WriteFile(path, []byte("keep me"), 0o600) }, true},
		{"live socket", func(path string) error {
			ln, err := net.Listen("unix", path)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			return nil
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
			if err := tt.prepare(path); err != nil {
				t.Fatal(err)
			}
			cfg := config(e.serverService("web", "unix:"+path, echoBackend(t)))
			if tt.wantErr {
				if p, err := tunnel.New(t.Context(), cfg, tunnel.Options{}); err == nil {
					t.Errorf("New() = %v, nil; want an error", p)
				}
				if fi, err := os.Lstat(path); err != nil {
					t.Errorf("the file at the socket path is gone: %v", err)
				} else if fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(path); string(b) != "keep me" {
						t.Errorf("the file at the socket path is now %q", b)
					}
				}
				return
			}
			h := startProxy(t, cfg)
			c := dialTLS(t, h.addr(t, "unix:"+path), e.tlsClient(e.client))
			roundTrip(t, c, "hello")
		})
	}
}
