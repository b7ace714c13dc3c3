package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/youmark/pkcs8"
)

// hostile is what an attacker controls in an encrypted PKCS#8 key.
type hostile struct {
	scheme asn1.ObjectIdentifier // default PBES2
	kdf    pkix.AlgorithmIdentifier
	cipher asn1.ObjectIdentifier // default AES-256-CBC
	iv     []byte                // default 16 zero bytes
	data   []byte                // default 48 bytes
}

func mustMarshal(t *testing.T, v any) asn1.RawValue {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatalf("asn1.Marshal(%T) = %v", v, err)
	}
	return asn1.RawValue{FullBytes: b}
}

var testSalt = asn1.RawValue{Tag: asn1.TagOctetString, Bytes: []byte("salt")}

func pbkdf2ID(t *testing.T, p pbkdf2Params) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: mustMarshal(t, p)}
}

func scryptID(t *testing.T, n, r, p int) pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: oidScrypt, Parameters: mustMarshal(t, scryptParams{Salt: []byte("salt"), N: n, R: r, P: p})}
}

// pemOf encodes h as an ENCRYPTED PRIVATE KEY block.
func (h hostile) pemOf(t *testing.T) []byte {
	t.Helper()
	if h.scheme == nil {
		h.scheme = oidPBES2
	}
	if h.cipher == nil {
		h.cipher = pbes2Ciphers[2].oid
	}
	if h.iv == nil {
		h.iv = make([]byte, 16)
	}
	if h.data == nil {
		h.data = make([]byte, 48)
	}
	params := pbes2Params{KDF: h.kdf, Scheme: pkix.AlgorithmIdentifier{Algorithm: h.cipher, Parameters: mustMarshal(t, h.iv)}}
	info := encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: h.scheme, Parameters: mustMarshal(t, params)},
		EncryptedData: h.data,
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: mustMarshal(t, info).FullBytes})
}

func pass(pw string) Passphrase { return func() ([]byte, error) { return []byte(pw), nil } }

func TestParseHostilePBES2(t *testing.T) {
	crasher := readTestdata(t, "pbes2-short-iv.pem")
	iter := func(n int) pkix.AlgorithmIdentifier {
		return pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: n})
	}
	tests := []struct {
		name    string
		data    []byte
		want    error
		wantMsg string
	}{
		{"fuzz crasher: 3-byte IV", crasher, ErrMalformedKey, "AES-256-CBC IV is 3 bytes, want 16"},
		{"17-byte IV", hostile{kdf: iter(10), iv: make([]byte, 17)}.pemOf(t), ErrMalformedKey, "IV is 17 bytes, want 16"},
		{"empty IV", hostile{kdf: iter(10), iv: []byte{}}.pemOf(t), ErrMalformedKey, "IV is 0 bytes"},
		{"3DES with an AES-sized IV", hostile{kdf: iter(10), cipher: pbes2Ciphers[3].oid}.pemOf(t), ErrMalformedKey, "DES-EDE3-CBC IV is 16 bytes, want 8"},
		{"ciphertext not whole blocks", hostile{kdf: iter(10), data: make([]byte, 47)}.pemOf(t), ErrMalformedKey, "ciphertext is 47 bytes"},
		{"no ciphertext", hostile{kdf: iter(10), data: []byte{}}.pemOf(t), ErrMalformedKey, "ciphertext is 0 bytes"},
		{"AES-GCM", hostile{kdf: iter(10), cipher: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}}.pemOf(t), ErrMalformedKey, "cipher 2.16.840.1.101.3.4.1.46 is not supported"},
		{"PBES1", readTestdata(t, "ec-pkcs8-pbe-sha1-3des.pem"), ErrMalformedKey, "is not PBES2"},
		{"unknown KDF", hostile{kdf: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3}}}.pemOf(t), ErrMalformedKey, "key derivation 1.2.3 is not supported"},
		{"HMAC-SHA-512 PRF", hostile{kdf: pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: 10, PRF: pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}}})}.pemOf(t), ErrMalformedKey, "PRF 1.2.840.113549.2.11 is not supported"},
		{"key length 16 for AES-256", hostile{kdf: pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: 10, KeyLength: 16})}.pemOf(t), ErrMalformedKey, "key length 16, the cipher needs 32"},
		{"zero iterations", hostile{kdf: iter(0)}.pemOf(t), ErrMalformedKey, "iteration count 0"},
		{"negative iterations", hostile{kdf: iter(-5)}.pemOf(t), ErrMalformedKey, "iteration count -5"},
		{"iterations one above the cap", hostile{kdf: iter(MaxPBKDF2Iterations + 1)}.pemOf(t), ErrKDFCost, "PBKDF2 iteration count 10000001, the limit is 10000000"},
		{"iterations MaxInt64", hostile{kdf: iter(math.MaxInt64)}.pemOf(t), ErrKDFCost, "iteration count 9223372036854775807"},
		{"scrypt 1 GiB", hostile{kdf: scryptID(t, 1<<20, 8, 1)}.pemOf(t), ErrKDFCost, "scrypt N=1048576 r=8 needs 128·N·r bytes of memory, the limit is 268435456"},
		{"scrypt overflowing product", hostile{kdf: scryptID(t, 1<<62, 1<<40, 1)}.pemOf(t), ErrKDFCost, "memory"},
		{"scrypt p over the work cap", hostile{kdf: scryptID(t, 1<<14, 8, 65)}.pemOf(t), ErrKDFCost, "p=65 mixes 128·N·r·p bytes, the limit is 1073741824"},
		{"scrypt N not a power of 2", hostile{kdf: scryptID(t, 1000, 8, 1)}.pemOf(t), ErrMalformedKey, "N=1000"},
		{"scrypt r=0", hostile{kdf: scryptID(t, 1024, 0, 1)}.pemOf(t), ErrMalformedKey, "r=0"},
		{"scrypt p=0", hostile{kdf: scryptID(t, 1024, 8, 0)}.pemOf(t), ErrMalformedKey, "p=0"},
		{"not DER", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("junk")}), ErrMalformedKey, "EncryptedPrivateKeyInfo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := false
			_, err := Parse(tt.data, func() ([]byte, error) { asked = true; return []byte("pw"), nil })
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Parse(%s) = %v, want %v containing %q", tt.name, err, tt.want, tt.wantMsg)
			}
			if asked {
				t.Errorf("Parse(%s) asked for the passphrase before rejecting the file", tt.name)
			}
		})
	}
}

