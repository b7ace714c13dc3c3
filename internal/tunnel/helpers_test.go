package tunnel_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// ioTimeout bounds every network step of a test. Nothing waits for it to
// pass: it only turns a hang into a failure.
const ioTimeout = 10 * time.Second

// Short timeouts of the fault tests. Each is what the test waits for, so
// they are kept small; the proxy's own defaults are seconds.
const (
	shortTimeout = 300 * time.Millisecond
)

// testCA is an ECDSA P-256 certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey { t.Helper(); return pkitest.Key(t) }

func newSerial(t testing.TB) *big.Int { t.Helper(); return pkitest.Serial(t) }

func newCA(t testing.TB, dir, cn string) *testCA {
	t.Helper()
	cert, key := pkitest.SelfSign(t, pkitest.RootTemplate(t, pkix.Name{CommonName: cn, Organization: []string{"Portcullis Test"}}))
	file := writeFile(t, dir, strings.ReplaceAll(cn, " ", "-")+".ca.pem", certPEM(cert))
	return &testCA{cert: cert, key: key, file: file}
}

// leafSpec describes an end-entity certificate.
type leafSpec struct {
	cn       string
	uris     []string
	dns      []string // server certificates also get localhost and 127.0.0.1
	server   bool     // serverAuth, else clientAuth
	notAfter time.Time
	ocsp     string // AIA OCSP responder URL
}

// ident is an issued identity with its files.
type ident struct {
	cert     *x509.Certificate
	tls      tls.Certificate
	certFile string
	keyFile  string
}

