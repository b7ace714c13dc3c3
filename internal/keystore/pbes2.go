package keystore

import (
	"crypto/aes"
	"crypto/des"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// Limits on the key derivation a key file may ask for. The file names its
// own work factor, so a hostile or damaged one could otherwise hold a load
// or a reload for hours, or (scrypt) exhaust memory, which Go cannot
// recover from.
const (
	// MaxPBKDF2Iterations caps PBKDF2 and PKCS#12 KDF iteration counts:
	// about 16 times the 600,000 we write ourselves (KDFIterations) and
	// 5,000 times OpenSSL 3's 2048, yet a few seconds of CPU at most.
	MaxPBKDF2Iterations = 10_000_000
	// MaxScryptMemory caps scrypt's 128·N·r bytes of memory: 16 times
	// what `openssl pkcs8 -scrypt` writes (N=16384, r=8: 16 MiB, also
	// its own 32 MiB default cap for reading), and low enough that a
	// tunnel on a small device is not killed for memory at a reload.
	MaxScryptMemory = 256 << 20
	// MaxScryptWork caps the 128·N·r·p bytes scrypt mixes in all (its
	// CPU time): p up to 4 at the memory cap, a second or two.
	MaxScryptWork = 1 << 30
)

// ErrKDFCost: the key file asks for more key-derivation work than the
// limits above allow.
var ErrKDFCost = errors.New("key derivation cost above the limit")

// kdfLimits are the caps in force; tests lower them so fuzzing reaches the
// KDFs without spending seconds on one input.
type kdfLimits struct {
	iterations   int
	scryptMemory int
	scryptWork   int
}

var limits = kdfLimits{MaxPBKDF2Iterations, MaxScryptMemory, MaxScryptWork}

// The ASN.1 of an encrypted PKCS#8 key (RFC 5208, RFC 8018 PBES2, RFC
// 7914 scrypt), decoded here only to check it before
// github.com/youmark/pkcs8 derives a key and decrypts: that library trusts
// the IV length and the ciphertext length (cipher.NewCBCDecrypter and
// CryptBlocks panic on a wrong one) and runs whatever KDF cost it reads.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

// pbkdf2Params takes any salt element: go-pkcs12 reads it as a RawValue,
// so a salt this struct could not decode must not skip the cost check.
type pbkdf2Params struct {
	Salt       asn1.RawValue
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

type scryptParams struct {
	Salt      []byte
	N, R, P   int
	KeyLength int `asn1:"optional"`
}

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	// PRFs youmark/pkcs8 implements; absent means HMAC-SHA-1.
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
)

// pbes2Cipher is an encryption scheme youmark/pkcs8 decrypts. It lists no
// AES-GCM: the library registers those OIDs but runs CBC for them.
type pbes2Cipher struct {
	oid       asn1.ObjectIdentifier
	name      string
	keySize   int
	blockSize int
}

var pbes2Ciphers = []pbes2Cipher{
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}, "AES-128-CBC", 16, aes.BlockSize},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}, "AES-192-CBC", 24, aes.BlockSize},
	{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}, "AES-256-CBC", 32, aes.BlockSize},
	{asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}, "DES-EDE3-CBC", 24, des.BlockSize},
}

