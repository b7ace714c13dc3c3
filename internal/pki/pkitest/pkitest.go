// Package pkitest makes throwaway certificates for tests of the packages
// that consume them (tlsconf, revocation, tunnel, keystore, ca): P-256
// keys, serials, self-signed roots, signing, PEM encoding and damaging,
// each failing the test on error. It is imported only from _test.go files.
package pkitest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// Key returns a fresh P-256 key.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Serial returns a 128-bit random serial, as the CA makes them.
func Serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := pki.NewSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// RootTemplate is a CA certificate valid from an hour ago for a day.
func RootTemplate(t testing.TB, subject pkix.Name) *x509.Certificate {
	t.Helper()
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: Serial(t), Subject: subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
	}
}

// Sign signs tmpl for pub under parent with key and parses the result.
func Sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// SelfSign signs tmpl with a new key as its own issuer.
func SelfSign(t testing.TB, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := Key(t)
	return Sign(t, tmpl, tmpl, key.Public(), key), key
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(certs ...*x509.Certificate) []byte {
	return pki.EncodeCertificates(certs...)
}

// KeyPEM encodes a key as unencrypted PKCS#8 PEM.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// DamagePEM returns a copy of PEM data whose first block (one without
// headers) has a character of its first base64 line replaced by one
// outside the alphabet, as a bad copy or a stray edit leaves it:
// pem.Decode passes over such a block to return the next good one.
func DamagePEM(data []byte) []byte {
	out := bytes.Clone(data)
	begin := bytes.Index(out, []byte("-----BEGIN"))
	out[begin+bytes.IndexByte(out[begin:], '\n')+2] = '!'
	return out
}

// Cat joins PEM files (or any bytes) into one.
func Cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
