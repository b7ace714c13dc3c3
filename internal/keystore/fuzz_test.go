package keystore_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

// maxFuzzIterations bounds the PBKDF2 work of one fuzz input; a mutated
// iteration count would otherwise make one input take minutes.
const maxFuzzIterations = 10_000

// Mirrors of the PKCS#8 PBES2 structures github.com/youmark/pkcs8 decodes,
// so kdfCheap decodes exactly what Parse would.
type fuzzEncryptedPrivateKeyInfo struct {
	EncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedData       []byte
}

type fuzzPBES2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type fuzzPBKDF2Params struct {
	Salt           []byte
	IterationCount int
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

var (
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
)

// kdfCheap reports whether parsing data costs little key derivation: any
// form but an encrypted PKCS#8 key, or one whose structure fails to decode
// before the KDF runs, or PBKDF2 with few iterations. scrypt (memory cost
// up to gigabytes) is never run.
func kdfCheap(data []byte) bool {
	b, err := keystore.KeyBlock(data)
	if err != nil || b.Type != "ENCRYPTED PRIVATE KEY" {
		return true
	}
	var info fuzzEncryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(b.Bytes, &info); err != nil {
		return true
	}
	var params fuzzPBES2Params
	if _, err := asn1.Unmarshal(info.EncryptionAlgorithm.Parameters.FullBytes, &params); err != nil {
		return true
	}
	switch {
	case params.KeyDerivationFunc.Algorithm.Equal(oidScrypt):
		return false
	case params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2):
		var p fuzzPBKDF2Params
		if _, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &p); err != nil {
			return true
		}
		return p.IterationCount <= maxFuzzIterations
	}
	return true
}

func FuzzKeystoreParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.pem"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey())
	if err != nil {
		f.Fatal(err)
	}
	plain, err := keystore.Marshal(ecKey(), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{
		plain,
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey())}),
		cheapEncrypted(f, ecKey(), fixturePass), // decrypts
		cheapEncrypted(f, ecKey(), "other"),     // does not
		plain[:len(plain)/2], nil,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !kdfCheap(data) {
			t.Skip("key derivation too expensive for a fuzz input")
		}
		k, err := keystore.Parse(data, static(fixturePass))
		if err != nil {
			if !errors.Is(err, keystore.ErrMalformedKey) && !errors.Is(err, keystore.ErrBadPassphrase) {
				t.Fatalf("Parse error %v is neither ErrMalformedKey nor ErrBadPassphrase", err)
			}
			return
		}
		if k == nil || k.Public() == nil {
			t.Fatalf("Parse returned %T with no public key", k)
		}
		// What Parse reads, Marshal writes and Parse reads back.
		out, err := keystore.Marshal(k, nil)
		if err != nil {
			t.Fatalf("Marshal(parsed %T) = %v", k, err)
		}
		again, err := keystore.Parse(out, nil)
		if err != nil || !samePublic(again, k) {
			t.Fatalf("Parse(Marshal(parsed %T)) = %v; the key does not round-trip", k, err)
		}
	})
}
