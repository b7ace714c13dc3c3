package tlsconf

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
)

// FuzzParsePEM feeds the PEM parsers of certificate files, CA bundles and
// keystore bundles. Keys are parsed without a passphrase, so an encrypted
// PKCS#8 key stops before its (input-chosen, possibly huge) KDF work;
// keystore's own fuzz targets cover decryption, PKCS#12 included
// (FuzzKeystoreParse, FuzzKeystorePKCS12, with lowered KDF caps).
func FuzzParsePEM(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "seed"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<32, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	ecparam := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	for _, seed := range [][]byte{
		nil,
		[]byte("hello"),
		certPEM,
		append(bytes.Clone(certPEM), certPEM...),
		append(bytes.Clone(keyPEM), certPEM...),
		append(append(bytes.Clone(certPEM), ecparam...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
		append(bytes.Clone(keyPEM), keyPEM...),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der[:len(der)/2]}),
		pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if certs, err := parseCertificates(data); err == nil {
			for i, c := range certs {
				if c == nil {
					t.Fatalf("parseCertificates: certificate %d is nil", i)
				}
			}
		}
		isPKCS12("keystore", data)
		c, err := parseBundle(data, nil)
		if err != nil {
			return
		}
		if c.Leaf == nil || !bytes.Equal(c.Certificate[0], c.Leaf.Raw) {
			t.Fatal("parseBundle: Leaf is not the first certificate")
		}
		if k, ok := c.PrivateKey.(crypto.Signer); !ok || !matches(k, c.Leaf) {
			t.Fatal("parseBundle: key does not match the leaf")
		}
	})
}
