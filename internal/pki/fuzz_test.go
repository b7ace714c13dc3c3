package pki_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// addTestdata seeds f with every file in testdata matching glob.
func addTestdata(f *testing.F, glob string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files for %s: %v", glob, err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fuzzCSRs are generated seeds: a Go request with every SAN type, one
// asking for CA:TRUE, and damaged forms.
func fuzzCSRs(f *testing.F) [][]byte {
	key := testKey(f, pki.KeyP256, 2)
	full, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "node-1.example.internal", Organization: []string{"Example"}},
		DNSNames: []string{"node-1.example.internal", "*.node-1.example.internal"}, IPAddresses: []net.IP{{10, 0, 0, 1}, net.ParseIP("fd00::1")},
		EmailAddresses: []string{"ops@example.com"}, URIs: []*url.URL{mustURL(f, "spiffe://example.internal/device/node-1")},
	}, key)
	if err != nil {
		f.Fatal(err)
	}
	ca, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "ca"}, ExtraExtensions: []pkix.Extension{basicConstraints(f, true)},
	}, key)
	if err != nil {
		f.Fatal(err)
	}
	badSig := append([]byte{}, full...)
	badSig[len(badSig)-1] ^= 1
	p := pemBlock("CERTIFICATE REQUEST", full)
	return [][]byte{
		full, ca, badSig, p, pemBlock("NEW CERTIFICATE REQUEST", full), pemBlock("CERTIFICATE REQUEST", ca),
		p[:len(p)/2], append(append([]byte{}, p...), p...), nil, []byte("-----BEGIN CERTIFICATE REQUEST-----\n"),
	}
}

func FuzzParseCSR(f *testing.F) {
	addTestdata(f, "*.csr.*")
	for _, b := range fuzzCSRs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := pki.ParseCSR(data)
		if err != nil {
			if !errors.Is(err, pki.ErrMalformedCSR) {
				t.Fatalf("ParseCSR error %v does not wrap ErrMalformedCSR", err)
			}
			return
		}
		// The request re-encodes to itself, as PEM and as DER.
		again, err := pki.ParseCSR(pemBlock("CERTIFICATE REQUEST", csr.Raw))
		if err != nil || !bytes.Equal(again.Raw, csr.Raw) {
			t.Fatalf("ParseCSR(PEM of Raw) = %v; the request does not round-trip", err)
		}
		// DER is told from PEM by a BEGIN line; a request whose own bytes
		// hold one can only be read as PEM.
		if !bytes.Contains(csr.Raw, []byte("-----BEGIN")) {
			if again, err := pki.ParseCSR(csr.Raw); err != nil || !bytes.Equal(again.Raw, csr.Raw) {
				t.Fatalf("ParseCSR(Raw) = %v; the DER does not round-trip", err)
			}
		}
		without, errWithout := pki.CheckCSR(csr, false)
		with, errWith := pki.CheckCSR(csr, true)
		for _, err := range []error{errWithout, errWith} {
			if err != nil && !errors.Is(err, pki.ErrMalformedCSR) && !errors.Is(err, pki.ErrCSRSignature) &&
				!errors.Is(err, pki.ErrCSRAsksForCA) && !errors.Is(err, pki.ErrWeakKey) {
				t.Fatalf("CheckCSR error %v is not one of the CSR errors", err)
			}
		}
		// cnAsDNS only ever adds the CN, and only a valid name.
		if (errWithout == nil) != (errWith == nil) {
			t.Fatalf("CheckCSR(false) = %v but CheckCSR(true) = %v", errWithout, errWith)
		}
		if errWith != nil {
			return
		}
		if d := len(with.DNS) - len(without.DNS); d != 0 && d != 1 {
			t.Fatalf("cnAsDNS added %d names", d)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("CheckCSR accepted a request whose signature fails: %v", err)
		}
		if _, err := pki.KeyTypeOf(csr.PublicKey); err != nil {
			t.Fatalf("CheckCSR accepted key: %v", err)
		}
		checkNamesReparse(t, with)
	})
}