// issue signs a leaf and writes name.crt.pem and name.key.pem into dir.
func (ca *testCA) issue(t testing.TB, dir, name string, l leafSpec) *ident {
	t.Helper()
	key := newKey(t)
	if l.notAfter.IsZero() {
		l.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: l.cn, Organization: []string{"Portcullis Test"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     l.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     l.dns,
	}
	if l.ocsp != "" {
		tmpl.OCSPServer = []string{l.ocsp}
	}
	if l.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = append(slices.Clone(l.dns), "localhost")
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, u := range l.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &ident{
		cert:     cert,
		tls:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		certFile: writeFile(t, dir, name+".crt.pem", certPEM(cert)),
		keyFile:  writeFile(t, dir, name+".key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}
}

// crl writes a CRL of ca revoking the given certificates.
func (ca *testCA) crl(t testing.TB, dir, name string, revoked ...*x509.Certificate) string {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour),
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func certPEM(certs ...*x509.Certificate) []byte { return pkitest.CertPEM(certs...) }

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is one CA with a server identity (CN=server, serverAuth for
// localhost and 127.0.0.1) and a client identity (CN=client, a SPIFFE URI
// SAN), in a temporary directory.
type env struct {
	dir    string
	ca     *testCA
	pool   *x509.CertPool
	server *ident
	client *ident
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, dir, "Test CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &env{
		dir:    dir,
		ca:     ca,
		pool:   pool,
		server: ca.issue(t, dir, "server", leafSpec{cn: "server", server: true}),
		client: ca.issue(t, dir, "client", leafSpec{cn: "client", uris: []string{"spiffe://test/client"}}),
	}
}

// serverService is a server-mode service presenting e.server and admitting
// CN=client.
func (e *env) serverService(name, listen string, targets ...string) tunnel.Service {
	return tunnel.Service{
		Name: name, Mode: tunnel.ModeServer, Listen: listen, Targets: targets,
		Identity: tunnel.Identity{Cert: e.server.certFile, Key: e.server.keyFile, CACert: e.ca.file},
		Allow:    policy.Rules{CN: []string{"client"}},
	}
}

// clientService is a client-mode service presenting e.client to targets
// that must prove the name localhost.
func (e *env) clientService(name, listen string, targets ...string) tunnel.Service {
	return tunnel.Service{
		Name: name, Mode: tunnel.ModeClient, Listen: listen, Targets: targets, ServerName: "localhost",
		Identity: tunnel.Identity{Cert: e.client.certFile, Key: e.client.keyFile, CACert: e.ca.file},
	}
}

// tlsClient is what a test client presents: id (nil for none), trusting
// e's CA for the name localhost, with a session cache.
func (e *env) tlsClient(id *ident) *tls.Config {
	c := &tls.Config{RootCAs: e.pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	if id != nil {
		c.Certificates = []tls.Certificate{id.tls}
	}
	return c
}

func config(svcs ...tunnel.Service) tunnel.Config {
	return tunnel.Config{Version: tunnel.ConfigVersion, ShutdownTimeout: tunnel.Duration(ioTimeout), Services: svcs}
}

// harness is a running Proxy with its registry and recorded logs.
type harness struct {
	p      *tunnel.Proxy
	reg    *prometheus.Registry
	logs   *logRecorder
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	runErr error
}

// startProxy builds a Proxy from cfg and runs it until the test ends.
func startProxy(t testing.TB, cfg tunnel.Config) *harness {
	t.Helper()
	return startProxyWith(t, cfg, tunnel.Options{})
}

// startProxyWith is startProxy with options; the registry and logger are
// the harness's.
func startProxyWith(t testing.TB, cfg tunnel.Config, opts tunnel.Options) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), logs: newLogRecorder(t), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Registry, opts.Logger = h.reg, h.logs.logger()
	p, err := tunnel.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatalf("New() = %v", err)
	}
	h.p, h.cancel = p, cancel
	go func() {
		h.runErr = p.Run(ctx)
		close(h.done)
	}()
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop cancels Run's context and waits for it to return.
func (h *harness) stop(t testing.TB) {
	t.Helper()
	h.cancel()
	select {
	case <-h.done:
		if h.runErr != nil {
			t.Errorf("Run() = %v", h.runErr)
		}
	case <-time.After(ioTimeout):
		t.Errorf("Run did not return within %v of its context ending", ioTimeout)
	}
}

// addr is the bound address of the listener configured as listen.
func (h *harness) addr(t testing.TB, listen string) net.Addr {
	t.Helper()
	a, ok := h.p.Addrs()[listen]
	if !ok {
		t.Fatalf("Addrs() = %v, no %q", h.p.Addrs(), listen)
	}
	return a
}

// metric is the value of the counter or gauge name with the given label
// pairs (name, value, …), read with testutil.
func (h *harness) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	return testutil.ToFloat64(h.p.Series(name, labels...))
}

// logRec is one recorded log line.
type logRec struct {
	msg   string
	level slog.Level
	attrs map[string]any
}

func (r logRec) str(key string) string { s, _ := r.attrs[key].(string); return s }

// logRecorder keeps every line a Proxy logs, so a test can wait for the
// line that marks an event (a connection's end, the start of shutdown)
// instead of sleeping.
type logRecorder struct {
	mu      sync.Mutex
	recs    []logRec
	changed chan struct{} // closed and replaced on each line
	cursor  map[string]int
}

func newLogRecorder(t testing.TB) *logRecorder {
	r := &logRecorder{changed: make(chan struct{}), cursor: map[string]int{}}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, rec := range r.recs {
			t.Logf("proxy log: %s %q %v", rec.level, rec.msg, rec.attrs)
		}
	})
	return r
}

func (r *logRecorder) logger() *slog.Logger { return slog.New(&recHandler{r: r}) }

func (r *logRecorder) add(rec logRec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	close(r.changed)
	r.changed = make(chan struct{})
}

// next returns the next line with message msg not returned before,
// waiting up to ioTimeout for it.
func (r *logRecorder) next(t testing.TB, msg string) logRec {
	t.Helper()
	timer := time.NewTimer(ioTimeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		for i := r.cursor[msg]; i < len(r.recs); i++ {
			if r.recs[i].msg == msg {
				r.cursor[msg] = i + 1
				rec := r.recs[i]
				r.mu.Unlock()
				return rec
			}
		}
		r.cursor[msg] = len(r.recs)
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("no log line %q within %v", msg, ioTimeout)
		}
	}
}

