package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func goCSR(t testing.TB, key crypto.Signer, dns ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "node-1"}, DNSNames: dns,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseCSR(t *testing.T) {
	der := goCSR(t, testKey(t, pki.KeyP256, 2), "node-1.example.internal")
	p := pemBlock("CERTIFICATE REQUEST", der)
	other := pemBlock("CERTIFICATE REQUEST", goCSR(t, testKey(t, pki.KeyP256, 1), "other.example.internal"))
	padTo := func(b []byte, n int) []byte {
		return append(append([]byte{}, b...), bytes.Repeat([]byte(" "), n-len(b))...)
	}
	damaged := bytes.Replace(p, []byte("\n"), []byte("\n!!"), 2)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"pem", p, true},
		{"der", der, true},
		{"NEW CERTIFICATE REQUEST", pemBlock("NEW CERTIFICATE REQUEST", der), true},
		{"pem with CRLF", bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")), true},
		{"trailing whitespace", append(append([]byte{}, p...), "\n\n  \t\n"...), true},
		{"leading text", append([]byte("request for node-1:\n"), p...), true},
		{"exactly MaxCSRSize", padTo(p, pki.MaxCSRSize), true},
		{"over MaxCSRSize", padTo(p, pki.MaxCSRSize+1), false},
		{"trailing data", append(append([]byte{}, p...), "junk"...), false},
		{"trailing END line", append(append([]byte{}, p...), "-----END CERTIFICATE REQUEST-----\n"...), false},
		{"damaged block after a good one", append(append([]byte{}, p...), damaged...), false},
		{"two blocks", append(append([]byte{}, p...), other...), false},
		{"damaged block before a good one", append(append([]byte{}, damaged...), other...), false},
		{"truncated pem", p[:len(p)/2], false},
		{"pem without end line", p[:len(p)-len("-----END CERTIFICATE REQUEST-----\n")], false},
		{"wrong block type", pemBlock("CERTIFICATE", der), false},
		{"private key block", pemBlock("PRIVATE KEY", der), false},
		{"bad base64", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"), false},
		{"garbage DER in block", pemBlock("CERTIFICATE REQUEST", []byte("garbage")), false},
		{"der with trailing byte", append(append([]byte{}, der...), 0), false},
		{"truncated der", der[:len(der)-1], false},
		{"empty", nil, false},
		{"whitespace", []byte(" \n"), false},
		{"garbage", []byte("hello"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := pki.ParseCSR(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseCSR(%s) = %v, want ok", tt.name, err)
				}
				if !bytes.Equal(csr.Raw, der) {
					t.Errorf("ParseCSR(%s) parsed another request", tt.name)
				}
				return
			}
			if !errors.Is(err, pki.ErrMalformedCSR) {
				t.Errorf("ParseCSR(%s) = %v, want ErrMalformedCSR", tt.name, err)
			}
		})
	}
}

func TestCheckCSRFixtures(t *testing.T) {
	tests := []struct {
		file    string
		cnAsDNS bool
		want    pki.Names
		wantErr error
	}{
		{"p256-san.csr.pem", false, pki.Names{DNS: []string{"web.example.internal", "api.example.internal"}, IPs: []net.IP{{10, 0, 0, 5}}}, nil},
		// The CN is already a SAN: not repeated.
		{"p256-san.csr.pem", true, pki.Names{DNS: []string{"web.example.internal", "api.example.internal"}, IPs: []net.IP{{10, 0, 0, 5}}}, nil},
		{"p256-san.csr.der", false, pki.Names{DNS: []string{"web.example.internal", "api.example.internal"}, IPs: []net.IP{{10, 0, 0, 5}}}, nil},
		{"rsa2048-cn-only.csr.pem", false, pki.Names{}, nil},
		{"rsa2048-cn-only.csr.pem", true, pki.Names{DNS: []string{"host.example.internal"}}, nil},
		{"rsa1024.csr.pem", true, pki.Names{}, pki.ErrWeakKey},
		{"ca-true.csr.pem", true, pki.Names{}, pki.ErrCSRAsksForCA},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			csr, err := pki.ParseCSR(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("ParseCSR(%s) = %v", tt.file, err)
			}
			got, err := pki.CheckCSR(csr, tt.cnAsDNS)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("CheckCSR(%s, %v) = %v, want %v", tt.file, tt.cnAsDNS, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckCSR(%s, %v) = %v", tt.file, tt.cnAsDNS, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("CheckCSR(%s, %v) (-want +got):\n%s", tt.file, tt.cnAsDNS, diff)
			}
		})
	}
}

func basicConstraints(t testing.TB, isCA bool) pkix.Extension {
	t.Helper()
	type bc struct {
		IsCA bool `asn1:"optional"`
	}
	v, err := asn1.Marshal(bc{IsCA: isCA})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}
}

