package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// hookLog records the calls of a VerifyFunc, and denies CNs in deny.
type hookLog struct {
	mu    sync.Mutex
	calls []hookCall
	deny  string
}

type hookCall struct {
	cn      string
	resumed bool
	chain   int
}

func (h *hookLog) verify(cs tls.ConnectionState, chains [][]*x509.Certificate) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cn := cs.PeerCertificates[0].Subject.CommonName
	h.calls = append(h.calls, hookCall{cn: cn, resumed: cs.DidResume, chain: len(chains[0])})
	if cn == h.deny {
		return errors.New("policy: " + cn + " is not allowed")
	}
	return nil
}

func (h *hookLog) all() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

func TestServerConfig(t *testing.T) {
	w := newWorld(t)
	other := newCA(t, "Other CA")
	inter := w.ca.intermediate(t, "Fleet Issuing")

	// client makes a client config presenting chain (or nothing).
	client := func(t *testing.T, chain []*x509.Certificate, key any, edit func(*tls.Config)) *tls.Config {
		cfg := &tls.Config{RootCAs: pool(w.ca.cert), ServerName: "localhost"}
		if chain != nil {
			c := tls.Certificate{PrivateKey: key}
			for _, x := range chain {
				c.Certificate = append(c.Certificate, x.Raw)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		if edit != nil {
			edit(cfg)
		}
		return cfg
	}
	good, goodKey := w.ca.issue(t, leaf{cn: "device-1"})
	viaInter, viaInterKey := inter.issue(t, leaf{cn: "device-2"})
	stranger, strangerKey := other.issue(t, leaf{cn: "stranger"})
	expired, expiredKey := w.ca.issue(t, leaf{cn: "device-old", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	serverOnly, serverOnlyKey := w.ca.issue(t, leaf{cn: "not-a-client", server: true})
	denied, deniedKey := w.ca.issue(t, leaf{cn: "device-denied"})
	tls12 := func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }

	tests := []struct {
		name      string
		cfg       *tls.Config
		serverErr string // "" for success
		version   uint16
		chain     int // length of the verified chain the hook saw
	}{
		{"TLS 1.3", client(t, []*x509.Certificate{good}, goodKey, nil), "", tls.VersionTLS13, 2},
		{"TLS 1.2 forced", client(t, []*x509.Certificate{good}, goodKey, tls12), "", tls.VersionTLS12, 2},
		{"intermediate from the peer's chain", client(t, []*x509.Certificate{viaInter, inter.cert}, viaInterKey, nil), "", tls.VersionTLS13, 3},
		{"TLS 1.1 refused", client(t, []*x509.Certificate{good}, goodKey, func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		}), "offered only unsupported versions", 0, 0},
		{"TLS 1.2 CBC suite refused", client(t, []*x509.Certificate{good}, goodKey, func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}), "no cipher suite supported", 0, 0},
		{"no client certificate", client(t, nil, nil, nil), "didn't provide a certificate", 0, 0},
		{"no client certificate TLS 1.2", client(t, nil, nil, tls12), "didn't provide a certificate", 0, 0},
		{"unknown CA", client(t, []*x509.Certificate{stranger}, strangerKey, nil),
			`client certificate "CN=stranger,O=Portcullis Test" (serial %x): x509: certificate signed by unknown authority`, 0, 0},
		{"intermediate missing", client(t, []*x509.Certificate{viaInter}, viaInterKey, nil),
			"x509: certificate signed by unknown authority", 0, 0},
		{"expired", client(t, []*x509.Certificate{expired}, expiredKey, nil), "x509: certificate has expired", 0, 0},
		{"serverAuth-only certificate", client(t, []*x509.Certificate{serverOnly}, serverOnlyKey, nil), "incompatible key usage", 0, 0},
		{"denied by hook", client(t, []*x509.Certificate{denied}, deniedKey, nil), "policy: device-denied is not allowed", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := &hookLog{deny: "device-denied"}
			addr, results := serve(t, tlsconf.ServerConfig(w.server, hook.verify))
			_, _, clientErr := dial(t, addr, tt.cfg)
			r := next(t, results)
			if tt.serverErr != "" {
				want := tt.serverErr
				if strings.Contains(want, "%x") {
					want = fmt.Sprintf(want, stranger.SerialNumber)
				}
				if r.err == nil || !strings.Contains(r.err.Error(), want) {
					t.Fatalf("server handshake error = %v, want %q", r.err, want)
				}
				t.Logf("server: %v; client: %v", r.err, clientErr)
				// In TLS 1.3 the client learns on its first read.
				if clientErr == nil {
					t.Error("client saw no error")
				}
				return
			}
			if r.err != nil || clientErr != nil {
				t.Fatalf("handshake: server %v, client %v", r.err, clientErr)
			}
			if r.state.Version != tt.version {
				t.Errorf("version = %x, want %x", r.state.Version, tt.version)
			}
			calls := hook.all()
			if len(calls) != 1 || calls[0].chain != tt.chain {
				t.Errorf("hook calls = %+v, want one with a chain of %d", calls, tt.chain)
			}
		})
	}
}