// conn waits for the next "connection" line (logged when a proxied
// connection ends, after its metrics are counted).
func (r *logRecorder) conn(t testing.TB) logRec {
	t.Helper()
	return r.next(t, "connection")
}

type recHandler struct {
	r     *logRecorder
	attrs []slog.Attr
}

func (h *recHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recHandler) Handle(_ context.Context, rec slog.Record) error {
	m := make(map[string]any, len(h.attrs)+rec.NumAttrs())
	for _, a := range h.attrs {
		m[a.Key] = a.Value.Resolve().Any()
	}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Resolve().Any()
		return true
	})
	h.r.add(logRec{msg: rec.Message, level: rec.Level, attrs: m})
	return nil
}

func (h *recHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recHandler{r: h.r, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *recHandler) WithGroup(string) slog.Handler { return h }

// startBackend listens on network/address (127.0.0.1:0 for TCP) and runs
// handle for each connection. The test's end closes the listener and every
// connection, and waits for the handlers.
func startBackend(t testing.TB, network, address string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			c.SetDeadline(time.Now().Add(ioTimeout))
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln
}

// echo copies everything back, then half-closes.
func echo(c net.Conn) {
	io.Copy(c, c)
	closeWrite(c)
}

// tagged greets with name and a newline, then echoes: tests tell backends
// apart by the greeting.
func tagged(name string) func(net.Conn) {
	return func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
		echo(c)
	}
}

func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("%T cannot half-close", c)
	}
	return cw.CloseWrite()
}

func echoBackend(t testing.TB) string {
	t.Helper()
	return startBackend(t, "tcp", "127.0.0.1:0", echo).Addr().String()
}

// refusedAddr is a loopback address nobody listens on.
func refusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// dial connects to a, with every later step bounded by ioTimeout.
func dial(t testing.TB, a net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(a.Network(), a.String(), ioTimeout)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", a, err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// dialTLS connects and handshakes; the handshake must succeed.
func dialTLS(t testing.TB, a net.Addr, conf *tls.Config) *tls.Conn {
	t.Helper()
	tc, err := tryTLS(a, conf)
	if err != nil {
		t.Fatalf("TLS handshake with %s = %v", a, err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

func tryTLS(a net.Addr, conf *tls.Config) (*tls.Conn, error) {
	c, err := net.DialTimeout(a.Network(), a.String(), ioTimeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// roundTrip writes msg and expects it back.
func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("Write(%q) = %v", msg, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// readLine reads up to and including '\n' one byte at a time, leaving the
// rest of the stream unread.
func readLine(t testing.TB, c net.Conn) string {
	t.Helper()
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatalf("reading a line (got %q): %v", b, err)
		}
		if one[0] == '\n' {
			return string(b)
		}
		b = append(b, one[0])
	}
}

// refused checks a connection through the proxy carries nothing: the
// handshake fails, or the first read does. It returns that error.
func refused(t testing.TB, a net.Addr, conf *tls.Config) error {
	t.Helper()
	tc, err := tryTLS(a, conf)
	if err != nil {
		return err
	}
	defer tc.Close()
	// In TLS 1.3 the client's handshake ends before the server has checked
	// the client's certificate: a refusal shows on the first read.
	io.WriteString(tc, "ping")
	buf := make([]byte, 4)
	n, err := tc.Read(buf)
	if err == nil {
		t.Fatalf("read %q through a connection that should be refused", buf[:n])
	}
	return err
}

// shortDir is a temporary directory with a short path: UNIX socket paths
// are limited to about 100 bytes, and t.TempDir's can be longer.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pct")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// isClosed reports whether err is how a read ends on a connection the
// proxy closed: EOF, or a reset.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(fmt.Sprint(err), "reset by peer")
}
