package tlsconf_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// ioTimeout bounds every network step of a test; nothing waits for it to
// pass, it only turns a hang into a failure.
const ioTimeout = 10 * time.Second

// testCA is an ECDSA P-256 certificate authority made in-test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey { t.Helper(); return pkitest.Key(t) }

func serial(t testing.TB) *big.Int { t.Helper(); return pkitest.Serial(t) }

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	cert, key := pkitest.SelfSign(t, pkitest.RootTemplate(t, pkix.Name{CommonName: cn, Organization: []string{"Portcullis Test"}}))
	return &testCA{cert: cert, key: key}
}

// intermediate issues a subordinate CA.
func (ca *testCA) intermediate(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return &testCA{cert: ca.sign(t, tmpl, key), key: key}
}

func (ca *testCA) sign(t testing.TB, tmpl *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// leaf describes an end-entity certificate.
type leaf struct {
	cn        string
	server    bool // serverAuth for localhost and 127.0.0.1, else clientAuth
	notBefore time.Time
	notAfter  time.Time
	key       *ecdsa.PrivateKey // nil: a new one
}

func (ca *testCA) issue(t testing.TB, l leaf) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	if l.key == nil {
		l.key = newKey(t)
	}
	if l.notBefore.IsZero() {
		l.notBefore = time.Now().Add(-time.Hour)
	}
	if l.notAfter.IsZero() {
		l.notAfter = time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: l.cn, Organization: []string{"Portcullis Test"}},
		NotBefore:    l.notBefore,
		NotAfter:     l.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if l.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	return ca.sign(t, tmpl, l.key), l.key
}

func certPEM(certs ...*x509.Certificate) []byte { return pkitest.CertPEM(certs...) }

func keyPEM(t testing.TB, key crypto.Signer) []byte { t.Helper(); return pkitest.KeyPEM(t, key) }

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replace swaps path's content by renaming a new file over it, as
// cert-manager and atomicfile do.
func replace(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// pairSource writes cert (plus chain) and key files and a CA bundle.
func pairSource(t testing.TB, dir string, chain []*x509.Certificate, key crypto.Signer, cas ...*x509.Certificate) tlsconf.Source {
	t.Helper()
	return tlsconf.Source{
		CertFile: writeFile(t, dir, "cert.pem", certPEM(chain...)),
		KeyFile:  writeFile(t, dir, "key.pem", keyPEM(t, key)),
		CAFile:   writeFile(t, dir, "ca.pem", certPEM(cas...)),
	}
}

func mustLoad(t testing.TB, src tlsconf.Source, log *slog.Logger) *tlsconf.Store {
	t.Helper()
	s, err := tlsconf.Load(src, log)
	if err != nil {
		t.Fatalf("Load(%+v) = %v", src, err)
	}
	return s
}

// logBuffer collects log output from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// result is what the test server saw of one connection's handshake.
type result struct {
	state tls.ConnectionState
	err   error
}

// serve runs a TLS server on 127.0.0.1:0: each connection handshakes,
// reports on the returned channel, then gets "ok\n" and an echo.
func serve(t testing.TB, cfg *tls.Config) (string, <-chan result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan result, 16)
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c, cfg, results, done) })
		}
	})
	return ln.Addr().String(), results
}

func handle(c net.Conn, cfg *tls.Config, results chan<- result, done <-chan struct{}) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	tc := tls.Server(c, cfg)
	err := tc.Handshake()
	select {
	case results <- result{tc.ConnectionState(), err}:
	case <-done:
		return
	}
	if err != nil {
		return
	}
	if _, err := io.WriteString(tc, "ok\n"); err != nil {
		return
	}
	io.Copy(tc, tc)
}

// dial connects, handshakes and reads the server's "ok\n". In TLS 1.3 the
// client's handshake ends before the server has checked the client's
// certificate, so a rejection surfaces on that first read.
func dial(t testing.TB, addr string, cfg *tls.Config) (*tls.Conn, *bufio.Reader, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	c := nc.(*tls.Conn)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return c, r, err
	}
	if line != "ok\n" {
		return c, r, errors.New("server said " + line)
	}
	return c, r, nil
}

// next returns the server's report of the next handshake.
func next(t testing.TB, results <-chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(ioTimeout):
		t.Fatal("server saw no handshake")
		return result{}
	}
}

// world is a server and a client identity from one CA.
type world struct {
	ca                   *testCA
	server, client       *tlsconf.Store
	serverSrc, clientSrc tlsconf.Source
	serverDir, clientDir string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{ca: newCA(t, "Fleet CA"), serverDir: t.TempDir(), clientDir: t.TempDir()}
	sc, sk := w.ca.issue(t, leaf{cn: "tunnel.server", server: true})
	cc, ck := w.ca.issue(t, leaf{cn: "device-1"})
	w.serverSrc = pairSource(t, w.serverDir, []*x509.Certificate{sc}, sk, w.ca.cert)
	w.clientSrc = pairSource(t, w.clientDir, []*x509.Certificate{cc}, ck, w.ca.cert)
	w.server = mustLoad(t, w.serverSrc, nil)
	w.client = mustLoad(t, w.clientSrc, nil)
	return w
}