func TestCheckCSR(t *testing.T) {
	p256 := testKey(t, pki.KeyP256, 2)
	rsaKey := testKey(t, pki.KeyRSA2048, 2)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     crypto.Signer
		tmpl    x509.CertificateRequest
		cnAsDNS bool
		mangle  func([]byte) []byte
		want    pki.Names
		wantErr error
	}{
		{name: "ecdsa with SANs", key: p256, tmpl: x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "node-1"}, DNSNames: []string{"Node-1.Example.Internal"},
			IPAddresses:    []net.IP{net.ParseIP("10.0.0.9"), net.ParseIP("fd00::9")},
			EmailAddresses: []string{"ops@example.com"}, URIs: []*url.URL{mustURL(t, "spiffe://example.internal/device/node-1")},
		}, want: pki.Names{
			DNS: []string{"node-1.example.internal"}, IPs: []net.IP{{10, 0, 0, 9}, net.ParseIP("fd00::9")},
			Emails: []string{"ops@example.com"}, URIs: []*url.URL{mustURL(t, "spiffe://example.internal/device/node-1")},
		}},
		{name: "rsa cn as dns", key: rsaKey, cnAsDNS: true, tmpl: x509.CertificateRequest{Subject: pkix.Name{CommonName: "Host.Example.Internal"}},
			want: pki.Names{DNS: []string{"host.example.internal"}}},
		{name: "cn as dns, not asked", key: p256, tmpl: x509.CertificateRequest{Subject: pkix.Name{CommonName: "host.example.internal"}},
			want: pki.Names{}},
		{name: "cn not a dns name", key: p256, cnAsDNS: true, tmpl: x509.CertificateRequest{Subject: pkix.Name{CommonName: "Alice Smith"}},
			want: pki.Names{}},
		{name: "cn already a SAN, other case", key: p256, cnAsDNS: true, tmpl: x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "WEB.example.internal"}, DNSNames: []string{"web.example.internal"},
		}, want: pki.Names{DNS: []string{"web.example.internal"}}},
		{name: "cn appended after SANs", key: p256, cnAsDNS: true, tmpl: x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "b.example.internal"}, DNSNames: []string{"a.example.internal"},
		}, want: pki.Names{DNS: []string{"a.example.internal", "b.example.internal"}}},
		{name: "basicConstraints CA:FALSE", key: p256, tmpl: x509.CertificateRequest{
			DNSNames: []string{"a.example.internal"}, ExtraExtensions: []pkix.Extension{basicConstraints(t, false)},
		}, want: pki.Names{DNS: []string{"a.example.internal"}}},
		{name: "basicConstraints CA:TRUE", key: p256, tmpl: x509.CertificateRequest{
			DNSNames: []string{"a.example.internal"}, ExtraExtensions: []pkix.Extension{basicConstraints(t, true)},
		}, wantErr: pki.ErrCSRAsksForCA},
		{name: "basicConstraints garbage", key: p256, tmpl: x509.CertificateRequest{
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Value: []byte{0x04, 0x01, 0xff}}},
		}, wantErr: pki.ErrMalformedCSR},
		{name: "bad signature", key: p256, tmpl: x509.CertificateRequest{DNSNames: []string{"a.example.internal"}},
			mangle: func(der []byte) []byte { der[len(der)-1] ^= 0x01; return der }, wantErr: pki.ErrCSRSignature},
		{name: "bad rsa signature", key: rsaKey, tmpl: x509.CertificateRequest{DNSNames: []string{"a.example.internal"}},
			mangle: func(der []byte) []byte { der[len(der)-10] ^= 0x80; return der }, wantErr: pki.ErrCSRSignature},
		{name: "rsa-1024", key: rsa1024(t), tmpl: x509.CertificateRequest{DNSNames: []string{"a.example.internal"}}, wantErr: pki.ErrWeakKey},
		{name: "p-224", key: p224(t), tmpl: x509.CertificateRequest{DNSNames: []string{"a.example.internal"}}, wantErr: pki.ErrWeakKey},
		{name: "ed25519", key: edKey, tmpl: x509.CertificateRequest{DNSNames: []string{"a.example.internal"}}, wantErr: pki.ErrWeakKey},
		{name: "bad dns SAN", key: p256, tmpl: x509.CertificateRequest{DNSNames: []string{"bad_name.example"}}, wantErr: pki.ErrMalformedCSR},
		{name: "display-name email SAN", key: p256, tmpl: x509.CertificateRequest{EmailAddresses: []string{"Ops <ops@example.com>"}}, wantErr: pki.ErrMalformedCSR},
		{name: "relative URI SAN", key: p256, tmpl: x509.CertificateRequest{URIs: []*url.URL{{Path: "/device/1"}}}, wantErr: pki.ErrMalformedCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := x509.CreateCertificateRequest(rand.Reader, &tt.tmpl, tt.key)
			if err != nil {
				t.Fatalf("CreateCertificateRequest: %v", err)
			}
			if tt.mangle != nil {
				der = tt.mangle(der)
			}
			csr, err := pki.ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR = %v", err)
			}
			got, err := pki.CheckCSR(csr, tt.cnAsDNS)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("CheckCSR(%s) = %+v, %v, want %v", tt.name, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckCSR(%s) = %v, want ok", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("CheckCSR(%s) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestCheckCSRDoesNotAliasRequest: CheckCSR returns its own slices, so a
// caller appending a default name cannot write into the parsed request.
func TestCheckCSRDoesNotAliasRequest(t *testing.T) {
	csr := newCSR(t, testKey(t, pki.KeyP256, 2), &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "b.example.internal"}, DNSNames: []string{"a.example.internal"},
	})
	before := strings.Join(csr.DNSNames, ",")
	n, err := pki.CheckCSR(csr, true)
	if err != nil {
		t.Fatal(err)
	}
	n.DNS[0] = "changed.example"
	if got := strings.Join(csr.DNSNames, ","); got != before {
		t.Errorf("CheckCSR result aliases csr.DNSNames: now %q, was %q", got, before)
	}
}
