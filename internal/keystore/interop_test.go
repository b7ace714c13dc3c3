package keystore_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

func runOpenSSL(t *testing.T, openssl string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(openssl, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %q: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestOpenSSLReadsOurKeys: `openssl pkey` decrypts what Marshal writes and
// finds the same public key.
func TestOpenSSLReadsOurKeys(t *testing.T) {
	openssl := testpeer.Require(t, "openssl")
	dir := t.TempDir()
	enc, err := encryptedEC()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := keystore.Marshal(rsaKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		pub  any
		args []string
	}{
		{"encrypted ecdsa", enc, ecKey().Public(), []string{"-passin", "pass:correct horse"}},
		{"plain rsa", plain, rsaKey().Public(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".pem")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			out := runOpenSSL(t, openssl, append([]string{"pkey", "-in", path, "-pubout"}, tt.args...)...)
			if want := publicPEM(t, tt.pub); !bytes.Equal(out, want) {
				t.Errorf("openssl pkey -pubout = %s, want %s", out, want)
			}
		})
	}
	// And refuses the wrong passphrase.
	path := filepath.Join(dir, "encrypted ecdsa.pem")
	if err := exec.Command(openssl, "pkey", "-in", path, "-noout", "-passin", "pass:wrong").Run(); err == nil {
		t.Errorf("openssl pkey with the wrong passphrase succeeded")
	}
}

// TestWeReadOpenSSLKeys: Parse decrypts what `openssl genpkey -aes256`
// writes (PBES2, PBKDF2-HMAC-SHA-256, AES-256-CBC).
func TestWeReadOpenSSLKeys(t *testing.T) {
	openssl := testpeer.Require(t, "openssl")
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"ec", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}},
		{"rsa", []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".pem")
			runOpenSSL(t, openssl, append(append([]string{"genpkey"}, tt.args...), "-aes256", "-pass", "pass:open sesame", "-out", path)...)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !keystore.Encrypted(data) {
				t.Errorf("Encrypted(openssl genpkey -aes256) = false")
			}
			k, err := keystore.LoadFile(path, static("open sesame"))
			if err != nil {
				t.Fatalf("LoadFile(openssl key) = %v", err)
			}
			want := runOpenSSL(t, openssl, "pkey", "-in", path, "-pubout", "-passin", "pass:open sesame")
			if got := publicPEM(t, k.Public()); !bytes.Equal(got, want) {
				t.Errorf("our public key %s, openssl's %s", got, want)
			}
			if _, err := keystore.LoadFile(path, static("open sesam")); !errors.Is(err, keystore.ErrBadPassphrase) {
				t.Errorf("LoadFile(openssl key, wrong passphrase) = %v, want ErrBadPassphrase", err)
			}
		})
	}
}
