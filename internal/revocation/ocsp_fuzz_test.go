package revocation

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// fuzzCAKey is the OCSP fuzz CA's key, fixed because the coordinator signs
// the seeds and each fuzz worker checks them against its own CA: with a
// fresh key per process no seed would get past the signature check.
const fuzzCAKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsjepQ3V3vQHB2+aB
ZrypMze2WmXpzxTdzx9+qM1Oo2uhRANCAASxd3lPK2CFbih9XpqFAC3mvR/riKX2
f9hUz6EL6edGaq7dMSMTPyZ1C3nRc/KdnDSbA5Lm4VWdxej2s8z4pw5H
-----END PRIVATE KEY-----`

// FuzzVerifyOCSP feeds untrusted responder bytes to verifyOCSP, which
// hands them to x/crypto/ocsp. Nothing may panic; what verifies must be
// about the leaf and current.
func FuzzVerifyOCSP(f *testing.F) {
	ca := newCA(f, "Fuzz OCSP CA")
	b, _ := pem.Decode([]byte(fuzzCAKey))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	ca.key = k.(*ecdsa.PrivateKey)
	tmpl := *ca.cert
	tmpl.PublicKey = &ca.key.PublicKey
	ca.cert = sign(f, &tmpl, &tmpl, &ca.key.PublicKey, ca.key)
	leaf := ca.leaf(f, "fuzz", func(c *x509.Certificate) { c.SerialNumber = big.NewInt(0x1234) })
	reqDER, err := ocsp.CreateRequest(leaf, ca.cert, nil)
	if err != nil {
		f.Fatal(err)
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		f.Fatal(err)
	}
	delegateKey := newKey(f)
	delegate := sign(f, &x509.Certificate{SerialNumber: newSerial(f), Subject: pkix.Name{CommonName: "OCSP responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}},
		ca.cert, &delegateKey.PublicKey, ca.key)
	good := ocspResponse(f, ca.cert, ca.key, nil, req, ocsp.Good, time.Hour)
	if _, err := verifyOCSP(good, leaf, ca.cert, time.Now()); err != nil {
		f.Fatalf("verifyOCSP(good seed) = %v", err)
	}
	for _, seed := range [][]byte{
		good,
		ocspResponse(f, ca.cert, ca.key, nil, req, ocsp.Revoked, time.Hour),
		ocspResponse(f, ca.cert, ca.key, nil, req, ocsp.Unknown, 0),
		ocspResponse(f, ca.cert, ca.key, nil, req, ocsp.Good, -time.Minute),
		ocspResponse(f, ca.cert, delegateKey, delegate, req, ocsp.Good, time.Hour),
		ocspResponse(f, ca.cert, ca.key, ca.cert, req, ocsp.Good, time.Hour),
		ocsp.UnauthorizedErrorResponse,
		good[:len(good)/2],
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Now()
		r, err := verifyOCSP(data, leaf, ca.cert, now)
		if err != nil {
			if r != nil {
				t.Fatalf("verifyOCSP returned a response and an error %v", err)
			}
			return
		}
		if r.SerialNumber.Cmp(leaf.SerialNumber) != 0 || r.ThisUpdate.After(now.Add(clockSkew)) {
			t.Fatalf("verifyOCSP accepted serial %v, thisUpdate %v for leaf %v at %v", r.SerialNumber, r.ThisUpdate, leaf.SerialNumber, now)
		}
	})
}
