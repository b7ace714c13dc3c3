package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

func deviceCSR(t *testing.T) (*ecdsa.PrivateKey, *x509.CertificateRequest) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// TestRenewCSRRecordOnly is the control server's path: the device keeps
// its key, the CA writes no file, and renewal certifies the same or a new
// key under the old names.
func TestRenewCSRRecordOnly(t *testing.T) {
	f := newCA(t, nil)
	f.a.opts.RecordOnly = true
	ctx := context.Background()
	key, csr := deviceCSR(t)
	orig, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: "dev_1", CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if len(orig.Files) != 0 {
		t.Errorf("RecordOnly issue wrote %v", orig.Files)
	}
	if _, err := os.Stat(f.a.Layout().Cert("dev_1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RecordOnly issue: %s exists (%v)", f.a.Layout().Cert("dev_1"), err)
	}
	f.clock.Add(time.Hour)
	same, err := f.a.RenewCSR(ctx, orig.Record.Serial, nil)
	if err != nil {
		t.Fatalf("RenewCSR(same key) = %v", err)
	}
	if !publicKeysEqual(same.Cert.PublicKey, key.Public()) || same.Cert.URIs[0].String() != orig.Cert.URIs[0].String() {
		t.Errorf("same-key renewal: key or names changed (%v)", same.Cert.URIs)
	}
	newKey, csr2 := deviceCSR(t)
	f.clock.Add(time.Hour)
	rekeyed, err := f.a.RenewCSR(ctx, same.Record.Serial, csr2)
	if err != nil {
		t.Fatalf("RenewCSR(new key) = %v", err)
	}
	if !publicKeysEqual(rekeyed.Cert.PublicKey, newKey.Public()) || rekeyed.Cert.Subject.CommonName != "dev_1" {
		t.Errorf("new-key renewal: key not the CSR's or CN %q", rekeyed.Cert.Subject.CommonName)
	}
	f.verify(t, rekeyed.Cert, x509.ExtKeyUsageClientAuth)
	// The superseded certificate cannot be renewed a second time: the
	// store's Replace wants the active one.
	if _, err := f.a.RenewCSR(ctx, same.Record.Serial, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RenewCSR(superseded) = %v, want ErrConflict", err)
	}
	// A CSR whose signature does not verify is refused.
	_, bad := deviceCSR(t)
	bad.Signature[len(bad.Signature)-1] ^= 1
	if _, err := f.a.RenewCSR(ctx, rekeyed.Record.Serial, bad); !errors.Is(err, pki.ErrCSRSignature) {
		t.Errorf("RenewCSR(bad signature) = %v, want ErrCSRSignature", err)
	}
	if _, err := f.a.Revoke(ctx, rekeyed.Record.Serial, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.RenewCSR(ctx, rekeyed.Record.Serial, nil); !errors.Is(err, ErrRevoked) {
		t.Errorf("RenewCSR(revoked) = %v, want ErrRevoked", err)
	}
}
