package policy_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/policy"
)

// seedPatterns reads testdata/patterns.txt: one entry a line, '#' comments.
func seedPatterns(f *testing.F) []string {
	f.Helper()
	b, err := os.ReadFile("testdata/patterns.txt")
	if err != nil {
		f.Fatal(err)
	}
	var seeds []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if line != "" && !strings.HasPrefix(line, "#") {
			seeds = append(seeds, line)
		}
	}
	return seeds
}

// trimSep is the optional trailing separator of the Wildcard doc.
func trimSep(s string, sep byte) string {
	if len(s) > 1 && s[len(s)-1] == sep {
		return s[:len(s)-1]
	}
	return s
}

func FuzzWildcard(f *testing.F) {
	for _, tc := range wildcardMatches {
		f.Add(tc.pattern, tc.sep, tc.in)
	}
	for _, p := range seedPatterns(f) {
		f.Add(p, byte('/'), p+"/x")
		f.Add(p, byte('.'), "a."+p)
	}
	f.Fuzz(func(t *testing.T, pattern string, sep byte, in string) {
		w, err := policy.CompileWildcard(pattern, sep)
		literal := pattern != "" && sep != '*' && !strings.Contains(pattern, "*")
		switch {
		case err != nil && literal:
			t.Fatalf("CompileWildcard(%q, %q) = %v, want a pattern without wildcards to compile", pattern, sep, err)
		case err == nil:
			got := w.Match(in)
			if literal {
				if !w.Match(pattern) {
					t.Fatalf("CompileWildcard(%q, %q).Match(itself) = false, want true", pattern, sep)
				}
				if want := trimSep(in, sep) == trimSep(pattern, sep); got != want {
					t.Fatalf("CompileWildcard(%q, %q).Match(%q) = %v, want %v", pattern, sep, in, got, want)
				}
			}
			if got && strings.Contains(pattern, "*") && strings.ContainsAny(in, "?#") && !strings.ContainsAny(pattern, "?#") {
				t.Fatalf("CompileWildcard(%q, %q).Match(%q) = true: a wildcard matched '?' or '#'", pattern, sep, in)
			}
		}
		if d, err := policy.CompileDNS(pattern); err == nil {
			d.Match(in)
			if !strings.Contains(pattern, "*") && !d.Match(strings.ToUpper(pattern)) {
				t.Fatalf("CompileDNS(%q).Match(upper case) = false, want true", pattern)
			}
		}
	})
}

func FuzzRulesCompile(f *testing.F) {
	seeds := seedPatterns(f)
	for i, s := range seeds {
		next := seeds[(i+1)%len(seeds)]
		f.Add(false, s, next, s, s, s, next, s, s)
	}
	f.Add(true, "", "", "", "", "", "", "", "")
	f.Add(false, "alice\nbob", "eng", "*.example.com\napi.example.com", "10.0.0.0/8\nfd00::/8",
		"spiffe://corp/device/*\nspiffe://corp/**", "a@example.com", "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "CN=CA,O=Corp\nCA")
	leaf := newLeaf(f, x509.Certificate{
		Subject:        pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"eng"}},
		DNSNames:       []string{"laptop-1.corp.example.com"},
		IPAddresses:    []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("fd00::1")},
		URIs:           mustURLs(f, "spiffe://corp/device/laptop-1"),
		EmailAddresses: []string{"alice@example.com"},
	})
	entries := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	f.Fuzz(func(t *testing.T, all bool, cn, ou, dns, ip, uri, email, spki, issuer string) {
		r := policy.Rules{
			AllowAll: all, CN: entries(cn), OU: entries(ou), DNS: entries(dns), IP: entries(ip),
			URI: entries(uri), Email: entries(email), SPKI: entries(spki), Issuer: entries(issuer),
		}
		p, err := policy.Compile(r)
		if verr := r.Validate(); (verr == nil) != (err == nil) {
			t.Fatalf("Validate(%+v) = %v but Compile = %v", r, verr, err)
		}
		if err != nil {
			if p != nil {
				t.Fatalf("Compile(%+v) = %v and a Policy", r, err)
			}
			return
		}
		_ = p.String()
		d, err := p.Authorize(leaf)
		if d.Allowed != (err == nil) || (err != nil && !errors.Is(err, policy.ErrDenied)) || d.Allowed != (d.Rule != "") {
			t.Fatalf("Authorize(%s) = %+v, %v: inconsistent", describe(leaf), d, err)
		}
		if err != nil {
			_ = err.Error()
		}
	})
}
