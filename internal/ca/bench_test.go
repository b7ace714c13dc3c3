package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

// benchCA is a CA of key type kt on a real SQLite store (synchronous=FULL,
// as in production), with unencrypted keys: unlocking happens once per
// process and is not what these benchmarks measure.
func benchCA(b *testing.B, kt pki.KeyType) *Authority {
	b.Helper()
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "portcullis.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	io := DefaultInitOptions()
	io.KeyType = kt
	io.URLs = URLs{CRL: []string{"http://127.0.0.1:8889/crl"}, OCSP: []string{"http://127.0.0.1:8889/ocsp"}}
	a, err := Init(context.Background(), dir, st, io, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkIssue measures certificates issued per second, store and files
// included: "keygen" as `ca issue` (the CA generates the leaf key), "csr" as
// `ca sign` (CSR checked, template built, linted, signed, recorded, written).
func BenchmarkIssue(b *testing.B) {
	for _, kt := range []pki.KeyType{pki.KeyP256, pki.KeyRSA2048} {
		for _, mode := range []string{"csr", "keygen"} {
			b.Run(fmt.Sprintf("%s/%s", kt, mode), func(b *testing.B) {
				a := benchCA(b, kt)
				var csr *x509.CertificateRequest
				if mode == "csr" {
					key, err := pki.GenerateKey(kt, rand.Reader)
					if err != nil {
						b.Fatal(err)
					}
					der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
					if err != nil {
						b.Fatal(err)
					}
					if csr, err = x509.ParseCertificateRequest(der); err != nil {
						b.Fatal(err)
					}
				}
				if err := a.Unlock(); err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				i := 0
				for b.Loop() {
					i++
					_, err := a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: fmt.Sprintf("d%d", i), CSR: csr})
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
			})
		}
	}
}

// BenchmarkCRL measures signing a CRL over 100,000 revoked certificates:
// read from the store, encoded, signed, written atomically.
func BenchmarkCRL(b *testing.B) {
	const n = 100_000
	for _, kt := range []pki.KeyType{pki.KeyP256, pki.KeyRSA2048} {
		b.Run(fmt.Sprintf("%s/%dk", kt, n/1000), func(b *testing.B) {
			a := benchCA(b, kt)
			now := time.Now()
			recs := make([]*store.Cert, n)
			for i := range recs {
				serial, err := pki.NewSerial(rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				recs[i] = &store.Cert{
					Serial: pki.SerialString(serial), Name: fmt.Sprintf("r%d", i), Profile: "device",
					Issuer: a.issuerSKI, Subject: "CN=r", NotBefore: now, NotAfter: now.Add(30 * day),
					DER: []byte{0x30}, Status: store.StatusRevoked, RevokedAt: now, Reason: 1, CreatedAt: now,
				}
			}
			if err := a.store.CreateCerts(context.Background(), recs); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var size int
			for b.Loop() {
				crl, err := a.CRL(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(crl.RevokedCertificateEntries) != n {
					b.Fatalf("CRL has %d entries, want %d", len(crl.RevokedCertificateEntries), n)
				}
				size = len(crl.Raw)
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB")
		})
	}
}

// BenchmarkLint measures the pre-issuance lint alone, to show its share.
func BenchmarkLint(b *testing.B) {
	a := benchCA(b, pki.KeyP256)
	out, err := a.Issue(context.Background(), IssueRequest{Profile: pki.ProfileServer, Name: "web", Names: pki.Names{DNS: []string{"web.example.com"}}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := pki.LintDER(out.Cert.Raw, pki.LintOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
