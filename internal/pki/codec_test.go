package pki_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// testBundle is a leaf, an intermediate and a root, leaf first.
func testBundle(t testing.TB) []*x509.Certificate {
	t.Helper()
	_, certs := buildChain(t, chainOptions{kt: pki.KeyP256, urls: true})
	var root, inter, leaf *x509.Certificate
	for _, c := range certs {
		switch c.profile {
		case pki.ProfileRoot:
			root = c.cert
		case pki.ProfileIntermediate:
			inter = c.cert
		case pki.ProfileServer:
			if leaf == nil {
				leaf = c.cert
			}
		}
	}
	return []*x509.Certificate{leaf, inter, root}
}

func TestParseCertificates(t *testing.T) {
	certs := testBundle(t)
	bundle := pki.EncodeCertificates(certs...)
	blocks := strings.SplitAfter(string(bundle), "-----END CERTIFICATE-----\n")
	withText := "subject=CN = leaf\nissuer=CN = inter\n" + blocks[0] + "\n# intermediate\n" + blocks[1] + "Bag Attributes\n    friendlyName: root\n" + blocks[2] + "\n"
	damaged := strings.Replace(blocks[0], "\n", "\n!!", 2)
	openssl := readTestdata(t, "openssl-chain-text.pem")
	tests := []struct {
		name string
		in   []byte
		want int // certificates, 0 = error
	}{
		{"bundle of 3", bundle, 3},
		{"text between blocks", []byte(withText), 3},
		{"text after the last block", []byte(withText + "trailing notes\n"), 0},
		{"openssl x509 -text output", openssl, 3},
		{"CRLF", bytes.ReplaceAll(bundle, []byte("\n"), []byte("\r\n")), 3},
		{"one pem", pki.EncodeCertificates(certs[0]), 1},
		{"der", certs[1].Raw, 1},
		{"openssl der", readTestdata(t, "openssl-leaf.der"), 1},
		{"empty", nil, 0},
		{"whitespace", []byte("\n \t\n"), 0},
		{"text only", []byte("no certificates here\n"), 0},
		{"der with trailing byte", append(append([]byte{}, certs[1].Raw...), 0), 0},
		{"wrong block type first", append(pemBlock("PRIVATE KEY", []byte{1, 2, 3}), bundle...), 0},
		{"wrong block type last", append(append([]byte{}, bundle...), pemBlock("X509 CRL", []byte{1, 2, 3})...), 0},
		{"certificate request", readTestdata(t, "p256-san.csr.pem"), 0},
		{"truncated last block", bundle[:len(bundle)-40], 0},
		{"truncated in the middle", []byte(blocks[0] + blocks[1][:len(blocks[1])/2]), 0},
		{"damaged first block", []byte(damaged + blocks[1] + blocks[2]), 0},
		{"damaged middle block", []byte(blocks[0] + strings.Replace(blocks[1], "\n", "\n!!", 2) + blocks[2]), 0},
		{"truncated block before a good one", []byte(blocks[0][:len(blocks[0])/2] + "\n" + blocks[1]), 0},
		{"garbage DER in block", append(append([]byte{}, bundle...), pemBlock("CERTIFICATE", []byte("garbage"))...), 0},
		{"too big", append(bytes.Repeat([]byte("\n"), pki.MaxBundleSize), bundle...), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.ParseCertificates(tt.in)
			if tt.want == 0 {
				if !errors.Is(err, pki.ErrMalformedPEM) {
					t.Errorf("ParseCertificates(%s) = %d certs, %v, want ErrMalformedPEM", tt.name, len(got), err)
				}
				return
			}
			if err != nil || len(got) != tt.want {
				t.Fatalf("ParseCertificates(%s) = %d certs, %v, want %d", tt.name, len(got), err, tt.want)
			}
			for i, c := range got {
				if len(c.Raw) == 0 {
					t.Errorf("ParseCertificates(%s)[%d] has no Raw", tt.name, i)
				}
			}
		})
	}
	// Order is kept, and EncodeCertificates is its inverse.
	got, err := pki.ParseCertificates(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for i := range certs {
		if !got[i].Equal(certs[i]) {
			t.Errorf("ParseCertificates(bundle)[%d] = %s, want %s", i, got[i].Subject, certs[i].Subject)
		}
	}
	if again := pki.EncodeCertificates(got...); !bytes.Equal(again, bundle) {
		t.Errorf("EncodeCertificates(ParseCertificates(b)) != b")
	}
	if out := pki.EncodeCertificates(); len(out) != 0 {
		t.Errorf("EncodeCertificates() = %q, want empty", out)
	}
}

