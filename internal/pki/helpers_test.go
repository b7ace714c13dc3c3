package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// testNow is the issuance time of the certificates the tests build. It is
// fixed, after the CABF SC-081 first milestone (2026-03-15), so the
// validity lints judge the same rules on every run.
var testNow = time.Date(2026, time.November, 1, 12, 0, 0, 0, time.UTC)

// keysPerType is how many distinct keys of each type a test binary makes:
// a root, an intermediate and a leaf key are enough for every chain.
const keysPerType = 3

// testKeys generates keys once per test binary: RSA-3072 generation costs
// about a second under -race, and every chain test needs some.
var testKeys = func() map[pki.KeyType]func() []crypto.Signer {
	m := map[pki.KeyType]func() []crypto.Signer{}
	for _, kt := range pki.KeyTypes() {
		m[kt] = sync.OnceValue(func() []crypto.Signer {
			keys := make([]crypto.Signer, keysPerType)
			var wg sync.WaitGroup
			for i := range keys {
				wg.Go(func() {
					k, err := pki.GenerateKey(kt, rand.Reader)
					if err != nil {
						panic(fmt.Sprintf("generating %s key: %v", kt, err))
					}
					keys[i] = k
				})
			}
			wg.Wait()
			return keys
		})
	}
	return m
}()

// testKey returns the i-th shared key of type kt.
func testKey(t testing.TB, kt pki.KeyType, i int) crypto.Signer {
	t.Helper()
	f, ok := testKeys[kt]
	if !ok || i >= keysPerType {
		t.Fatalf("testKey(%s, %d): no such key", kt, i)
	}
	return f()[i]
}

var weakKeys = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })

// rsa1024 is a weak key for negative tests.
func rsa1024(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := weakKeys()
	if err != nil {
		t.Fatalf("rsa.GenerateKey(1024): %v", err)
	}
	return k
}

func p224(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa.GenerateKey(P-224): %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := pki.NewSerial(rand.Reader)
	if err != nil {
		t.Fatalf("NewSerial: %v", err)
	}
	return n
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", s, err)
	}
	return u
}

func mustNames(t testing.TB, dns, ips, emails, uris []string) pki.Names {
	t.Helper()
	n, err := pki.ParseNames(dns, ips, emails, uris)
	if err != nil {
		t.Fatalf("ParseNames(%q, %q, %q, %q): %v", dns, ips, emails, uris, err)
	}
	return n
}

// issue builds the template for r and signs it with issuerKey under issuer
// (self-signed when issuer is nil), as the CA does.
func issue(t testing.TB, r pki.Request, issuer *x509.Certificate, issuerKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl, err := pki.Template(r, serial(t))
	if err != nil {
		t.Fatalf("Template(%s): %v", r.Profile, err)
	}
	kt, err := pki.KeyTypeOf(issuerKey.Public())
	if err != nil {
		t.Fatalf("KeyTypeOf(issuer key): %v", err)
	}
	tmpl.SignatureAlgorithm = pki.SignatureAlgorithm(kt)
	parent := issuer
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, r.PublicKey, issuerKey)
	if err != nil {
		t.Fatalf("CreateCertificate(%s): %v", r.Profile, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate(%s): %v", r.Profile, err)
	}
	return c
}

func subject(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{"Example Org"}, Country: []string{"US"}}
}

// newCSR makes a PKCS#10 request signed by key.
func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("ParseCertificateRequest: %v", err)
	}
	return csr
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ip(s string) net.IP {
	i := net.ParseIP(s)
	if v4 := i.To4(); v4 != nil {
		return v4
	}
	return i
}
