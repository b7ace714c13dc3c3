package policy_test

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/policy"
)

func TestAuthorize(t *testing.T) {
	alice := newLeaf(t, x509.Certificate{
		Subject:        pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"sales", "eng"}},
		EmailAddresses: []string{"alice@Corp.Example.com"},
	})
	laptop := newLeaf(t, x509.Certificate{
		URIs:     mustURLs(t, "spiffe://corp/device/laptop-1"),
		DNSNames: []string{"laptop-1.corp.example.com"},
	})
	deep := newLeaf(t, x509.Certificate{URIs: mustURLs(t, "spiffe://corp/device/fleet/laptop-2")})
	query := newLeaf(t, x509.Certificate{URIs: mustURLs(t, "spiffe://corp/device/laptop-1?x=1")})
	encoded := newLeaf(t, x509.Certificate{URIs: mustURLs(t, "spiffe://corp/device/a%2Fb")})
	twoURIs := newLeaf(t, x509.Certificate{URIs: mustURLs(t, "https://corp.example.com/", "spiffe://corp/user/bob")})
	mixedDNS := newLeaf(t, x509.Certificate{DNSNames: []string{"API.Example.COM"}})
	deepDNS := newLeaf(t, x509.Certificate{DNSNames: []string{"a.b.example.com"}})
	apex := newLeaf(t, x509.Certificate{DNSNames: []string{"example.com"}})
	v4 := newLeaf(t, x509.Certificate{IPAddresses: []net.IP{net.ParseIP("10.1.2.3")}})
	v6 := newLeaf(t, x509.Certificate{IPAddresses: []net.IP{net.ParseIP("2001:db8::5")}})
	mallory := newLeaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "mallory", OrganizationalUnit: []string{"eng-contractors"}}})

	sum := sha256.Sum256(alice.RawSubjectPublicKeyInfo)
	b64, hx := base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(hx); i += 2 {
		colons = append(colons, strings.ToUpper(hx[i:i+2]))
	}

	const device = "spiffe://corp/device/*"
	for _, tc := range []struct {
		name  string
		rules policy.Rules
		leaf  *x509.Certificate
		want  string // the Decision's Rule; "" is denied
	}{
		{"allow_all", policy.Rules{AllowAll: true}, mallory, "allow_all"},

		{"cn", policy.Rules{CN: []string{"bob", "alice"}}, alice, "cn=alice"},
		{"cn other", policy.Rules{CN: []string{"bob", "alice"}}, mallory, ""},
		{"cn is case-sensitive", policy.Rules{CN: []string{"Alice"}}, alice, ""},
		{"cn absent", policy.Rules{CN: []string{"alice"}}, laptop, ""},

		{"ou among several", policy.Rules{OU: []string{"ops", "eng"}}, alice, "ou=eng"},
		{"ou exact", policy.Rules{OU: []string{"eng"}}, mallory, ""},
		{"ou is case-sensitive", policy.Rules{OU: []string{"ENG"}}, alice, ""},

		{"dns wildcard", policy.Rules{DNS: []string{"*.corp.example.com"}}, laptop, "dns=*.corp.example.com"},
		{"dns ignores case", policy.Rules{DNS: []string{"api.example.com"}}, mixedDNS, "dns=api.example.com"},
		{"dns wildcard ignores case", policy.Rules{DNS: []string{"*.EXAMPLE.com"}}, mixedDNS, "dns=*.EXAMPLE.com"},
		{"dns wildcard is one label", policy.Rules{DNS: []string{"*.example.com"}}, deepDNS, ""},
		{"dns wildcard needs a label", policy.Rules{DNS: []string{"*.example.com"}}, apex, ""},
		{"dns exact", policy.Rules{DNS: []string{"example.com"}}, apex, "dns=example.com"},

		{"ip address", policy.Rules{IP: []string{"10.1.2.3"}}, v4, "ip=10.1.2.3"},
		{"ip other address", policy.Rules{IP: []string{"10.1.2.4"}}, v4, ""},
		{"ip v4 cidr", policy.Rules{IP: []string{"192.168.0.0/16", "10.0.0.0/8"}}, v4, "ip=10.0.0.0/8"},
		{"ip v4 cidr miss", policy.Rules{IP: []string{"10.1.3.0/24"}}, v4, ""},
		{"ip v4-mapped cidr", policy.Rules{IP: []string{"::ffff:10.1.2.0/120"}}, v4, "ip=::ffff:10.1.2.0/120"},
		{"ip v4-mapped address", policy.Rules{IP: []string{"::ffff:10.1.2.3"}}, v4, "ip=::ffff:10.1.2.3"},
		{"ip v6 cidr", policy.Rules{IP: []string{"2001:db8::/32"}}, v6, "ip=2001:db8::/32"},
		{"ip v6 address", policy.Rules{IP: []string{"2001:db8:0::5"}}, v6, "ip=2001:db8:0::5"},
		{"ip v6 cidr miss", policy.Rules{IP: []string{"2001:db9::/32"}}, v6, ""},
		{"ip v6 cidr holds no v4", policy.Rules{IP: []string{"::/0"}}, v4, ""},
		{"ip v4 cidr holds no v6", policy.Rules{IP: []string{"0.0.0.0/0"}}, v6, ""},

		{"uri *", policy.Rules{URI: []string{device}}, laptop, "uri=" + device},
		{"uri * is one segment", policy.Rules{URI: []string{device}}, deep, ""},
		{"uri * skips a query", policy.Rules{URI: []string{device}}, query, ""},
		{"uri * takes %2F", policy.Rules{URI: []string{device}}, encoded, "uri=" + device},
		{"uri **", policy.Rules{URI: []string{"spiffe://corp/device/**"}}, deep, "uri=spiffe://corp/device/**"},
		{"uri ** skips a query", policy.Rules{URI: []string{"spiffe://corp/device/**"}}, query, ""},
		{"uri literal query", policy.Rules{URI: []string{"spiffe://corp/device/laptop-1?x=1"}}, query, "uri=spiffe://corp/device/laptop-1?x=1"},
		{"uri spiffe id", policy.Rules{URI: []string{"spiffe://corp/device/laptop-1"}}, laptop, "uri=spiffe://corp/device/laptop-1"},
		{"uri spiffe id other", policy.Rules{URI: []string{"spiffe://corp/device/laptop-2"}}, laptop, ""},
		{"uri scheme ignores case", policy.Rules{URI: []string{"SPIFFE://corp/device/*"}}, laptop, "uri=SPIFFE://corp/device/*"},
		{"uri host is literal", policy.Rules{URI: []string{"spiffe://CORP/device/*"}}, laptop, ""},
		{"uri host wildcard", policy.Rules{URI: []string{"spiffe://*/device/*"}}, laptop, "uri=spiffe://*/device/*"},
		{"uri second SAN", policy.Rules{URI: []string{"spiffe://corp/user/*"}}, twoURIs, "uri=spiffe://corp/user/*"},
		{"uri absent", policy.Rules{URI: []string{"spiffe://**"}}, alice, ""},

		{"email", policy.Rules{Email: []string{"alice@corp.example.com"}}, alice, "email=alice@corp.example.com"},
		{"email local part is exact", policy.Rules{Email: []string{"Alice@corp.example.com"}}, alice, ""},

		{"spki base64", policy.Rules{SPKI: []string{b64}}, alice, "spki_sha256=" + b64},
		{"spki raw base64", policy.Rules{SPKI: []string{strings.TrimRight(b64, "=")}}, alice, "spki_sha256=" + strings.TrimRight(b64, "=")},
		{"spki hpkp", policy.Rules{SPKI: []string{"sha256/" + b64}}, alice, "spki_sha256=sha256/" + b64},
		{"spki ghostunnel", policy.Rules{SPKI: []string{"sha256:" + b64}}, alice, "spki_sha256=sha256:" + b64},
		{"spki hex", policy.Rules{SPKI: []string{hx}}, alice, "spki_sha256=" + hx},
		{"spki upper hex", policy.Rules{SPKI: []string{strings.ToUpper(hx)}}, alice, "spki_sha256=" + strings.ToUpper(hx)},
		{"spki colon hex", policy.Rules{SPKI: []string{strings.Join(colons, ":")}}, alice, "spki_sha256=" + strings.Join(colons, ":")},
		{"spki other key", policy.Rules{SPKI: []string{b64, hx}}, mallory, ""},

		{"issuer cn", policy.Rules{Issuer: []string{"Portcullis Test CA"}}, laptop, "issuer=Portcullis Test CA"},
		{"issuer dn", policy.Rules{Issuer: []string{testCADN}}, laptop, "issuer=" + testCADN},
		{"issuer other cn", policy.Rules{Issuer: []string{"Other CA"}}, laptop, ""},
		{"issuer partial dn", policy.Rules{Issuer: []string{"CN=Portcullis Test CA"}}, laptop, ""},
		{"issuer dn is not a cn", policy.Rules{Issuer: []string{"CN=Portcullis Test CA,O=Portcullis"}}, laptop, ""},

		{"or across kinds", policy.Rules{CN: []string{"bob"}, URI: []string{device}}, laptop, "uri=" + device},
		{"first kind wins", policy.Rules{CN: []string{"alice"}, OU: []string{"eng"}}, alice, "cn=alice"},
		{"nothing matches", policy.Rules{CN: []string{"alice"}, OU: []string{"sales"}, DNS: []string{"*.corp.example.com"},
			IP: []string{"10.0.0.0/8"}, URI: []string{device}, SPKI: []string{b64}, Issuer: []string{"Other CA"}}, mallory, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Compile(tc.rules)
			if err != nil {
				t.Fatalf("Compile(%+v) = %v", tc.rules, err)
			}
			d, err := p.Authorize(tc.leaf)
			want := policy.Decision{Allowed: tc.want != "", Rule: tc.want}
			if d != want || (err == nil) != want.Allowed {
				t.Errorf("Authorize(%s) = %+v, %v, want %+v", describe(tc.leaf), d, err, want)
			}
			if err != nil && !errors.Is(err, policy.ErrDenied) {
				t.Errorf("Authorize(%s) error %v does not wrap ErrDenied", describe(tc.leaf), err)
			}
		})
	}
}

