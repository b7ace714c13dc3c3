package policy_test

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"net"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/policy"
)

// BenchmarkAuthorize measures the per-handshake check (it runs in
// VerifyConnection) with a 12-rule policy of every kind, on peers matched
// by an early rule, by late ones, and by none, the worst case, where every
// rule is tried and the denial is built.
func BenchmarkAuthorize(b *testing.B) {
	device := newLeaf(b, x509.Certificate{
		Subject:     pkix.Name{CommonName: "laptop-1", OrganizationalUnit: []string{"devices"}},
		DNSNames:    []string{"laptop-1.corp.example.com"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.7")},
		URIs:        mustURLs(b, "spiffe://corp/device/laptop-1"),
	})
	pinned := newLeaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "pinned"}})
	sum := sha256.Sum256(pinned.RawSubjectPublicKeyInfo)
	rules := policy.Rules{
		CN:     []string{"alice", "bob"},
		OU:     []string{"admins", "sre"},
		DNS:    []string{"*.svc.example.com", "api.example.com"},
		IP:     []string{"10.0.0.0/8", "fd00::/8"},
		URI:    []string{"spiffe://corp/user/*", "spiffe://corp/device/*"},
		SPKI:   []string{"sha256/" + base64.StdEncoding.EncodeToString(sum[:])},
		Issuer: []string{"Other Issuing CA"},
	}
	p, err := policy.Compile(rules)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		leaf *x509.Certificate
		want string
	}{
		{"cn", newLeaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "bob"}}), "cn=bob"},
		{"uri", device, "uri=spiffe://corp/device/*"},
		{"spki", pinned, "spki_sha256=" + rules.SPKI[0]},
		{"deny", newLeaf(b, x509.Certificate{
			Subject:  pkix.Name{CommonName: "mallory", OrganizationalUnit: []string{"guests"}},
			DNSNames: []string{"m.example.org"}, IPAddresses: []net.IP{net.ParseIP("198.51.100.1")},
			URIs: mustURLs(b, "spiffe://corp/guest/m"),
		}), ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if d, err := p.Authorize(bc.leaf); d.Rule != bc.want {
				b.Fatalf("Authorize(%s) = %+v, %v, want rule %q", describe(bc.leaf), d, err, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = p.Authorize(bc.leaf)
			}
		})
	}
}

func BenchmarkWildcardMatch(b *testing.B) {
	w, err := policy.CompileWildcard("spiffe://cluster.local/ns/*/sa/*", '/')
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w.Match("spiffe://cluster.local/ns/prod/sa/bench-client")
	}
}
