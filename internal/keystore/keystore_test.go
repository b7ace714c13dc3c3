package keystore_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/youmark/pkcs8"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

// fixturePass unlocks the encrypted keys in testdata (see testdata/README.md).
const fixturePass = "fixture-passphrase"

var (
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	// encryptedEC is ecKey under Marshal's real KDF (600k iterations,
	// about a second under -race): made once, used by several tests.
	encryptedEC = sync.OnceValues(func() ([]byte, error) { return keystore.Marshal(ecKey(), []byte("correct horse")) })
)

func static(pw string) keystore.Passphrase {
	return func() ([]byte, error) { return []byte(pw), nil }
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func samePublic(a, b crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.Public().(equaler)
	return ok && e.Equal(b.Public())
}

// cheapEncrypted encrypts key as Marshal does but with few KDF rounds, so
// tests can try many passphrases; Parse reads the count from the file.
func cheapEncrypted(t testing.TB, key crypto.Signer, pass string) []byte {
	t.Helper()
	return encryptedWith(t, key, pass, &pkcs8.Opts{
		Cipher:  pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 10, HMACHash: crypto.SHA256},
	})
}

// encryptedWith encrypts key as PKCS#8 PBES2 with the given options.
func encryptedWith(t testing.TB, key crypto.Signer, pass string, opts *pkcs8.Opts) []byte {
	t.Helper()
	der, err := pkcs8.MarshalPrivateKey(key, []byte(pass), opts)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func TestMarshalParseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		key  func() crypto.Signer
		pass string
	}{
		{"ecdsa plain", func() crypto.Signer { return ecKey() }, ""},
		{"rsa plain", func() crypto.Signer { return rsaKey() }, ""},
		{"ecdsa encrypted", func() crypto.Signer { return ecKey() }, "correct horse"},
		{"rsa encrypted", func() crypto.Signer { return rsaKey() }, "battery staple"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := tt.key()
			var data []byte
			var err error
			if tt.name == "ecdsa encrypted" {
				data, err = encryptedEC()
			} else {
				data, err = keystore.Marshal(key, []byte(tt.pass))
			}
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			wantType := "PRIVATE KEY"
			if tt.pass != "" {
				wantType = "ENCRYPTED PRIVATE KEY"
			}
			if b, _ := pem.Decode(data); b == nil || b.Type != wantType {
				t.Fatalf("Marshal wrote %q, want a %s block", firstLine(data), wantType)
			}
			if got := keystore.Encrypted(data); got != (tt.pass != "") {
				t.Errorf("Encrypted(Marshal(pass %q)) = %v", tt.pass, got)
			}
			asked := 0
			got, err := keystore.Parse(data, func() ([]byte, error) { asked++; return []byte(tt.pass), nil })
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !samePublic(got, key) {
				t.Errorf("Parse(Marshal(key)) is another key")
			}
			if wantAsked := map[bool]int{true: 0, false: 1}[tt.pass == ""]; asked != wantAsked {
				t.Errorf("Parse asked for the passphrase %d times, want %d", asked, wantAsked)
			}
			if tt.pass != "" && bytes.Contains(data, x509MarshalPKCS8(t, key)[8:40]) {
				t.Errorf("encrypted output contains the plain key bytes")
			}
		})
	}
}