// checkNamesReparse: names ParseNames (or CheckCSR) returned parse again
// to themselves.
func checkNamesReparse(t *testing.T, n pki.Names) {
	t.Helper()
	var ips, uris []string
	for _, ip := range n.IPs {
		ips = append(ips, ip.String())
	}
	for _, u := range n.URIs {
		uris = append(uris, u.String())
	}
	again, err := pki.ParseNames(n.DNS, ips, n.Emails, uris)
	if err != nil {
		t.Fatalf("ParseNames(own output %q %q %q %q) = %v", n.DNS, ips, n.Emails, uris, err)
	}
	if !slices.Equal(again.DNS, n.DNS) || !slices.EqualFunc(again.IPs, n.IPs, net.IP.Equal) || !slices.Equal(again.Emails, n.Emails) ||
		!slices.EqualFunc(again.URIs, n.URIs, func(a, b *url.URL) bool { return a.String() == b.String() }) {
		t.Fatalf("ParseNames is not idempotent: %+v then %+v", n, again)
	}
	for _, d := range n.DNS {
		if d != strings.ToLower(d) || strings.HasSuffix(d, ".") || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-.*") != "" {
			t.Fatalf("accepted DNS name %q is not a lower-case LDH name", d)
		}
	}
}

func FuzzParseCertificates(f *testing.F) {
	addTestdata(f, "openssl-*")
	certs := testBundle(f)
	bundle := pki.EncodeCertificates(certs...)
	for _, b := range [][]byte{
		bundle, certs[0].Raw, bundle[:len(bundle)-30], []byte("text\n" + string(bundle) + "more text\n"),
		append(append([]byte{}, bundle...), pemBlock("PRIVATE KEY", []byte{1})...), nil, []byte("-----BEGIN"),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := pki.ParseCertificates(data)
		if err != nil {
			if !errors.Is(err, pki.ErrMalformedPEM) {
				t.Fatalf("ParseCertificates error %v does not wrap ErrMalformedPEM", err)
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("ParseCertificates returned no certificates and no error")
		}
		for i, c := range got {
			if c == nil || len(c.Raw) == 0 {
				t.Fatalf("certificate %d has no Raw", i)
			}
		}
		again, err := pki.ParseCertificates(pki.EncodeCertificates(got...))
		if err != nil || len(again) != len(got) {
			t.Fatalf("ParseCertificates(EncodeCertificates(%d certs)) = %d, %v", len(got), len(again), err)
		}
		for i := range got {
			if !bytes.Equal(again[i].Raw, got[i].Raw) {
				t.Fatalf("certificate %d does not round-trip", i)
			}
		}
	})
}

// FuzzDecodePEMBlocks: whatever the input, DecodePEMBlocks either returns
// one block per BEGIN marker (none is passed over) that re-encode to the
// same blocks, or a *PEMError that points inside the input.
func FuzzDecodePEMBlocks(f *testing.F) {
	addTestdata(f, "pem-*")
	addTestdata(f, "openssl-*")
	addTestdata(f, "*.csr.pem")
	for _, s := range []string{"", blockA, blockA + blockA, "-----BEGIN", "-----END A-----\n", "x -----BEGIN A-----\nAAAA\n-----END A-----",
		"-----BEGIN A-----\nK: v\n\nAAAA\n-----END A-----\n", "-----BEGIN A-----\nAA=A\n-----END A-----\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, err := pki.DecodePEMBlocks(data)
		if err != nil {
			var pe *pki.PEMError
			lines := bytes.Count(data, []byte("\n")) + 1
			if !errors.As(err, &pe) || pe.Block < 0 || pe.Block > bytes.Count(data, []byte("-----BEGIN")) ||
				pe.Line < 1 || pe.Line > lines || pe.Reason == "" {
				t.Fatalf("DecodePEMBlocks error %#v does not point inside the input (%d lines)", err, lines)
			}
			return
		}
		if n := bytes.Count(data, []byte("-----BEGIN")); len(blocks) != n {
			t.Fatalf("DecodePEMBlocks returned %d blocks for %d BEGIN markers", len(blocks), n)
		}
		var again []byte
		for _, b := range blocks {
			again = append(again, pem.EncodeToMemory(b)...)
		}
		round, err := pki.DecodePEMBlocks(again)
		if err != nil || len(round) != len(blocks) {
			t.Fatalf("DecodePEMBlocks(re-encoded %d blocks) = %d, %v", len(blocks), len(round), err)
		}
		for i := range blocks {
			if round[i].Type != blocks[i].Type || !bytes.Equal(round[i].Bytes, blocks[i].Bytes) || !maps.Equal(round[i].Headers, blocks[i].Headers) {
				t.Fatalf("block %d does not round-trip: %+v, then %+v", i+1, blocks[i], round[i])
			}
		}
	})
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzParseNames(f *testing.F) {
	f.Add("example.com,*.example.com,Example.COM.", "10.0.0.1,::1,::ffff:10.0.0.1", "a@example.com", "spiffe://x/y")
	f.Add("xn--bcher-kva.example,bücher.example", "10.0.0.256", "A <a@example.com>", "/relative")
	f.Add("*.com,a..b,-a.example,ab--cd.example", "fe80::1%eth0", "a@localhost,@x", "urn:uuid:1,mailto:a@b")
	f.Add(strings.Repeat("a", 64)+".example", "", "", "http://[::1]:80/p?q#f")
	f.Fuzz(func(t *testing.T, dns, ips, emails, uris string) {
		in := [][]string{splitList(dns), splitList(ips), splitList(emails), splitList(uris)}
		n, err := pki.ParseNames(in[0], in[1], in[2], in[3])
		out := []int{len(n.DNS), len(n.IPs), len(n.Emails), len(n.URIs)}
		for i := range in {
			if out[i] > len(in[i]) || (err == nil && out[i] != len(in[i])) {
				t.Fatalf("ParseNames(%q) returned %v names with err %v", in, out, err)
			}
		}
		checkNamesReparse(t, n)
		// An empty policy allows whatever parsed.
		if err := (pki.NamePolicy{}).Check(n); err != nil {
			t.Fatalf("empty NamePolicy.Check(%+v) = %v", n, err)
		}
	})
}

