package enroll_test

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// issued returns the certificate of a settled, approved request.
func issued(t *testing.T, e *env, host string) (*store.Request, *x509.Certificate) {
	t.Helper()
	r := approved(t, e, host)
	r, err := e.svc.Settle(t.Context(), r.ID)
	if err != nil || r.State != store.RequestIssued {
		t.Fatalf("Settle() = %+v, %v; want issued", r, err)
	}
	_, certs, err := e.svc.Device(t.Context(), r.Device)
	if err != nil || len(certs) != 1 {
		t.Fatalf("Device() = %d certs, %v", len(certs), err)
	}
	c, err := x509.ParseCertificate(certs[0].DER)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func TestSettleIssuesOnceAndReconciles(t *testing.T) {
	e, a := newEnvWithCA(t)
	r := approved(t, e, "laptop-1")
	// A CA call that signed but died before the request was marked: the
	// certificate exists under the device's name, the request is approved.
	if _, err := a.Issue(t.Context(), ca.IssueRequest{Profile: pki.ProfileDevice, Name: string(r.Device), CSR: mustCSR(t, r.CSR)}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Settle(t.Context(), r.ID)
	if err != nil || got.State != store.RequestIssued || got.CertSerial == "" {
		t.Fatalf("Settle() = %+v, %v; want issued with the serial signed before", got, err)
	}
	held, _ := a.Find(t.Context(), string(r.Device))
	if got.CertSerial != held.Serial {
		t.Errorf("Settle() recorded %s, the CA holds %s", got.CertSerial, held.Serial)
	}
	again, err := e.svc.Settle(t.Context(), r.ID)
	if err != nil || again.CertSerial != got.CertSerial {
		t.Errorf("second Settle() = %+v, %v; want the same issued request", again, err)
	}
	certs, _ := a.List(t.Context(), store.Filter{Name: string(r.Device)})
	if len(certs) != 1 {
		t.Errorf("%d certificates for the device, want 1", len(certs))
	}
}

func mustCSR(t *testing.T, der []byte) *x509.CertificateRequest {
	t.Helper()
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRenewRules(t *testing.T) {
	e, a := newEnvWithCA(t)
	grace := 14 * 24 * time.Hour
	var err error
	e.svc, err = enroll.New(enroll.Config{RenewalGrace: grace}, e.store, enroll.Options{Audit: obs.NewAuditLogger(e.audit), Now: e.clock.Now, Signer: a})
	if err != nil {
		t.Fatal(err)
	}
	r, cert := issued(t, e, "laptop-1")
	e.clock.Advance(time.Hour)
	ren, err := e.svc.Renew(t.Context(), cert, nil, "0.2.0")
	if err != nil {
		t.Fatalf("Renew(same key) = %v", err)
	}
	if ren.Replaces != pki.SerialString(cert.SerialNumber) || ren.Device.AgentVersion != "0.2.0" || !ren.Device.LastSeen.Equal(e.clock.Now()) {
		t.Errorf("Renew() = replaces %s, device %+v", ren.Replaces, ren.Device)
	}
	// The superseded certificate is not renewed twice.
	if _, err := e.svc.Renew(t.Context(), cert, nil, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Renew(superseded) = %v, want ErrConflict", err)
	}
	// Within the grace after expiry: renewed, with a new key.
	e.clock.Advance(ren.Cert.NotAfter.Sub(e.clock.Now()) + grace - time.Minute)
	ren2, err := e.svc.Renew(t.Context(), ren.Cert, mustCSR(t, newCSR(t, "x")), "")
	if err != nil {
		t.Fatalf("Renew(within grace, new key) = %v", err)
	}
	if ren2.Cert.PublicKey.(interface{ Equal(x crypto.PublicKey) bool }).Equal(ren.Cert.PublicKey) {
		t.Error("Renew(new key) kept the old key")
	}
	// Beyond the grace: refused.
	e.clock.Advance(ren2.Cert.NotAfter.Sub(e.clock.Now()) + grace + time.Minute)
	if _, err := e.svc.Renew(t.Context(), ren2.Cert, nil, ""); !errors.Is(err, enroll.ErrExpiredBeyondGrace) {
		t.Errorf("Renew(beyond grace) = %v, want ErrExpiredBeyondGrace", err)
	}
	// A revoked device is refused, and all its certificates are revoked.
	_, cert2 := issued(t, e, "laptop-2")
	dev, serials, err := e.svc.RevokeDevice(t.Context(), "alice", store.DeviceID(cert2.Subject.CommonName), 1)
	if err != nil || dev.State != store.DeviceRevoked || len(serials) != 1 {
		t.Fatalf("RevokeDevice() = %+v, %v, %v", dev, serials, err)
	}
	if _, err := e.svc.Renew(t.Context(), cert2, nil, ""); !errors.Is(err, enroll.ErrDeviceRevoked) {
		t.Errorf("Renew(revoked device) = %v, want ErrDeviceRevoked", err)
	}
	if c, _ := a.Find(t.Context(), serials[0]); c.Status != store.StatusRevoked {
		t.Errorf("device certificate %s is %s after RevokeDevice", serials[0], c.Status)
	}
	// A certificate revoked by itself: refused.
	_, cert3 := issued(t, e, "laptop-3")
	if _, err := e.svc.RevokeCert(t.Context(), "alice", pki.SerialString(cert3.SerialNumber), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Renew(t.Context(), cert3, nil, ""); !errors.Is(err, ca.ErrRevoked) {
		t.Errorf("Renew(revoked cert) = %v, want ca.ErrRevoked", err)
	}
	// Not a device of this RA: a server certificate, and a forged copy.
	srv, err := a.Issue(t.Context(), ca.IssueRequest{Profile: pki.ProfileServer, Name: "web", Names: pki.Names{DNS: []string{"web.example.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Renew(t.Context(), srv.Cert, nil, ""); !errors.Is(err, enroll.ErrNotADevice) {
		t.Errorf("Renew(server cert) = %v, want ErrNotADevice", err)
	}
	if _, err := e.svc.CheckIn(t.Context(), srv.Cert, ""); !errors.Is(err, enroll.ErrNotADevice) {
		t.Errorf("CheckIn(server cert) = %v, want ErrNotADevice", err)
	}
	_ = r
}

func TestIssueRefusesRevokedDevice(t *testing.T) {
	e, _ := newEnvWithCA(t)
	r := approved(t, e, "laptop-1")
	if _, _, err := e.svc.RevokeDevice(t.Context(), "alice", r.Device, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Settle(t.Context(), r.ID); !errors.Is(err, enroll.ErrDeviceRevoked) {
		t.Errorf("Settle(revoked device) = %v, want ErrDeviceRevoked", err)
	}
}

func TestStats(t *testing.T) {
	e, _ := newEnvWithCA(t)
	issued(t, e, "laptop-1")
	approved(t, e, "laptop-2")
	st, err := e.svc.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Devices[store.DeviceActive] != 1 || st.Devices[store.DevicePending] != 1 || st.Requests[store.RequestApproved] != 1 || st.Requests[store.RequestIssued] != 1 {
		t.Errorf("Stats() = %+v", st)
	}
	// The device profile's default lifetime is within 30 days or not;
	// either way the count must agree with the certificate.
	e.clock.Advance(0)
	if st.ExpiringWithin30d > 1 || st.ExpiringWithin7d > st.ExpiringWithin30d {
		t.Errorf("Stats() expiring = %d/%d", st.ExpiringWithin7d, st.ExpiringWithin30d)
	}
}
