package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func TestParseKeyType(t *testing.T) {
	tests := []struct {
		in      string
		want    pki.KeyType
		wantErr bool
	}{
		{"p256", pki.KeyP256, false},
		{"P-256", pki.KeyP256, false},
		{"ecdsa", pki.KeyP256, false},
		{"EC", pki.KeyP256, false},
		{"", pki.KeyP256, false},
		{"  p384 ", pki.KeyP384, false},
		{"P-384", pki.KeyP384, false},
		{"rsa", pki.KeyRSA2048, false},
		{"RSA2048", pki.KeyRSA2048, false},
		{"rsa-2048", pki.KeyRSA2048, false},
		{"rsa3072", pki.KeyRSA3072, false},
		{"RSA-3072", pki.KeyRSA3072, false},
		{"p521", "", true},
		{"p224", "", true},
		{"ed25519", "", true},
		{"rsa1024", "", true},
		{"rsa4096", "", true},
		{"p256 p384", "", true},
	}
	for _, tt := range tests {
		got, err := pki.ParseKeyType(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKeyType(%q) = %q, %v, want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	// Every listed key type parses back to itself.
	for _, kt := range pki.KeyTypes() {
		if got, err := pki.ParseKeyType(string(kt)); err != nil || got != kt {
			t.Errorf("ParseKeyType(%q) = %q, %v, want itself", kt, got, err)
		}
	}
}

func TestKeyTypeOf(t *testing.T) {
	rsaKey := testKey(t, pki.KeyRSA2048, 0).(*rsa.PrivateKey)
	big8193 := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 8192), big.NewInt(1))
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		want pki.KeyType
		weak bool
	}{
		{"P-256", testKey(t, pki.KeyP256, 0).Public(), pki.KeyP256, false},
		{"P-384", testKey(t, pki.KeyP384, 0).Public(), pki.KeyP384, false},
		{"RSA-2048", rsaKey.Public(), pki.KeyRSA2048, false},
		{"RSA-3072", testKey(t, pki.KeyRSA3072, 0).Public(), pki.KeyRSA3072, false},
		{"RSA-1024", rsa1024(t).Public(), "", true},
		{"RSA-8193 bits", &rsa.PublicKey{N: big8193, E: 65537}, "", true},
		{"RSA e=3", &rsa.PublicKey{N: rsaKey.N, E: 3}, "", true},
		{"RSA even e", &rsa.PublicKey{N: rsaKey.N, E: 65538}, "", true},
		{"P-224", p224(t).Public(), "", true},
		{"P-521", p521.Public(), "", true},
		{"Ed25519", edPub, "", true},
		{"private key, not public", testKey(t, pki.KeyP256, 0), "", true},
		{"nil", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.KeyTypeOf(tt.pub)
			if tt.weak {
				if !errors.Is(err, pki.ErrWeakKey) {
					t.Errorf("KeyTypeOf(%s) = %q, %v, want ErrWeakKey", tt.name, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("KeyTypeOf(%s) = %q, %v, want %q", tt.name, got, err, tt.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	// The shared test keys come from GenerateKey; check they are what
	// their type says.
	for _, kt := range pki.KeyTypes() {
		k := testKey(t, kt, 0)
		if got, err := pki.KeyTypeOf(k.Public()); err != nil || got != kt {
			t.Errorf("KeyTypeOf(GenerateKey(%s)) = %q, %v, want %q", kt, got, err, kt)
		}
	}
	if _, err := pki.GenerateKey("ed25519", rand.Reader); err == nil {
		t.Errorf("GenerateKey(ed25519) = nil error, want an error")
	}
	if _, err := pki.GenerateKey("P-256", rand.Reader); err == nil {
		t.Errorf("GenerateKey(P-256) = nil error, want an error: only canonical names are generated")
	}
}

func TestSignatureAlgorithm(t *testing.T) {
	tests := []struct {
		kt   pki.KeyType
		want x509.SignatureAlgorithm
	}{
		{pki.KeyP256, x509.ECDSAWithSHA256},
		{pki.KeyP384, x509.ECDSAWithSHA384},
		{pki.KeyRSA2048, x509.SHA256WithRSA},
		{pki.KeyRSA3072, x509.SHA256WithRSA},
	}
	for _, tt := range tests {
		if got := pki.SignatureAlgorithm(tt.kt); got != tt.want {
			t.Errorf("SignatureAlgorithm(%s) = %v, want %v", tt.kt, got, tt.want)
		}
	}
}