func TestServerConfigNegotiates(t *testing.T) {
	w := newWorld(t)
	addr, results := serve(t, tlsconf.ServerConfig(w.server, nil))
	tests := []struct {
		name    string
		edit    func(*tls.Config)
		version uint16
		curve   tls.CurveID
	}{
		{"default: TLS 1.3 with the PQ hybrid", nil, tls.VersionTLS13, tls.X25519MLKEM768},
		{"X25519-only peer", func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} }, tls.VersionTLS13, tls.X25519},
		{"P-256-only peer", func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.CurveP256} }, tls.VersionTLS13, tls.CurveP256},
		{"TLS 1.2", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, tls.VersionTLS12, tls.X25519},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsconf.ClientConfig(w.client, "localhost", nil)
			if tt.edit != nil {
				tt.edit(cfg)
			}
			c, _, err := dial(t, addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := c.ConnectionState()
			if st.Version != tt.version || st.CurveID != tt.curve {
				t.Errorf("negotiated %s %s, want %s %s", tls.VersionName(st.Version), st.CurveID, tls.VersionName(tt.version), tt.curve)
			}
			if st.Version == tls.VersionTLS12 && !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "ECDHE_ECDSA_WITH_AES_128_GCM") &&
				!strings.Contains(tls.CipherSuiteName(st.CipherSuite), "CHACHA20") {
				t.Errorf("TLS 1.2 suite = %s, want ECDHE + AEAD", tls.CipherSuiteName(st.CipherSuite))
			}
			if r := next(t, results); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
}

