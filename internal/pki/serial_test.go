package pki_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"testing/iotest"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		n, err := pki.NewSerial(rand.Reader)
		if err != nil {
			t.Fatalf("NewSerial: %v", err)
		}
		b := n.Bytes()
		if len(b) != 17 || b[0] != 0x01 {
			t.Fatalf("NewSerial() = %x, want 17 octets starting 01", b)
		}
		if n.Sign() <= 0 {
			t.Fatalf("NewSerial() = %v, want positive", n)
		}
		// The DER INTEGER has the same 17 octets: no sign padding.
		der, err := asn1.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(der) != 2+17 {
			t.Fatalf("DER of NewSerial() = %x, want 19 octets", der)
		}
		s := pki.SerialString(n)
		if seen[s] {
			t.Fatalf("NewSerial() repeated %s after %d serials", s, i)
		}
		seen[s] = true
	}
}

func TestNewSerialDeterministic(t *testing.T) {
	zeros := bytes.NewReader(make([]byte, 16))
	n, err := pki.NewSerial(zeros)
	if err != nil {
		t.Fatal(err)
	}
	if want := new(big.Int).Lsh(big.NewInt(1), 128); n.Cmp(want) != 0 {
		t.Errorf("NewSerial(zeros) = %x, want %x", n, want)
	}
	if _, err := pki.NewSerial(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Errorf("NewSerial(15 bytes) = nil error, want an error")
	}
	if _, err := pki.NewSerial(iotest.ErrReader(iotest.ErrTimeout)); err == nil {
		t.Errorf("NewSerial(failing reader) = nil error, want an error")
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct {
		in      string
		want    string // SerialString of the result
		wantErr bool
	}{
		{"1", "1", false},
		{"01", "1", false},
		{"0a:1B:cd", "a1bcd", false},
		{"0A:1B:CD", "a1bcd", false},
		{"0x1F", "1f", false},
		{"0X1f", "1f", false},
		{" 9B6EBD693583B517E472AB45D7B1F690\n", "9b6ebd693583b517e472ab45d7b1f690", false},
		{"01:9b:6e:bd:69:35:83:b5:17:e4:72:ab:45:d7:b1:f6:90", "19b6ebd693583b517e472ab45d7b1f690", false},
		{"1234567890123456789012345678901234567890", "1234567890123456789012345678901234567890", false},
		{"12345678901234567890123456789012345678901", "", true}, // 41 digits
		{"", "", true},
		{"0x", "", true},
		{":", "", true},
		{"0", "", true},
		{"00:00", "", true},
		{"-1", "", true},
		{"xyz", "", true},
		{"12 34", "", true},
		{"0x0x12", "", true},
	}
	for _, tt := range tests {
		n, err := pki.ParseSerial(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseSerial(%q) = %v, want an error", tt.in, n)
			}
			continue
		}
		if err != nil || pki.SerialString(n) != tt.want {
			t.Errorf("ParseSerial(%q) = %v, %v, want %s", tt.in, n, err, tt.want)
		}
	}
}

func TestSerialStringRoundTrip(t *testing.T) {
	for i := 0; i < 100; i++ {
		n := serial(t)
		got, err := pki.ParseSerial(pki.SerialString(n))
		if err != nil || got.Cmp(n) != 0 {
			t.Fatalf("ParseSerial(SerialString(%x)) = %v, %v", n, got, err)
		}
	}
}

// TestSubjectKeyID checks SubjectKeyID against RFC 5280 §4.2.1.2 method
// (1) computed from the certificate itself, and against what Go computes
// when a CA template has no SKI.
func TestSubjectKeyID(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			key := testKey(t, kt, 0)
			got, err := pki.SubjectKeyID(key.Public())
			if err != nil {
				t.Fatalf("SubjectKeyID: %v", err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ski"},
				NotBefore: testNow, NotAfter: testNow.Add(day),
				IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
			}
			// Go 1.25 switched generated SKIs to truncated SHA-256
			// (RFC 7093); x509sha256skid=0 restores the RFC 5280 SHA-1
			// method, which is the one SubjectKeyID implements.
			t.Setenv("GODEBUG", "x509sha256skid=0")
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.SubjectKeyId) {
				t.Errorf("SubjectKeyID = %x, Go (x509sha256skid=0) computed %x", got, c.SubjectKeyId)
			}
			var spki struct {
				Algorithm pkix.AlgorithmIdentifier
				PublicKey asn1.BitString
			}
			if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
				t.Fatal(err)
			}
			want := sha1.Sum(spki.PublicKey.Bytes)
			if !bytes.Equal(got, want[:]) {
				t.Errorf("SubjectKeyID = %x, want SHA-1 of the subjectPublicKey bits %x", got, want)
			}
		})
	}
	if _, err := pki.SubjectKeyID("not a key"); err == nil {
		t.Errorf("SubjectKeyID(string) = nil error, want an error")
	}
}
