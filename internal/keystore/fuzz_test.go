package keystore_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/youmark/pkcs8"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

// Fuzz-time KDF caps: low enough that no input spends more than
// milliseconds deriving a key, so mutated PBKDF2 and scrypt parameters run
// instead of being skipped, and those above the caps exercise the
// ErrKDFCost path.
const (
	fuzzIterations   = 10_000
	fuzzScryptMemory = 1 << 20
	fuzzScryptWork   = 4 << 20
)

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
		// scrypt under the fuzz caps, so mutations reach scrypt.
		encryptedWith(f, ecKey(), fixturePass, &pkcs8.Opts{
			Cipher:  pkcs8.AES128CBC,
			KDFOpts: pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 256, BlockSize: 8, ParallelizationParameter: 1},
		}),
		plain[:len(plain)/2], nil,
	} {
		f.Add(b)
	}
	keystore.LowerKDFLimits(f, fuzzIterations, fuzzScryptMemory, fuzzScryptWork)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keystore.Parse(data, static(fixturePass))
		if errors.Is(err, keystore.ErrPanicked) {
			t.Fatalf("Parse: %v", err)
		}
		if err != nil {
			if !errors.Is(err, keystore.ErrMalformedKey) && !errors.Is(err, keystore.ErrBadPassphrase) && !errors.Is(err, keystore.ErrKDFCost) {
				t.Fatalf("Parse error %v is not ErrMalformedKey, ErrBadPassphrase or ErrKDFCost", err)
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