func TestClientConfig(t *testing.T) {
	w := newWorld(t)
	other := newCA(t, "Other CA")
	oc, ok := other.issue(t, leaf{cn: "impostor", server: true})
	impostor := mustLoad(t, pairSource(t, t.TempDir(), []*x509.Certificate{oc}, ok, w.ca.cert), nil)

	tests := []struct {
		name       string
		server     *tlsconf.Store
		serverName string
		hook       bool
		want       string // client error substring, "" for success
	}{
		{"DNS name", w.server, "localhost", false, ""},
		{"IP address", w.server, "127.0.0.1", false, ""},
		{"no name, hook decides", w.server, "", true, ""},
		{"wrong name", w.server, "backend.example", false, "certificate is valid for localhost, not backend.example"},
		{"wrong IP", w.server, "127.0.0.2", false, "certificate is valid for 127.0.0.1, not 127.0.0.2"},
		{"unknown CA", impostor, "localhost", false, `server certificate "CN=impostor,O=Portcullis Test"`},
		{"client certificate used as server", w.client, "", false, "incompatible key usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := serve(t, tlsconf.ServerConfig(tt.server, nil))
			hook := &hookLog{}
			var verify tlsconf.VerifyFunc
			if tt.hook {
				verify = hook.verify
			}
			_, _, err := dial(t, addr, tlsconf.ClientConfig(w.client, tt.serverName, verify))
			<-results
			if tt.want == "" {
				if err != nil {
					t.Fatalf("dial = %v", err)
				}
				if tt.hook && len(hook.all()) != 1 {
					t.Errorf("hook calls = %v, want 1", hook.all())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("dial = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestReloadNewHandshakes: after a reload, a new handshake gets the new
// certificate while a connection opened before keeps working.
func TestReloadNewHandshakes(t *testing.T) {
	w := newWorld(t)
	addr, results := serve(t, tlsconf.ServerConfig(w.server, nil))
	clientCfg := tlsconf.ClientConfig(w.client, "localhost", nil)
	clientCfg.ClientSessionCache = nil // a resumed session would show the old certificate

	old, r, err := dial(t, addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	next(t, results)
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber

	cert, key := w.ca.issue(t, leaf{cn: "tunnel.server.v2", server: true})
	replace(t, w.serverSrc.CertFile, certPEM(cert))
	replace(t, w.serverSrc.KeyFile, keyPEM(t, key))
	if err := w.server.Reload(); err != nil {
		t.Fatal(err)
	}

	fresh, _, err := dial(t, addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	next(t, results)
	if got := fresh.ConnectionState().PeerCertificates[0]; got.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Errorf("new handshake got %s serial %x, want the reloaded %x", got.Subject, got.SerialNumber, cert.SerialNumber)
	}
	// The old connection still echoes, on the old certificate.
	if _, err := old.Write([]byte("ping\n")); err != nil {
		t.Fatalf("old connection write: %v", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("old connection read = %q, %v", line, err)
	}
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(oldSerial) != 0 {
		t.Errorf("old connection's certificate changed")
	}
}

// TestResumption: a resumed session runs the hook again, and is refused
// once the server's CA bundle no longer holds the client's CA.
func TestResumption(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			w := newWorld(t)
			hook := &hookLog{}
			srv := tlsconf.ServerConfig(w.server, hook.verify)
			// Wrap the config's own check to see which attempts resumed.
			var mu sync.Mutex
			var attempts []bool
			inner := srv.VerifyConnection
			srv.VerifyConnection = func(cs tls.ConnectionState) error {
				mu.Lock()
				attempts = append(attempts, cs.DidResume)
				mu.Unlock()
				return inner(cs)
			}
			addr, results := serve(t, srv)
			cfg := tlsconf.ClientConfig(w.client, "localhost", nil)
			cfg.MaxVersion = version

			for i, wantResumed := range []bool{false, true} {
				c, _, err := dial(t, addr, cfg) // reading "ok" also takes in the TLS 1.3 ticket
				if err != nil {
					t.Fatalf("handshake %d: %v", i, err)
				}
				if r := next(t, results); r.err != nil || r.state.DidResume != wantResumed {
					t.Fatalf("handshake %d: server err %v, DidResume %v, want %v", i, r.err, r.state.DidResume, wantResumed)
				}
				if got := c.ConnectionState().DidResume; got != wantResumed {
					t.Fatalf("handshake %d: client DidResume = %v, want %v", i, got, wantResumed)
				}
				c.Close()
			}
			if calls := hook.all(); len(calls) != 2 || calls[0].resumed || !calls[1].resumed {
				t.Fatalf("hook calls = %+v, want a full then a resumed handshake", calls)
			}

			// The server now trusts only another CA.
			replace(t, w.serverSrc.CAFile, certPEM(newCA(t, "New CA").cert))
			if err := w.server.Reload(); err != nil {
				t.Fatal(err)
			}
			_, _, err := dial(t, addr, cfg)
			r := next(t, results)
			if r.err == nil || !strings.Contains(r.err.Error(), "x509: certificate signed by unknown authority") {
				t.Errorf("resumption after CA removal: server error = %v, want unknown authority", r.err)
			}
			if err == nil {
				t.Error("resumption after CA removal: client saw no error")
			}
			mu.Lock()
			defer mu.Unlock()
			if n := len(attempts); n != 3 || !attempts[2] {
				t.Errorf("VerifyConnection attempts (DidResume) = %v, want the third resumed", attempts)
			}
			if n := len(hook.all()); n != 2 {
				t.Errorf("hook ran %d times, want 2: a refused chain never reaches it", n)
			}
		})
	}
}

// TestVerifiedCache: a chain verified once is reused only while it would
// still verify: the same certificates presented, within every validity
// period, against the same roots (TestResumption covers a reload).
func TestVerifiedCache(t *testing.T) {
	w := newWorld(t)
	inter := w.ca.intermediate(t, "Fleet Issuing")
	impostor := newCA(t, "Other CA").intermediate(t, "Fleet Issuing")
	cert, key := inter.issue(t, leaf{cn: "device-2", notAfter: time.Now().Add(2 * time.Hour)})
	var clock atomic.Int64 // offset from now
	tlsconf.SetClock(w.server, func() time.Time { return time.Now().Add(time.Duration(clock.Load())) })
	hook := &hookLog{}
	addr, results := serve(t, tlsconf.ServerConfig(w.server, hook.verify))
	client := func(chain ...*x509.Certificate) *tls.Config {
		c := tls.Certificate{PrivateKey: key}
		for _, x := range chain {
			c.Certificate = append(c.Certificate, x.Raw)
		}
		return &tls.Config{RootCAs: pool(w.ca.cert), ServerName: "localhost", Certificates: []tls.Certificate{c}}
	}

	steps := []struct {
		name   string
		cfg    *tls.Config
		offset time.Duration
		want   string // server error substring, "" for success
	}{
		{"first", client(cert, inter.cert), 0, ""},
		{"again, from the cache", client(cert, inter.cert), 0, ""},
		{"without the intermediate", client(cert), 0, "x509: certificate signed by unknown authority"},
		{"with another intermediate", client(cert, impostor.cert), 0, "x509: certificate signed by unknown authority"},
		{"with it again", client(cert, inter.cert), 0, ""},
		{"after the leaf expired", client(cert, inter.cert), 3 * time.Hour, "x509: certificate has expired"},
		{"before the leaf was valid", client(cert, inter.cert), -2 * time.Hour, "x509: certificate has expired or is not yet valid"},
		{"valid again", client(cert, inter.cert), 0, ""},
	}
	for _, st := range steps {
		clock.Store(int64(st.offset))
		dial(t, addr, st.cfg)
		r := next(t, results)
		if st.want == "" && r.err != nil || st.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), st.want)) {
			t.Errorf("%s: server error = %v, want %q", st.name, r.err, st.want)
		}
	}
	if n := len(hook.all()); n != 4 {
		t.Errorf("hook ran %d times, want 4 (once per accepted handshake)", n)
	}
}
