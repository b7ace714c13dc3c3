package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeyType names a key algorithm and size the CA generates or accepts.
type KeyType string

// The key types Portcullis generates. P-256 is the default: fast handshakes,
// small certificates, supported by every TLS stack a fleet runs.
const (
	KeyP256    KeyType = "p256"
	KeyP384    KeyType = "p384"
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA3072 KeyType = "rsa3072"
)

// DefaultKeyType is the key type used when none is asked for.
const DefaultKeyType = KeyP256

// KeyTypes lists the accepted key type names, for flag help and errors.
// Each call returns a fresh slice: no caller can change another's list.
func KeyTypes() []KeyType { return []KeyType{KeyP256, KeyP384, KeyRSA2048, KeyRSA3072} }

// ErrWeakKey is returned for a public key the CA refuses to certify.
var ErrWeakKey = errors.New("weak or unsupported key")

// ParseKeyType accepts the names in KeyTypes, case-insensitively, plus the
// usual spellings "ecdsa" (P-256), "p-256", "rsa" (2048).
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "p256", "p-256", "ecdsa", "ec", "":
		return KeyP256, nil
	case "p384", "p-384":
		return KeyP384, nil
	case "rsa2048", "rsa-2048", "rsa":
		return KeyRSA2048, nil
	case "rsa3072", "rsa-3072":
		return KeyRSA3072, nil
	}
	return "", fmt.Errorf("unknown key type %q (want one of %s)", s, joinKeyTypes())
}

func joinKeyTypes() string {
	kts := KeyTypes()
	s := make([]string, len(kts))
	for i, k := range kts {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// GenerateKey creates a private key of type kt from rand.
func GenerateKey(kt KeyType, rand io.Reader) (crypto.Signer, error) {
	switch kt {
	case KeyP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case KeyP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand)
	case KeyRSA2048:
		return rsa.GenerateKey(rand, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand, 3072)
	}
	return nil, fmt.Errorf("unknown key type %q", kt)
}

// KeyTypeOf tells the KeyType of a public key, or an error wrapping
// ErrWeakKey if the CA must not certify it: RSA under 2048 bits or over
// 8192, RSA with an even or tiny exponent, curves other than P-256/P-384.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyP256, nil
		case elliptic.P384():
			return KeyP384, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrWeakKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 {
			return "", fmt.Errorf("%w: RSA-%d (want at least 2048 bits)", ErrWeakKey, bits)
		}
		if bits > 8192 {
			return "", fmt.Errorf("%w: RSA-%d (over 8192 bits)", ErrWeakKey, bits)
		}
		if k.E < 65537 || k.E%2 == 0 {
			return "", fmt.Errorf("%w: RSA public exponent %d", ErrWeakKey, k.E)
		}
		if bits >= 3072 {
			return KeyRSA3072, nil
		}
		return KeyRSA2048, nil
	case ed25519.PublicKey:
		return "", fmt.Errorf("%w: Ed25519 (not accepted by the TLS stacks a fleet runs)", ErrWeakKey)
	}
	return "", fmt.Errorf("%w: key type %T", ErrWeakKey, pub)
}

// SignatureAlgorithm is the algorithm a CA key of type kt signs with:
// SHA-384 for P-384 (RFC 5480 pairs the hash with the curve), SHA-256 else.
func SignatureAlgorithm(kt KeyType) x509.SignatureAlgorithm {
	switch kt {
	case KeyP256:
		return x509.ECDSAWithSHA256
	case KeyP384:
		return x509.ECDSAWithSHA384
	}
	return x509.SHA256WithRSA
}
