package enroll_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

// The implementations cmd will wire in.
var (
	_ enroll.Signer = (*ca.Authority)(nil)
	_ enroll.Store  = (*sqlite.Store)(nil)
)

// newEnvWithCA is newEnv with a real CA on the same store and clock.
func newEnvWithCA(t *testing.T) (*env, *ca.Authority) {
	t.Helper()
	e := newEnv(t, enroll.Config{})
	a, err := ca.Init(t.Context(), t.TempDir(), e.store, ca.DefaultInitOptions(), ca.Options{Now: e.clock.Now, Actor: "test"})
	if err != nil {
		t.Fatalf("ca.Init() = %v", err)
	}
	e.svc, err = enroll.New(enroll.Config{}, e.store, enroll.Options{Audit: obs.NewAuditLogger(e.audit), Now: e.clock.Now, Signer: a})
	if err != nil {
		t.Fatal(err)
	}
	return e, a
}

func approved(t *testing.T, e *env, host string) *store.Request {
	t.Helper()
	o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, host), Facts: facts(host)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.Approve(t.Context(), o.Request.ID, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIssue(t *testing.T) {
	e, a := newEnvWithCA(t)
	r := approved(t, e, "laptop-1")
	got, err := e.svc.Issue(t.Context(), r.ID)
	if err != nil {
		t.Fatalf("Issue() = %v", err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(a.Root())
	inter.AddCert(a.Issuer())
	if _, err := got.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: e.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
	if len(got.Cert.URIs) != 1 || !strings.HasSuffix(got.Cert.URIs[0].Path, "/device/"+string(r.Device)) {
		t.Errorf("certificate URIs %v, want the device ID's", got.Cert.URIs)
	}
	if got.Request.State != store.RequestIssued || got.Request.CertSerial != got.Cert.SerialNumber.Text(16) {
		t.Errorf("request after Issue: %q, serial %q", got.Request.State, got.Request.CertSerial)
	}
	if d, err := e.store.Device(t.Context(), r.Device); err != nil || d.State != store.DeviceActive {
		t.Errorf("device after Issue = %+v, %v; want active", d, err)
	}
	if _, err := e.svc.Issue(t.Context(), r.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second Issue() = %v, want ErrConflict", err)
	}
	o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, "x"), Facts: facts("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Issue(t.Context(), o.Request.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Issue(pending) = %v, want ErrConflict", err)
	}
	if !strings.Contains(e.audit.String(), `"event":"enroll.issued"`) {
		t.Errorf("no enroll.issued audit event")
	}
}

func TestIssueNoSigner(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	if _, err := e.svc.Issue(t.Context(), approved(t, e, "a").ID); !errors.Is(err, enroll.ErrNoSigner) {
		t.Errorf("Issue() = %v, want ErrNoSigner", err)
	}
}

// TestConcurrentIssue: N issuers of one approved request sign one
// certificate between them.
func TestConcurrentIssue(t *testing.T) {
	e, _ := newEnvWithCA(t)
	r := approved(t, e, "laptop-1")
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = e.svc.Issue(t.Context(), r.ID) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNameTaken) && !errors.Is(err, store.ErrConflict):
			t.Errorf("Issue #%d = %v, want nil, ErrNameTaken or ErrConflict", i, err)
		}
	}
	certs, err := e.store.List(t.Context(), store.Filter{Name: string(r.Device)})
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(certs) != 1 {
		t.Errorf("%d issuances succeeded, %d certificates recorded; want 1, 1", ok, len(certs))
	}
}
