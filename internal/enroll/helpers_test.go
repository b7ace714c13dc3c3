package enroll_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	svc   *enroll.Service
	store *sqlite.Store
	clock *clock
	// audit needs no lock of its own: slog's JSON handler serializes
	// writes, and tests read it after their goroutines are done.
	audit *bytes.Buffer
}

func newEnv(t *testing.T, cfg enroll.Config) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{store: st, clock: &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}, audit: &bytes.Buffer{}}
	e.svc, err = enroll.New(cfg, st, enroll.Options{Audit: obs.NewAuditLogger(e.audit), Now: e.clock.Now})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return e
}

// newCSR returns the DER of a fresh P-256 CSR for cn.
func newCSR(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func facts(host string) enroll.Facts {
	return enroll.Facts{Hostname: host, OS: "macOS", OSVersion: "15.1", HardwareSerial: "C02ABC" + host,
		AgentVersion: "0.1.0", OwnerEmail: "ada@example.com"}
}
