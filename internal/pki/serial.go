package pki

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"strings"

	"crypto"
	"crypto/x509/pkix"
)

// NewSerial returns a serial number with 128 bits from rand. A constant 0x01
// octet in front keeps the DER INTEGER positive and of fixed length (17
// octets) without spending any of the random bits on the sign.
func NewSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 17)
	b[0] = 0x01
	if _, err := io.ReadFull(rand, b[1:]); err != nil {
		return nil, fmt.Errorf("reading random serial: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}

// SerialString formats a serial as the store and the CLI show it: lowercase
// hex, no leading zeros.
func SerialString(n *big.Int) string { return n.Text(16) }

// ParseSerial reads a serial in hex, with or without colons or a 0x prefix,
// as openssl and easy-rsa print them.
func ParseSerial(s string) (*big.Int, error) {
	h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X"))
	h = strings.ReplaceAll(h, ":", "")
	if h == "" || len(h) > 40 {
		return nil, fmt.Errorf("serial %q: want 1 to 40 hex digits", s)
	}
	n, ok := new(big.Int).SetString(h, 16)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial %q: not a positive hex number", s)
	}
	return n, nil
}

// SubjectKeyID computes the key identifier of RFC 5280 §4.2.1.2 method (1):
// the SHA-1 of the subjectPublicKey BIT STRING.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshaling public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}