func TestAuthorizeDenied(t *testing.T) {
	p, err := policy.Compile(policy.Rules{CN: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	var nilPolicy *policy.Policy
	for _, tc := range []struct {
		name string
		p    *policy.Policy
		leaf *x509.Certificate
		want string
	}{
		{"cn", p, newLeaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "mallory"}}), `access denied: no rule matches peer cn="mallory" san=""`},
		{"uri first", p, newLeaf(t, x509.Certificate{
			DNSNames: []string{"m.example.com"}, URIs: mustURLs(t, "spiffe://corp/device/m"),
		}), `cn="" san="uri:spiffe://corp/device/m"`},
		{"dns", p, newLeaf(t, x509.Certificate{DNSNames: []string{"m.example.com"}}), `san="dns:m.example.com"`},
		{"ip", p, newLeaf(t, x509.Certificate{IPAddresses: []net.IP{net.ParseIP("fd00::1")}}), `san="ip:fd00::1"`},
		{"email", p, newLeaf(t, x509.Certificate{EmailAddresses: []string{"m@example.com"}}), `san="email:m@example.com"`},
		{"control characters quoted", p, newLeaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "a\nb"}}), `cn="a\nb"`},
		{"no certificate", p, nil, "access denied: no peer certificate"},
		{"no policy", nilPolicy, newLeaf(t, x509.Certificate{}), "access denied: no policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.p.Authorize(tc.leaf)
			if d.Allowed || !errors.Is(err, policy.ErrDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Authorize(%s) = %+v, %v, want denied with %q", tc.name, d, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules policy.Rules
		want  []string // substrings of the error; nil is valid
	}{
		{"allow_all", policy.Rules{AllowAll: true}, nil},
		{"every kind", policy.Rules{CN: []string{"a"}, OU: []string{"b"}, DNS: []string{"*.c.example"}, IP: []string{"10.0.0.0/8", "fd00::1"},
			URI: []string{"spiffe://corp/**"}, Email: []string{"e@example.com"}, SPKI: []string{strings.Repeat("ab", 32)},
			Issuer: []string{"CA", "CN=CA,O=Corp"}}, nil},
		{"duplicates", policy.Rules{CN: []string{"a", "a"}}, nil},
		{"empty", policy.Rules{}, []string{"no access rule: set allow_all or at least one rule"}},
		{"empty lists", policy.Rules{CN: []string{}, URI: nil}, []string{"no access rule"}},
		{"allow_all with rules", policy.Rules{AllowAll: true, CN: []string{"a"}}, []string{"allow_all cannot be combined with other rules"}},
		{"empty entry", policy.Rules{CN: []string{"a", ""}}, []string{`cn[1] "": empty entry`}},
		{"space", policy.Rules{OU: []string{"eng "}}, []string{`ou[0] "eng ": leading or trailing space`}},
		{"control", policy.Rules{Issuer: []string{"a\x00b"}}, []string{`issuer[0] "a\x00b": control character`}},
		{"dns", policy.Rules{DNS: []string{"a.*.example.com", "*"}}, []string{`dns[0] "a.*.example.com"`, `dns[1] "*"`}},
		{"ip", policy.Rules{IP: []string{"10.0.0.1/8", "10.0.0.256", "fe80::1%eth0", "::ffff:0:0/80", "10.0.0.0/33", "010.0.0.1"}}, []string{
			`ip[0] "10.0.0.1/8": host bits set; did you mean 10.0.0.0/8?`,
			`ip[1] "10.0.0.256": not an IP address or CIDR prefix`,
			`ip[2] "fe80::1%eth0": not an IP address`,
			`ip[3] "::ffff:0:0/80": host bits set; did you mean ::/80?`,
			`ip[4] "10.0.0.0/33": not an IP address`,
			`ip[5] "010.0.0.1": not an IP address`,
		}},
		{"uri", policy.Rules{URI: []string{"spiffe://corp/a**b", "spiffe://corp/**/x", "**", "*://corp/x", "//corp/x"}}, []string{
			`uri[0] "spiffe://corp/a**b": segment "a**b": a wildcard must be a whole segment`,
			`uri[1] "spiffe://corp/**/x": "**" is allowed only as the last segment`,
			`uri[2] "**": want a URI with a literal scheme`,
			`uri[3] "*://corp/x": want a URI with a literal scheme`,
			`uri[4] "//corp/x": want a URI with a literal scheme`,
		}},
		{"email", policy.Rules{Email: []string{"nobody", "@example.com", "a@", "a@*.example.com"}}, []string{
			`email[0] "nobody": want local@domain`, `email[1]`, `email[2]`, `email[3] "a@*.example.com": domain:`,
		}},
		{"spki", policy.Rules{SPKI: []string{"abc", strings.Repeat("zz", 32), "sha256/" + strings.Repeat("A", 42) + "B=" /* non-canonical */, "sha512/" + strings.Repeat("ab", 32)}}, []string{
			`spki_sha256[0] "abc": want the SHA-256`, `spki_sha256[1]`, `spki_sha256[2]`, `spki_sha256[3]`,
		}},
		{"every problem", policy.Rules{CN: []string{""}, URI: []string{"a**b"}, IP: []string{"x"}}, []string{"cn[0]", "uri[0]", "ip[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Validate()
			if tc.want == nil {
				if err != nil {
					t.Errorf("Validate(%+v) = %v, want nil", tc.rules, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%+v) = nil, want errors %q", tc.rules, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %v, want it to contain %q", tc.rules, err, w)
				}
			}
			if p, cerr := policy.Compile(tc.rules); p != nil || cerr == nil {
				t.Errorf("Compile(%+v) = %v, %v, want nil and the error Validate gives", tc.rules, p, cerr)
			}
		})
	}
}

func TestPolicyString(t *testing.T) {
	for _, tc := range []struct {
		rules policy.Rules
		want  string
	}{
		{policy.Rules{AllowAll: true}, "allow_all"},
		{policy.Rules{CN: []string{"alice", "bob"}, URI: []string{"spiffe://corp/device/*"}}, `cn=["alice" "bob"] uri=["spiffe://corp/device/*"]`},
		{policy.Rules{Issuer: []string{testCADN}, SPKI: []string{strings.Repeat("ab", 32)}},
			`spki_sha256=["` + strings.Repeat("ab", 32) + `"] issuer=["` + testCADN + `"]`},
	} {
		p, err := policy.Compile(tc.rules)
		if err != nil {
			t.Fatalf("Compile(%+v) = %v", tc.rules, err)
		}
		if got := p.String(); got != tc.want {
			t.Errorf("Compile(%+v).String() = %q, want %q", tc.rules, got, tc.want)
		}
	}
	var nilPolicy *policy.Policy
	if got := nilPolicy.String(); got != "deny_all" {
		t.Errorf("(*Policy)(nil).String() = %q, want %q", got, "deny_all")
	}
}
