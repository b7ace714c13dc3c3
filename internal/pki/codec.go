package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// ErrMalformedPEM wraps every certificate-bundle decoding error.
var ErrMalformedPEM = errors.New("malformed certificate data")

var pemBegin = []byte("-----BEGIN")

// MaxBundleSize bounds a certificate bundle read from an untrusted source.
const MaxBundleSize = 1 << 20

// ParseCertificates reads certificates from PEM (one or more CERTIFICATE
// blocks; text between blocks, as openssl writes it, is ignored) or from a
// single DER certificate. Other PEM block types, an empty input, a
// truncated block or bad DER are errors naming the block.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedPEM, len(data), MaxBundleSize)
	}
	if !bytes.Contains(data, pemBegin) {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("%w: empty", ErrMalformedPEM)
		}
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("%w: not PEM, and DER: %s", ErrMalformedPEM, derError(err))
		}
		return []*x509.Certificate{c}, nil
	}
	var certs []*x509.Certificate
	rest := data
	for i := 1; ; i++ {
		start := bytes.Index(rest, pemBegin)
		if start < 0 {
			break
		}
		// pem.Decode skips a damaged block and returns the next good one,
		// which would drop a certificate silently: decode each block on
		// its own, up to the next BEGIN line.
		seg := rest[start:]
		if next := bytes.Index(seg[1:], pemBegin); next >= 0 {
			seg = seg[:next+1]
		}
		block, after := pem.Decode(seg)
		if block == nil {
			return nil, fmt.Errorf("%w: block %d is truncated or damaged", ErrMalformedPEM, i)
		}
		rest = rest[start+len(seg)-len(after):]
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: block %d is %q, want CERTIFICATE", ErrMalformedPEM, i, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %s", ErrMalformedPEM, i, derError(err))
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrMalformedPEM)
	}
	return certs, nil
}

// EncodeCertificates returns the PEM encoding of certs, in order.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// EncodePKCS12 bundles a key, its certificate and the chain above it into
// a PKCS#12 file protected by password. It uses the modern encryption
// (AES-256-CBC, PBKDF2-SHA-256, SHA-256 MAC) that OpenSSL 3, macOS and
// Windows 10+ read; the legacy RC2/3DES form is not offered.
func EncodePKCS12(key crypto.PrivateKey, leaf *x509.Certificate, chain []*x509.Certificate, password string) ([]byte, error) {
	if password == "" {
		return nil, errors.New("PKCS#12 export needs a non-empty password")
	}
	p12, err := pkcs12.Modern2023.Encode(key, leaf, chain, password)
	if err != nil {
		return nil, fmt.Errorf("encoding PKCS#12: %w", err)
	}
	return p12, nil
}
