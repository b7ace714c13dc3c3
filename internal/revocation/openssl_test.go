package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// freePort picks a port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// watcher is openssl's stdout: it keeps the output and signals when a line
// starting with prefix appears.
type watcher struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prefix string
	seen   chan struct{}
	once   sync.Once
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.prefix) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// indexLine is one line of an openssl ca database (index.txt).
func indexLine(c *x509.Certificate, revokedAt time.Time, reason string) string {
	status, rev := "V", ""
	if !revokedAt.IsZero() {
		status, rev = "R", revokedAt.UTC().Format("060102150405Z")+","+reason
	}
	return fmt.Sprintf("%s\t%s\t%s\t%X\tunknown\t/CN=%s\n", status, c.NotAfter.UTC().Format("060102150405Z"), rev,
		c.SerialNumber.Bytes(), c.Subject.CommonName)
}

// TestOCSPOpenSSL asks a real `openssl ocsp` responder (PEERS.md R2) that
// signs with a delegated responder certificate. It serves exactly three
// requests (-nrequest 3) and exits, so the repeated checks after it are
// provably answered from the cache, and the last ones meet a dead responder.
func TestOCSPOpenSSL(t *testing.T) {
	openssl := testpeer.Require(t, "openssl")
	dir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)

	ca := newCA(t, "OpenSSL OCSP CA")
	rkey := newKey(t)
	rcert := sign(t, &x509.Certificate{SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: "OCSP responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}},
		ca.cert, &rkey.PublicKey, ca.key)
	good := ca.leaf(t, "good", withOCSP(url))
	revoked := ca.leaf(t, "revoked", withOCSP(url))
	unknown := ca.leaf(t, "unknown", withOCSP(url)) // not in index.txt
	later := ca.leaf(t, "later", withOCSP(url))     // asked only once the responder is gone
	revokedAt := time.Now().Add(-time.Hour).Truncate(time.Second)

	keyDER, err := x509.MarshalPKCS8PrivateKey(rkey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":    pki.EncodeCertificates(ca.cert),
		"ocsp.pem":  pki.EncodeCertificates(rcert),
		"ocsp.key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"index.txt": []byte(indexLine(good, time.Time{}, "") + indexLine(revoked, revokedAt, "keyCompromise") + indexLine(later, time.Time{}, "")),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}

	// openssl 3.0 binds every interface and may fork: run it in its own
	// process group and kill the group.
	cmd := exec.Command(openssl, "ocsp", "-port", strconv.Itoa(port), "-index", "index.txt", "-CA", "ca.pem",
		"-rsigner", "ocsp.pem", "-rkey", "ocsp.key", "-nrequest", "3", "-nmin", "60")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &watcher{prefix: "ACCEPT", seen: make(chan struct{})}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.WaitDelay = out, &stderr, 5*time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	select {
	case <-out.seen:
	case err := <-exited:
		t.Fatalf("openssl ocsp exited before accepting: %v\nstdout: %s\nstderr: %s", err, out, &stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl ocsp not accepting after 10s\nstdout: %s\nstderr: %s", out, &stderr)
	}

	reg := prometheus.NewRegistry()
	c, err := New(Config{OCSP: true, Mode: FailClosed}, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		if err := c.Check(ctx, good, ca.cert); err != nil {
			t.Errorf("%s: Check(good) = %v, want nil", when, err)
		}
		var re *RevokedError
		err := c.Check(ctx, revoked, ca.cert)
		want := RevokedError{Serial: revoked.SerialNumber, Reason: 1, RevokedAt: revokedAt.UTC(), Source: "OCSP " + url}
		if !errors.As(err, &re) || *re != want {
			t.Errorf("%s: Check(revoked) = %v, want %+v", when, err, want)
		}
		if err := c.Check(ctx, unknown, ca.cert); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "does not know") {
			t.Errorf("%s: Check(unknown) = %v, want ErrUnknown from the responder", when, err)
		}
	}
	check("first")

	select { // three requests served: openssl is gone
	case <-exited:
		exited <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("openssl ocsp still running after 3 requests\nstderr: %s", &stderr)
	}
	check("cached")
	if st := c.Status().OCSP; st.Hits != 3 || st.Misses != 3 || st.CacheEntries != 3 {
		t.Errorf("Status().OCSP = %+v, want 3 hits, 3 misses, 3 entries", st)
	}
	for result, want := range map[string]float64{ocspGood: 1, ocspRevoked: 1, ocspUnknown: 1, ocspError: 0} {
		if got := testutil.ToFloat64(c.m.ocspRequests.WithLabelValues(result)); got != want {
			t.Errorf("ocsp_requests_total{%s} = %v, want %v", result, got, want)
		}
	}

	// The responder is down now.
	if err := c.Check(ctx, later, ca.cert); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("fail-closed, responder down: Check = %v, want ErrUnknown (connection refused)", err)
	}
	if got := testutil.ToFloat64(c.m.checks.WithLabelValues(resultUnknownDenied)); got != 3 {
		t.Errorf("checks_total{unknown_denied} = %v, want 3 (the unknown serial twice, the dead responder)", got)
	}
	openReg := prometheus.NewRegistry()
	lg, lb := newLog()
	open, err := New(Config{OCSP: true, Mode: FailOpen}, lg, openReg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := open.Check(ctx, later, ca.cert); err != nil {
		t.Errorf("fail-open, responder down: Check = %v, want nil", err)
	}
	if got := testutil.ToFloat64(open.m.checks.WithLabelValues(resultUnknownAllowed)); got != 1 {
		t.Errorf("checks_total{unknown_allowed} = %v, want 1", got)
	}
	lb.has(t, "level=WARN", "fail-open", "refused")
}