// FuzzNamePolicy: whatever the patterns, a name denied by its own exact
// form is refused, allowed by it is accepted, and a pattern that allows a
// name denies it when used as a deny rule.
func FuzzNamePolicy(f *testing.F) {
	f.Add(".example.com", "a.example.com", "10.0.0.0/8", "10.1.2.3", "@example.com", "a@example.com", "spiffe://x/", "spiffe://x/y")
	f.Add("example.com", "Example.com", "::/0", "::ffff:10.0.0.1", ".example.com", "a@sub.example.com", "", "urn:x")
	f.Add(".", "*.a.b", "10.0.0.1", "10.0.0.1", "A@Example.com", "a@example.com", "spiffe://x", "spiffe://x.evil/")
	f.Add("", "", "1.2.3.4/33", "", "@", "@", "", "")
	f.Fuzz(func(t *testing.T, dnsPat, dns, ipPat, ipName, emailPat, email, uriPat, uri string) {
		type kind struct {
			name  string
			pat   string
			names pki.Names
			exact string
			rules func(pki.Rules) pki.NamePolicy
		}
		var kinds []kind
		if n, err := pki.ParseNames([]string{dns}, nil, nil, nil); err == nil {
			kinds = append(kinds, kind{"dns", dnsPat, n, n.DNS[0], func(r pki.Rules) pki.NamePolicy { return pki.NamePolicy{DNS: r} }})
		}
		if n, err := pki.ParseNames(nil, []string{ipName}, nil, nil); err == nil {
			kinds = append(kinds, kind{"ip", ipPat, n, n.IPs[0].String(), func(r pki.Rules) pki.NamePolicy { return pki.NamePolicy{IP: r} }})
		}
		if n, err := pki.ParseNames(nil, nil, []string{email}, nil); err == nil {
			kinds = append(kinds, kind{"email", emailPat, n, n.Emails[0], func(r pki.Rules) pki.NamePolicy { return pki.NamePolicy{Email: r} }})
		}
		if n, err := pki.ParseNames(nil, nil, nil, []string{uri}); err == nil {
			kinds = append(kinds, kind{"uri", uriPat, n, n.URIs[0].String(), func(r pki.Rules) pki.NamePolicy { return pki.NamePolicy{URI: r} }})
		}
		for _, k := range kinds {
			if err := k.rules(pki.Rules{Deny: []string{k.exact}}).Check(k.names); !errors.Is(err, pki.ErrNameNotAllowed) {
				t.Fatalf("%s: deny %q, Check(%+v) = %v, want ErrNameNotAllowed", k.name, k.exact, k.names, err)
			}
			if err := k.rules(pki.Rules{Allow: []string{k.exact}}).Check(k.names); err != nil {
				t.Fatalf("%s: allow %q, Check(%+v) = %v, want nil", k.name, k.exact, k.names, err)
			}
			allowed := k.rules(pki.Rules{Allow: []string{k.pat}}).Check(k.names) == nil
			denied := k.rules(pki.Rules{Deny: []string{k.pat}}).Check(k.names) != nil
			if allowed != denied {
				t.Fatalf("%s: pattern %q allows %+v: %v, but denies it: %v", k.name, k.pat, k.names, allowed, denied)
			}
			both := k.rules(pki.Rules{Allow: []string{k.exact, k.pat}, Deny: []string{k.pat}})
			if denied && both.Check(k.names) == nil {
				t.Fatalf("%s: %q is allowed exactly and denied by %q; deny did not win", k.name, k.exact, k.pat)
			}
			_ = both.Validate()
		}
	})
}
