package revocation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
)

// testCA is a CA made in Go: a P-256 key and a self-signed certificate.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey { t.Helper(); return pkitest.Key(t) }

func newSerial(t testing.TB) *big.Int { t.Helper(); return pkitest.Serial(t) }

// newCA makes a CA named cn; ski, when given, replaces its key identifier
// (to forge a CA that looks like another).
func newCA(t testing.TB, cn string, ski ...byte) *testCA {
	t.Helper()
	key := newKey(t)
	if ski == nil {
		var err error
		if ski, err = pki.SubjectKeyID(&key.PublicKey); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, SubjectKeyId: ski,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return &testCA{cert: sign(t, tmpl, tmpl, &key.PublicKey, key), key: key}
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	return pkitest.Sign(t, tmpl, parent, pub, key)
}

// leaf issues a client certificate; mods adjust the template.
func (ca *testCA) leaf(t testing.TB, cn string, mods ...func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, m := range mods {
		m(tmpl)
	}
	k := newKey(t)
	return sign(t, tmpl, ca.cert, &k.PublicKey, ca.key)
}

// crlDER signs a CRL over revoked.
func (ca *testCA) crlDER(t testing.TB, number int64, this, next time.Time, revoked ...x509.RevocationListEntry) []byte {
	t.Helper()
	return ca.crlWith(t, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next,
		RevokedCertificateEntries: revoked})
}

func (ca *testCA) crlWith(t testing.TB, tmpl *x509.RevocationList) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// crlPEM is crlDER, PEM-encoded.
func (ca *testCA) crlPEM(t testing.TB, number int64, this, next time.Time, revoked ...x509.RevocationListEntry) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.crlDER(t, number, this, next, revoked...)})
}

func revokedEntry(c *x509.Certificate, at time.Time, reason int) x509.RevocationListEntry {
	return x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: at, ReasonCode: reason}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tempFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	writeFile(t, p, data)
	return p
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) has(t testing.TB, want ...string) {
	t.Helper()
	s := l.String()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("log has no %q; log:\n%s", w, s)
		}
	}
}

func newLog() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// oneSource is the series of desc, one of the per-source gauges, of a
// checker with one source: what testutil.ToFloat64 reads.
func oneSource(c *Checker, desc *prometheus.Desc) prometheus.Collector {
	return sourceGauge{c.m.sources, desc}
}

type sourceGauge struct {
	sc   *sourceCollector
	desc *prometheus.Desc
}

func (g sourceGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g sourceGauge) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 4*len(g.sc.c.sources))
	g.sc.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == g.desc {
			ch <- m
		}
	}
}

// fixture is a CA with a good and a revoked leaf, and a checker over a CRL
// file that revokes the second.
type fixture struct {
	ca            *testCA
	good, revoked *x509.Certificate
	path          string
	checker       *Checker
	reg           *prometheus.Registry
	log           *logBuf
	revokedAt     time.Time
}

func newFixture(t *testing.T, mode Mode) *fixture {
	t.Helper()
	f := &fixture{ca: newCA(t, "Test CA"), reg: prometheus.NewRegistry()}
	f.good = f.ca.leaf(t, "good")
	f.revoked = f.ca.leaf(t, "revoked")
	now := time.Now()
	f.revokedAt = now.Add(-time.Minute).Truncate(time.Second)
	f.path = tempFile(t, "crl.pem", f.ca.crlPEM(t, 1, now.Add(-time.Minute), now.Add(time.Hour),
		revokedEntry(f.revoked, f.revokedAt, 1)))
	var lg *slog.Logger
	lg, f.log = newLog()
	c, err := New(Config{CRLs: []string{f.path}, Mode: mode}, lg, f.reg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.checker = c
	return f
}