func x509MarshalPKCS8(t testing.TB, key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// TestMarshalKDF checks the parameters Marshal writes: PBES2 with
// PBKDF2-HMAC-SHA-256 at KDFIterations, AES-256-CBC, a 16-byte salt.
func TestMarshalKDF(t *testing.T) {
	data, err := encryptedEC()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	n := keystore.KDFIterations
	for _, want := range [][]byte{
		{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}, // PBES2
		{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c}, // PBKDF2
		{0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09},       // hmacWithSHA256
		{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}, // aes256-CBC
		{0x02, 0x03, byte(n >> 16), byte(n >> 8), byte(n)},                 // iterations
	} {
		if !bytes.Contains(b.Bytes, want) {
			t.Errorf("Marshal output lacks % x", want)
		}
	}
	if keystore.KDFIterations < 600_000 {
		t.Errorf("KDFIterations = %d, want at least OWASP's 600000", keystore.KDFIterations)
	}
	// Two encryptions of one key differ: fresh salt and IV.
	other, err := keystore.Marshal(ecKey(), []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(data, other) {
		t.Errorf("Marshal is deterministic; want a random salt and IV")
	}
}

func TestMarshalEd25519(t *testing.T) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := keystore.Marshal(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keystore.Parse(data, nil)
	if err != nil || !samePublic(got, k) {
		t.Errorf("Parse(Marshal(ed25519)) = %v, %v", got, err)
	}
}

func TestParseWrongPassphrase(t *testing.T) {
	t.Run("real KDF", func(t *testing.T) {
		data, err := encryptedEC()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keystore.Parse(data, static("incorrect horse")); !errors.Is(err, keystore.ErrBadPassphrase) {
			t.Errorf("Parse(wrong passphrase) = %v, want ErrBadPassphrase", err)
		}
	})
	// A wrong passphrase decrypts to random bytes; about 1 in 256 of them
	// end in valid padding and fail later, in the key parser. Every such
	// failure must still read as a wrong passphrase.
	t.Run("pkcs8 many", func(t *testing.T) {
		for _, key := range []crypto.Signer{ecKey(), rsaKey()} {
			data := cheapEncrypted(t, key, "right")
			if got, err := keystore.Parse(data, static("right")); err != nil || !samePublic(got, key) {
				t.Fatalf("Parse(cheap encrypted, right) = %v", err)
			}
			for i := 0; i < 2000; i++ {
				pw := fmt.Sprintf("wrong-%d", i)
				if _, err := keystore.Parse(data, static(pw)); !errors.Is(err, keystore.ErrBadPassphrase) {
					t.Fatalf("Parse(%T, %q) = %v, want ErrBadPassphrase", key, pw, err)
				}
			}
		}
	})
	t.Run("legacy many", func(t *testing.T) {
		for _, f := range []string{"ec-sec1-aes128.pem", "rsa-pkcs1-aes256.pem"} {
			data := readTestdata(t, f)
			if _, err := keystore.Parse(data, static(fixturePass)); err != nil {
				t.Fatalf("Parse(%s, right) = %v", f, err)
			}
			// Deterministic: the fixture's IV is fixed, so the same
			// passphrases hit the padding case on every run.
			for i := 0; i < 2000; i++ {
				pw := fmt.Sprintf("wrong-%d", i)
				if _, err := keystore.Parse(data, static(pw)); !errors.Is(err, keystore.ErrBadPassphrase) {
					t.Fatalf("Parse(%s, %q) = %v, want ErrBadPassphrase", f, pw, err)
				}
			}
		}
	})
}

func TestParseNoPassphrase(t *testing.T) {
	enc := cheapEncrypted(t, ecKey(), "right")
	legacy := readTestdata(t, "ec-sec1-aes128.pem")
	boom := errors.New("terminal went away")
	tests := []struct {
		name string
		data []byte
		pass keystore.Passphrase
		want error
	}{
		{"pkcs8 nil", enc, nil, keystore.ErrNoPassphrase},
		{"pkcs8 empty", enc, static(""), keystore.ErrNoPassphrase},
		{"pkcs8 source fails", enc, func() ([]byte, error) { return nil, boom }, boom},
		{"legacy nil", legacy, nil, keystore.ErrNoPassphrase},
		{"legacy empty", legacy, static(""), keystore.ErrNoPassphrase},
		{"legacy source fails", legacy, func() ([]byte, error) { return nil, boom }, boom},
	}
	for _, tt := range tests {
		if _, err := keystore.Parse(tt.data, tt.pass); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestParseFormats(t *testing.T) {
	ecDER, err := x509.MarshalECPrivateKey(ecKey())
	if err != nil {
		t.Fatal(err)
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xDER, err := x509.MarshalPKCS8PrivateKey(x)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(ecKey().Public())
	if err != nil {
		t.Fatal(err)
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	tests := []struct {
		name string
		data []byte
		pass keystore.Passphrase
		want crypto.Signer // nil: want ErrMalformedKey
	}{
		{"EC PRIVATE KEY", block("EC PRIVATE KEY", ecDER), nil, ecKey()},
		{"RSA PRIVATE KEY", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey())), nil, rsaKey()},
		{"PRIVATE KEY rsa", block("PRIVATE KEY", x509MarshalPKCS8(t, rsaKey())), nil, rsaKey()},
		{"leading text", append([]byte("key for node-1\n"), block("EC PRIVATE KEY", ecDER)...), nil, ecKey()},
		{"pkcs8 encrypted, cheap KDF", cheapEncrypted(t, rsaKey(), "pw"), static("pw"), rsaKey()},
		{"no PEM", []byte("not a key"), nil, nil},
		{"raw DER", ecDER, nil, nil},
		{"empty", nil, nil, nil},
		{"certificate block", block("CERTIFICATE", ecDER), nil, nil},
		{"public key block", block("PUBLIC KEY", pubDER), nil, nil},
		{"garbage DER", block("PRIVATE KEY", []byte("garbage")), nil, nil},
		{"EC DER in RSA block", block("RSA PRIVATE KEY", ecDER), nil, nil},
		{"X25519 is not a signer", block("PRIVATE KEY", xDER), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keystore.Parse(tt.data, tt.pass)
			if tt.want == nil {
				if !errors.Is(err, keystore.ErrMalformedKey) {
					t.Errorf("Parse(%s) = %T, %v, want ErrMalformedKey", tt.name, got, err)
				}
				return
			}
			if err != nil || !samePublic(got, tt.want) {
				t.Errorf("Parse(%s) = %T, %v, want the key", tt.name, got, err)
			}
		})
	}
}

// TestParseOpenSSLFixtures reads keys openssl wrote, in every form import
// meets: PKCS#8 plain and encrypted, SEC 1 and PKCS#1, plain and with the
// legacy Proc-Type encryption.
func TestParseOpenSSLFixtures(t *testing.T) {
	ec, err := keystore.Parse(readTestdata(t, "ec-pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rsaK, err := keystore.Parse(readTestdata(t, "rsa-pkcs8.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file      string
		encrypted bool
		want      crypto.Signer
		wantErr   error
	}{
		{"ec-sec1.pem", false, ec, nil},
		{"rsa-pkcs1.pem", false, rsaK, nil},
		{"ec-sec1-aes128.pem", true, ec, nil},
		{"rsa-pkcs1-aes256.pem", true, rsaK, nil},
		{"ec-pkcs8-aes256.pem", true, ec, nil},
		{"ed25519-pkcs8.pem", false, nil, nil},
		{"x25519-pkcs8.pem", false, nil, keystore.ErrMalformedKey},
		// PBES1 (PKCS#5 v1.5/PKCS#12 PBE) is not read, and the error
		// says so before a passphrase is tried.
		{"ec-pkcs8-pbe-sha1-3des.pem", true, nil, keystore.ErrMalformedKey},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readTestdata(t, tt.file)
			if got := keystore.Encrypted(data); got != tt.encrypted {
				t.Errorf("Encrypted(%s) = %v, want %v", tt.file, got, tt.encrypted)
			}
			got, err := keystore.Parse(data, static(fixturePass))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("Parse(%s) = %v, want %v", tt.file, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%s) = %v", tt.file, err)
			}
			if tt.want != nil && !samePublic(got, tt.want) {
				t.Errorf("Parse(%s) is another key than the PKCS#8 fixture", tt.file)
			}
		})
	}
}

func TestWriteFileFails(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir", "ca.key")
	if err := keystore.WriteFile(missing, ecKey(), nil); err == nil {
		t.Errorf("WriteFile(%s) = nil, want an error", missing)
	}
	if err := keystore.WriteFile(filepath.Join(dir, "ca.key"), fakeSigner{}, nil); err == nil {
		t.Errorf("WriteFile(unsupported key) = nil, want an error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed WriteFile left %d files", len(entries))
	}
}

type fakeSigner struct{}

func (fakeSigner) Public() crypto.PublicKey { return nil }
func (fakeSigner) Sign(_ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("no")
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.pem")
	if err := os.WriteFile(path, cheapEncrypted(t, ecKey(), "pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := keystore.LoadFile(path, static("pw")); err != nil || !samePublic(k, ecKey()) {
		t.Errorf("LoadFile(right) = %v", err)
	}
	_, err := keystore.LoadFile(path, static("nope"))
	if !errors.Is(err, keystore.ErrBadPassphrase) || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadFile(wrong) = %v, want ErrBadPassphrase naming %s", err, path)
	}
	if _, err := keystore.LoadFile(path, nil); !errors.Is(err, keystore.ErrNoPassphrase) {
		t.Errorf("LoadFile(no passphrase) = %v, want ErrNoPassphrase", err)
	}
	if _, err := keystore.LoadFile(filepath.Join(dir, "missing.pem"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want os.ErrNotExist", err)
	}
}