// TestParseCertificatesNamesBlock: errors say which block is bad.
func TestParseCertificatesNamesBlock(t *testing.T) {
	certs := testBundle(t)
	in := append(pki.EncodeCertificates(certs[0], certs[1]), pemBlock("CERTIFICATE", []byte("garbage"))...)
	_, err := pki.ParseCertificates(in)
	if err == nil || !strings.Contains(err.Error(), "block 3") {
		t.Errorf("ParseCertificates(2 good + garbage) = %v, want an error naming block 3", err)
	}
	in = append(pki.EncodeCertificates(certs[0]), pemBlock("RSA PRIVATE KEY", []byte{1})...)
	_, err = pki.ParseCertificates(in)
	if err == nil || !strings.Contains(err.Error(), "block 2") || !strings.Contains(err.Error(), "RSA PRIVATE KEY") {
		t.Errorf("ParseCertificates(cert + key) = %v, want an error naming block 2 and its type", err)
	}
}

func TestEncodePKCS12(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.KeyP256, pki.KeyRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			_, certs := buildChain(t, chainOptions{kt: kt, urls: true})
			var leaf *x509.Certificate
			var chain []*x509.Certificate
			for _, c := range certs {
				switch {
				case c.profile == pki.ProfileClient:
					leaf = c.cert
				case c.profile.IsCA():
					chain = append([]*x509.Certificate{c.cert}, chain...) // intermediate first
				}
			}
			key := testKey(t, kt, 2)
			p12, err := pki.EncodePKCS12(key, leaf, chain, "s3cret pass")
			if err != nil {
				t.Fatalf("EncodePKCS12: %v", err)
			}
			gotKey, gotLeaf, gotChain, err := pkcs12.DecodeChain(p12, "s3cret pass")
			if err != nil {
				t.Fatalf("DecodeChain: %v", err)
			}
			if k, ok := gotKey.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !k.Equal(key) {
				t.Errorf("DecodeChain key = %T, want the encoded key", gotKey)
			}
			if !gotLeaf.Equal(leaf) {
				t.Errorf("DecodeChain leaf = %s, want %s", gotLeaf.Subject, leaf.Subject)
			}
			if len(gotChain) != len(chain) {
				t.Fatalf("DecodeChain chain has %d certs, want %d", len(gotChain), len(chain))
			}
			for i := range chain {
				if !gotChain[i].Equal(chain[i]) {
					t.Errorf("DecodeChain chain[%d] = %s, want %s", i, gotChain[i].Subject, chain[i].Subject)
				}
			}
			if _, _, _, err := pkcs12.DecodeChain(p12, "wrong"); err == nil {
				t.Errorf("DecodeChain(wrong password) = nil error")
			}
			if _, err := pki.EncodePKCS12(key, leaf, chain, ""); err == nil {
				t.Errorf("EncodePKCS12(empty password) = nil error, want an error")
			}
		})
	}
}

// TestParseCertificateBlocksTrusted: OpenSSL's TRUSTED CERTIFICATE form is
// refused, not skipped, so a CA bundle holding one never loads without it.
func TestParseCertificateBlocksTrusted(t *testing.T) {
	certs := testBundle(t)
	in := append(pki.EncodeCertificates(certs[0]), pemBlock("TRUSTED CERTIFICATE", certs[1].Raw)...)
	blocks, err := pki.DecodePEMBlocks(in)
	if err != nil {
		t.Fatalf("DecodePEMBlocks = %v", err)
	}
	got, err := pki.ParseCertificateBlocks(blocks)
	if !errors.Is(err, pki.ErrMalformedPEM) || !strings.Contains(err.Error(), "block 2") {
		t.Errorf("ParseCertificateBlocks(cert + trusted cert) = %d certs, %v, want ErrMalformedPEM naming block 2", len(got), err)
	}
}
