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

// MaxBundleSize bounds a certificate bundle read from an untrusted source.
const MaxBundleSize = 1 << 20

// ParseCertificates reads certificates from PEM (one or more CERTIFICATE
// blocks, decoded by DecodePEMBlocks, whose policy on text outside blocks
// applies) or from a single DER certificate. Other PEM block types, an
// empty input, a damaged or truncated block or bad DER are errors naming
// the block.
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
	blocks, err := DecodePEMBlocks(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPEM, err)
	}
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block %d is %q, want CERTIFICATE", ErrMalformedPEM, i+1, b.Type)
		}
	}
	return ParseCertificateBlocks(blocks)
}

// ParseCertificateBlocks parses the CERTIFICATE blocks among blocks (from
// DecodePEMBlocks), in order, and skips the others, as tls.X509KeyPair
// does with a key or EC PARAMETERS next to the chain. It returns no
// certificates and no error when there is none: callers that need one say
// so in their own terms.
func ParseCertificateBlocks(blocks []*pem.Block) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for i, b := range blocks {
		if b.Type == "TRUSTED CERTIFICATE" {
			// OpenSSL's form with trust settings appended: a bundle entry
			// meant as a trust anchor, which skipping would silently drop
			// from the trust set. `openssl x509 -in F -out G` converts it.
			return nil, fmt.Errorf("%w: PEM block %d: TRUSTED CERTIFICATE (OpenSSL trust settings) is not read; convert it with openssl x509", ErrMalformedPEM, i+1)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PEM block %d: %s", ErrMalformedPEM, i+1, derError(err))
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// EncodeCertificates returns the PEM encoding of certs, in order.
func EncodeCertificates(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		// pem.Encode fails only when its writer does; a bytes.Buffer does not.
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
