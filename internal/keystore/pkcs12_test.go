package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
)

// markIterations is the KDF count the test files are written with: its
// DER, 02 02 12 34, is patched per case to leave one place above the cap.
const markIterations = 0x1234

var markDER = []byte{0x02, 0x02, 0x12, 0x34}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// identity returns a key and a self-signed certificate for it.
func identity(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	cert, key := pkitest.SelfSign(t, pkitest.RootTemplate(t, pkix.Name{CommonName: "p12"}))
	return key, cert
}

// encodeP12 writes key and cert with enc at markIterations, with zero
// salts and IVs so that only the iteration counts can contain markDER.
func encodeP12(t testing.TB, enc *pkcs12.Encoder, key *ecdsa.PrivateKey, cert *x509.Certificate, password string) []byte {
	t.Helper()
	p12, err := enc.WithIterations(markIterations).WithRand(zeroReader{}).Encode(key, cert, []*x509.Certificate{cert}, password)
	if err != nil {
		t.Fatal(err)
	}
	return p12
}

// keepMark leaves the n-th iteration count (0-based) at markIterations and
// lowers the others to 256; n = -1 lowers them all.
func keepMark(t testing.TB, p12 []byte, n int) []byte {
	t.Helper()
	parts := bytes.Split(p12, markDER)
	if n >= len(parts)-1 {
		t.Fatalf("file has %d iteration counts, want more than %d", len(parts)-1, n)
	}
	var out []byte
	for i, p := range parts[:len(parts)-1] {
		out = append(out, p...)
		if i == n {
			out = append(out, markDER...)
		} else {
			out = append(out, 0x02, 0x02, 0x01, 0x00)
		}
	}
	return append(out, parts[len(parts)-1]...)
}

func TestParsePKCS12(t *testing.T) {
	key, cert := identity(t)
	for name, enc := range map[string]*pkcs12.Encoder{
		"Modern2023": pkcs12.Modern2023, "Modern2026 (PBMAC1)": pkcs12.Modern2026,
		"LegacyDES": pkcs12.LegacyDES, "LegacyRC2": pkcs12.LegacyRC2,
	} {
		got, chain, err := ParsePKCS12(encodeP12(t, enc, key, cert, "pw"), "pw")
		if err != nil || !key.PublicKey.Equal(got.Public()) || len(chain) != 2 || !chain[0].Equal(cert) {
			t.Errorf("ParsePKCS12(%s) = %T, %d certificates, %v; want the key and 2 certificates", name, got, len(chain), err)
		}
	}
	if _, _, err := ParsePKCS12(encodeP12(t, pkcs12.Modern2023, key, cert, "pw"), "other"); !errors.Is(err, pkcs12.ErrIncorrectPassword) {
		t.Errorf("ParsePKCS12(wrong password) = %v, want pkcs12.ErrIncorrectPassword", err)
	}
}

// TestParsePKCS12Cost: each place a PKCS#12 file states an iteration
// count is checked against the cap before go-pkcs12 runs it.
func TestParsePKCS12Cost(t *testing.T) {
	LowerKDFLimits(t, markIterations-1, MaxScryptMemory, MaxScryptWork)
	key, cert := identity(t)
	modern := encodeP12(t, pkcs12.Modern2023, key, cert, "pw")
	legacy := encodeP12(t, pkcs12.LegacyDES, key, cert, "pw")
	pbmac1 := encodeP12(t, pkcs12.Modern2026, key, cert, "pw")
	tests := []struct {
		name string
		data []byte
		want string
	}{
		// Encoder order: the encrypted certificate safe, the key bag,
		// then the MAC.
		{"PBES2 safe", keepMark(t, modern, 0), "PKCS#12 safe PBES2 iteration count 4660, the limit is 4659"},
		{"PBES2 key bag", keepMark(t, modern, 1), "PKCS#12 key bag PBES2 iteration count 4660"},
		{"MAC", keepMark(t, modern, 2), "PKCS#12 MAC iteration count 4660"},
		{"PBE-SHA1-3DES safe", keepMark(t, legacy, 0), "PKCS#12 safe PBE iteration count 4660"},
		{"PBE-SHA1-3DES key bag", keepMark(t, legacy, 1), "PKCS#12 key bag PBE iteration count 4660"},
		{"PBMAC1", keepMark(t, pbmac1, 2), "PKCS#12 PBMAC1 iteration count 4660"},
	}
	// go-pkcs12 takes a constructed OCTET STRING (0x24) salt as one; so
	// must the check, or such a salt would skip it.
	salt := append([]byte{0x04, 0x10}, make([]byte, 16)...)
	constructed := bytes.Replace(keepMark(t, modern, 0), append(salt, markDER...), append(append([]byte{0x24, 0x10}, salt[2:]...), markDER...), 1)
	if !bytes.Contains(constructed, []byte{0x24, 0x10}) {
		t.Fatal("no PBES2 salt to make constructed")
	}
	tests = append(tests, struct {
		name string
		data []byte
		want string
	}{"PBES2 safe, constructed salt", constructed, "PKCS#12 safe PBES2 iteration count 4660"})
	for _, tt := range tests {
		if _, _, err := ParsePKCS12(tt.data, "pw"); !errors.Is(err, ErrKDFCost) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePKCS12(%s) = %v, want ErrKDFCost: %q", tt.name, err, tt.want)
		}
	}
}

// FuzzKeystorePKCS12 feeds ParsePKCS12 under low KDF caps, so that no
// input derives keys for long and counts above the caps reach ErrKDFCost.
// A contained library panic fails it like a panic would.
func FuzzKeystorePKCS12(f *testing.F) {
	key, cert := identity(f)
	for _, enc := range []*pkcs12.Encoder{pkcs12.Modern2023, pkcs12.Modern2026, pkcs12.LegacyDES, pkcs12.LegacyRC2} {
		p12 := keepMark(f, encodeP12(f, enc, key, cert, "pw"), -1)
		f.Add(p12, "pw")
		f.Add(p12[:len(p12)/2], "pw")
	}
	plain, err := pkcs12.Passwordless.Encode(key, cert, nil, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain, "")
	f.Add([]byte{0x30, 0}, "")
	LowerKDFLimits(f, 10_000, 1<<20, 4<<20)
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		k, chain, err := ParsePKCS12(data, password)
		if errors.Is(err, errPanicked) {
			t.Fatalf("ParsePKCS12: %v", err)
		}
		if err == nil && (k == nil || len(chain) == 0 || chain[0] == nil) {
			t.Fatalf("ParsePKCS12 = %T, %d certificates, nil error", k, len(chain))
		}
	})
}
