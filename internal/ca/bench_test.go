package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

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

// seedRevoked records n revoked certificates of a's issuer, in one
// transaction.
func seedRevoked(b *testing.B, a *Authority, n int) {
	b.Helper()
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
}

// BenchmarkCRL measures signing a CRL over 100,000 revoked certificates:
// read from the store, encoded, signed, written atomically.
func BenchmarkCRL(b *testing.B) {
	const n = 100_000
	for _, kt := range []pki.KeyType{pki.KeyP256, pki.KeyRSA2048} {
		b.Run(fmt.Sprintf("%s/%dk", kt, n/1000), func(b *testing.B) {
			a := benchCA(b, kt)
			seedRevoked(b, a, n)
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

// BenchmarkCRLCache measures the CRL cache over 100,000 revoked
// certificates: "sign" is a Refresh (what the first request after a
// revocation pays), "cached" what every other request pays.
func BenchmarkCRLCache(b *testing.B) {
	const n = 100_000
	a := benchCA(b, pki.KeyP256)
	seedRevoked(b, a, n)
	c := a.CRLCache(CRLCacheOptions{})
	ctx := context.Background()
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			der, _, _, err := c.CurrentCRL(ctx)
			if err != nil || len(der) == 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOCSP measures answers per second over all cores: "cached"
// asks about 1,000 certificates round robin (all answers cached after the
// first round), "signed" drops the answer before each request, so each
// costs a store read and a P-256 signature.
func BenchmarkOCSP(b *testing.B) {
	a := benchCA(b, pki.KeyP256)
	ctx := context.Background()
	r, err := a.Responder(ctx, ResponderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([][]byte, 1000)
	for i := range reqs {
		out, err := a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: fmt.Sprintf("d%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if reqs[i], err = ocsp.CreateRequest(out.Cert, a.Issuer(), nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []string{"cached", "signed"} {
		b.Run(mode, func(b *testing.B) {
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := reqs[next.Add(1)%int64(len(reqs))]
					if mode == "signed" {
						r.cache.purge()
					}
					if _, err := r.Respond(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "responses/s")
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
