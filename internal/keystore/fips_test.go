package keystore

import (
	"crypto"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"
)

// TestContainFIPSOnlyPanics: under GODEBUG=fips140=only, SHA-1 and
// x/crypto/pbkdf2 panic rather than fail, so a PBKDF2-HMAC-SHA-1 key (the
// OpenSSL 1.1 default PRF) or a legacy SHA-1 PKCS#12 file would end the
// process at load. The test writes such files, then runs itself in that
// mode on them: each must come back as an error naming the panic.
func TestContainFIPSOnlyPanics(t *testing.T) {
	if dir := os.Getenv("KEYSTORE_FIPS_CHILD"); dir != "" {
		fipsChild(t, dir)
		return
	}
	dir := t.TempDir()
	key, cert := identity(t)
	der, err := pkcs8.MarshalPrivateKey(key, []byte("pw"), &pkcs8.Opts{
		Cipher:  pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 10, HMACHash: crypto.SHA1},
	})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"sha1.pem": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}),
		"sha1.p12": encodeP12(t, pkcs12.LegacyDES, key, cert, "pw"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestContainFIPSOnlyPanics$", "-test.v")
	cmd.Env = append(os.Environ(), "KEYSTORE_FIPS_CHILD="+dir, "GODEBUG=fips140=only")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child in fips140=only mode: %v\n%s", err, out)
	}
	if strings.Count(string(out), "contained:") != 2 {
		t.Errorf("child output lacks its two contained panics:\n%s", out)
	}
}

func fipsChild(t *testing.T, dir string) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, err := Parse(read("sha1.pem"), pass("pw"))
	if !errors.Is(err, ErrMalformedKey) || !errors.Is(err, errPanicked) {
		t.Errorf("Parse(PBKDF2-SHA-1 key) = %v, want a contained panic", err)
	}
	t.Logf("contained: %v", err)
	_, _, err = ParsePKCS12(read("sha1.p12"), "pw")
	if !errors.Is(err, errPanicked) {
		t.Errorf("ParsePKCS12(SHA-1 MAC) = %v, want a contained panic", err)
	}
	t.Logf("contained: %v", err)
}