// TestCheckPBES2AtTheLimits: the largest costs allowed pass the check (not
// run: they take seconds).
func TestCheckPBES2AtTheLimits(t *testing.T) {
	for name, kdf := range map[string]pkix.AlgorithmIdentifier{
		"PBKDF2 at the cap":     pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: MaxPBKDF2Iterations}),
		"scrypt memory cap":     scryptID(t, 1<<18, 8, 4),
		"openssl scrypt":        scryptID(t, 1<<14, 8, 1),
		"scrypt work cap p=64":  scryptID(t, 1<<14, 8, 64),
		"PBKDF2 with SHA-1 PRF": pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: 2048, PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA1}}),
		"PBKDF2 key length 32":  pbkdf2ID(t, pbkdf2Params{Salt: testSalt, Iterations: 2048, KeyLength: 32}),
	} {
		b, _ := pem.Decode(hostile{kdf: kdf}.pemOf(t))
		if err := checkPBES2(b.Bytes); err != nil {
			t.Errorf("checkPBES2(%s) = %v, want nil", name, err)
		}
	}
}

// TestParseAllowedKDFs decrypts keys whose KDF passes the check, under
// lowered caps and over them.
func TestParseAllowedKDFs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(opts pkcs8.KDFOpts, c pkcs8.Cipher) []byte {
		der, err := pkcs8.MarshalPrivateKey(key, []byte("pw"), &pkcs8.Opts{Cipher: c, KDFOpts: opts})
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
	}
	scrypt := encrypt(pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 1 << 10, BlockSize: 8, ParallelizationParameter: 2}, pkcs8.AES128CBC)
	pbkdf2 := encrypt(pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 1000, HMACHash: crypto.SHA1}, pkcs8.TripleDESCBC)
	tests := []struct {
		name            string
		data            []byte
		iter, mem, work int
		want            error
	}{
		{"scrypt", scrypt, MaxPBKDF2Iterations, MaxScryptMemory, MaxScryptWork, nil},
		{"scrypt over a lowered memory cap", scrypt, 10, 1 << 20 / 2, 1 << 30, ErrKDFCost},
		{"scrypt over a lowered work cap", scrypt, 10, 1 << 20, 1 << 20, ErrKDFCost},
		{"PBKDF2-SHA-1 3DES", pbkdf2, MaxPBKDF2Iterations, MaxScryptMemory, MaxScryptWork, nil},
		{"PBKDF2 over a lowered cap", pbkdf2, 999, 1, 1, ErrKDFCost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			LowerKDFLimits(t, tt.iter, tt.mem, tt.work)
			got, err := Parse(tt.data, pass("pw"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%s) = %v, want %v", tt.name, err, tt.want)
			}
			if err == nil && !key.PublicKey.Equal(got.Public()) {
				t.Errorf("Parse(%s) returned another key", tt.name)
			}
		})
	}
}

// TestContainLibraryPanic feeds the fuzz crasher to youmark/pkcs8 directly,
// without the check, to show a real library panic becomes an error.
func TestContainLibraryPanic(t *testing.T) {
	b, _ := pem.Decode(readTestdata(t, "pbes2-short-iv.pem"))
	_, err := contain("PKCS#8 decryption", func() (any, error) { return pkcs8.ParsePKCS8PrivateKey(b.Bytes, []byte("pw")) })
	if !errors.Is(err, ErrMalformedKey) || !strings.Contains(err.Error(), "IV length must equal block size") {
		t.Errorf("contain(pkcs8 on the crasher) = %v, want ErrMalformedKey naming the CBC panic", err)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
