package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"sync"
	"testing"
	"time"
)

// testCADN is the test CA's subject as pkix.Name.String prints it.
const testCADN = "CN=Portcullis Test CA,O=Portcullis,C=US"

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// theCA is one CA shared by every test of the package: ECDSA P-256, like
// the leaves it signs.
var theCA = sync.OnceValues(func() (testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return testCA{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Portcullis Test CA", Organization: []string{"Portcullis"}, Country: []string{"US"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return testCA{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}, err
})

// newLeaf issues a client certificate with tmpl's names from the test CA
// to a fresh ECDSA key and parses it back, so the fields Authorize reads
// are those crypto/x509 parses off the wire.
func newLeaf(tb testing.TB, tmpl x509.Certificate) *x509.Certificate {
	tb.Helper()
	ca, err := theCA()
	if err != nil {
		tb.Fatalf("making test CA: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("issuing test leaf: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parsing test leaf: %v", err)
	}
	return leaf
}

func mustURLs(tb testing.TB, raw ...string) []*url.URL {
	tb.Helper()
	var us []*url.URL
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			tb.Fatalf("url.Parse(%q): %v", r, err)
		}
		us = append(us, u)
	}
	return us
}

// describe names a peer in failure messages.
func describe(c *x509.Certificate) string {
	s := "cn=" + c.Subject.CommonName
	for _, u := range c.URIs {
		s += " uri=" + u.String()
	}
	for _, d := range c.DNSNames {
		s += " dns=" + d
	}
	for _, ip := range c.IPAddresses {
		s += " ip=" + ip.String()
	}
	for _, e := range c.EmailAddresses {
		s += " email=" + e
	}
	return s
}