// checkPBES2 rejects an EncryptedPrivateKeyInfo that youmark/pkcs8 would
// panic on or that costs more key derivation than the limits; it decrypts
// nothing. Errors wrap ErrMalformedKey or ErrKDFCost.
func checkPBES2(der []byte) error {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return fmt.Errorf("%w: EncryptedPrivateKeyInfo: %v", ErrMalformedKey, err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return fmt.Errorf("%w: encryption %s is not PBES2, the only one read (openssl pkcs8 -topk8 -v2 aes-256-cbc converts a key)", ErrMalformedKey, info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return fmt.Errorf("%w: PBES2 parameters: %v", ErrMalformedKey, err)
	}
	c, err := checkScheme(params.Scheme, len(info.EncryptedData))
	if err != nil {
		return err
	}
	return checkKDF(params.KDF, c.keySize)
}

// checkScheme finds the cipher and checks the IV and ciphertext lengths
// CBC decryption needs.
func checkScheme(scheme pkix.AlgorithmIdentifier, dataLen int) (pbes2Cipher, error) {
	i := 0
	for i < len(pbes2Ciphers) && !pbes2Ciphers[i].oid.Equal(scheme.Algorithm) {
		i++
	}
	if i == len(pbes2Ciphers) {
		return pbes2Cipher{}, fmt.Errorf("%w: PBES2 cipher %s is not supported", ErrMalformedKey, scheme.Algorithm)
	}
	c := pbes2Ciphers[i]
	var iv []byte
	if _, err := asn1.Unmarshal(scheme.Parameters.FullBytes, &iv); err != nil {
		return c, fmt.Errorf("%w: %s IV: %v", ErrMalformedKey, c.name, err)
	}
	if len(iv) != c.blockSize {
		return c, fmt.Errorf("%w: %s IV is %d bytes, want %d", ErrMalformedKey, c.name, len(iv), c.blockSize)
	}
	if dataLen == 0 || dataLen%c.blockSize != 0 {
		return c, fmt.Errorf("%w: %s ciphertext is %d bytes, not a positive multiple of %d", ErrMalformedKey, c.name, dataLen, c.blockSize)
	}
	return c, nil
}

// checkKDF checks the PBKDF2 or scrypt parameters for a cipher key of
// keySize bytes.
func checkKDF(kdf pkix.AlgorithmIdentifier, keySize int) error {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: PBKDF2 parameters: %v", ErrMalformedKey, err)
		}
		if len(p.PRF.Algorithm) != 0 && !p.PRF.Algorithm.Equal(oidHMACSHA1) && !p.PRF.Algorithm.Equal(oidHMACSHA256) {
			return fmt.Errorf("%w: PBKDF2 PRF %s is not supported (HMAC-SHA-1 and HMAC-SHA-256 are)", ErrMalformedKey, p.PRF.Algorithm)
		}
		if err := checkKeyLength("PBKDF2", p.KeyLength, keySize); err != nil {
			return err
		}
		return checkIterations("PBKDF2", p.Iterations)
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: scrypt parameters: %v", ErrMalformedKey, err)
		}
		if err := checkKeyLength("scrypt", p.KeyLength, keySize); err != nil {
			return err
		}
		return checkScrypt(p.N, p.R, p.P)
	}
	return fmt.Errorf("%w: key derivation %s is not supported (PBKDF2 and scrypt are)", ErrMalformedKey, kdf.Algorithm)
}

// checkKeyLength: the optional keyLength field, when present, must be the
// cipher's key size (RFC 8018 appendix A.2).
func checkKeyLength(kdf string, n, want int) error {
	if n != 0 && n != want {
		return fmt.Errorf("%w: %s key length %d, the cipher needs %d", ErrMalformedKey, kdf, n, want)
	}
	return nil
}

// checkIterations applies the iteration cap to a count read from a file.
func checkIterations(kdf string, n int) error {
	if n < 1 {
		return fmt.Errorf("%w: %s iteration count %d", ErrMalformedKey, kdf, n)
	}
	return checkCost(kdf, n)
}

// checkScrypt applies the scrypt memory and work caps, dividing rather than
// multiplying so that no product of file values can overflow.
func checkScrypt(n, r, p int) error {
	if n < 2 || n&(n-1) != 0 || r < 1 || p < 1 {
		return fmt.Errorf("%w: scrypt N=%d r=%d p=%d (N must be a power of 2 above 1, r and p positive)", ErrMalformedKey, n, r, p)
	}
	if r > limits.scryptMemory/128 || n > limits.scryptMemory/128/r {
		return fmt.Errorf("%w: scrypt N=%d r=%d needs 128·N·r bytes of memory, the limit is %d", ErrKDFCost, n, r, limits.scryptMemory)
	}
	if p > limits.scryptWork/(128*n*r) {
		return fmt.Errorf("%w: scrypt N=%d r=%d p=%d mixes 128·N·r·p bytes, the limit is %d", ErrKDFCost, n, r, p, limits.scryptWork)
	}
	return nil
}
